"""Activations by name, the same everywhere in keras_zoo (and smooth ones, SAT arXiv:2006.14536).

`activation_layer("relu6")` returns a layer that TFMOT can quantize and that keeps weight- and
output-compatibility with keras.applications (which uses `ReLU(6.)` for relu6).
"""
from keras_zoo.backend import keras

_ALIASES = {"silu": "swish", "hswish": "hard_swish", "hard_silu": "hard_swish"}
_RELUS = {"relu": None, "relu6": 6.0}
_KERAS = ("swish", "gelu", "elu", "softplus", "sigmoid", "tanh", "linear")
NAMES = tuple(sorted(set(_RELUS) | set(_KERAS) | set(_ALIASES)))


def canonical(name):
    name = (name or "linear").lower()
    name = _ALIASES.get(name, name)
    if name not in _RELUS and name not in _KERAS:
        raise ValueError(f"Unknown activation {name!r}; choose one of {', '.join(NAMES)}.")
    return name


def activation_layer(name, layer_name=None):
    """A Keras layer applying the activation `name` (see `NAMES`)."""
    name = canonical(name)
    if name in _RELUS:
        return keras.layers.ReLU(_RELUS[name], name=layer_name)
    return keras.layers.Activation(name, name=layer_name)
