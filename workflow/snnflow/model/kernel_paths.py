"""The SNN's compiled paths and how a training job checks them (snnflow.train.kernel_check
runs them): each path's kernels against PyTorch's ops on a few of the job's own samples,
through the job's network's first layers at its T and widths.

- "C++ CPU ops" (backend cpp): the fused LIF, IF or PLIF (spikes equal, input gradients
  within LIF_GRAD_TOLERANCE of the largest, the PLIF's decay gradient within
  RELATIVE_TOLERANCE), the fused BatchNorm + LIF + 2x2 max-pool of a block and the
  convolution of spikes from their nonzeros (docs/kernels.md has the criteria);
- "Triton LIF" (backend triton): the fused LIF as above; "Triton neuron": the IF or PLIF;
- "fused CUDA block" (performance.fused_cuda_block): the block as above, in the precision
  the job's autocast gives it.

`make gpu-check` runs the same comparisons over more shapes.
"""

import copy
from dataclasses import replace

import torch
from torch import nn

from snnflow.kernels import block_triton, cpu_ops, lif_triton
from snnflow.device.precision import AUTOCAST_DTYPES
from snnflow.model.fused_block import fusable
from snnflow.model.neuron import LIF, NEURONS, LIFParams, decay_operand, lif_reference
from snnflow.model.sparse_conv import applies, conv_spikes
from snnflow.device.path_check import PathCheck, relative_difference

# Of the largest gradient. The fused LIF repeats the reference's float operations, but a
# GPU's sigmoid (ex2.approx, div.full) and contracted multiply-adds round otherwise: a
# few ulp, about 1e-6 of the largest gradient emulated on the study's inputs, where a
# wrong surrogate slope or a dropped reset path is 1e-2 or more (docs/kernels.md).
LIF_GRAD_TOLERANCE = 1e-5
RELATIVE_TOLERANCE = 1e-4   # of the largest gradient: block and sparse-convolution gradients
SPIKE_FLIP_TOLERANCE = 1e-4  # fraction of a block's pooled spikes: BatchNorm as one fma rounds
                             # differently, so a membrane within rounding of V_th may flip


def compare_lif(kernels, x_seq, p: LIFParams, generator):
    """The fused LIF kernels (lif_forward, lif_backward) against the reference steps on
    x_seq (T, ...): (spikes equal, number of spikes that differ, largest absolute input
    gradient difference, the largest reference gradient)."""
    reference = x_seq.detach().clone().requires_grad_()
    s_ref = lif_reference(reference, p)
    upstream = torch.randn(s_ref.shape, generator=generator, device=x_seq.device)
    (s_ref * upstream).sum().backward()
    spikes, h_seq = kernels.lif_forward(x_seq.detach(), p.tau, p.v_threshold, p.v_reset)
    grad = kernels.lif_backward(upstream.to(h_seq.dtype), h_seq, p.tau, p.v_threshold,
                                p.v_reset, p.alpha, p.surrogate_index)
    mismatches = int((spikes != s_ref).sum())
    return (mismatches == 0, mismatches, float((grad - reference.grad).abs().max()),
            float(reference.grad.abs().max()))


def compare_neuron(kernels, x_seq, p: LIFParams, decay, generator):
    """The fused IF or PLIF kernels (neuron_forward, neuron_backward) against the reference
    steps on x_seq (T, ...), `decay` the PLIF's sigmoid(w) (None for the IF): compare_lif's
    four, and the decay gradient's difference relative to the reference's (0 for the IF)."""
    reference = x_seq.detach().clone().requires_grad_()
    decay_ref = None if decay is None else decay.detach().clone().requires_grad_()
    s_ref = lif_reference(reference, p, decay_ref)
    upstream = torch.randn(s_ref.shape, generator=generator, device=x_seq.device)
    (s_ref * upstream).sum().backward()
    neuron, k = NEURONS.index(p.neuron), float(decay_operand(decay, x_seq))
    spikes, h_seq = kernels.neuron_forward(x_seq.detach(), neuron, k, p.v_threshold, p.v_reset)
    grad, grad_decay = kernels.neuron_backward(upstream, h_seq, x_seq.detach(), neuron, k,
                                               p.v_threshold, p.v_reset, p.alpha,
                                               p.surrogate_index)
    decay_diff = 0.0 if decay_ref is None else float(
        (grad_decay - decay_ref.grad).abs() / decay_ref.grad.abs().clamp_min(1e-12))
    mismatches = int((spikes != s_ref).sum())
    return (mismatches == 0, mismatches, float((grad - reference.grad).abs().max()),
            float(reference.grad.abs().max()), decay_diff)


