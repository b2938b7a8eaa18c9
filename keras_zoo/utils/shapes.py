"""Shape arithmetic shared by layers."""


def same_padding_size(size, stride):
    """Output length of a "same"-padded convolution or pooling (None stays None)."""
    return None if size is None else -(-size // stride)
