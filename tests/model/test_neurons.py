"""The IF and PLIF neurons (snn.neuron) against SpikingJelly's own nodes, IFNode and
ParametricLIFNode (multi-step, hard reset, reset not detached), with each surrogate:
spikes equal; input gradients and PLIF's w gradient within GRAD_TOLERANCE of the largest,
a bound measured from the arithmetic (below). Each engine: the reference's steps, the
fused C++ kernels (csrc/lif.cpp) and the fused loop in PyTorch ops (what runs on CUDA,
where no Triton kernel carries them); a training job says which runs."""

import math
from pathlib import Path

import pytest
import torch

from snnflow.model import snn
from snnflow.model.neuron import LIF, LIFParams

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron",
                                reason="envs/nir-importers.txt")
from spikingjelly.activation_based import surrogate as sj_surrogate  # noqa: E402

# Measured on these inputs (float32): spikes equal; input gradients within 1.4e-7 of the
# largest (the C++ kernels' polynomial exp: 3.6e-7), w's within 2.3e-7 of it (a sum over
# every neuron and step, in another order; the kernels sum in double); about ten times
# that is allowed. A wrong decay, surrogate or reset path is 1e-2 or more.
GRAD_TOLERANCE = 3e-6


def spikingjelly(neuron, p):
    function = {"sigmoid": sj_surrogate.Sigmoid, "atan": sj_surrogate.ATan}[p.surrogate]
    common = dict(v_threshold=p.v_threshold, v_reset=p.v_reset,
                  surrogate_function=function(alpha=p.alpha), detach_reset=False,
                  step_mode="m")
    if neuron == "if":
        return sj_neuron.IFNode(**common)
    return sj_neuron.ParametricLIFNode(init_tau=p.tau, decay_input=True, **common)


CASES = [(neuron, surrogate, tau, v_th, v_reset)
         for neuron in ("if", "plif") for surrogate in ("sigmoid", "atan")
         for tau, v_th, v_reset in ((2.0, 1.0, 0.0), (1.7, 0.6, -0.2))]


def case(neuron, surrogate, tau, v_th, v_reset):
    """(params, inputs with some exactly on the threshold after a reset, upstream gradient)
    of one of CASES."""
    p = LIFParams(tau, v_th, v_reset, 4.0 if surrogate == "sigmoid" else 2.0, surrogate,
                  neuron)
    generator = torch.Generator().manual_seed(int(tau * 10))
    x = torch.randn(12, 4, 3, 6, 6, generator=generator) * (0.6 if neuron == "if" else 1.2)
    x[:, 0, 0, 0, :] = 2.0
    return p, x, torch.randn(x.shape, generator=generator)


def w_gradient_errors(w_grad, theirs_layer, p, x, upstream):
    """(ours, SpikingJelly's float32 node's) relative distances of the PLIF's w gradient
    from SpikingJelly's node run in float64: w's gradient sums every neuron and step, and
    float32 sums are 1.1e-5 off in the first case (the C++ kernels, summing in double,
    1.6e-6)."""
    exact = spikingjelly("plif", p).double()
    (exact(x.double().requires_grad_()) * upstream.double()).sum().backward()
    truth = float(exact.w.grad)
    return (abs(w_grad - truth) / abs(truth),
            abs(float(theirs_layer.w.grad) - truth) / abs(truth))


@pytest.mark.parametrize("neuron, surrogate, tau, v_th, v_reset", CASES)
@pytest.mark.parametrize("engine, backend", [("reference", "cpp"), ("fused", "cpp"),
                                             ("fused", "torch")])
def test_spikes_and_gradients_equal_spikingjellys(neuron, surrogate, tau, v_th, v_reset,
                                                  engine, backend):
    p, x, upstream = case(neuron, surrogate, tau, v_th, v_reset)
    theirs_layer, ours_layer = spikingjelly(neuron, p), LIF(p, engine, backend)
    theirs_in, ours_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    theirs, ours = theirs_layer(theirs_in), ours_layer(ours_in)
    assert ours_layer.fused == (engine == "fused")
    assert theirs.sum() > 0 and torch.equal(ours, theirs)
    ((theirs * upstream).sum() + (ours * upstream).sum()).backward()
    scale = theirs_in.grad.abs().max()
    assert (ours_in.grad - theirs_in.grad).abs().max() <= GRAD_TOLERANCE * scale
    if neuron == "plif":
        assert ours_layer.learned_tau() == pytest.approx(tau)
        assert float(ours_layer.w.detach()) == float(theirs_layer.w.detach())  # -ln(tau - 1)
        ours_error, theirs_error = w_gradient_errors(float(ours_layer.w.grad), theirs_layer, p,
                                                     x, upstream)
        assert ours_error <= max(GRAD_TOLERANCE, 2 * theirs_error)


