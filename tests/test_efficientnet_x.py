"""EfficientNet-X structure (arXiv:2102.05610, tensorflow/tpu efficientnet_x_builder): the
space-to-depth first stage, fused stages that keep its resolution, and the SE coefficient."""
import pytest

import keras_zoo

pytestmark = pytest.mark.both_keras


def test_space_to_depth_stage_and_fused_stages():
    model = keras_zoo.create_model("efficientnet_x_b0")
    s2d = model.get_layer("block1a_s2d_conv")
    assert (s2d.kernel_size, s2d.strides, s2d.filters) == ((2, 2), (2, 2), 128)  # 4 x 32 stem channels
    assert model.get_layer("block1a_dwconv").kernel_size == (2, 2)  # (3 + 1) // 2
    assert tuple(model.get_layer("block1a_project_bn").output.shape[1:]) == (56, 56, 64)  # 4 x 16
    fused = model.get_layer("block2a_expand_conv")  # d2: the stride was taken by the space-to-depth
    assert (fused.kernel_size, fused.strides, fused.filters) == ((3, 3), (1, 1), 96)  # nominal 16 x 6
    assert tuple(model.get_layer("block2b_add").output.shape[1:]) == (56, 56, 24)
    assert model.get_layer("block3a_expand_conv").strides == (2, 2)  # fused and strided
    assert model.get_layer("block2a_se_reduce").filters == 16  # 16 x 0.25 x se_coefficient 4
    assert model.get_layer("block4a_expand_activation").get_config()["max_value"] is None  # ReLU stages


def test_depth_scaling_repeats_the_space_to_depth_stage_at_its_width():
    model = keras_zoo.create_model("efficientnet_x_b1", resolution=64)
    assert model.get_layer("block1b_dwconv").kernel_size == (2, 2)
    assert tuple(model.get_layer("block1b_add").output.shape[1:]) == (16, 16, 64)
    assert "block1b_s2d_conv" not in [layer.name for layer in model.layers]
