"""keras.applications weights copy into keras_zoo models with identical outputs."""
import numpy as np
import pytest

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.weights import from_keras_applications

pytestmark = pytest.mark.both_keras


def randomize(model, seed=0):
    """Random values for every weight, BatchNorm statistics included (variances positive)."""
    rng = np.random.RandomState(seed)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in v.name
                       else rng.normal(0, 0.1, w.shape).astype("float32")
                       for v, w in zip(model.weights, model.get_weights())])


@pytest.mark.parametrize("alpha,name", [(1.0, "mobilenet_v2_100"), (1.4, "mobilenet_v2_140")])
def test_mobilenet_v2_equals_keras_applications(alpha, name):
    ref = keras.applications.MobileNetV2(weights=None, alpha=alpha, input_shape=(96, 96, 3),
                                         classifier_activation=None)
    randomize(ref)
    model = from_keras_applications(keras_zoo.create_model(name, resolution=96), ref)
    x = np.random.RandomState(1).uniform(-1, 1, (2, 96, 96, 3)).astype("float32")
    diff = np.abs(np.asarray(model(x, training=False)) - np.asarray(ref(x, training=False))).max()
    assert diff < 1e-4


def test_mismatched_architecture_raises_before_copying():
    ref = keras.applications.MobileNetV2(weights=None, alpha=1.4, input_shape=(96, 96, 3))
    model = keras_zoo.create_model("mobilenet_v2_100", resolution=96)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="does not match"):
        from_keras_applications(model, ref)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_weights_path_round_trip_and_bad_path(tmp_path):
    model = keras_zoo.create_model("mobilenet_v2_100", resolution=32, num_classes=4)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    again = keras_zoo.create_model("mobilenet_v2_100", resolution=32, num_classes=4, weights=path)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))
    with pytest.raises(ValueError, match="save_weights"):
        keras_zoo.create_model("mobilenet_v2_100", weights=str(tmp_path / "missing.h5"))
