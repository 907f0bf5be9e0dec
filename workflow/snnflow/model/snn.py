"""The spiking network of the study, the CSNN on event frames (N-MNIST's in the study), and
its training spec.

The LIF neurons are the activations, including one after the last FC layer whose
spikes (T, N, classes) are the output; averaged over T they are firing rates, trained
with MSE against one-hot labels (docs/method.md), or (snn.loss: ce_rate) with the
cross-entropy of each step's spikes. snn.dropout drops inputs of the fully connected
layers while training, one mask per sample for all T steps.

The network runs multi-step: the stateless layers see the merged (T*N) batch once and
only the LIF recurrence loops over T. With the fused engine's "cpp" backend, each
block's BatchNorm, LIF and pooling run as one op (snnflow.model.fused_block) and the
convolutions of spikes skip their zeros (snnflow.model.sparse_conv).
"""

import torch
import torch.nn.functional as F
from torch import nn

from snnflow.data.caches import load_frames
from snnflow.kernels import backends
from snnflow.model import kernel_paths
from snnflow.model.architecture import (N_CLASSES, as_pair, block_sizes, conv_block,
                                        conv_synaptic_ops, flat_size, input_size,
                                        refuse_too_small)
from snnflow.model.fused_block import bn_lif_pool
from snnflow.model.neuron import LIF, LIFParams
from snnflow.model.sparse_conv import conv_spikes
from snnflow.runs import ModelKind, layer_names


