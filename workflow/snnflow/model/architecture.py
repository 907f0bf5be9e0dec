"""The layout both networks of the study share: 3 x [conv 3x3 without bias ->
BatchNorm -> activation -> 2x2 max-pool], then FC -> activation -> FC (docs/method.md).
snnflow.model.snn and snnflow.model.cnn put their activation (LIF neurons, ReLU) into it."""

import functools

import torch
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


def block_sizes(size, blocks=3):
    """Input side of each conv block (34 -> 34, 17, 8; 28 -> 28, 14, 7)."""
    sizes = [size]
    for _ in range(blocks - 1):
        sizes.append(sizes[-1] // 2)
    return sizes


@functools.cache
def conv_taps(height, width, device=torch.device("cpu")):
    """(H, W) float64 tensor on `device`: how many weights of a 3x3 convolution with
    padding 1 each input pixel meets, i.e. how many output pixels it reaches (9 inside, 6
    on an edge, 4 in a corner). An input's fan-out is this times the output channels.
    Cached per device: counting a batch's operations copies nothing to the device."""
    rows = torch.full((height,), 3.0)
    cols = torch.full((width,), 3.0)
    for line in (rows, cols):
        line[0] -= 1
        line[-1] -= 1
    if height == 1:
        rows[:] = 1.0
    if width == 1:
        cols[:] = 1.0
    return (rows[:, None] * cols[None, :]).to(device=device, dtype=torch.float64)


def conv_macs(c_in, c_out, size):
    """Multiply-accumulates of a 3x3 convolution with padding 1 on a size x size input,
    counting only the weights that meet an input pixel (none for the zero padding)."""
    return c_in * c_out * int(conv_taps(size, size).sum())


def conv_synaptic_ops(spikes, c_out):
    """Synaptic operations that input spikes (B, C, H, W) cause in a 3x3 convolution
    with padding 1 and c_out output channels: each spike times its fan-out (a tensor on
    the spikes' device, so that counting does not wait for the device)."""
    per_pixel = spikes.sum((0, 1), dtype=torch.float64)
    return (per_pixel * conv_taps(*spikes.shape[-2:], spikes.device)).sum() * c_out
