"""A conv block's tail, BatchNorm -> LIF -> 2x2 max-pool, fused in Triton kernels for CUDA
(the counterpart of csrc/bn_lif_pool.cpp; snnflow.model.fused_block calls either with the
same interface).

Each program owns a tile of pooling windows x channels (channels the fastest axis where
they are the unit stride, as in channels_last; block_triton_jit says why) and runs the
whole T-step recurrence of each window's four neurons in registers. The LIF input is the
batch-normalised y * scale[c] + shift[c] as one fma, as on CPU.

- forward: pooled spikes (1 when any of the window's neurons fired; in y's dtype, which
  holds 0 and 1 exactly), and with `count`
  the spikes per channel of the neurons inside the windows (integer atomics: the sum
  does not depend on their order);
- backward: the membrane potentials are recomputed into a scratch buffer (one read of
  y, one write and one read of H, all of a program's own region), then the LIF backward
  runs in reverse time, sending each pooled gradient to the neuron nn.MaxPool2d picks
  (the first that fired in row-major window order, else the top-left one), and each
  program adds its channels' sums of dL/dx and dL/dx * y into its own slots, summed in a
  fixed order afterwards: deterministic, no atomics. BatchNorm's backward then runs in
  torch ops.

Division is IEEE round-to-nearest (div_rn). `load()` (through snnflow.kernels) returns
None without Triton; the kernels are checked in Triton's interpreter on CPU
(TRITON_INTERPRET=1), compiled for real GPUs by tests/kernels/test_ptx.py, and run on a
GPU by `make gpu-check`.
"""

import torch

from snnflow.kernels import loader

BLOCK = 128  # (window, channel) lanes per program
MAX_CHANNEL_LANES = 32


def tile(y):
    """(windows, channels) of a program's tile for conv outputs y (T, N, C, H, W):
    channels the fast axis (up to MAX_CHANNEL_LANES of them) where they are y's unit
    stride, else one channel's windows."""
    C = y.shape[2]
    if y.stride(2) != 1 or C == 1:
        return BLOCK, 1
    channels = min(MAX_CHANNEL_LANES, 1 << (C - 1).bit_length())
    return BLOCK // channels, channels


def _build():
    import triton

    from snnflow.kernels.block_triton_jit import backward_kernel, forward_kernel

    def grid(y, windows, channels):
        T, N, C, H, W = y.shape
        return (triton.cdiv(C, channels), triton.cdiv(N * (H // 2) * (W // 2), windows))

    class Kernels:
        """The interface of the C++ block kernels (torch.ops.snnflow_cpu), on CUDA."""

        @staticmethod
        def channel_moments(y):
            var, mean = torch.var_mean(y.float(), dim=(0, 1, 3, 4), unbiased=False)
            return mean, var

        @staticmethod
        def bn_lif_pool_forward(y, scale, shift, tau, v_th, v_reset, count):
            T, N, C, H, W = y.shape
            pooled = torch.empty((T * N, C, H // 2, W // 2), device=y.device,
                                 dtype=y.dtype).contiguous(
                memory_format=torch.channels_last).view(T, N, C, H // 2, W // 2)
            counts = torch.zeros(C, dtype=torch.int64, device=y.device)
            windows, channels = tile(y)
            launch = forward_kernel[grid(y, windows, channels)]
            launch(y, scale.float().contiguous(), shift.float().contiguous(), pooled, counts,
                   T, C, N, H // 2, W // 2, *y.stride(), *pooled.stride(), float(tau),
                   float(v_th), float(v_reset), COUNT=count, WB=windows, CB=channels,
                   enable_fp_fusion=False)
            return pooled, counts

        @staticmethod
        def bn_lif_pool_backward(grad_pooled, y, scale, shift, mean, invstd, tau, v_th,
                                 v_reset, alpha, surrogate):
            T, N, C, H, W = y.shape
            h_scratch = torch.empty_like(y, dtype=torch.float32)
            grad_x = torch.zeros_like(y, dtype=torch.float32)  # 0 outside the windows
            windows, channels = tile(y)
            programs = grid(y, windows, channels)
            sums = torch.empty((C, programs[1], 2), dtype=torch.float32, device=y.device)
            backward_kernel[programs](y, scale.float().contiguous(), shift.float().contiguous(),
                                     grad_pooled, h_scratch, grad_x, sums, T, C, N, H // 2,
                                     W // 2, *y.stride(), *grad_pooled.stride(), float(tau),
                                     float(v_th), float(v_reset), float(alpha), WB=windows,
                                     CB=channels, SURROGATE=int(surrogate),
                                     enable_fp_fusion=True)
            total = sums.double().sum(1)  # fixed order: deterministic
            rows = y.numel() // C
            sum_g, sum_gy = total[:, 0], total[:, 1]
            sum_gxhat = invstd.double() * (sum_gy - mean.double() * sum_g)
            # scale * (g - sum_g / rows - (y - mean) invstd sum_gxhat / rows)
            k_y = -scale.double() * invstd.double() * sum_gxhat / rows
            k_0 = -scale.double() * sum_g / rows - k_y * mean.double()
            view = (1, 1, C, 1, 1)
            grad_y = (grad_x * scale.float().view(view) + y.float() * k_y.float().view(view)
                      + k_0.float().view(view))
            return grad_y.to(y.dtype), sum_gxhat.float(), sum_g.float()

    return Kernels


TRITON_BLOCK = loader.TritonModule("snnflow_block_triton", _build)


def load():
    """The Triton block loader, or None when Triton is not installed (or kernels: off)."""
    return loader.load(TRITON_BLOCK, "BatchNorm, the LIF and max-pooling in turn")
