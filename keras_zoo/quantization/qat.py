"""Quantize-aware training of keras_zoo models with TFMOT (Jacob et al. 2018, arXiv:1712.05877).

TFMOT knows Keras' built-in layers. Each custom layer of ours that it should pass through or
quantize gets a QuantizeConfig here, keyed by class; `quantize_model` annotates those layers with
their config and lets TFMOT annotate the rest, then applies quantization inside a scope that knows
every keras_zoo class, so the result can be saved and loaded like any TFMOT model.
"""
from keras_zoo.backend import IS_TF_KERAS, keras
from keras_zoo.layers.drop import StochasticDepth


def _tfmot():
    if not IS_TF_KERAS:
        raise RuntimeError(
            "TFMOT quantizes only tf_keras models: set TF_USE_LEGACY_KERAS=1 before importing "
            "TensorFlow (and `pip install keras-zoo[quantization]`), then build the model again.")
    import tensorflow_model_optimization as tfmot
    return tfmot


def _passthrough_config():
    """A QuantizeConfig for weightless layers that only route or mask values (no new range)."""
    tfmot = _tfmot()

    class PassThroughQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    return PassThroughQuantizeConfig


# Custom layer class -> function returning its QuantizeConfig class.
QUANTIZE_CONFIGS = {StochasticDepth: _passthrough_config}


def quantize_model(model):
    """Returns the quantize-aware version of the tf_keras `model` (fake-quant 8-bit, TFMOT default)."""
    tfmot = _tfmot()
    qk = tfmot.quantization.keras
    configs = {cls: make() for cls, make in QUANTIZE_CONFIGS.items()}

    def annotate(layer):
        config_cls = configs.get(type(layer))
        if config_cls is not None:
            return qk.quantize_annotate_layer(layer, config_cls())
        return layer  # reused as is (weights kept); TFMOT annotates the built-in layers below

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated = qk.quantize_annotate_model(annotated)
    scope = {cls.__name__: cls for cls in configs} | {c.__name__: c for c in configs.values()}
    with qk.quantize_scope(scope):
        return qk.quantize_apply(annotated)
