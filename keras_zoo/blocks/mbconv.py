"""The MBConv block (MobileNetV2 arXiv:1801.04381, MnasNet arXiv:1807.11626, EfficientNet
arXiv:1905.11946) and its fused variant (EfficientNet-EdgeTPU, EfficientNet-X), as functional graphs.

MBConv: 1x1 expansion -> KxK depthwise -> squeeze-excite -> 1x1 linear projection, with a residual
(dropped per example by stochastic depth) when the stride is 1 and the channels match.
Fused MBConv replaces the expansion and the depthwise conv by one full KxK convolution.
"""
import dataclasses

from keras_zoo.backend import keras
from keras_zoo.blocks.common import conv, depthwise_conv
from keras_zoo.layers.drop import StochasticDepth


def squeeze_excite(x, in_filters, se_ratio, norm_act, name):
    """Squeeze-and-excite with the reduction relative to the block's *input* channels."""
    filters = x.shape[-1]
    reduced = max(1, int(in_filters * se_ratio))
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}se_squeeze")(x)
    s = conv(reduced, 1, use_bias=True, name=f"{name}se_reduce")(s)
    s = norm_act.act(s, f"{name}se_")
    s = conv(filters, 1, use_bias=True, name=f"{name}se_expand")(s)
    s = keras.layers.Activation("sigmoid", name=f"{name}se_gate")(s)
    return keras.layers.Multiply(name=f"{name}se_excite")([x, s])


def _unsupported(args):
    if len(args.kernel_size) > 1 or args.expand_groups > 1 or args.project_groups > 1 or args.num_experts:
        raise NotImplementedError(
            f"Block {args}: mixed kernels (MDConv), grouped pointwise convs and CondConv experts are "
            "parsed but not built yet; they land with the MBConv-family issue.")


def mbconv_block(x, args, out_filters, norm_act, drop_rate=0.0, name="block_"):
    """One MBConv (`ir`) or fused MBConv (`er`) block; `args.stride` applies to this block."""
    _unsupported(args)
    if args.activation:
        norm_act = dataclasses.replace(norm_act, activation=args.activation)
    inputs, in_filters = x, x.shape[-1]
    expanded = int(in_filters * args.expand_ratio)
    kernel = args.kernel_size[0]

    fused_only = args.block_type == "er" and args.expand_ratio == 1
    if args.block_type == "er":
        fused_filters = out_filters if fused_only else expanded
        x = conv(fused_filters, kernel, args.stride, name=f"{name}expand_conv")(x)
        x = norm_act(x, f"{name}expand_")
    else:
        if args.expand_ratio != 1:
            x = conv(expanded, 1, name=f"{name}expand_conv")(x)
            x = norm_act(x, f"{name}expand_")
        x = depthwise_conv(kernel, args.stride, name=f"{name}dwconv")(x)
        x = norm_act(x, f"{name}dw_")
    if args.se_ratio:
        x = squeeze_excite(x, in_filters, args.se_ratio, norm_act, name)
    if not fused_only:  # a fused block without expansion produced its output in the KxK conv
        x = conv(out_filters, 1, name=f"{name}project_conv")(x)
        x = norm_act(x, f"{name}project_", activation=False)

    if args.skip and args.stride == 1 and in_filters == out_filters:
        if drop_rate:
            x = StochasticDepth(drop_rate, name=f"{name}drop")(x)
        x = keras.layers.Add(name=f"{name}add")([x, inputs])
    return x
