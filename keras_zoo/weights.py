"""Moving weights in and out of keras_zoo models.

`from_keras_applications(model, ref)` copies the weights of a `keras.applications` model into the
keras_zoo model of the same architecture, layer by layer in graph order, checking every layer's
kind and every weight's shape first, so that nothing is half-copied on a mismatch.
"""
import os

from keras_zoo.backend import keras

# Layers of keras.applications graphs that carry weights but are input preprocessing, not network.
_PREPROCESSING = (keras.layers.Normalization, keras.layers.Rescaling)


def _kind(layer):
    for kind in (keras.layers.DepthwiseConv2D, keras.layers.Conv2D, keras.layers.Dense,
                 keras.layers.BatchNormalization):
        if isinstance(layer, kind):
            return kind.__name__
    return type(layer).__name__


def _weighted_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _weighted_layers(layer)
        elif layer.weights and not isinstance(layer, _PREPROCESSING):
            yield layer


def from_keras_applications(model, ref):
    """Copies `ref`'s weights (a keras.applications model) into `model`; returns `model`.

    Raises ValueError, before changing anything, if the two graphs' weighted layers differ in
    number, kind or weight shapes (for example a different width, or `include_top` mismatch).
    """
    ours, theirs = list(_weighted_layers(model)), list(_weighted_layers(ref))
    if len(ours) != len(theirs):
        raise ValueError(
            f"{model.name} has {len(ours)} weighted layers but {ref.name} has {len(theirs)}: not the "
            "same architecture (check the width/alpha, include_top and number of classes).")
    pairs = []
    for a, b in zip(ours, theirs):
        wa, wb = a.get_weights(), b.get_weights()
        if _kind(a) != _kind(b) or [w.shape for w in wa] != [w.shape for w in wb]:
            raise ValueError(
                f"Layer {a.name} ({_kind(a)}, {[w.shape for w in wa]}) does not match {ref.name}'s "
                f"{b.name} ({_kind(b)}, {[w.shape for w in wb]}).")
        pairs.append((a, wb))
    for layer, values in pairs:
        layer.set_weights(values)
    return model


def load(model, spec, weights):
    """Loads `weights` (a path written by `model.save_weights`) into `model` built from `spec`."""
    if not isinstance(weights, (str, os.PathLike)) or not os.path.exists(weights):
        raise ValueError(
            f"weights={weights!r} for {spec.name}: pass the path of a weights file saved with "
            "`model.save_weights(...)` (pretrained downloads are not available for this model yet).")
    model.load_weights(weights)
    return model
