"""ResNet options: where DropBlock, ResNet-D, stochastic depth and lambda layers land in the graph."""
import numpy as np
import pytest

import keras_zoo
from keras_zoo.data.preprocessing import normalize
from keras_zoo.layers.dropblock import DropBlock2D
from keras_zoo.layers.drop import StochasticDepth


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def test_dropblock_only_in_groups_3_and_4_and_identity_at_inference():
    model = keras_zoo.create_model("resnet50", resolution=64, num_classes=5, dropblock_keep_prob=0.9)
    names = [layer.name for layer in _layers(model, DropBlock2D)]
    # groups 3 (conv4, 6 blocks) and 4 (conv5, 3 blocks): 3 per block plus one per projection shortcut
    assert len(names) == 9 * 3 + 2 and all(n.startswith(("conv4_", "conv5_")) for n in names)
    x = np.random.RandomState(0).randn(2, 64, 64, 3).astype("float32")
    assert np.isfinite(np.asarray(model(x, training=True))).all()
    # At inference DropBlock is the identity: the same weights without it give the same logits.
    plain = keras_zoo.create_model("resnet50", resolution=64, num_classes=5)
    plain.set_weights([w for layer in model.layers if not isinstance(layer, DropBlock2D) for w in layer.get_weights()])
    np.testing.assert_allclose(np.asarray(plain(x, training=False)), np.asarray(model(x, training=False)),
                               rtol=1e-5, atol=1e-5)


def test_resnet_d_has_the_deep_stem_average_pool_shortcuts_and_3x3_strides():
    model = keras_zoo.create_model("resnet50_d", resolution=64, num_classes=5)
    names = {layer.name for layer in model.layers}
    assert {"conv1_1_conv", "conv1_2_conv", "conv1_3_conv"} <= names and "conv1_conv" not in names
    assert {"conv3_block1_0_pool", "conv4_block1_0_pool", "conv5_block1_0_pool"} <= names
    assert model.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert model.get_layer("conv3_block1_1_conv").strides == (1, 1)
    plain = keras_zoo.create_model("resnet50", resolution=64, num_classes=5)
    assert plain.get_layer("conv3_block1_1_conv").strides == (2, 2)  # the original v1 places it first


def test_stochastic_depth_ramps_over_the_blocks():
    model = keras_zoo.create_model("resnet50", resolution=32, num_classes=5, drop_connect=0.2)
    rates = [layer.rate for layer in _layers(model, StochasticDepth)]
    assert len(rates) == 15 and rates == sorted(rates) and rates[-1] < 0.2  # the first block's rate is 0


def test_caffe_normalization_is_bgr_minus_means():
    pixel = np.array([[[[10.0, 20.0, 30.0]]]], "float32")
    np.testing.assert_allclose(np.asarray(normalize(pixel, "caffe"))[0, 0, 0], [30 - 103.939, 20 - 116.779,
                                                                                10 - 123.68], rtol=1e-6)


def test_resnet_rs_blocks_carry_squeeze_excite_and_the_stem_has_no_max_pool():
    model = keras_zoo.create_model("resnet_rs_50", resolution=64, num_classes=5)
    names = [layer.name for layer in model.layers]
    assert "pool1_pool" not in names and model.get_layer("conv1_pool_conv").strides == (2, 2)
    assert sum(name.endswith("_se_excite") for name in names) == 16  # every bottleneck
    assert model.get_layer("conv2_block1_se_reduce").filters == 64  # 0.25 x the block's 256 outputs
    assert model.get_layer("top_dropout").rate == 0.25


def test_evonorm_switch_replaces_batch_norm_and_activation():
    from keras_zoo.layers.evonorm import EvoNormB0, EvoNormS0
    import keras
    for norm, kind in (("evonorm_b0", EvoNormB0), ("evonorm_s0", EvoNormS0)):
        for name in ("resnet50", "efficientnet_b0"):
            model = keras_zoo.create_model(name, resolution=32, num_classes=3, norm=norm,
                                           **({"repeats": (1, 1, 1, 1)} if name == "resnet50" else {"depth": 0.5}))
            evonorms = [layer for layer in model.layers if isinstance(layer, kind)]
            bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
            # every BN + activation pair is gone (the activations left are SE's and ResNet's after-add ReLU)
            acts = [layer for layer in model.layers if layer.name.endswith("activation")
                    and "se_" not in layer.name and "_out_" not in layer.name]
            assert evonorms and not acts, (name, norm)
            # Unactivated normalizations: BN under B0, GroupNorm under S0 (EvoNorm has no linear form).
            assert bool(bns) == (norm == "evonorm_b0"), (name, norm)
            x = np.random.RandomState(0).randn(2, 32, 32, 3).astype("float32")
            assert np.isfinite(np.asarray(model(x, training=True))).all()


def test_lambda_stages_replace_the_3x3_convs_where_listed():
    """LambdaNetworks (arXiv:2102.08602): lambda layers in the listed stages only; a strided 3x3 slot
    (ResNet-D / RS put the stride there) becomes lambda layer + 3x3 stride-2 average pool."""
    from keras_zoo.layers.lambda_layer import LambdaLayer
    model = keras_zoo.create_model("resnet_rs_50", resolution=64, repeats=(1, 1, 2, 1), lambda_stages=(2, 3))
    lambdas = [layer.name for layer in model.layers if isinstance(layer, LambdaLayer)]
    assert lambdas == ["conv4_block1_2_lambda", "conv4_block2_2_lambda", "conv5_block1_2_lambda"]
    assert model.get_layer("conv3_block1_2_conv").strides == (2, 2)  # stages 0-1 keep their convs
    assert model.get_layer("conv4_block1_2_lambda_pool").strides == (2, 2)
    assert "conv4_block2_2_lambda_pool" not in [layer.name for layer in model.layers]
    assert tuple(model.get_layer("conv5_block1_2_lambda_pool").output.shape[1:]) == (2, 2, 512)
    assert np.all(np.isfinite(model(np.zeros((1, 64, 64, 3), "float32"), training=False)))
    with pytest.raises(ValueError, match="lambda_stages"):
        keras_zoo.create_model("resnet50", lambda_stages=(4,))


@pytest.mark.tf_keras_only
@pytest.mark.parametrize("name,norm", [("resnet50", "evonorm_s0"), ("efficientnet_b0", "evonorm_b0")])
def test_evonorm_models_take_quantize_aware_wrapping(name, norm):
    from keras_zoo.backend import keras
    from keras_zoo.quantization import quantize_model
    tiny = {"repeats": (1, 1, 1, 1)} if name == "resnet50" else {"depth": 0.3}
    model = keras_zoo.create_model(name, resolution=32, num_classes=5, norm=norm, **tiny)
    qat = quantize_model(model)
    wrapped = {layer.layer.name for layer in qat.layers if hasattr(layer, "quantize_config")}
    convs = {layer.name for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))}
    assert convs <= wrapped
    assert any("evonorm" in n for n in wrapped)
    y = qat(np.random.RandomState(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32"), training=False)
    assert y.shape == (2, 5) and np.all(np.isfinite(y.numpy()))
