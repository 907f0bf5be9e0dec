"""The layout both networks of the study share: one block per entry of `channels` (the
study: 3) of [conv 3x3 without bias -> BatchNorm -> activation -> 2x2 max-pool], then
FC -> activation -> FC (docs/method.md). snnflow.model.snn and snnflow.model.cnn put their
activation (LIF neurons, ReLU) into it. Input channels, size and classes come from the
data (RunSettings.input_shape and .classes); the defaults are N-MNIST's and MNIST's."""

import functools

import torch
from torch import nn

N_CLASSES = 10  # N-MNIST's and MNIST's digits


def input_size(s, channels, size):
    """(in_channels, (height, width), classes) of RunSettings `s`, or the given defaults
    where the settings carry no data shape."""
    if s.input_shape is None:
        return channels, as_pair(size), N_CLASSES
    c, h, w = s.input_shape
    return c, (h, w), s.classes


def as_pair(size):
    """(height, width) of a size given as one side or a pair."""
    return (size, size) if isinstance(size, int) else tuple(size)


def conv_block(c_in, c_out):
    """A block's convolution and BatchNorm; the activation and pooling follow."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]


def flat_size(channels, size):
    """Features entering the first fully connected layer after the pooled blocks."""
    h, w = as_pair(size)
    for _ in channels:
        h, w = h // 2, w // 2
    return channels[-1] * h * w


def block_sizes(size, blocks=3):
    """(height, width) of each conv block's input (34 -> 34, 17, 8; 28 -> 28, 14, 7)."""
    sizes = [as_pair(size)]
    for _ in range(blocks - 1):
        h, w = sizes[-1]
        sizes.append((h // 2, w // 2))
    return sizes


def refuse_too_small(channels, size, key):
    """A network whose blocks pool the input below one pixel cannot be built: say which key."""
    h, w = as_pair(size)
    if min(h, w) >> len(channels) < 1:
        from snnflow import SnnflowError

        raise SnnflowError(f"config key {key}: {len(channels)} conv blocks halve the "
                           f"{h}x{w} input {len(channels)} times, below one pixel - use fewer "
                           "entries or a larger dataset.size")


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
    """Multiply-accumulates of a 3x3 convolution with padding 1 on an input of `size`
    (height, width), counting only the weights that meet an input pixel (none for the
    zero padding)."""
    return c_in * c_out * int(conv_taps(*size).sum())


def layer_macs(in_channels, channels, size, hidden, n_classes):
    """Multiply-accumulates per sample and step of each layer with synapses (conv1..,
    fc1, fc2) with every input counted, from the shapes (convolutions count only the
    weights that meet an input pixel, not the zero padding): the CNN's MACs, the SNN's
    dense count."""
    from snnflow.runs import layer_names

    c_in, macs = in_channels, {}
    for layer, c_out, block in zip(layer_names(len(channels)), channels,
                                   block_sizes(size, len(channels))):
        macs[layer] = conv_macs(c_in, c_out, block)
        c_in = c_out
    macs["fc1"] = flat_size(channels, size) * hidden
    macs["fc2"] = hidden * n_classes
    return macs


def conv_synaptic_ops(spikes, c_out):
    """Synaptic operations that input spikes (B, C, H, W) cause in a 3x3 convolution
    with padding 1 and c_out output channels: each spike times its fan-out (a tensor on
    the spikes' device, so that counting does not wait for the device)."""
    per_pixel = spikes.sum((0, 1), dtype=torch.float64)
    return (per_pixel * conv_taps(*spikes.shape[-2:], spikes.device)).sum() * c_out