def _layers_in_turn(y_seq, bn, p, dtype, decay=None):
    """(leaf, BatchNorm copy, pooled spikes, decay leaf or None) of BatchNorm2d in training
    mode, the reference neuron and MaxPool2d run in turn on y_seq in `dtype`."""
    T, N = y_seq.shape[:2]
    bn = copy.deepcopy(bn).train().to(dtype)
    leaf = y_seq.detach().to(dtype).clone().requires_grad_()
    decay = None if decay is None else decay.detach().to(dtype).clone().requires_grad_()
    spikes = lif_reference(bn(leaf.flatten(0, 1)).unflatten(0, (T, N)), p, decay)
    return (leaf, bn, nn.functional.max_pool2d(spikes.flatten(0, 1), 2).unflatten(0, (T, N)),
            decay)


def compare_block(kernels, y_seq, bn: nn.BatchNorm2d, p: LIFParams, generator, decay=None):
    """The fused block kernels (channel_moments, bn_lif_pool_forward and _backward, the
    same interface on CPU and CUDA) against BatchNorm2d in training mode, the reference
    LIF and MaxPool2d in turn on conv outputs y_seq (T, N, C, H, W): (fraction of pooled
    spikes that differ from the float32 layers', {gradient: (the kernels' largest
    difference from the float64 layers', the float32 layers' own), relative to the
    largest gradient}).

    Against float64, because on real frames the float32 layers are no exact reference:
    their BatchNorm gradients sum millions of equal terms (the zeros of sparse frames
    all normalise to the same value) and drift by up to 1e-3. A pooling window whose
    spike flipped on the threshold (SPIKE_FLIP_TOLERANCE) gets no upstream gradient at
    any step, so the gradients compare the kernels' maths rather than the flip, which
    changes that window's gradient by design.

    With an IF or PLIF (p.neuron; `decay`, the PLIF's sigmoid(w)) the C++ kernels
    bn_neuron_pool_forward and _backward, and for the PLIF the decay's gradient too."""
    y_seq = y_seq.detach()
    mean, var = kernels.channel_moments(y_seq)
    invstd = torch.rsqrt(var + bn.eps)
    scale = bn.weight.detach() * invstd
    shift = bn.bias.detach() - mean * scale
    lif = p.neuron == "lif"
    neuron, k = NEURONS.index(p.neuron), float(decay_operand(decay, y_seq))
    if lif:
        pooled, _ = kernels.bn_lif_pool_forward(y_seq, scale, shift, p.tau, p.v_threshold,
                                                p.v_reset, False)
    else:
        pooled, _ = kernels.bn_neuron_pool_forward(y_seq, scale, shift, neuron, k,
                                                   p.v_threshold, p.v_reset, False)
    float32, float64 = (_layers_in_turn(y_seq, bn, p, dtype, decay)
                        for dtype in (torch.float32, torch.float64))
    flipped = pooled != float32[2]
    upstream = torch.randn(pooled.shape, generator=generator, device=y_seq.device)
    upstream *= ~(flipped | (pooled != float64[2])).any(0, keepdim=True)
    for leaf, layer, pooled_ref, _ in (float32, float64):
        (pooled_ref * upstream.to(leaf.dtype)).sum().backward()
    if lif:
        ours = kernels.bn_lif_pool_backward(upstream, y_seq, scale, shift, mean, invstd, p.tau,
                                            p.v_threshold, p.v_reset, p.alpha, p.surrogate_index)
    else:
        ours = kernels.bn_neuron_pool_backward(upstream, y_seq, scale, shift, mean, invstd,
                                               neuron, k, p.v_threshold, p.v_reset, p.alpha,
                                               p.surrogate_index)
    (leaf32, bn32, _, decay32), (leaf64, bn64, _, decay64) = float32, float64
    references = {"y": (leaf32.grad, leaf64.grad), "weight": (bn32.weight.grad, bn64.weight.grad),
                  "bias": (bn32.bias.grad, bn64.bias.grad)}
    if decay is not None:
        references["decay"] = (decay32.grad, decay64.grad)
    errors = {name: (relative_difference(kernel_grad.double(), grad64),
                     relative_difference(grad32.double(), grad64))
              for kernel_grad, (name, (grad32, grad64)) in zip(ours, references.items())}
    return float(flipped.float().mean()), errors


