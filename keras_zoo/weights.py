"""Moving weights in and out of keras_zoo models.

`from_keras_applications(model, ref)` copies the weights of a `keras.applications` model into the
keras_zoo model of the same architecture, layer by layer in graph order, checking every layer's
kind and every weight's shape first, so that nothing is half-copied on a mismatch.

A conv bias of the reference that our graph does not have (keras.applications' ResNets put biases on
convolutions that BatchNorm follows) is folded into that BatchNorm: BN(x + b) with moving mean m
equals BN(x) with moving mean m - b, in inference and (the batch mean absorbs b) in training.
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


def _weighted_layers(model, skip=()):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _weighted_layers(layer, skip)
        elif layer.weights and not isinstance(layer, _PREPROCESSING) and layer.name not in skip:
            yield layer


def _conv_biases_to_fold(ours, theirs, ref):
    """{'convs': names of reference convs whose bias ours lacks, 'bns': {reference BN name: bias}}."""
    convs, bns = set(), {}
    for a, b in zip(ours, theirs):
        if (_kind(a) == _kind(b) == "Conv2D" and getattr(b, "use_bias", False) and not getattr(a, "use_bias", True)):
            bn_name = b.name[:-len("conv")] + "bn" if b.name.endswith("conv") else None
            try:
                bn = ref.get_layer(bn_name)
            except ValueError:
                bn = None
            if bn is None or _kind(bn) != "BatchNormalization" or not (bn.center and bn.scale):
                raise ValueError(f"{ref.name}'s {b.name} has a bias that {a.name} lacks, and no BatchNorm "
                                 "follows it to fold it into.")
            convs.add(b.name)
            bns[bn.name] = b.get_weights()[1]
    return {"convs": convs, "bns": bns}


def from_keras_applications(model, ref, skip=()):
    """Copies `ref`'s weights (a keras.applications model) into `model`; returns `model`.

    `skip` names layers of `model` to leave as they are (a new classifier, say). Raises ValueError,
    before changing anything, if the two graphs' weighted layers differ in number, kind or weight
    shapes (for example a different width, or an `include_top` mismatch).
    """
    ours, theirs = list(_weighted_layers(model, skip)), list(_weighted_layers(ref))
    if len(ours) != len(theirs):
        raise ValueError(
            f"{model.name} has {len(ours)} weighted layers but {ref.name} has {len(theirs)}: not the "
            "same architecture (check the width/alpha, include_top and number of classes).")
    folded = _conv_biases_to_fold(ours, theirs, ref)
    pairs = []
    for a, b in zip(ours, theirs):
        wa, wb = a.get_weights(), b.get_weights()
        if b.name in folded["convs"]:
            wb = wb[:1]
        if b.name in folded["bns"]:
            gamma, beta, mean, variance = wb
            wb = [gamma, beta, mean - folded["bns"][b.name], variance]
        if _kind(a) != _kind(b) or [w.shape for w in wa] != [w.shape for w in wb]:
            raise ValueError(
                f"Layer {a.name} ({_kind(a)}, {[w.shape for w in wa]}) does not match {ref.name}'s "
                f"{b.name} ({_kind(b)}, {[w.shape for w in wb]}).")
        pairs.append((a, wb))
    for layer, values in pairs:
        layer.set_weights(values)
    return model


# Models whose ImageNet weights come from keras.applications' own files.
KERAS_APPLICATIONS = {f"efficientnet_b{i}": f"EfficientNetB{i}" for i in range(8)} | {
    "mobilenet_v2_100": "MobileNetV2", "mobilenet_v2_140": "MobileNetV2"} | {
    f"resnet{d}": f"ResNet{d}" for d in (50, 101, 152)}


class PretrainedWeightsUnavailable(RuntimeError):
    pass


def _keras_applications_reference(app_name, config, top):
    """Builds keras.applications' model with its ImageNet weights (with its classifier if `top`);
    the only step that may download (once, into ~/.keras/models)."""
    kwargs = {"alpha": config.width} if app_name == "MobileNetV2" else {}
    shape = (config.resolution, config.resolution, 3) if config.resolution else None
    return getattr(keras.applications, app_name)(
        weights="imagenet", include_top=top, input_shape=shape, **kwargs,
        **({"classifier_activation": None} if top else {}))


def load_imagenet(model, spec, config):
    """Loads the ImageNet weights of `spec` (through keras.applications) into `model`.

    With `num_classes` other than 1000, everything but the new classifier is loaded. Inputs are
    expected normalized as `spec.input_norm` says (keras_zoo.data.preprocessing.normalize).
    """
    app_name = KERAS_APPLICATIONS.get(spec.name)
    if app_name is None:
        raise PretrainedWeightsUnavailable(
            f"No ImageNet weights are available for {spec.name} yet; models with weights: "
            f"{', '.join(sorted(KERAS_APPLICATIONS))}. Train it, or pass weights=PATH of your own.")
    top = config.include_top and config.num_classes == 1000
    try:
        ref = _keras_applications_reference(app_name, config, top)
    except Exception as err:  # keras raises a bare Exception on a failed download
        raise PretrainedWeightsUnavailable(
            f"Could not get the ImageNet weights of {spec.name} from keras.applications.{app_name}: {err}. "
            "They are downloaded once into ~/.keras/models; on a machine without network, copy that "
            "file there from a machine that has it, or pass weights=PATH to a file of your own.") from err
    return from_keras_applications(model, ref, skip=() if top else ("predictions",))


def load(model, spec, weights, config):
    """Loads `weights` into `model` built from `spec` and `config`: "imagenet", or the path of a
    file written by `model.save_weights`."""
    if weights == "imagenet":
        return load_imagenet(model, spec, config)
    if not isinstance(weights, (str, os.PathLike)) or not os.path.exists(weights):
        raise ValueError(
            f"weights={weights!r} for {spec.name}: pass \"imagenet\" or the path of a weights file saved "
            "with `model.save_weights(...)`.")
    model.load_weights(weights)
    return model
