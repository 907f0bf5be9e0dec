"""The tail of a convolutional SNN block, BatchNorm -> LIF -> 2x2 max-pool, as one op (on the
CPU with the IF or the PLIF too, snn.neuron).

These three layers are bound by memory traffic, not arithmetic: run one after the
other they write and reread the normalised input, H and the full-size spikes. The
fused kernels read the conv output once per direction (plus once for the batch
statistics) and store nothing full-size between forward and backward, which
recomputes H: on CPU the C++ kernels of csrc/bn_lif_pool.cpp (backend "cpp"), on CUDA
the Triton kernels of snnflow.kernels.block_triton (backend "triton", with the
performance.fused_cuda_block switch), both behind the same operators.

Same maths as nn.BatchNorm2d (batch statistics and running-statistics update in
training, running statistics in eval), the LIF and nn.MaxPool2d. The normalisation
is computed as y * scale + shift in one fma, which rounds differently from
nn.BatchNorm2d, so a membrane potential within float rounding of the threshold may
spike differently; gradients agree to float precision.

Used with the fused engine when BatchNorm is training or no gradient is needed: on CPU
for float32 channels_last activations, on CUDA for any layout of float32 or half
precision; otherwise the layers run in turn.
"""

import torch
from torch import nn

from snnflow.kernels import block_triton, cpu_ops
from snnflow.model.neuron import NEURONS, decay_operand


def bn_lif_pool(y_seq, bn: nn.BatchNorm2d, lif, count=False, fuse_cuda=False):
    """pool(LIF(bn(y))) for conv outputs y_seq (T, N, C, H, W) -> (T, N, C, H/2, W/2),
    fused where the backend has kernels for it (on CUDA only with `fuse_cuda`).

    With `count` (evaluation only): (pooled spikes, number of LIF spikes) instead, the
    spikes counted over the neurons inside the pooling windows, the ones whose spikes
    can reach the next layer (with an odd size, max-pooling drops the last row and
    column, and the fused kernel does not compute them)."""
    if count and bn.training:
        raise ValueError("spikes are counted in evaluation only")
    if not fusable(y_seq, bn, lif, fuse_cuda):
        T, N = y_seq.shape[:2]
        return lif.forward_pooled(bn(y_seq.flatten(0, 1)).unflatten(0, (T, N)), count)
    p = lif.params
    if p.neuron != "lif":
        return _bn_neuron_pool_block(y_seq, bn, lif, count)
    if not bn.training:
        scale, shift = _affine(bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)
        pooled, per_channel = _bn_lif_pool_eval(y_seq, scale, shift, p.tau, p.v_threshold,
                                                p.v_reset)
        return (pooled, per_channel.sum()) if count else pooled
    pooled, mean, var = _bn_lif_pool(y_seq, bn.weight, bn.bias, bn.eps, p.tau, p.v_threshold,
                                     p.v_reset, p.alpha, p.surrogate_index)
    _update_running_statistics(bn, y_seq, mean, var)
    return pooled


def _bn_neuron_pool_block(y_seq, bn, lif, count):
    """bn_lif_pool with the IF or the PLIF (the C++ kernels; its decay learned)."""
    p = lif.params
    neuron = NEURONS.index(p.neuron)
    decay = decay_operand(lif.decay(), y_seq)
    if not bn.training:
        scale, shift = _affine(bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)
        pooled, per_channel = _bn_neuron_pool_eval(y_seq, scale, shift, neuron, decay.detach(),
                                                   p.v_threshold, p.v_reset)
        return (pooled, per_channel.sum()) if count else pooled
    pooled, mean, var = _bn_neuron_pool(y_seq, bn.weight, bn.bias, decay, bn.eps, neuron,
                                        p.v_threshold, p.v_reset, p.alpha, p.surrogate_index)
    _update_running_statistics(bn, y_seq, mean, var)
    return pooled


def _update_running_statistics(bn, y_seq, mean, var):
    with torch.no_grad():  # as nn.BatchNorm2d: the unbiased variance goes into the running one
        n = y_seq.numel() // y_seq.shape[2]
        bn.num_batches_tracked.add_(1)
        bn.running_mean.mul_(1 - bn.momentum).add_(mean, alpha=bn.momentum)
        bn.running_var.mul_(1 - bn.momentum).add_(var * (n / max(n - 1, 1)), alpha=bn.momentum)


