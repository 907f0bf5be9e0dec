"""The CPU training kernels: one torch extension built from csrc/ by snnflow.kernels.

- csrc/lif.cpp: the fused LIF time loop, csrc/neuron.cpp the IF's and PLIF's
  (snnflow.model.neuron, backend "cpp");
- csrc/bn_lif_pool.cpp: BatchNorm -> LIF -> 2x2 max-pool of a conv block, csrc/bn_neuron_pool.cpp
  the same with the IF or PLIF (snnflow.model.fused_block);
- csrc/sparse_conv.cpp: 3x3 convolutions of spikes from their nonzeros
  (snnflow.model.sparse_conv);
- csrc/cpu_ops.cpp binds them; csrc/lif_step.h holds the neuron's per-step maths that
  lif.cpp and bn_lif_pool.cpp share.
"""

import functools

from snnflow.kernels import loader

EXTENSION = loader.TorchExtension(
    "snnflow_cpu", sources=("cpu_ops.cpp", "lif.cpp", "neuron.cpp", "bn_lif_pool.cpp",
                            "bn_neuron_pool.cpp", "sparse_conv.cpp"),
    headers=("cpu_ops.h", "lif_step.h", "time_loop.h", "bn_pool.h"))


def load():
    """torch.ops.snnflow_cpu (the compiled operators), or None when they are unavailable
    here (then PyTorch ops run). The first call registers their fake implementations."""
    ops = loader.load(EXTENSION, "PyTorch ops")
    if ops is not None:
        _register_fakes()
    return ops


@functools.cache
def _register_fakes():
    """Output shapes of the C++ operators, so tracing (torch.compile, opcheck) can see
    through them without running them."""
    import torch

    def channels_last(tensor):
        return tensor.contiguous(memory_format=torch.channels_last)

    def register(name, fake):
        torch.library.register_fake(f"snnflow_cpu::{name}", fake)

    register("lif_forward", lambda x, tau, v_th, v_reset: [torch.empty_like(x),
                                                             torch.empty_like(x)])
    register("lif_backward",
             lambda grad, h, tau, v_th, v_reset, alpha, surrogate: torch.empty_like(h))
    register("neuron_forward", lambda x, neuron, decay, v_th, v_reset: [torch.empty_like(x),
                                                                         torch.empty_like(x)])
    register("neuron_backward", lambda grad, h, x, neuron, decay, v_th, v_reset, alpha, surrogate:
             [torch.empty_like(h), h.new_empty(())])
    register("channel_moments", lambda y: [y.new_empty(y.shape[2]), y.new_empty(y.shape[2])])

    def pooled(y, scale, shift, tau, v_th, v_reset, count):
        T, N, C, H, W = y.shape
        spikes = channels_last(y.new_empty(T * N, C, H // 2, W // 2))
        return [spikes.view(T, N, C, H // 2, W // 2), y.new_empty(C, dtype=torch.int64)]
    register("bn_lif_pool_forward", pooled)
    register("bn_lif_pool_backward", lambda grad, y, scale, *rest: [
        torch.empty_like(y), scale.new_empty(scale.shape), scale.new_empty(scale.shape)])
    register("bn_neuron_pool_forward",
             lambda y, scale, shift, neuron, decay, v_th, v_reset, count:
             pooled(y, scale, shift, None, v_th, v_reset, count))
    register("bn_neuron_pool_backward", lambda grad, y, scale, *rest: [
        torch.empty_like(y), scale.new_empty(scale.shape), scale.new_empty(scale.shape),
        y.new_empty(())])

    def nonzeros(x):
        n = torch.library.get_ctx().new_dynamic_size()
        B, _, H, W = x.shape
        return [x.new_empty(B * H * W + 1, dtype=torch.int64), x.new_empty(n, dtype=torch.int32),
                x.new_empty(n)]
    register("spike_nonzeros", nonzeros)
    register("sparse_conv_forward", lambda counts, channel, value, weight, B, H, W: channels_last(
        weight.new_empty(B, weight.shape[0], H, W)))
    register("sparse_conv_weight_grad", lambda grad_y, counts, channel, value, c_in:
             grad_y.new_empty(grad_y.shape[1], c_in, 3, 3))