def compare_sparse_conv(conv: nn.Conv2d, spikes, generator):
    """The convolution of spikes from their nonzeros (CPU) against nn.Conv2d on pooled
    spikes (B, C, H, W): (largest output difference relative to the largest output,
    largest input or weight gradient difference relative to the largest gradient)."""
    x_ref, x_ours = (spikes.detach().clone().requires_grad_() for _ in range(2))
    ref, ours = conv(x_ref), conv_spikes(conv, x_ours, "cpp")
    upstream = torch.rand(ref.shape, generator=generator, device=ref.device) * 2 - 1
    grads_ref = torch.autograd.grad((ref * upstream).sum(), [x_ref, conv.weight])
    grads_ours = torch.autograd.grad((ours * upstream).sum(), [x_ours, conv.weight])
    return relative_difference(ours, ref), max(relative_difference(a, b)
                                               for a, b in zip(grads_ours, grads_ref))


def lif_passes(spikes_equal, grad_diff, largest):
    """The fused LIF's criterion: spikes equal, input gradients within LIF_GRAD_TOLERANCE
    of the largest."""
    return spikes_equal and grad_diff <= LIF_GRAD_TOLERANCE * largest


def _lif_check(path, kernels, z, p, generator):
    equal, mismatches, grad_diff, largest = compare_lif(kernels, z, p, generator)
    relative = grad_diff / max(largest, 1e-12)
    detail = (f"LIF spikes {'equal' if equal else f'differ at {mismatches} of {z.numel()}'}, "
              f"max grad diff {relative:.1e} of the largest")
    return PathCheck(path, lif_passes(equal, grad_diff, largest), detail, relative)


def _neuron_check(path, kernels, z, p, decay, generator):
    equal, mismatches, grad_diff, largest, decay_diff = compare_neuron(kernels, z, p, decay,
                                                                      generator)
    relative = grad_diff / max(largest, 1e-12)
    name = p.neuron.upper()
    detail = (f"{name} spikes {'equal' if equal else f'differ at {mismatches} of {z.numel()}'}, "
              f"max grad diff {relative:.1e} of the largest"
              + (f", decay grad diff {decay_diff:.1e}" if decay is not None else ""))
    passed = lif_passes(equal, grad_diff, largest) and decay_diff <= RELATIVE_TOLERANCE
    return PathCheck(path, passed, detail, max(relative, decay_diff))


def block_passes(flips, errors, dtype):
    """The fused block's criterion: few spikes flip, and each gradient is within
    RELATIVE_TOLERANCE of the float64 one (y's within an ulp of `dtype`, the precision
    it is returned in), or no further from it than twice the float32 layers' own
    distance."""
    def tolerance(name):
        return max(RELATIVE_TOLERANCE, torch.finfo(dtype).eps if name == "y" else 0.0)
    return flips <= SPIKE_FLIP_TOLERANCE and all(
        ours <= max(tolerance(name), 2 * theirs) for name, (ours, theirs) in errors.items())


def _block_check(path, kernels, y_seq, bn, p, generator, decay=None):
    flips, errors = compare_block(kernels, y_seq, bn, p, generator, decay)
    worst = max(ours for ours, _ in errors.values())
    passed = block_passes(flips, errors, y_seq.dtype)
    float32 = max(theirs for _, theirs in errors.values())
    return PathCheck(path, passed, f"block spikes differ at {flips:.1e} of them, max grad diff "
                                   f"{worst:.1e} from float64 (PyTorch float32: {float32:.1e})",
                     worst)