def fusable(y_seq, bn, lif, fuse_cuda=False):
    """Whether the block's kernels run it: the C++ kernels carry every neuron, the Triton
    block the LIF only."""
    if not lif.fused or y_seq.dim() != 5:
        return False
    if not (bn.affine and bn.track_running_stats) or bn.momentum is None:
        return False
    if not bn.training and torch.is_grad_enabled():
        return False
    if y_seq.is_cuda:
        return (fuse_cuda and lif.backend == "triton" and lif.params.neuron == "lif"
                and y_seq.dtype in HALF_OR_FLOAT
                and block_triton.load() is not None)
    if lif.backend != "cpp" or y_seq.dtype != torch.float32:
        return False
    T, N, C, H, W = y_seq.shape
    channels_last = (N * C * H * W, H * W * C, 1, W * C, C)
    if any(size > 1 and stride != expected  # a size-1 dimension's stride is never used
           for size, stride, expected in zip(y_seq.shape, y_seq.stride(), channels_last)):
        return False
    return cpu_ops.load() is not None


HALF_OR_FLOAT = (torch.float32, torch.bfloat16, torch.float16)


def _kernels(y_seq):
    """The block kernels for y's device (both have the same interface)."""
    return block_triton.load() if y_seq.is_cuda else cpu_ops.load()


def _affine(weight, bias, mean, var, eps):
    """BatchNorm as x = y * scale + shift."""
    scale = weight * torch.rsqrt(var + eps)
    return scale, bias - mean * scale