def test_a_plif_network_learns_its_taus_and_the_others_keep_theirs():
    model = snn.CSNN(channels=(4, 8, 8), hidden=16, neuron=LIFParams(neuron="plif"))
    assert model.learned_taus() == pytest.approx({layer: 2.0 for layer in model.layers})
    names = [name for name, _ in model.named_parameters() if name.endswith(".w")]
    assert names == ["neurons.0.w", "neurons.1.w", "neurons.2.w", "lif1.w", "lif2.w"]
    x = (torch.rand(4, 3, 2, 34, 34, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    model(x).sum().backward()
    assert all(p.grad is not None for name, p in model.named_parameters() if name.endswith(".w"))
    assert snn.CSNN(channels=(4, 8, 8), hidden=16).learned_taus() is None
    assert not any(name.endswith(".w") for name, _ in
                   snn.CSNN(channels=(4, 8, 8), hidden=16,
                            neuron=LIFParams(neuron="if")).named_parameters())


def test_the_initial_w_is_spikingjellys():
    assert float(LIF(LIFParams(tau=3.0, neuron="plif")).w.detach()) == pytest.approx(-math.log(2.0))


INTERPRETED = """
import json, sys, torch
sys.path[:0] = [{workflow!r}, {tests!r}, {here!r}]
from snnflow.kernels import lif_triton
from snnflow.model.neuron import NEURONS, LIF
from test_neurons import CASES, case
kernels = lif_triton.load()
assert kernels is not None
results = {{}}
for neuron, surrogate, tau, v_th, v_reset in CASES:
    p, x, upstream = case(neuron, surrogate, tau, v_th, v_reset)
    layer = LIF(p, "reference")
    decay = layer.decay().detach() if neuron == "plif" else torch.ones(())
    spikes, h = kernels.neuron_forward(x, NEURONS.index(neuron), decay, v_th, v_reset)
    grad_x, grad_decay = kernels.neuron_backward(upstream, h, x, NEURONS.index(neuron), decay,
                                                 v_th, v_reset, p.alpha, p.surrogate_index)
    results["|".join(map(str, (neuron, surrogate, tau)))] = {{
        "spikes": spikes.tolist(), "grad_x": grad_x.tolist(),
        "grad_w": float(grad_decay * decay * (1 - decay))}}
print(json.dumps(results))
"""


def test_the_triton_kernels_in_the_interpreter_equal_spikingjellys():
    """The Triton IF and PLIF kernels (lif_triton_jit, compiled for sm_86 and sm_90 in
    tests/kernels/test_ptx.py) run in Triton's interpreter on the CPU, against
    SpikingJelly's nodes as above."""
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO

    pytest.importorskip("triton", reason="Triton is not installed (Linux x86_64 only)")
    script = INTERPRETED.format(workflow=str(REPO / "workflow"), tests=str(REPO / "tests"),
                                here=str(Path(__file__).parent))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "TRITON_INTERPRET": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(results) == len(CASES)
    for neuron, surrogate, tau, v_th, v_reset in CASES:
        row = results[f"{neuron}|{surrogate}|{tau}"]
        p, x, upstream = case(neuron, surrogate, tau, v_th, v_reset)
        theirs_layer, theirs_in = spikingjelly(neuron, p), x.clone().requires_grad_()
        theirs = theirs_layer(theirs_in)
        (theirs * upstream).sum().backward()
        assert torch.equal(torch.tensor(row["spikes"]), theirs), (neuron, surrogate, tau)
        scale = theirs_in.grad.abs().max()
        assert (torch.tensor(row["grad_x"]) - theirs_in.grad).abs().max() <= GRAD_TOLERANCE * scale
        if neuron == "plif":
            ours_error, theirs_error = w_gradient_errors(row["grad_w"], theirs_layer, p, x,
                                                         upstream)
            assert ours_error <= max(GRAD_TOLERANCE, 2 * theirs_error)
