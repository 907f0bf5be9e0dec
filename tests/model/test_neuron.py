import functools
import math

import pytest
import torch

from snnflow.model.neuron import LIF, LIFParams, lif_fused, lif_reference, surrogate_grad

# the reference, and the fused loop on each CPU backend (C++ kernels, PyTorch ops)
ENGINES = [lif_reference, functools.partial(lif_fused, backend="cpp"),
           functools.partial(lif_fused, backend="torch")]


@pytest.mark.parametrize("lif", ENGINES)
def test_steps_match_hand_computed_values(lif):
    # tau=2, V_th=1, V_reset=0:
    # H0 = 0 + (1.5 - 0)/2 = 0.75            V0 = 0.75
    # H1 = 0.75 + (0.5 - 0.75)/2 = 0.625     V1 = 0.625
    # H2 = 0.625 + (1.2 - 0.625)/2 = 0.9125  V2 = 0.9125
    # H3 = 0.9125 + (2.0 - 0.9125)/2 = 1.45625 -> spike, V3 = 0
    # H4 = 0 + (2.0 - 0)/2 = 1.0 -> exactly on the threshold: spike
    x = torch.tensor([1.5, 0.5, 1.2, 2.0, 2.0]).view(5, 1)
    assert lif(x, LIFParams()).flatten().tolist() == [0, 0, 0, 1, 1]


@pytest.mark.parametrize("lif", ENGINES)
def test_reset_value_and_decay_towards_it(lif):
    # V_reset = -0.5, tau = 4: H0 = -0.5 + (3 - 0)/4 = 0.25; H1 = -0.5 + (6 - 0)/4 = 1.0 -> spike
    p = LIFParams(tau=4.0, v_threshold=1.0, v_reset=-0.5)
    x = torch.tensor([3.0, 6.0, 6.0]).view(3, 1)
    # t2: V1 = -0.5 after the spike, H2 = -0.5 + 1.5 = 1.0 -> spike again
    assert lif(x, p).flatten().tolist() == [0, 1, 1]


@pytest.mark.parametrize("lif", ENGINES)
@pytest.mark.parametrize("alpha", [1.0, 4.0])
def test_surrogate_gradient_is_the_analytic_formula(lif, alpha):
    # one step from V = V_reset: H = X / tau, dS/dX = alpha s(1-s)(alpha (H - V_th)) / tau
    x = torch.linspace(-1, 5, 25).view(1, 25).requires_grad_()
    lif(x, LIFParams(alpha=alpha)).sum().backward()
    h = x.detach() / 2.0
    s = torch.sigmoid(alpha * (h - 1.0))
    torch.testing.assert_close(x.grad, alpha * s * (1 - s) / 2.0, rtol=0, atol=1e-6)


def test_surrogate_grad_peak():
    assert surrogate_grad(torch.tensor(0.0), 4.0).item() == pytest.approx(1.0)
    assert surrogate_grad(torch.tensor(0.0), 2.0).item() == pytest.approx(0.5)


@pytest.mark.parametrize("backend", ["cpp", "torch"])
@pytest.mark.parametrize("T", [1, 4, 16, 32])
@pytest.mark.parametrize("params", [LIFParams(), LIFParams(tau=1.7, v_threshold=0.6,
                                                           v_reset=-0.2, alpha=2.5)])
def test_fused_equals_reference(T, params, backend):
    g = torch.Generator().manual_seed(T)
    x = torch.randn(T, 6, 3, 5, 5, generator=g) * 1.5 + 0.5
    if params == LIFParams():
        x[:, 0, 0, 0, :] = 2.0  # H = 1.0 = V_th exactly, at every step after a reset
    x_ref = x.clone().requires_grad_()
    x_fused = x.clone().requires_grad_()
    s_ref = lif_reference(x_ref, params)
    s_fused = lif_fused(x_fused, params, backend)
    assert torch.equal(s_ref, s_fused)
    upstream = torch.randn(s_ref.shape, generator=g)
    (s_ref * upstream).sum().backward()
    (s_fused * upstream).sum().backward()
    torch.testing.assert_close(x_fused.grad, x_ref.grad, rtol=0, atol=1e-6)


def test_threshold_inputs_spike_in_both_engines():
    x = torch.full((4, 3), 2.0)  # H = 1.0 = V_th at every step after a reset
    for lif in ENGINES:
        assert lif(x, LIFParams()).sum().item() == 12


def test_layer_is_multi_step_and_keeps_shape():
    layer = LIF(engine="fused", backend="cpp")
    x = torch.rand(8, 2, 4, 3, 3) * 3
    out = layer(x)
    assert out.shape == x.shape and set(out.unique().tolist()) <= {0.0, 1.0}
    assert "engine=fused, backend=cpp" in repr(layer)
    assert math.isclose(LIF(engine="reference")(x).sum().item(), out.sum().item())


CHECK_FUSED_SCRIPT = """
import sys, torch
sys.path.insert(0, {workflow!r})
from snnflow.model.neuron import LIFParams, lif_fused, lif_reference
from snnflow.kernels import {module} as backend
kernels = backend.load()
print("kernels:", kernels is not None)
assert (kernels is not None) == {expect_kernels}
p = LIFParams(tau=1.7, v_threshold=0.6, v_reset=-0.2, alpha=2.5)
x = torch.randn(16, 3, 4, 5, 5) * 1.5 + 0.5
x[:, 0, 0, 0, :] = 2.0
a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
if {direct}:
    s_ref = lif_reference(a, p)
    g = torch.randn_like(s_ref)
    (s_ref * g).sum().backward()
    s, h = kernels.lif_forward(b.detach(), p.tau, p.v_threshold, p.v_reset)
    grad = kernels.lif_backward(g, h, p.tau, p.v_threshold, p.v_reset, p.alpha, 0)
else:
    s_ref, s = lif_reference(a, p), lif_fused(b, p, "cpp")
    g = torch.randn_like(s_ref)
    (s_ref * g).sum().backward()
    (s * g).sum().backward()
    grad = b.grad
assert torch.equal(s, s_ref)
assert (grad - a.grad).abs().max() <= 1e-6
print("ok")
"""


def run_check(env, module, expect_kernels, direct=False):
    import os
    import subprocess
    import sys

    from conftest import REPO

    script = CHECK_FUSED_SCRIPT.format(workflow=str(REPO / "workflow"), module=module,
                                       expect_kernels=expect_kernels, direct=direct)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, **env})
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr
    return result


def test_cpu_fallback_without_a_compiler_gives_the_same_values(tmp_path):
    result = run_check({"SNNFLOW_KERNEL_CACHE": str(tmp_path), "CXX": "/bin/false"},
                       "cpu_ops", expect_kernels=False)
    assert "kernels: False" in result.stdout
    assert "snnflow_cpu unavailable" in result.stderr and "using PyTorch ops" in result.stderr


def test_cpu_fallback_when_switched_off():
    run_check({"SNNFLOW_KERNELS": "off"}, "cpu_ops", expect_kernels=False)


def test_triton_kernels_match_the_reference_in_the_interpreter():
    pytest.importorskip("triton")
    run_check({"TRITON_INTERPRET": "1"}, "lif_triton", expect_kernels=True, direct=True)