def _pooled_like(y_seq):
    T, N, C, H, W = y_seq.shape
    pooled = y_seq.new_empty((T * N, C, H // 2, W // 2)).contiguous(
        memory_format=torch.channels_last)
    return pooled.view(T, N, C, H // 2, W // 2)


# Registered as custom operators so torch.compile traces through them.
@torch.library.custom_op("snnflow::bn_lif_pool", mutates_args=())
def _bn_lif_pool(y_seq: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                 tau: float, v_threshold: float, v_reset: float, alpha: float,
                 surrogate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pooled spikes, batch mean, batch variance) in training mode (alpha and the
    surrogate's index, snnflow.model.neuron.SURROGATES, are kept for the backward)."""
    kernels = _kernels(y_seq)
    mean, var = kernels.channel_moments(y_seq)
    scale, shift = _affine(weight, bias, mean, var, eps)
    pooled, _ = kernels.bn_lif_pool_forward(y_seq, scale, shift, tau, v_threshold, v_reset, False)
    return pooled, mean, var


@_bn_lif_pool.register_fake
def _(y_seq, weight, bias, eps, tau, v_threshold, v_reset, alpha, surrogate):
    return _pooled_like(y_seq), weight.new_empty(weight.shape), weight.new_empty(weight.shape)


@torch.library.custom_op("snnflow::bn_lif_pool_backward", mutates_args=())
def _bn_lif_pool_backward(grad_pooled: torch.Tensor, y_seq: torch.Tensor, weight: torch.Tensor,
                          bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, eps: float,
                          tau: float, v_threshold: float, v_reset: float, alpha: float,
                          surrogate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of y, BatchNorm's weight and bias (the statistics depend on y)."""
    scale, shift = _affine(weight, bias, mean, var, eps)  # bitwise the forward's
    return tuple(_kernels(y_seq).bn_lif_pool_backward(grad_pooled, y_seq, scale, shift, mean,
                                                     torch.rsqrt(var + eps), tau, v_threshold,
                                                     v_reset, alpha, surrogate))


@_bn_lif_pool_backward.register_fake
def _(grad_pooled, y_seq, weight, bias, mean, var, eps, tau, v_threshold, v_reset, alpha,
      surrogate):
    return torch.empty_like(y_seq), torch.empty_like(weight), torch.empty_like(bias)


def _setup_context(ctx, inputs, output):
    y_seq, weight, bias, eps, *params = inputs
    _, mean, var = output
    ctx.mark_non_differentiable(mean, var)
    ctx.save_for_backward(y_seq, weight, bias, mean, var)
    ctx.eps, ctx.params = eps, params


def _backward(ctx, grad_pooled, _grad_mean, _grad_var):
    y_seq, weight, bias, mean, var = ctx.saved_tensors
    grads = _bn_lif_pool_backward(grad_pooled, y_seq, weight, bias, mean, var, ctx.eps,
                                  *ctx.params)
    return *grads, None, None, None, None, None, None


_bn_lif_pool.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("snnflow::bn_lif_pool_eval", mutates_args=())
def _bn_lif_pool_eval(y_seq: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, tau: float,
                      v_threshold: float, v_reset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled spikes, LIF spikes per channel) with BatchNorm's running statistics (no
    gradient)."""
    pooled, per_channel = _kernels(y_seq).bn_lif_pool_forward(y_seq, scale, shift, tau,
                                                              v_threshold, v_reset, True)
    return pooled, per_channel


@_bn_lif_pool_eval.register_fake
def _(y_seq, scale, shift, tau, v_threshold, v_reset):
    return _pooled_like(y_seq), scale.new_empty(scale.shape, dtype=torch.int64)


# The block with the IF or the PLIF (C++ kernels only): the decay is an input with its
# gradient (a placeholder of 1 for the IF).
@torch.library.custom_op("snnflow::bn_neuron_pool", mutates_args=())
def _bn_neuron_pool(y_seq: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                    decay: torch.Tensor, eps: float, neuron: int, v_threshold: float,
                    v_reset: float, alpha: float,
                    surrogate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pooled spikes, batch mean, batch variance) in training mode."""
    kernels = cpu_ops.load()
    mean, var = kernels.channel_moments(y_seq)
    scale, shift = _affine(weight, bias, mean, var, eps)
    pooled, _ = kernels.bn_neuron_pool_forward(y_seq, scale, shift, neuron, float(decay),
                                               v_threshold, v_reset, False)
    return pooled, mean, var


@_bn_neuron_pool.register_fake
def _(y_seq, weight, bias, decay, eps, neuron, v_threshold, v_reset, alpha, surrogate):
    return _pooled_like(y_seq), weight.new_empty(weight.shape), weight.new_empty(weight.shape)


@torch.library.custom_op("snnflow::bn_neuron_pool_backward", mutates_args=())
def _bn_neuron_pool_backward(grad_pooled: torch.Tensor, y_seq: torch.Tensor,
                             weight: torch.Tensor, bias: torch.Tensor, decay: torch.Tensor,
                             mean: torch.Tensor, var: torch.Tensor, eps: float, neuron: int,
                             v_threshold: float, v_reset: float, alpha: float, surrogate: int
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of y, BatchNorm's weight and bias, and the decay."""
    scale, shift = _affine(weight, bias, mean, var, eps)  # bitwise the forward's
    grad_y, grad_weight, grad_bias, grad_decay = cpu_ops.load().bn_neuron_pool_backward(
        grad_pooled, y_seq, scale, shift, mean, torch.rsqrt(var + eps), neuron, float(decay),
        v_threshold, v_reset, alpha, surrogate)
    return grad_y, grad_weight, grad_bias, grad_decay.to(decay.dtype)


@_bn_neuron_pool_backward.register_fake
def _(grad_pooled, y_seq, weight, bias, decay, mean, var, eps, neuron, v_threshold, v_reset,
      alpha, surrogate):
    return (torch.empty_like(y_seq), torch.empty_like(weight), torch.empty_like(bias),
            torch.empty_like(decay))


def _neuron_setup_context(ctx, inputs, output):
    y_seq, weight, bias, decay, eps, *params = inputs
    _, mean, var = output
    ctx.mark_non_differentiable(mean, var)
    ctx.save_for_backward(y_seq, weight, bias, decay, mean, var)
    ctx.eps, ctx.params = eps, params


def _neuron_backward(ctx, grad_pooled, _grad_mean, _grad_var):
    y_seq, weight, bias, decay, mean, var = ctx.saved_tensors
    grad_y, grad_weight, grad_bias, grad_decay = _bn_neuron_pool_backward(
        grad_pooled, y_seq, weight, bias, decay, mean, var, ctx.eps, *ctx.params)
    plif = ctx.params[0] == NEURONS.index("plif")
    return (grad_y, grad_weight, grad_bias, grad_decay if plif else None,
            None, None, None, None, None, None)


_bn_neuron_pool.register_autograd(_neuron_backward, setup_context=_neuron_setup_context)


@torch.library.custom_op("snnflow::bn_neuron_pool_eval", mutates_args=())
def _bn_neuron_pool_eval(y_seq: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                         neuron: int, decay: torch.Tensor, v_threshold: float,
                         v_reset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled spikes, spikes per channel) with BatchNorm's running statistics."""
    return tuple(cpu_ops.load().bn_neuron_pool_forward(y_seq, scale, shift, neuron, float(decay),
                                                       v_threshold, v_reset, True))


@_bn_neuron_pool_eval.register_fake
def _(y_seq, scale, shift, neuron, decay, v_threshold, v_reset):
    return _pooled_like(y_seq), scale.new_empty(scale.shape, dtype=torch.int64)
