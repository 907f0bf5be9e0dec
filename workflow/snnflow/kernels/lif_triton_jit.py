"""The Triton kernels of snnflow.kernels.lif_triton (imported only when Triton is there):
the LIF time loop forward and backward, and the IF's and PLIF's, one program per BLOCK
neurons.

Offsets are 64-bit throughout (a running offset stepped by M per time step, never
t * M in 32 bits), so no size a GPU can hold overflows them; tests/kernels/test_ptx.py
checks the compiled code for it."""

import triton
import triton.language as tl

from snnflow.kernels.triton_lif_step import (backward_step, charge, charge_of, fire,
                                             neuron_backward_step)


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


@triton.jit
def neuron_forward_kernel(x_ptr, s_ptr, h_ptr, decay_ptr, M, T, v_th, v_reset,
                          BLOCK: tl.constexpr, NEURON: tl.constexpr):
    """The IF's (NEURON 1) or PLIF's (NEURON 2) forward; the decay read from memory, so a
    learned w needs no copy to the host."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    decay = tl.load(decay_ptr)
    v = tl.full([BLOCK], v_reset, tl.float32)
    at = offs
    for _ in range(T):
        h = charge_of(v, tl.load(x_ptr + at, mask=mask, other=0.0), decay, v_reset, NEURON)
        fired, v = fire(h, v_th, v_reset)
        tl.store(h_ptr + at, h, mask=mask)
        tl.store(s_ptr + at, tl.where(fired, 1.0, 0.0), mask=mask)
        at += M


@triton.jit
def neuron_backward_kernel(g_ptr, h_ptr, x_ptr, gx_ptr, partial_ptr, decay_ptr, M, T, v_th,
                           v_reset, alpha, BLOCK: tl.constexpr, SURROGATE: tl.constexpr,
                           NEURON: tl.constexpr):
    """The IF's or PLIF's backward; for the PLIF each program also writes its part of dL/dk,
    the sum of dL/dH[t] times the drive X[t] - (V[t-1] - V_reset) over its neurons and
    steps, to partial_ptr[program] (summed in order on the host side: no atomics)."""
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    decay = tl.load(decay_ptr)
    grad_v = tl.zeros([BLOCK], tl.float32)
    total = tl.zeros([BLOCK], tl.float32)
    step = M.to(tl.int64)
    at = offs + (T - 1) * step
    for i in range(T):
        h = tl.load(h_ptr + at, mask=mask, other=0.0)
        g = tl.load(g_ptr + at, mask=mask, other=0.0)
        grad_x, grad_v, grad_h = neuron_backward_step(h, g, grad_v, decay, v_th, v_reset, alpha,
                                                      SURROGATE, NEURON)
        tl.store(gx_ptr + at, grad_x, mask=mask)
        if NEURON == 2:
            has_before = (tl.zeros([BLOCK], tl.int32) + i) < T - 1  # t > 0
            before = tl.load(h_ptr + at - step, mask=mask & has_before, other=v_reset)
            v = tl.where(before >= v_th, v_reset, before)
            total += grad_h * (tl.load(x_ptr + at, mask=mask, other=0.0) - (v - v_reset))
        at -= step
    tl.store(partial_ptr + pid, tl.sum(total, axis=0))
