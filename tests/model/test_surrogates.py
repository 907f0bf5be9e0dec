"""The surrogate gradients (snn.surrogate) on every engine against SpikingJelly's own
neuron: LIFNode with surrogate.Sigmoid or surrogate.ATan, multi-step, hard reset, reset
not detached. Spikes must be equal; input gradients within GRAD_TOLERANCE of the
largest, a bound measured from the arithmetic (below).

The engines: the reference (step by step with autograd), the fused loop's PyTorch ops
(backend torch), the C++ kernels (backend cpp) and the Triton kernels, run in Triton's
interpreter on the CPU (TRITON_INTERPRET=1; tests/kernels/test_ptx.py compiles them for
sm_86 and sm_90). Measured on these inputs (float32, tau 2 and 1.7): every engine within
2.0e-7 of the largest gradient (equal at tau = 2 for the reference and the PyTorch loop;
the C++ kernels' sigmoid uses a polynomial exp of 2 ulp); the tolerance is ten times
that. A wrong surrogate, a slope off by 1 % or a dropped reset path is 1e-2 or more.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

pytest.importorskip("spikingjelly", reason="envs/nir-importers.txt")

GRAD_TOLERANCE = 2e-6  # of the largest input gradient
SURROGATES = ("sigmoid", "atan")

SCRIPT = """
import json, sys, torch
sys.path.insert(0, {workflow!r})
from spikingjelly.activation_based import neuron as sj_neuron, surrogate as sj_surrogate
from snnflow.kernels import cpu_ops, lif_triton
from snnflow.model.neuron import LIFParams, lif_fused, lif_reference

def spikingjelly(x, p):
    function = {{"sigmoid": sj_surrogate.Sigmoid, "atan": sj_surrogate.ATan}}[p.surrogate]
    node = sj_neuron.LIFNode(tau=p.tau, v_threshold=p.v_threshold, v_reset=p.v_reset,
                             surrogate_function=function(alpha=p.alpha), detach_reset=False,
                             step_mode="m", decay_input=True)
    return node(x)

def engines(p):
    yield "reference", lambda x: lif_reference(x, p)
    yield "fused torch", lambda x: lif_fused(x, p, "torch")
    assert cpu_ops.load() is not None
    yield "fused cpp", lambda x: lif_fused(x, p, "cpp")
    triton = lif_triton.load()
    if triton is not None:
        def run(x):  # the kernels directly: lif_fused runs Triton on CUDA tensors only
            class Kernels(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    spikes, h = triton.lif_forward(x, p.tau, p.v_threshold, p.v_reset)
                    ctx.save_for_backward(h)
                    return spikes
                @staticmethod
                def backward(ctx, g):
                    (h,) = ctx.saved_tensors
                    return triton.lif_backward(g.contiguous(), h, p.tau, p.v_threshold,
                                               p.v_reset, p.alpha, p.surrogate_index)
            return Kernels.apply(x)
        yield "triton (interpreter)", run

results = {{}}
generator = torch.Generator().manual_seed(0)
x = torch.randn(12, 4, 3, 6, 6, generator=generator) * 1.2 + 0.4
x[:, 0, 0, 0, :] = 2.0  # inputs that put the membrane exactly on the threshold
upstream = torch.randn(x.shape, generator=generator)
for surrogate in ("sigmoid", "atan"):
    for p in (LIFParams(2.0, 1.0, 0.0, 4.0 if surrogate == "sigmoid" else 2.0, surrogate),
              LIFParams(1.7, 0.6, -0.2, 2.5, surrogate)):
        theirs_in = x.clone().requires_grad_()
        theirs = spikingjelly(theirs_in, p)
        (theirs * upstream).sum().backward()
        scale = float(theirs_in.grad.abs().max())
        for name, engine in engines(p):
            ours_in = x.clone().requires_grad_()
            ours = engine(ours_in)
            (ours * upstream).sum().backward()
            results[f"{{surrogate}} tau={{p.tau}} | {{name}}"] = {{
                "spikes_differing": int((ours != theirs).sum()),
                "spikes": int(theirs.sum()),
                "grad_difference": float((ours_in.grad - theirs_in.grad).abs().max()) / scale}}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def compared():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(workflow=str(REPO / "workflow"))],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_engine_and_surrogate_was_compared(compared):
    engines = {key.split(" | ")[1] for key in compared}
    assert {"reference", "fused torch", "fused cpp"} <= engines
    assert {key.split(" ")[0] for key in compared} == set(SURROGATES)


@pytest.mark.parametrize("surrogate", SURROGATES)
def test_spikes_equal_spikingjellys_and_gradients_agree(compared, surrogate):
    rows = {key: row for key, row in compared.items() if key.startswith(surrogate)}
    assert rows
    for key, row in rows.items():
        assert row["spikes"] > 0 and row["spikes_differing"] == 0, key
        assert row["grad_difference"] <= GRAD_TOLERANCE, (key, row)


def test_the_two_surrogates_give_different_gradients():
    """The check can tell them apart: ATan's gradient is not the sigmoid's."""
    import torch

    from snnflow.model.neuron import surrogate_grad

    x = torch.linspace(-1, 1, 101)
    assert (surrogate_grad(x, 2.0, 0) - surrogate_grad(x, 2.0, 1)).abs().max() > 1e-2
