"""The fused LIF time loop as Triton kernels for CUDA (lif_triton_jit, with the step
maths of triton_lif_step), and the IF's and PLIF's (the same interface as the C++
kernels, csrc/lif.cpp, with the PLIF's decay read from device memory).

Each program owns BLOCK elements and runs their whole T-step recurrence in
registers: one read of X and one write of H and S per step forward, one read of
H and dL/dS and one write of dL/dX per step backward. The forward is compiled without
contracting multiply-adds, so its spikes are bit-identical to the reference's
(snnflow.model.neuron divides exactly on every device); the backward lets the compiler
fuse multiply-adds, and its gradients agree to a few ulp (docs/kernels.md). The
settings are passed as floats: Triton specialises an integer argument (`tau: 2` from
YAML) as an integer, which the division would not compile with. `load()` (through
snnflow.kernels) returns None when Triton is missing.
"""

import torch

from snnflow.kernels import loader

BLOCK = 1024


def _time_major_dense(x):
    """True when each time slice is one dense block in memory, slices back to back
    (contiguous, or channels_last activations viewed as (T, N, C, H, W))."""
    if x.stride(0) != x[0].numel():
        return False
    first = x[0]
    return first.is_contiguous() or (first.dim() == 4 and
                                      first.is_contiguous(memory_format=torch.channels_last))


def _build():
    import triton

    from snnflow.kernels.lif_triton_jit import (backward_kernel, forward_kernel,
                                                neuron_backward_kernel, neuron_forward_kernel)

    class Kernels:
        @staticmethod
        def lif_forward(x, tau, v_threshold, v_reset):
            x = x if _time_major_dense(x) else x.contiguous()
            T, M = x.shape[0], x[0].numel()
            spikes, h_seq = torch.empty_like(x), torch.empty_like(x)
            forward_kernel[(triton.cdiv(M, BLOCK),)](x, spikes, h_seq, M, T, float(tau),
                                                     float(v_threshold), float(v_reset),
                                                     BLOCK=BLOCK, enable_fp_fusion=False)
            return spikes, h_seq

        @staticmethod
        def lif_backward(grad_spikes, h_seq, tau, v_threshold, v_reset, alpha, surrogate):
            if grad_spikes.stride() != h_seq.stride():
                grad_spikes = torch.empty_like(h_seq).copy_(grad_spikes)
            T, M = h_seq.shape[0], h_seq[0].numel()
            grad_x = torch.empty_like(h_seq)
            backward_kernel[(triton.cdiv(M, BLOCK),)](grad_spikes, h_seq, grad_x, M, T,
                                                      float(tau), float(v_threshold),
                                                      float(v_reset), float(alpha),
                                                      BLOCK=BLOCK, SURROGATE=int(surrogate),
                                                      enable_fp_fusion=True)
            return grad_x

        @staticmethod
        def neuron_forward(x, neuron, decay, v_threshold, v_reset):
            """The IF's or PLIF's forward (csrc/lif.cpp's interface, `decay` a tensor)."""
            x = x if _time_major_dense(x) else x.contiguous()
            T, M = x.shape[0], x[0].numel()
            spikes, h_seq = torch.empty_like(x), torch.empty_like(x)
            neuron_forward_kernel[(triton.cdiv(M, BLOCK),)](
                x, spikes, h_seq, _decay(decay, x), M, T, float(v_threshold), float(v_reset),
                BLOCK=BLOCK, NEURON=int(neuron), enable_fp_fusion=False)
            return spikes, h_seq

        @staticmethod
        def neuron_backward(grad_spikes, h_seq, x_seq, neuron, decay, v_threshold, v_reset,
                            alpha, surrogate):
            """(dL/dX, dL/dk): the programs' parts of dL/dk summed in float64, in order."""
            if grad_spikes.stride() != h_seq.stride():
                grad_spikes = torch.empty_like(h_seq).copy_(grad_spikes)
            if x_seq.stride() != h_seq.stride():
                x_seq = torch.empty_like(h_seq).copy_(x_seq)
            T, M = h_seq.shape[0], h_seq[0].numel()
            programs = triton.cdiv(M, BLOCK)
            grad_x = torch.empty_like(h_seq)
            partial = torch.zeros(programs, dtype=torch.float32, device=h_seq.device)
            neuron_backward_kernel[(programs,)](
                grad_spikes, h_seq, x_seq, grad_x, partial, _decay(decay, h_seq), M, T,
                float(v_threshold), float(v_reset), float(alpha), BLOCK=BLOCK,
                SURROGATE=int(surrogate), NEURON=int(neuron), enable_fp_fusion=True)
            return grad_x, partial.double().sum().float()

    return Kernels


def _decay(decay, like):
    """The PLIF's decay as a one-element float32 tensor on `like`'s device (the kernels
    read it there); a number (the IF's placeholder, or the C++ interface's) becomes one."""
    if not isinstance(decay, torch.Tensor):
        decay = torch.tensor(float(decay))
    return decay.detach().to(device=like.device, dtype=torch.float32).reshape(1)


TRITON_LIF = loader.TritonModule("snnflow_lif_triton", _build)


def load():
    """The Triton loader, or None when Triton is not installed (or kernels: off)."""
    return loader.load(TRITON_LIF, "the PyTorch loop")