class _Probe:
    """The first layers of the job's network on a few of its samples: the inputs of the
    paths under check, made with PyTorch's ops (fresh weights from the run's seed), in the
    precision the job runs them in (under CUDA autocast the block gets bf16 or fp16 conv
    outputs; the LIF gets their normalised values, in float32)."""

    def __init__(self, kind, s, x):
        with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
            torch.manual_seed(s.seed)
            net = kind.build(replace(s, fused_cuda_block=False), "torch").to(x.device)
        if s.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.params = net.neurons[0].params
        decay = net.neurons[0].decay()  # the PLIF's, else None
        self.decay = None if decay is None else decay.detach()
        (conv1, self.bn1), (self.conv2, _) = net.convs[0], net.convs[1]
        T, N = x.shape[:2]
        low = AUTOCAST_DTYPES.get(s.autocast) if x.is_cuda else None
        with torch.no_grad():
            y1 = conv1(x.flatten(0, 1))
            if low is not None:
                y1 = y1.to(low)
            self.y1 = y1.unflatten(0, (T, N))                      # block 1's input
            # LIF 1's input: BatchNorm's output in the job's precision, run in float32
            self.z1 = self.bn1(y1.float()).to(y1.dtype).float().unflatten(0, (T, N))
            spikes = lif_reference(self.z1, self.params, net.neurons[0].decay())
            self.pooled1 = nn.functional.max_pool2d(spikes.flatten(0, 1), 2)  # conv 2's


def compiled_paths(kind, s, backend, x, generator):
    """([(path, check, fallback)], why none) of the SNN job with settings `s` on `backend`:
    each `check()` gives a PathCheck; `fallback` is what runs if it fails (snn.KIND's
    compiled_paths)."""
    if s.engine == "reference":
        return [], "the reference engine runs PyTorch's ops"
    if backend == "torch":
        return [], f"the PyTorch ops run on {x.device.type} (kernels: {s.kernels})"
    probe = _Probe(kind, s, x)
    p = probe.params
    checks = []
    # the neuron's kernels (the LIF's, or the IF's and PLIF's on the CPU), the block's where
    # the neuron is the LIF, the convolutions of spikes whatever the neuron
    lif_path = p.neuron == "lif"
    block_path = fusable(probe.y1, probe.bn1, LIF(p, "fused", "cpp"))  # as the job runs it
    conv_path = applies(probe.conv2, probe.pooled1, "cpp")
    if backend == "cpp":
        def cpp_ops():
            kernels = cpu_ops.load()
            parts = [_lif_check("C++ CPU ops", kernels, probe.z1, p, generator) if lif_path else
                     _neuron_check("C++ CPU ops", kernels, probe.z1, p, probe.decay, generator)]
            if block_path:
                parts.append(_block_check("C++ CPU ops", kernels, probe.y1, probe.bn1, p,
                                          generator, probe.decay))
            if conv_path:
                out_diff, grad_diff = compare_sparse_conv(probe.conv2, probe.pooled1, generator)
                parts.append(PathCheck("C++ CPU ops", out_diff <= RELATIVE_TOLERANCE
                                       and grad_diff <= RELATIVE_TOLERANCE,
                                       f"sparse conv output diff {out_diff:.1e}, max grad diff "
                                       f"{grad_diff:.1e}", grad_diff))
            return PathCheck("C++ CPU ops", all(c.passed for c in parts),
                             "; ".join(c.detail for c in parts), max(c.grad_diff for c in parts))
        checks.append(("C++ CPU ops", cpp_ops, "the PyTorch ops"))
    if backend == "triton" and p.neuron != "lif":
        checks.append(("Triton neuron", lambda: _neuron_check(
            "Triton neuron", lif_triton.load(), probe.z1, p, probe.decay, generator),
            "the PyTorch ops"))
    if backend == "triton" and p.neuron == "lif":
        checks.append(("Triton LIF", lambda: _lif_check("Triton LIF", lif_triton.load(), probe.z1,
                                                        p, generator), "the PyTorch ops"))
        if s.fused_cuda_block and fusable(probe.y1, probe.bn1, LIF(p, "fused", "triton"),
                                           fuse_cuda=True):
            checks.append(("fused CUDA block",
                           lambda: _block_check("fused CUDA block", block_triton.load(),
                                                probe.y1, probe.bn1, p, generator),
                           "the three layers in turn"))
    return checks, None
