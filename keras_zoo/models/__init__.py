"""Model families. Importing this package registers every model."""
from keras_zoo.models import efficientnet, mixnet, mobilenet_v2, resnet  # noqa: F401
