"""The spiking network of the study, the CSNN on N-MNIST frames, and its training spec.

The LIF neurons are the activations, including one after the last FC layer whose
spikes (T, N, 10) are the output; averaged over T they are firing rates, trained
with MSE against one-hot labels (docs/method.md).

The network runs multi-step: the stateless layers see the merged (T*N) batch once and
only the LIF recurrence loops over T. With the fused engine's "cpp" backend, each
block's BatchNorm, LIF and pooling run as one op (snnflow.fused_block) and the
convolutions of spikes skip their zeros (snnflow.sparse_conv).
"""

import torch.nn.functional as F
from torch import nn

from . import backends
from .architecture import N_CLASSES, conv_block, flat_size
from .frames import load_frames
from .fused_block import bn_lif_pool
from .neuron import LIF, LIFParams
from .sparse_conv import conv_spikes
from .training import ModelKind


class CSNN(nn.Module):
    """Input (T, N, 2, 34, 34) float event counts -> output spikes (T, N, 10).

    `engine` "reference" runs every LIF step by step; "fused" runs each LIF time loop as
    one op with the kernels of `backend` (snnflow.backends), and on the "cpp" backend
    also fuses each block's BatchNorm, LIF and pooling and skips the zeros of spikes in
    the second and third convolutions."""

    def __init__(self, channels=(32, 64, 128), hidden=256, in_channels=2, size=34,
                 neuron: LIFParams = LIFParams(), engine="fused", backend="torch"):
        super().__init__()
        if engine == "reference":
            backend = "torch"  # the reference runs no kernels of any backend
        self.engine, self.backend = engine, backend
        self.convs = nn.ModuleList()
        self.neurons = nn.ModuleList()
        c_in = in_channels
        for c_out in channels:
            self.convs.append(nn.Sequential(*conv_block(c_in, c_out)))
            self.neurons.append(LIF(neuron, engine, backend))
            c_in = c_out
        self.fc1 = nn.Linear(flat_size(channels, size), hidden, bias=False)
        self.lif1 = LIF(neuron, engine, backend)
        self.fc2 = nn.Linear(hidden, N_CLASSES, bias=False)
        self.lif2 = LIF(neuron, engine, backend)

    def forward(self, x_seq):
        T, N = x_seq.shape[:2]
        y = x_seq.flatten(0, 1)
        for k, ((conv, bn), lif) in enumerate(zip(self.convs, self.neurons)):
            # after the first block the input is pooled spikes, mostly zeros
            y = conv_spikes(conv, y, self.backend) if k > 0 else conv(y)
            y = bn_lif_pool(y.unflatten(0, (T, N)), bn, lif).flatten(0, 1)
        y = self.lif1(self.fc1(y.flatten(1)).unflatten(0, (T, N)))
        return self.lif2(self.fc2(y))


def firing_rate(spikes):
    """Mean over T of output spikes (T, N, 10) -> rates (N, 10)."""
    return spikes.mean(0)


def _rate_mse(out, y):
    """MSE of the firing rates against one-hot labels; the rates are the class scores."""
    rates = firing_rate(out)
    return F.mse_loss(rates, F.one_hot(y, N_CLASSES).to(rates.dtype)), rates


def _choose_backend(s, device):
    """The fused engine's backend for `device` (snnflow.backends), or the reference's."""
    if s.engine == "reference":
        return "torch", "none: the reference engine runs the step-by-step LIF"
    return backends.select(device)


def _build(s, backend):
    neuron = LIFParams(s.tau, s.v_threshold, s.v_reset, s.surrogate_alpha)
    return CSNN(s.channels, s.hidden, neuron=neuron, engine=s.engine, backend=backend)


KIND = ModelKind(name="snn", load=load_frames, time_major=True, scale=1.0,
                 choose_backend=_choose_backend, build=_build, loss=_rate_mse)