class CSNN(nn.Module):
    """Input (T, N, P, H, W) float event counts (N-MNIST: (T, N, 2, 34, 34)) -> output
    spikes (T, N, n_classes).

    `engine` "reference" runs every LIF step by step; "fused" runs each LIF time loop as
    one op with the kernels of `backend` (snnflow.kernels.backends), and on the "cpp" backend
    also fuses each block's BatchNorm, LIF and pooling and skips the zeros of spikes in
    the second and third convolutions; on the "triton" backend it fuses the blocks with
    `fuse_cuda_blocks`."""

    def __init__(self, channels=(32, 64, 128), hidden=256, in_channels=2, size=34,
                 neuron: LIFParams = LIFParams(), engine="fused", backend="torch",
                 fuse_cuda_blocks=False, n_classes=N_CLASSES, dropout=0.0):
        super().__init__()
        self.dropout = dropout
        if engine == "reference":
            backend = "torch"  # the reference runs no kernels of any backend
        self.engine, self.backend, self.fuse_cuda_blocks = engine, backend, fuse_cuda_blocks
        self.size = as_pair(size)
        self.layers = layer_names(len(channels))
        self.convs = nn.ModuleList()
        self.neurons = nn.ModuleList()
        c_in = in_channels
        for c_out in channels:
            self.convs.append(nn.Sequential(*conv_block(c_in, c_out)))
            self.neurons.append(LIF(neuron, engine, backend))
            c_in = c_out
        self.fc1 = nn.Linear(flat_size(channels, size), hidden, bias=False)
        self.lif1 = LIF(neuron, engine, backend)
        self.fc2 = nn.Linear(hidden, n_classes, bias=False)
        self.lif2 = LIF(neuron, engine, backend)

    def forward(self, x_seq, record=None):
        """With `record` (a SpikeRecord; evaluation only), every spiking layer adds its
        spikes and the synaptic operations its input spikes cause to it."""
        T, N = x_seq.shape[:2]
        y = x_seq.flatten(0, 1)
        for k, ((conv, bn), lif) in enumerate(zip(self.convs, self.neurons)):
            if k == 0:  # the input is event counts: a multiply-accumulate per nonzero synapse
                if record is not None:
                    record.add(self.layers[0], macs=conv_synaptic_ops(y != 0, conv.out_channels))
                y = conv(y)
            else:  # the input is pooled spikes, mostly zeros
                if record is not None:
                    record.add(self.layers[k],
                               synaptic_ops=conv_synaptic_ops(y, conv.out_channels))
                y = conv_spikes(conv, y, self.backend)
            y = bn_lif_pool(y.unflatten(0, (T, N)), bn, lif, count=record is not None,
                            fuse_cuda=self.fuse_cuda_blocks)
            if record is not None:
                y, fired = y
                record.add(self.layers[k], spikes=fired)
            y = y.flatten(0, 1)
        y = self.drop(y.flatten(1).unflatten(0, (T, N))).flatten(0, 1)
        hidden = self.lif1(self.fc1(y).unflatten(0, (T, N)))
        out = self.lif2(self.fc2(self.drop(hidden)))
        if record is not None:  # every spike reaches all units of the next layer
            record.add("fc1", spikes=hidden.sum(), synaptic_ops=y.sum() * self.fc1.out_features)
            record.add("fc2", spikes=out.sum(),
                       synaptic_ops=hidden.sum() * self.fc2.out_features)
        return out

    def learned_taus(self):
        """{layer: tau} of a network of PLIF neurons, each layer's learned 1 / sigmoid(w);
        None for the other neurons."""
        neurons = [*self.neurons, self.lif1, self.lif2]
        if neurons[0].params.neuron != "plif":
            return None
        return {layer: lif.learned_tau() for layer, lif in zip(self.layers, neurons)}

    def drop(self, x_seq):
        """Dropout of x_seq (T, N, ...) while training: one mask per sample, the same at
        every time step, as SpikingJelly's layer.Dropout in multi-step mode (its mask is
        F.dropout of ones shaped like one step)."""
        if not (self.training and self.dropout):
            return x_seq
        return x_seq * F.dropout(torch.ones_like(x_seq[0]), self.dropout, training=True)

    def layer_neurons(self):
        """LIF neurons per sample and time step of each layer whose spikes reach the next
        layer (max-pooling drops the last row and column of an odd-sized map)."""
        sizes = block_sizes(self.size, len(self.convs))
        counts = {layer: conv[0].out_channels * (2 * (h // 2)) * (2 * (w // 2))
                  for layer, conv, (h, w) in zip(self.layers, self.convs, sizes)}
        return {**counts, "fc1": self.fc1.out_features, "fc2": self.fc2.out_features}


class SpikeRecord:
    """The spiking layers' activity over the evaluation batches of an epoch.

    Per layer: the firing rate (spikes per neuron per time step) and the synaptic
    operations per sample (SOPs: each input spike times the fan-out of its synapses),
    both from the recorded spikes. The first convolution is fed event counts, not
    spikes: its operations are multiply-accumulates (MACs), counted the same way, each
    nonzero input count times its fan-out (a zero count costs nothing to an event-driven
    implementation)."""

    def __init__(self, model):
        self.model = model
        self.spikes = dict.fromkeys(model.layers, 0.0)
        self.synaptic_ops = dict.fromkeys(model.layers, 0.0)
        self.macs = dict.fromkeys(model.layers, 0.0)
        self.samples = self.steps = 0

    def forward(self, x_seq):
        """The model's output on a batch, recording its activity."""
        self.steps, self.samples = x_seq.shape[0], self.samples + x_seq.shape[1]
        return self.model(x_seq, record=self)

    def add(self, layer, spikes=0.0, synaptic_ops=0.0, macs=0.0):
        """Add a batch's counts (numbers or device tensors: read once, in rows())."""
        self.spikes[layer] = self.spikes[layer] + spikes
        self.synaptic_ops[layer] = self.synaptic_ops[layer] + synaptic_ops
        self.macs[layer] = self.macs[layer] + macs

    def rows(self):
        """One row per layer (snnflow.LAYER_COLUMNS but the epoch)."""
        neurons = self.model.layer_neurons()
        return [{"layer": layer, "neurons": neurons[layer],
                 "firing_rate": float(self.spikes[layer]) / (neurons[layer] * self.steps
                                                             * self.samples),
                 "synaptic_ops": float(self.synaptic_ops[layer]) / self.samples,
                 "macs": float(self.macs[layer]) / self.samples} for layer in self.model.layers]


def firing_rate(spikes):
    """Mean over T of output spikes (T, N, classes) -> rates (N, classes)."""
    return spikes.mean(0)


def _rate_mse(out, y):
    """MSE of the firing rates against one-hot labels; the rates are the class scores."""
    rates = firing_rate(out)
    return F.mse_loss(rates, F.one_hot(y, rates.shape[-1]).to(rates.dtype)), rates


def _rate_cross_entropy(out, y):
    """Cross-entropy of each time step's output spikes taken as logits, averaged over the
    T steps and the samples: snnTorch's ce_rate_loss (which sums NLLLoss of log_softmax
    over the steps and divides by T); the firing rates are the class scores."""
    T = out.shape[0]
    return F.cross_entropy(out.flatten(0, 1), y.repeat(T)), firing_rate(out)


LOSSES = {"mse_rate": _rate_mse, "ce_rate": _rate_cross_entropy}  # config key snn.loss


def _choose_backend(s, device):
    """The fused engine's backend for `device` (snnflow.kernels.backends), or the reference's;
    the C++ kernels carry every neuron, fused blocks included, the Triton kernels every
    neuron but the fused CUDA block the LIF only (the job's log says what runs instead)."""
    if s.engine == "reference":
        return "torch", "none: the reference engine runs the step-by-step LIF"
    backend, description = backends.select(device)
    if s.neuron != "lif":
        why = {"cpp": f"snn.neuron {s.neuron} runs in the C++ neuron and block kernels",
               "triton": f"snn.neuron {s.neuron} runs in the Triton neuron kernels; the fused "
                         "CUDA block (performance.fused_cuda_block) carries the LIF only, so "
                         "each block's BatchNorm, neuron and pooling run in turn"}.get(
            backend, f"snn.neuron {s.neuron} runs the fused loop in PyTorch ops")
        description = f"{description}; {why}" if description else why
    return backend, description


def _build(s, backend):
    neuron = LIFParams(s.tau, s.v_threshold, s.v_reset, s.surrogate_alpha, s.surrogate, s.neuron)
    in_channels, size, classes = input_size(s, 2, 34)
    refuse_too_small(s.channels, size, "snn.channels")
    return CSNN(s.channels, s.hidden, in_channels, size, neuron=neuron, engine=s.engine,
                backend=backend, fuse_cuda_blocks=s.fused_cuda_block, n_classes=classes,
                dropout=s.dropout)


KIND = ModelKind(name="snn", load=load_frames, time_major=True, scale=lambda cache: 1.0,
                 choose_backend=_choose_backend, build=_build, loss=_rate_mse,
                 new_record=SpikeRecord, compiled_paths=kernel_paths.compiled_paths,
                 losses=LOSSES)
