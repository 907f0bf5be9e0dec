"""The Triton kernels of snnflow.kernels.block_triton (imported only when Triton is there):
BatchNorm -> LIF -> 2x2 max-pool of a conv block, forward and backward."""

import triton
import triton.language as tl

from snnflow.kernels.triton_lif_step import backward_step, charge, fire


@triton.jit
def _window(p, OW, OH):
    """(n, oh, ow) of pooling window p of a channel."""
    ow = p % OW
    oh = (p // OW) % OH
    n = p // (OW * OH)
    return n, oh, ow


@triton.jit
def _load_window(y_ptr, at, sy_h, sy_w, mask):
    """The four conv outputs of a 2x2 window (row-major) at offset `at`, as float32."""
    y0 = tl.load(y_ptr + at, mask=mask, other=0.0).to(tl.float32)
    y1 = tl.load(y_ptr + at + sy_w, mask=mask, other=0.0).to(tl.float32)
    y2 = tl.load(y_ptr + at + sy_h, mask=mask, other=0.0).to(tl.float32)
    y3 = tl.load(y_ptr + at + sy_h + sy_w, mask=mask, other=0.0).to(tl.float32)
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
def _channel_windows(scale_ptr, shift_ptr, N, OH, OW, s_n, s_c, s_h, s_w,
                     BLOCK: tl.constexpr):
    """This program's channel and pooling windows: (c, n, oh, ow, mask, BatchNorm's scale
    and shift, the windows' offsets in y at t = 0)."""
    c = tl.program_id(0)
    p = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = p < N * OH * OW
    n, oh, ow = _window(p, OW, OH)
    base = n * s_n + c * s_c + (2 * oh) * s_h + (2 * ow) * s_w
    return c, n, oh, ow, mask, tl.load(scale_ptr + c), tl.load(shift_ptr + c), base


@triton.jit
def forward_kernel(y_ptr, scale_ptr, shift_ptr, out_ptr, count_ptr,
                   T, N, OH, OW, sy_t, sy_n, sy_c, sy_h, sy_w,
                   so_t, so_n, so_c, so_h, so_w, tau, v_th, v_reset,
                   COUNT: tl.constexpr, BLOCK: tl.constexpr):
    c, n, oh, ow, mask, scale, shift, base = _channel_windows(
        scale_ptr, shift_ptr, N, OH, OW, sy_n, sy_c, sy_h, sy_w, BLOCK)
    out = n * so_n + c * so_c + oh * so_h + ow * so_w
    v0 = tl.full([BLOCK], v_reset, tl.float32)
    v1, v2, v3 = v0, v0, v0
    fired_total = tl.zeros([BLOCK], tl.int32)
    for t in range(T):
        at = base + t * sy_t
        h0, h1, h2, h3 = _charge_window(y_ptr, at, sy_h, sy_w, mask, v0, v1, v2, v3, scale,
                                        shift, tau, v_reset)
        f0, v0 = fire(h0, v_th, v_reset)
        f1, v1 = fire(h1, v_th, v_reset)
        f2, v2 = fire(h2, v_th, v_reset)
        f3, v3 = fire(h3, v_th, v_reset)
        pooled = (f0 | f1 | f2 | f3).to(out_ptr.dtype.element_ty)
        tl.store(out_ptr + out + t * so_t, pooled, mask=mask)
        if COUNT:
            fired_total += (f0.to(tl.int32) + f1.to(tl.int32) + f2.to(tl.int32)
                            + f3.to(tl.int32))
    if COUNT:
        tl.atomic_add(count_ptr + c, tl.sum(tl.where(mask, fired_total, 0)).to(tl.int64))


@triton.jit
def backward_kernel(y_ptr, scale_ptr, shift_ptr, gp_ptr, h_ptr, gy_ptr, sums_ptr,
                    T, N, OH, OW, sy_t, sy_n, sy_c, sy_h, sy_w,
                    sg_t, sg_n, sg_c, sg_h, sg_w, tau, v_th, v_reset, alpha,
                    BLOCK: tl.constexpr):
    c, n, oh, ow, mask, scale, shift, base = _channel_windows(
        scale_ptr, shift_ptr, N, OH, OW, sy_n, sy_c, sy_h, sy_w, BLOCK)
    block = tl.program_id(1)
    grad = n * sg_n + c * sg_c + oh * sg_h + ow * sg_w
    # H of every step, in y's layout (the scratch buffer is laid out like y)
    v0 = tl.full([BLOCK], v_reset, tl.float32)
    v1, v2, v3 = v0, v0, v0
    for t in range(T):
        at = base + t * sy_t
        h0, h1, h2, h3 = _charge_window(y_ptr, at, sy_h, sy_w, mask, v0, v1, v2, v3, scale,
                                        shift, tau, v_reset)
        tl.store(h_ptr + at, h0, mask=mask)
        tl.store(h_ptr + at + sy_w, h1, mask=mask)
        tl.store(h_ptr + at + sy_h, h2, mask=mask)
        tl.store(h_ptr + at + sy_h + sy_w, h3, mask=mask)
        _, v0 = fire(h0, v_th, v_reset)
        _, v1 = fire(h1, v_th, v_reset)
        _, v2 = fire(h2, v_th, v_reset)
        _, v3 = fire(h3, v_th, v_reset)
    g0 = tl.zeros([BLOCK], tl.float32)
    g1, g2, g3 = g0, g0, g0
    sum_g = tl.zeros([BLOCK], tl.float32)
    sum_gy = tl.zeros([BLOCK], tl.float32)
    for i in range(T):
        t = T - 1 - i
        at = base + t * sy_t
        h0 = tl.load(h_ptr + at, mask=mask, other=0.0)
        h1 = tl.load(h_ptr + at + sy_w, mask=mask, other=0.0)
        h2 = tl.load(h_ptr + at + sy_h, mask=mask, other=0.0)
        h3 = tl.load(h_ptr + at + sy_h + sy_w, mask=mask, other=0.0)
        g_out = tl.load(gp_ptr + grad + t * sg_t, mask=mask, other=0.0).to(tl.float32)
        f0, f1, f2, f3 = h0 >= v_th, h1 >= v_th, h2 >= v_th, h3 >= v_th
        # nn.MaxPool2d's choice: the first neuron that fired, else the top-left one
        w0 = f0 | ~(f1 | f2 | f3)
        w1 = f1 & ~f0
        w2 = f2 & ~(f0 | f1)
        w3 = f3 & ~(f0 | f1 | f2)
        x0, g0 = backward_step(h0, tl.where(w0, g_out, 0.0), g0, tau, v_th, v_reset, alpha)
        x1, g1 = backward_step(h1, tl.where(w1, g_out, 0.0), g1, tau, v_th, v_reset, alpha)
        x2, g2 = backward_step(h2, tl.where(w2, g_out, 0.0), g2, tau, v_th, v_reset, alpha)
        x3, g3 = backward_step(h3, tl.where(w3, g_out, 0.0), g3, tau, v_th, v_reset, alpha)
        tl.store(gy_ptr + at, x0, mask=mask)
        tl.store(gy_ptr + at + sy_w, x1, mask=mask)
        tl.store(gy_ptr + at + sy_h, x2, mask=mask)
        tl.store(gy_ptr + at + sy_h + sy_w, x3, mask=mask)
        y0, y1, y2, y3 = _load_window(y_ptr, at, sy_h, sy_w, mask)
        sum_g += (x0 + x1) + (x2 + x3)
        sum_gy += (x0 * y0 + x1 * y1) + (x2 * y2 + x3 * y3)
    blocks = tl.num_programs(1)
    tl.store(sums_ptr + (c * blocks + block) * 2, tl.sum(tl.where(mask, sum_g, 0.0)))
    tl.store(sums_ptr + (c * blocks + block) * 2 + 1, tl.sum(tl.where(mask, sum_gy, 0.0)))
