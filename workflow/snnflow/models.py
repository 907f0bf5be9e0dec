"""The convolutional SNN (N-MNIST) and the same-architecture CNN (MNIST).

Both: 3 x [conv 3x3 without bias -> BatchNorm -> activation -> 2x2 max-pool],
then FC -> activation -> FC. The SNN's activations are LIF neurons, including one
after the last FC layer whose spikes (T, N, 10) are the output; the CNN's are ReLU
and it returns logits (N, 10).

The SNN runs multi-step: the stateless layers see the merged (T*N) batch once and
only the LIF recurrence loops over T. With the fused engine on CPU, each block's
BatchNorm, LIF and pooling run as one op (snnflow.fused_block) and the convolutions
of spikes skip their zeros (snnflow.sparse_conv).
"""

import torch
from torch import nn

from .fused_block import bn_lif_pool
from .neuron import LIF, LIFParams, lif_step
from .sparse_conv import conv_spikes

N_CLASSES = 10


def _conv_block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]


def _flat_size(channels, size):
    for _ in channels:
        size //= 2
    return channels[-1] * size * size


class CSNN(nn.Module):
    """Input (T, N, 2, 34, 34) float event counts -> output spikes (T, N, 10)."""

    def __init__(self, channels=(32, 64, 128), hidden=256, in_channels=2, size=34,
                 neuron: LIFParams = LIFParams(), engine="fused"):
        super().__init__()
        self.engine = engine
        self.convs = nn.ModuleList()
        self.neurons = nn.ModuleList()
        c_in = in_channels
        for c_out in channels:
            self.convs.append(nn.Sequential(*_conv_block(c_in, c_out)))
            self.neurons.append(LIF(neuron, engine))
            c_in = c_out
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(_flat_size(channels, size), hidden, bias=False)
        self.lif1 = LIF(neuron, engine)
        self.fc2 = nn.Linear(hidden, N_CLASSES, bias=False)
        self.lif2 = LIF(neuron, engine)

    def forward(self, x_seq):
        T, N = x_seq.shape[:2]
        y = x_seq.flatten(0, 1)
        for k, ((conv, bn), lif) in enumerate(zip(self.convs, self.neurons)):
            # after the first block the input is pooled spikes, mostly zeros
            sparse_input = k > 0 and self.engine == "fused"
            y = conv_spikes(conv, y) if sparse_input else conv(y)
            y = bn_lif_pool(y.unflatten(0, (T, N)), bn, lif).flatten(0, 1)
        y = self.lif1(self.fc1(y.flatten(1)).unflatten(0, (T, N)))
        return self.lif2(self.fc2(y))

    def forward_step_by_step(self, x_seq):
        """The same network run one time step at a time through every layer, with the
        reference LIF step, as single-step SNN frameworks execute it: the baseline of
        the benchmark. In training mode BatchNorm then normalises each step's N
        samples instead of all T*N, so only eval-mode outputs equal forward()'s."""
        neurons = [*self.neurons, self.lif1, self.lif2]
        states = [None] * len(neurons)
        outputs = []
        for x in x_seq.unbind(0):
            y = x
            for k, conv in enumerate(self.convs):
                y, states[k] = lif_step(conv(y), states[k], neurons[k].params)
                y = self.pool(y)
            y, states[-2] = lif_step(self.fc1(y.flatten(1)), states[-2], self.lif1.params)
            y, states[-1] = lif_step(self.fc2(y), states[-1], self.lif2.params)
            outputs.append(y)
        return torch.stack(outputs)


class CNN(nn.Module):
    """Input (N, 1, 28, 28) float in [0, 1] -> logits (N, 10)."""

    def __init__(self, channels=(32, 64, 128), hidden=256, in_channels=1, size=28):
        super().__init__()
        layers = []
        c_in = in_channels
        for c_out in channels:
            layers += [*_conv_block(c_in, c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        layers += [nn.Flatten(), nn.Linear(_flat_size(channels, size), hidden, bias=False),
                   nn.ReLU(inplace=True), nn.Linear(hidden, N_CLASSES, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def firing_rate(spikes):
    """Mean over T of output spikes (T, N, 10) -> rates (N, 10)."""
    return spikes.mean(0)


