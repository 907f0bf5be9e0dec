"""3x3 convolutions of spike inputs, computed from the input's nonzeros (CPU).

The inputs of the SNN's second and third convolutions are pooled spikes, about one in
eight of them nonzero. Dense convolution multiplies every zero; here each nonzero adds
its weight rows to the (up to) nine output pixels it meets, and the weight gradient is
summed over the nonzeros the same way. On this project's 2-core machine that made the
forward 1.6-2.1x and the weight gradient 1.7-2x faster than oneDNN for those two layers
(`python benchmarks/bench.py`); the input gradient, dense by nature, stays with PyTorch.
Sums run in a fixed order, so results do not depend on the thread count; they equal
the dense convolution up to float rounding.

The C++ kernels are csrc/sparse_conv.cpp (snnflow.kernels.cpu_ops). They run with the "cpp"
backend; with another backend, when the input is mostly nonzero, or when the layer is
not a plain 3x3/padding-1 convolution with 32, 64 or 128 output channels,
`conv_spikes` is nn.Conv2d's own forward.
"""

import torch
from torch import nn

from snnflow.kernels import cpu_ops

SPARSE_ENOUGH = 0.35  # above this fraction of nonzeros, dense convolution is faster
OUTPUT_CHANNELS = (32, 64, 128)  # the kernels are compiled for these widths


def applies(conv: nn.Conv2d, x, backend):
    """Whether `conv_spikes` can compute conv(x) from x's nonzeros."""
    return (backend == "cpp" and not x.is_cuda and x.dtype == torch.float32 and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.bias is None
            and conv.padding_mode == "zeros" and conv.out_channels in OUTPUT_CHANNELS
            and conv.weight.dtype == torch.float32 and cpu_ops.load() is not None)


def conv_spikes(conv: nn.Conv2d, x, backend):
    """conv(x) for a mostly-zero x (N, C, H, W), from its nonzeros where that applies."""
    if not applies(conv, x, backend):
        return conv(x)
    return _sparse_conv(x, conv.weight)[0]


@torch.library.custom_op("snnflow::sparse_conv3x3", mutates_args=())
def _sparse_conv(x: torch.Tensor, weight: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, nonzeros as CSR: counts, channel, value). When x is not sparse enough the
    convolution is dense and channel and value are empty."""
    kernels = cpu_ops.load()
    counts, channel, value = kernels.spike_nonzeros(x)
    if value.numel() > SPARSE_ENOUGH * x.numel():
        y = nn.functional.conv2d(x, weight, padding=1)
        return y, counts, channel[:0].clone(), value[:0].clone()
    B, _, H, W = x.shape
    return (kernels.sparse_conv_forward(counts, channel, value, weight, B, H, W), counts,
            channel, value)


@_sparse_conv.register_fake
def _(x, weight):
    B, _, H, W = x.shape
    y = x.new_empty((B, weight.shape[0], H, W)).contiguous(memory_format=torch.channels_last)
    n = torch.library.get_ctx().new_dynamic_size()
    return (y, x.new_empty((B * H * W + 1,), dtype=torch.int64),
            x.new_empty((n,), dtype=torch.int32), x.new_empty((n,)))


def _setup_context(ctx, inputs, output):
    x, weight = inputs
    _, counts, channel, value = output
    ctx.mark_non_differentiable(counts, channel, value)
    ctx.save_for_backward(x, weight, counts, channel, value)


def _backward(ctx, grad_y, *_):
    return _sparse_conv_backward(grad_y, *ctx.saved_tensors)


@torch.library.custom_op("snnflow::sparse_conv3x3_backward", mutates_args=())
def _sparse_conv_backward(grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                          counts: torch.Tensor, channel: torch.Tensor,
                          value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of x (dense, by oneDNN) and of the weight (from x's nonzeros when the
    forward ran sparse). An op of its own: whether the forward ran sparse is known only
    from the data, which tracing (torch.compile) must not branch on."""
    grad_y = grad_y.contiguous(memory_format=torch.channels_last)
    sparse = value.numel() > 0  # an all-zero input takes the dense path too: same zeros
    grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
        grad_y, x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
        [True, not sparse, False])
    if sparse:
        grad_w = cpu_ops.load().sparse_conv_weight_grad(grad_y, counts, channel, value,
                                                        x.shape[1])
    return _laid_out_like(grad_x, x), _laid_out_like(grad_w, weight)


def _laid_out_like(tensor, like):
    """`tensor` in the memory layout of `like` (a gradient's layout follows its input's
    whichever kernel computed it, as the fake implementation says)."""
    return tensor if tensor.stride() == like.stride() else torch.empty_like(like).copy_(tensor)


@_sparse_conv_backward.register_fake
def _(grad_y, x, weight, counts, channel, value):
    return torch.empty_like(x), torch.empty_like(weight)


_sparse_conv.register_autograd(_backward, setup_context=_setup_context)
