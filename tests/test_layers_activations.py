import numpy as np
import pytest

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.layers.activations import NAMES, HardSwish, activation_layer, canonical

pytestmark = pytest.mark.both_keras


def test_every_name_builds_and_is_finite():
    x = np.linspace(-8, 8, 33, dtype="float32")[None]
    for name in NAMES:
        y = np.asarray(activation_layer(name)(x))
        assert y.shape == x.shape and np.all(np.isfinite(y)), name


def test_values_of_the_piecewise_ones():
    x = np.array([[-4.0, -1.0, 0.0, 1.0, 4.0, 7.0]], "float32")
    np.testing.assert_allclose(activation_layer("relu6")(x), [[0, 0, 0, 1, 4, 6]])
    np.testing.assert_allclose(HardSwish()(x), [[0, -1 / 3, 0, 2 / 3, 4, 7]], rtol=1e-6)
    np.testing.assert_allclose(activation_layer("silu")(x), x / (1 + np.exp(-x)), rtol=1e-5)


def test_aliases_and_unknown_names():
    assert canonical("SiLU") == "swish" and canonical("hswish") == "hard_swish"
    with pytest.raises(ValueError, match="Unknown activation 'mish'"):
        canonical("mish")


def test_activation_is_swappable_by_name_in_a_model():
    model = keras_zoo.create_model("mnasnet_small", resolution=32, activation="hard_swish")
    assert any(isinstance(layer, HardSwish) for layer in model.layers)
    assert keras.saving.get_registered_object("keras_zoo>HardSwish") is HardSwish
