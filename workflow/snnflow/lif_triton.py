"""The fused LIF time loop as Triton kernels for CUDA.

Each program owns BLOCK elements and runs their whole T-step recurrence in
registers: one read of X and one write of H and S per step forward, one read of
H and dL/dS and one write of dL/dX per step backward. Division uses IEEE
round-to-nearest (`div_rn`, as PyTorch does), so spikes are bit-identical to the
reference. `load()` (through snnflow.kernels) returns None when Triton is missing.
"""

import torch

from . import kernels

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
    import triton.language as tl

    @triton.jit
    def forward_kernel(x_ptr, s_ptr, h_ptr, M, T, tau, v_th, v_reset, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < M
        v = tl.full([BLOCK], v_reset, tl.float32)
        for t in range(T):
            at = t * M + offs
            x = tl.load(x_ptr + at, mask=mask, other=0.0)
            h = v + tl.math.div_rn(x - (v - v_reset), tau)
            fired = h >= v_th
            tl.store(h_ptr + at, h, mask=mask)
            tl.store(s_ptr + at, fired.to(tl.float32), mask=mask)
            v = tl.where(fired, v_reset, h)

    @triton.jit
    def backward_kernel(g_ptr, h_ptr, gx_ptr, M, T, tau, v_th, v_reset, alpha,
                        BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < M
        grad_v = tl.zeros([BLOCK], tl.float32)
        for i in range(T):
            at = (T - 1 - i) * M + offs
            h = tl.load(h_ptr + at, mask=mask, other=0.0)
            g = tl.load(g_ptr + at, mask=mask, other=0.0)
            sig = tl.sigmoid(alpha * (h - v_th))
            grad_s = g + grad_v * (v_reset - h)
            grad_h = grad_s * (alpha * sig * (1.0 - sig)) + tl.where(h >= v_th, 0.0, grad_v)
            grad_x = tl.math.div_rn(grad_h, tau)
            tl.store(gx_ptr + at, grad_x, mask=mask)
            grad_v = grad_h - grad_x

    class Kernels:
        @staticmethod
        def lif_forward(x, tau, v_threshold, v_reset):
            x = x if _time_major_dense(x) else x.contiguous()
            T, M = x.shape[0], x[0].numel()
            spikes, h_seq = torch.empty_like(x), torch.empty_like(x)
            forward_kernel[(triton.cdiv(M, BLOCK),)](x, spikes, h_seq, M, T, tau, v_threshold,
                                                     v_reset, BLOCK=BLOCK)
            return spikes, h_seq

        @staticmethod
        def lif_backward(grad_spikes, h_seq, tau, v_threshold, v_reset, alpha):
            if grad_spikes.stride() != h_seq.stride():
                grad_spikes = torch.empty_like(h_seq).copy_(grad_spikes)
            T, M = h_seq.shape[0], h_seq[0].numel()
            grad_x = torch.empty_like(h_seq)
            backward_kernel[(triton.cdiv(M, BLOCK),)](grad_spikes, h_seq, grad_x, M, T, tau,
                                                      v_threshold, v_reset, alpha, BLOCK=BLOCK)
            return grad_x

    return Kernels


TRITON_LIF = kernels.TritonModule("snnflow_lif_triton", _build)


def load():
    """The Triton kernels, or None when Triton is not installed (or kernels: off)."""
    return kernels.load(TRITON_LIF, "the PyTorch loop")
