"""Convolutions of spikes from their nonzeros against nn.Conv2d."""

import pytest
import torch
from torch import nn

from conftest import spikes
from snnflow.kernels import cpu_ops
from snnflow.model import sparse_conv
from snnflow.model.sparse_conv import applies, conv_spikes


def conv_layer(c_in, c_out, generator):
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator))
    return conv.to(memory_format=torch.channels_last)


def test_the_kernels_are_built_here():
    assert cpu_ops.load() is not None


# sizes: even and odd, one pixel, widths the kernels are compiled for
@pytest.mark.parametrize("n, c_in, c_out, size, density, values", [
    (8, 32, 64, 17, 0.12, False), (4, 64, 128, 8, 0.13, False), (3, 5, 32, 9, 0.3, True),
    (2, 16, 64, 1, 0.5, False), (6, 3, 128, 4, 0.2, True), (1, 8, 32, 34, 0.0, False)])
def test_forward_and_gradients_match_the_dense_convolution(n, c_in, c_out, size, density,
                                                           values):
    g = torch.Generator().manual_seed(n * size + c_in)
    conv = conv_layer(c_in, c_out, g)
    x = spikes((n, c_in, size, size), density, g, values)
    assert applies(conv, x, "cpp")
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref, ours = conv(x_ref), conv_spikes(conv, x_ours, "cpp")
    assert ours.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)
    upstream = torch.randn(ref.shape, generator=g)
    grad_w_ref = torch.autograd.grad((ref * upstream).sum(), [x_ref, conv.weight])
    grad_w_ours = torch.autograd.grad((ours * upstream).sum(), [x_ours, conv.weight])
    for a, b in zip(grad_w_ours, grad_w_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * max(1.0, b.abs().max().item()))


def test_dense_inputs_take_the_dense_convolution():
    g = torch.Generator().manual_seed(1)
    conv = conv_layer(8, 32, g)
    x = spikes((2, 8, 6, 6), 0.9, g)
    y, counts, channel, value = sparse_conv._sparse_conv(x, conv.weight)
    assert value.numel() == 0 and torch.equal(y, conv(x))
    assert counts.shape == (2 * 6 * 6 + 1,)  # the shape its fake implementation promises
    x.requires_grad_()
    (conv_spikes(conv, x, "cpp") * 2).sum().backward()
    assert x.grad is not None and conv.weight.grad is not None


@pytest.mark.parametrize("case", ["width", "kernel", "bias", "layout", "float64",
                                  "torch backend"])
def test_other_layers_are_nn_conv2d(case):
    g = torch.Generator().manual_seed(2)
    x = spikes((2, 8, 6, 6), 0.1, g)
    conv = conv_layer(8, 32, g)
    backend = "torch" if case == "torch backend" else "cpp"
    if case == "width":
        conv = conv_layer(8, 48, g)
    elif case == "kernel":
        conv = nn.Conv2d(8, 32, 5, padding=2, bias=False)
    elif case == "bias":
        conv = nn.Conv2d(8, 32, 3, padding=1)
    elif case == "layout":
        x = x.contiguous()
    elif case == "float64":
        x, conv = x.double(), conv.double()
    assert not applies(conv, x, backend)
    assert torch.equal(conv_spikes(conv, x, backend), conv(x))


def test_weight_gradient_does_not_depend_on_the_thread_count():
    g = torch.Generator().manual_seed(3)
    conv = conv_layer(32, 64, g)
    x = spikes((64, 32, 9, 9), 0.15, g)
    upstream = torch.randn(64, 64, 9, 9, generator=g)
    grads = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            conv.weight.grad = None
            (conv_spikes(conv, x, "cpp") * upstream).sum().backward()
            grads.append(conv.weight.grad.clone())
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(grads[0], grads[1])
