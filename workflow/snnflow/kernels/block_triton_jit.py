"""The Triton kernels of snnflow.kernels.block_triton (imported only when Triton is there):
BatchNorm -> LIF -> 2x2 max-pool of a conv block, forward and backward.

A program owns a tile of WB pooling windows x CB channels, channels the fastest axis of
the tile: in the channels_last activations the study runs, neighbouring lanes then read
neighbouring addresses (each 32-byte sector used whole), where a tile of one channel's
windows would read 4 bytes of every 2·C·4 (12.5 % of each sector at C = 32, float32).
For contiguous (NCHW) activations the launcher picks CB = 1, a tile of one channel's
windows, whose neighbours are two elements apart there.

Offsets are 64-bit throughout: running offsets stepped by the time stride, never
t * stride in 32 bits (tests/kernels/test_ptx.py checks the compiled code)."""

import triton
import triton.language as tl

from snnflow.kernels.triton_lif_step import backward_step, charge, fire


@triton.jit
def _load_window(y_ptr, at, sy_h, sy_w, mask):
    """The four conv outputs of a 2x2 window (row-major) at offset `at`, as float32."""
    y0 = tl.load(y_ptr + at, mask=mask, other=0.0).to(tl.float32)
    y1 = tl.load(y_ptr + (at + sy_w), mask=mask, other=0.0).to(tl.float32)
    y2 = tl.load(y_ptr + (at + sy_h), mask=mask, other=0.0).to(tl.float32)
    y3 = tl.load(y_ptr + (at + sy_h + sy_w), mask=mask, other=0.0).to(tl.float32)
    return y0, y1, y2, y3


@triton.jit
def _charge(v, y, scale, shift, tau, v_reset):
    """H[t] from V[t-1] and the conv output, batch-normalised as one fma (as on CPU)."""
    return charge(v, tl.fma(y, scale, shift), tau, v_reset)


@triton.jit
def _charge_window(y_ptr, at, sy_h, sy_w, mask, v0, v1, v2, v3, scale, shift, tau, v_reset):
    """H[t] of a window's four neurons from their V[t-1] and the conv outputs at `at`."""
    y0, y1, y2, y3 = _load_window(y_ptr, at, sy_h, sy_w, mask)
    return (_charge(v0, y0, scale, shift, tau, v_reset),
            _charge(v1, y1, scale, shift, tau, v_reset),
            _charge(v2, y2, scale, shift, tau, v_reset),
            _charge(v3, y3, scale, shift, tau, v_reset))


