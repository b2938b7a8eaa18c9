"""Image augmentation written in core TensorFlow (no tensorflow-addons)."""
from keras_zoo.data.augment.geometric import random_shift  # noqa: F401
