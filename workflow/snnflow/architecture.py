"""The layout both networks of the study share: 3 x [conv 3x3 without bias ->
BatchNorm -> activation -> 2x2 max-pool], then FC -> activation -> FC (docs/method.md).
snnflow.snn and snnflow.cnn put their activation (LIF neurons, ReLU) into it."""

from torch import nn

N_CLASSES = 10


def conv_block(c_in, c_out):
    """A block's convolution and BatchNorm; the activation and pooling follow."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]


def flat_size(channels, size):
    """Features entering the first fully connected layer after the pooled blocks."""
    for _ in channels:
        size //= 2
    return channels[-1] * size * size