@triton.jit
def _tile(scale_ptr, shift_ptr, C, N, OH, OW, s_n, s_c, s_h, s_w, o_n, o_c, o_h, o_w,
          WB: tl.constexpr, CB: tl.constexpr):
    """This program's tile: (channels [CB], mask [WB, CB], BatchNorm's scale and shift
    [1, CB], the windows' offsets in y at t = 0 and in the pooled tensor, [WB, CB])."""
    c = tl.program_id(0).to(tl.int64) * CB + tl.arange(0, CB)
    p = tl.program_id(1).to(tl.int64) * WB + tl.arange(0, WB)
    ow = p % OW
    oh = (p // OW) % OH
    n = p // OW // OH
    channel_ok = c < C
    mask = (p < N.to(tl.int64) * OH * OW)[:, None] & channel_ok[None, :]
    base = (n * s_n + (2 * oh) * s_h + (2 * ow) * s_w)[:, None] + c[None, :] * s_c
    out = (n * o_n + oh * o_h + ow * o_w)[:, None] + c[None, :] * o_c
    scale = tl.load(scale_ptr + c, mask=channel_ok, other=0.0)[None, :]
    shift = tl.load(shift_ptr + c, mask=channel_ok, other=0.0)[None, :]
    return c, mask, scale, shift, base, out


@triton.jit
def forward_kernel(y_ptr, scale_ptr, shift_ptr, out_ptr, count_ptr,
                   T, C, N, OH, OW, sy_t, sy_n, sy_c, sy_h, sy_w,
                   so_t, so_n, so_c, so_h, so_w, tau, v_th, v_reset,
                   COUNT: tl.constexpr, WB: tl.constexpr, CB: tl.constexpr):
    c, mask, scale, shift, at, out = _tile(scale_ptr, shift_ptr, C, N, OH, OW, sy_n, sy_c,
                                           sy_h, sy_w, so_n, so_c, so_h, so_w, WB, CB)
    v0 = tl.full([WB, CB], v_reset, tl.float32)
    v1, v2, v3 = v0, v0, v0
    fired_total = tl.zeros([WB, CB], tl.int32)
    for _ in range(T):
        h0, h1, h2, h3 = _charge_window(y_ptr, at, sy_h, sy_w, mask, v0, v1, v2, v3, scale,
                                        shift, tau, v_reset)
        f0, v0 = fire(h0, v_th, v_reset)
        f1, v1 = fire(h1, v_th, v_reset)
        f2, v2 = fire(h2, v_th, v_reset)
        f3, v3 = fire(h3, v_th, v_reset)
        pooled = tl.where(f0 | f1 | f2 | f3, 1.0, 0.0).to(out_ptr.dtype.element_ty)
        tl.store(out_ptr + out, pooled, mask=mask)
        if COUNT:
            fired_total += (f0.to(tl.int32) + f1.to(tl.int32) + f2.to(tl.int32)
                            + f3.to(tl.int32))
        at += sy_t
        out += so_t
    if COUNT:  # integer sums: the same whatever order the atomics land in
        per_channel = tl.sum(tl.where(mask, fired_total, 0), axis=0).to(tl.int64)
        tl.atomic_add(count_ptr + c, per_channel, mask=c < C)


@triton.jit
def backward_kernel(y_ptr, scale_ptr, shift_ptr, gp_ptr, h_ptr, gy_ptr, sums_ptr,
                    T, C, N, OH, OW, sy_t, sy_n, sy_c, sy_h, sy_w,
                    sg_t, sg_n, sg_c, sg_h, sg_w, tau, v_th, v_reset, alpha,
                    WB: tl.constexpr, CB: tl.constexpr, SURROGATE: tl.constexpr):
    c, mask, scale, shift, at, grad = _tile(scale_ptr, shift_ptr, C, N, OH, OW, sy_n, sy_c,
                                            sy_h, sy_w, sg_n, sg_c, sg_h, sg_w, WB, CB)
    # H of every step, in y's layout (the scratch buffer is laid out like y)
    v0 = tl.full([WB, CB], v_reset, tl.float32)
    v1, v2, v3 = v0, v0, v0
    for _ in range(T):
        h0, h1, h2, h3 = _charge_window(y_ptr, at, sy_h, sy_w, mask, v0, v1, v2, v3, scale,
                                        shift, tau, v_reset)
        tl.store(h_ptr + at, h0, mask=mask)
        tl.store(h_ptr + (at + sy_w), h1, mask=mask)
        tl.store(h_ptr + (at + sy_h), h2, mask=mask)
        tl.store(h_ptr + (at + sy_h + sy_w), h3, mask=mask)
        _, v0 = fire(h0, v_th, v_reset)
        _, v1 = fire(h1, v_th, v_reset)
        _, v2 = fire(h2, v_th, v_reset)
        _, v3 = fire(h3, v_th, v_reset)
        at += sy_t
        grad += sg_t
    g0 = tl.zeros([WB, CB], tl.float32)
    g1, g2, g3 = g0, g0, g0
    sum_g = tl.zeros([WB, CB], tl.float32)
    sum_gy = tl.zeros([WB, CB], tl.float32)
    for _ in range(T):  # in reverse time: the offsets step back from past the last step
        at -= sy_t
        grad -= sg_t
        h0 = tl.load(h_ptr + at, mask=mask, other=0.0)
        h1 = tl.load(h_ptr + (at + sy_w), mask=mask, other=0.0)
        h2 = tl.load(h_ptr + (at + sy_h), mask=mask, other=0.0)
        h3 = tl.load(h_ptr + (at + sy_h + sy_w), mask=mask, other=0.0)
        g_out = tl.load(gp_ptr + grad, mask=mask, other=0.0).to(tl.float32)
        f0, f1, f2, f3 = h0 >= v_th, h1 >= v_th, h2 >= v_th, h3 >= v_th
        # nn.MaxPool2d's choice: the first neuron that fired, else the top-left one
        w0 = f0 | ~(f1 | f2 | f3)
        w1 = f1 & ~f0
        w2 = f2 & ~(f0 | f1)
        w3 = f3 & ~(f0 | f1 | f2)
        x0, g0 = backward_step(h0, tl.where(w0, g_out, 0.0), g0, tau, v_th, v_reset, alpha,
                               SURROGATE)
        x1, g1 = backward_step(h1, tl.where(w1, g_out, 0.0), g1, tau, v_th, v_reset, alpha,
                               SURROGATE)
        x2, g2 = backward_step(h2, tl.where(w2, g_out, 0.0), g2, tau, v_th, v_reset, alpha,
                               SURROGATE)
        x3, g3 = backward_step(h3, tl.where(w3, g_out, 0.0), g3, tau, v_th, v_reset, alpha,
                               SURROGATE)
        tl.store(gy_ptr + at, x0, mask=mask)
        tl.store(gy_ptr + (at + sy_w), x1, mask=mask)
        tl.store(gy_ptr + (at + sy_h), x2, mask=mask)
        tl.store(gy_ptr + (at + sy_h + sy_w), x3, mask=mask)
        y0, y1, y2, y3 = _load_window(y_ptr, at, sy_h, sy_w, mask)
        sum_g += (x0 + x1) + (x2 + x3)
        sum_gy += (x0 * y0 + x1 * y1) + (x2 * y2 + x3 * y3)
    # each program writes its own slot per channel, summed in a fixed order afterwards
    slot = (c * tl.num_programs(1) + tl.program_id(1)) * 2
    tl.store(sums_ptr + slot, tl.sum(tl.where(mask, sum_g, 0.0), axis=0), mask=c < C)
    tl.store(sums_ptr + (slot + 1), tl.sum(tl.where(mask, sum_gy, 0.0), axis=0), mask=c < C)
