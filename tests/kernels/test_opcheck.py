"""torch.library.opcheck on every operator the project registers: the snnflow:: custom
operators (their schemas, fake implementations, autograd registration and tracing)
and the C++ kernels behind them, torch.ops.snnflow_cpu.*."""

import pytest
import torch

from conftest import channels_last_seq, spikes
from snnflow.kernels import cpu_ops
from snnflow.model import fused_block, neuron, sparse_conv

LIF = (1.7, 0.6, -0.2)  # tau, v_th, v_reset
ALPHA = 2.5
SURROGATES = (0, 1)  # sigmoid, atan (snnflow.model.neuron.SURROGATES)


def conv_output(T, N, C, H, W, requires_grad=False):
    return channels_last_seq(T, N, C, H, W, torch.Generator().manual_seed(T * 100 + C),
                             requires_grad)


def spike_input(shape, density):
    return spikes(shape, density, torch.Generator().manual_seed(5))


def lif_cases():
    x = torch.randn(4, 3, 5, 6, generator=torch.Generator().manual_seed(1)) + 0.5
    h = x.clone()
    for backend in ("cpp", "torch"):
        for surrogate in SURROGATES:
            yield neuron._lif_forward, (x.clone().requires_grad_(), *LIF, ALPHA, surrogate,
                                        backend)
            yield neuron._lif_backward, (torch.randn_like(h), h, *LIF, ALPHA, surrogate, backend)


def neuron_cases():
    """The IF (1) and PLIF (2) operators, the PLIF's decay with its gradient."""
    x = torch.randn(4, 3, 5, 6, generator=torch.Generator().manual_seed(3)) + 0.5
    v_th, v_reset = LIF[1:]
    for backend in ("cpp", "torch"):
        for kind in (1, 2):
            for surrogate in SURROGATES:
                decay = torch.tensor(0.6, requires_grad=kind == 2)
                yield neuron._neuron_forward, (x.clone().requires_grad_(), decay, kind, v_th,
                                               v_reset, ALPHA, surrogate, backend)
                yield neuron._neuron_backward, (torch.randn_like(x), x.clone(), x + 0.1,
                                                torch.tensor(0.6), kind, v_th, v_reset, ALPHA,
                                                surrogate, backend)


def block_cases():
    for shape in ((3, 2, 4, 6, 6), (2, 1, 3, 5, 7)):  # odd sizes: neurons outside windows
        C = shape[2]
        weight, bias = torch.rand(C) + 0.5, torch.rand(C) - 0.5
        y = conv_output(*shape, requires_grad=True)
        for surrogate in SURROGATES:
            yield fused_block._bn_lif_pool, (y, weight.clone().requires_grad_(),
                                             bias.clone().requires_grad_(), 1e-5, *LIF, ALPHA,
                                             surrogate)
        yield fused_block._bn_lif_pool_eval, (y.detach(), weight, bias, *LIF)  # scale, shift
        for kind in (1, 2):  # the IF and the PLIF
            decay = torch.tensor(0.6, requires_grad=kind == 2)
            yield fused_block._bn_neuron_pool, (y, weight.clone().requires_grad_(),
                                                bias.clone().requires_grad_(), decay, 1e-5, kind,
                                                *LIF[1:], ALPHA, 1)
            yield fused_block._bn_neuron_pool_eval, (y.detach(), weight, bias, kind,
                                                     torch.tensor(0.6), *LIF[1:])
        pooled = torch.randn(shape[0], shape[1], C, shape[3] // 2, shape[4] // 2)
        mean, var = y.detach().mean((0, 1, 3, 4)), y.detach().var((0, 1, 3, 4))
        for surrogate in SURROGATES:
            yield fused_block._bn_lif_pool_backward, (pooled, y.detach(), weight, bias, mean,
                                                      var, 1e-5, *LIF, ALPHA, surrogate)
            yield fused_block._bn_neuron_pool_backward, (pooled, y.detach(), weight, bias,
                                                         torch.tensor(0.6), mean, var, 1e-5, 2,
                                                         *LIF[1:], ALPHA, surrogate)


def conv_cases():
    weight = torch.randn(32, 8, 3, 3, generator=torch.Generator().manual_seed(2))
    for density in (0.1, 0.9, 0.0):  # sparse, the dense fallback, no nonzero at all
        x = spike_input((2, 8, 5, 5), density).requires_grad_()
        yield sparse_conv._sparse_conv, (x, weight.clone().requires_grad_())
        y, *csr = sparse_conv._sparse_conv(x.detach(), weight)
        yield sparse_conv._sparse_conv_backward, (torch.randn_like(y), x.detach(), weight, *csr)


CUSTOM = [*lif_cases(), *neuron_cases(), *block_cases(), *conv_cases()]


@pytest.mark.parametrize("op, args", CUSTOM,
                         ids=[f"{op._qualname}-{i}" for i, (op, _) in enumerate(CUSTOM)])
def test_custom_operators(op, args):
    assert cpu_ops.load() is not None
    torch.library.opcheck(op, args)


def kernel_cases():
    ops = cpu_ops.load()
    x = torch.randn(4, 3, 5, 6) + 0.5
    spikes_, h = ops.lif_forward(x, *LIF)
    yield ops.lif_forward, (x, *LIF)
    for surrogate in SURROGATES:
        yield ops.lif_backward, (torch.randn_like(h), h, *LIF, ALPHA, surrogate)
    for kind in (1, 2):  # the IF and the PLIF
        spikes_, h = ops.neuron_forward(x, kind, 0.6, *LIF[1:])
        yield ops.neuron_forward, (x, kind, 0.6, *LIF[1:])
        for surrogate in SURROGATES:
            yield ops.neuron_backward, (torch.randn_like(h), h, x, kind, 0.6, *LIF[1:], ALPHA,
                                        surrogate)
    y = conv_output(3, 2, 4, 6, 6)
    scale, shift = torch.rand(4) + 0.5, torch.rand(4) - 0.5
    yield ops.channel_moments, (y,)
    for count in (False, True):
        yield ops.bn_lif_pool_forward, (y, scale, shift, *LIF, count)
    mean, var = ops.channel_moments(y)
    for surrogate in SURROGATES:
        yield ops.bn_lif_pool_backward, (torch.randn(3, 2, 4, 3, 3), y, scale, shift, mean,
                                         torch.rsqrt(var + 1e-5), *LIF, ALPHA, surrogate)
    for kind in (1, 2):
        for count in (False, True):
            yield ops.bn_neuron_pool_forward, (y, scale, shift, kind, 0.6, *LIF[1:], count)
        yield ops.bn_neuron_pool_backward, (torch.randn(3, 2, 4, 3, 3), y, scale, shift, mean,
                                            torch.rsqrt(var + 1e-5), kind, 0.6, *LIF[1:], ALPHA,
                                            1)
    s = spike_input((2, 8, 5, 5), 0.2)
    counts, channel, value = ops.spike_nonzeros(s)
    weight = torch.randn(32, 8, 3, 3)
    yield ops.spike_nonzeros, (s,)
    yield ops.sparse_conv_forward, (counts, channel, value, weight, 2, 5, 5)
    grad_y = torch.randn(2, 32, 5, 5).contiguous(memory_format=torch.channels_last)
    yield ops.sparse_conv_weight_grad, (grad_y, counts, channel, value, 8)


def test_the_cpp_kernels():
    assert cpu_ops.load() is not None
    checked = set()
    for op, args in kernel_cases():
        torch.library.opcheck(op, args)
        checked.add(op._qualname if hasattr(op, "_qualname") else str(op))
    assert len(checked) == 12  # every operator of csrc/cpu_ops.cpp
