"""The Triton kernels of snnflow.kernels.lif_triton (imported only when Triton is there):
the LIF time loop forward and backward, one program per BLOCK neurons.

Offsets are 64-bit throughout (a running offset stepped by M per time step, never
t * M in 32 bits), so no size a GPU can hold overflows them; tests/kernels/test_ptx.py
checks the compiled code for it."""

import triton
import triton.language as tl

from snnflow.kernels.triton_lif_step import backward_step, charge, fire


@triton.jit
def forward_kernel(x_ptr, s_ptr, h_ptr, M, T, tau, v_th, v_reset, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    v = tl.full([BLOCK], v_reset, tl.float32)
    at = offs
    for _ in range(T):
        h = charge(v, tl.load(x_ptr + at, mask=mask, other=0.0), tau, v_reset)
        fired, v = fire(h, v_th, v_reset)
        tl.store(h_ptr + at, h, mask=mask)
        tl.store(s_ptr + at, tl.where(fired, 1.0, 0.0), mask=mask)
        at += M


@triton.jit
def backward_kernel(g_ptr, h_ptr, gx_ptr, M, T, tau, v_th, v_reset, alpha,
                    BLOCK: tl.constexpr, SURROGATE: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    grad_v = tl.zeros([BLOCK], tl.float32)
    at = offs + (T - 1) * M.to(tl.int64)
    for _ in range(T):
        h = tl.load(h_ptr + at, mask=mask, other=0.0)
        g = tl.load(g_ptr + at, mask=mask, other=0.0)
        grad_x, grad_v = backward_step(h, g, grad_v, tau, v_th, v_reset, alpha, SURROGATE)
        tl.store(gx_ptr + at, grad_x, mask=mask)
        at -= M
