"""The fused BatchNorm -> LIF -> 2x2 max-pool op against the three layers run in turn."""

import pytest
import torch
from torch import nn

from conftest import channels_last_seq
from snnflow.kernels import cpu_ops
from snnflow.model.fused_block import bn_lif_pool, fusable
from snnflow.model.neuron import LIF, LIFParams, lif_reference

PARAMS = LIFParams(tau=1.7, v_threshold=0.6, v_reset=-0.2, alpha=2.5)
ATAN = LIFParams(tau=1.7, v_threshold=0.6, v_reset=-0.2, alpha=2.0, surrogate="atan")


def batch_norm(C, generator):
    bn = nn.BatchNorm2d(C)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5, generator=generator)
        bn.bias.uniform_(-0.3, 0.3, generator=generator)
    return bn


def layers_in_turn(y_seq, bn, params=PARAMS, neuron=None):
    """BatchNorm2d, the reference neuron (`neuron`, a reference-engine layer, else the LIF of
    `params`) and MaxPool2d in turn."""
    T, N = y_seq.shape[:2]
    normalised = bn(y_seq.flatten(0, 1)).unflatten(0, (T, N))
    spikes = lif_reference(normalised, params) if neuron is None else neuron(normalised)
    return nn.functional.max_pool2d(spikes.flatten(0, 1), 2).unflatten(0, (T, N))


def assert_block_gradients_close(y_fused, y_ref, bn_fused, bn_ref):
    """y's gradient within 1e-5 of the largest (at least 1e-5: ATan's gradients are the
    larger), BatchNorm's weight and bias gradients within 1e-4."""
    torch.testing.assert_close(y_fused.grad, y_ref.grad, rtol=0,
                               atol=1e-5 * max(1.0, y_ref.grad.abs().max().item()))
    for name in ("weight", "bias"):
        ours, theirs = getattr(bn_fused, name).grad, getattr(bn_ref, name).grad
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max().item())


def test_the_kernels_are_built_here():
    y = channels_last_seq(1, 1, 2, 4, 4, torch.Generator())
    assert cpu_ops.load() is not None
    assert fusable(y, nn.BatchNorm2d(2), LIF(PARAMS, "fused", "cpp"))


# shapes: odd sizes (neurons outside every window), T = 1, many tiles and blocks
# and the ATan surrogate (snn.surrogate: atan) on two of them
@pytest.mark.parametrize("shape, params", [
    *((shape, PARAMS) for shape in [(1, 2, 3, 4, 4), (4, 3, 5, 17, 17), (16, 2, 8, 8, 8),
                                    (32, 2, 4, 5, 7), (2, 16, 4, 34, 34), (3, 8, 16, 17, 17)]),
    *((shape, ATAN) for shape in [(4, 3, 5, 17, 17), (2, 16, 4, 34, 34)])])
def test_training_step_matches_the_layers_in_turn(shape, params):
    g = torch.Generator().manual_seed(sum(shape))
    y = channels_last_seq(*shape, g)
    bn_ref, bn_fused = batch_norm(shape[2], g), batch_norm(shape[2], g)
    bn_fused.load_state_dict(bn_ref.state_dict())
    y_ref, y_fused = y.clone().requires_grad_(), y.clone().requires_grad_()
    assert fusable(y_fused, bn_fused, LIF(params, "fused", "cpp"))
    ref = layers_in_turn(y_ref, bn_ref, params)
    fused = bn_lif_pool(y_fused, bn_fused, LIF(params, "fused", "cpp"))
    assert torch.equal(fused, ref)
    upstream = torch.randn(ref.shape, generator=g)
    (ref * upstream).sum().backward()
    (fused * upstream).sum().backward()
    assert_block_gradients_close(y_fused, y_ref, bn_fused, bn_ref)
    torch.testing.assert_close(bn_fused.running_mean, bn_ref.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn_fused.running_var, bn_ref.running_var, rtol=1e-5, atol=1e-6)
    assert bn_fused.num_batches_tracked == bn_ref.num_batches_tracked == 1


NEURONS = {"if": LIFParams(v_threshold=0.6, v_reset=-0.2, alpha=2.5, neuron="if"),
           "plif": LIFParams(tau=1.7, v_threshold=0.6, v_reset=-0.2, alpha=2.0,
                             surrogate="atan", neuron="plif")}


@pytest.mark.parametrize("neuron", ["if", "plif"])
@pytest.mark.parametrize("shape", [(4, 3, 5, 17, 17), (2, 16, 4, 34, 34)])
def test_the_if_and_plif_blocks_match_the_layers_in_turn(neuron, shape):
    """The C++ block with the IF or the PLIF (bn_neuron_pool): the same spikes, gradients as
    above, and the PLIF's w gradient within 1e-5 of the layers' in turn in float64 (a sum
    over every neuron and step: the kernels sum in double, the float32 layers are up to
    2e-5 off), or no further than they are; evaluation too."""
    params = NEURONS[neuron]
    g = torch.Generator().manual_seed(sum(shape))
    y = channels_last_seq(*shape, g)
    bn_ref, bn_fused = batch_norm(shape[2], g), batch_norm(shape[2], g)
    bn_fused.load_state_dict(bn_ref.state_dict())
    lif_ref, lif_fused = LIF(params, "reference"), LIF(params, "fused", "cpp")
    y_ref, y_fused = y.clone().requires_grad_(), y.clone().requires_grad_()
    assert fusable(y_fused, bn_fused, lif_fused)
    T, N = shape[:2]
    ref = layers_in_turn(y_ref, bn_ref, neuron=lif_ref)
    fused = bn_lif_pool(y_fused, bn_fused, lif_fused)
    assert ref.sum() > 0 and torch.equal(fused, ref)
    upstream = torch.randn(ref.shape, generator=g)
    (ref * upstream).sum().backward()
    (fused * upstream).sum().backward()
    assert_block_gradients_close(y_fused, y_ref, bn_fused, bn_ref)
    if neuron == "plif":  # against the layers in float64: the float32 sum is 2e-5 off
        exact_lif = LIF(params, "reference").double()
        pooled = layers_in_turn(y.double(), batch_norm_copy(bn_ref).double(), neuron=exact_lif)
        (pooled * upstream.double()).sum().backward()
        truth = exact_lif.w.grad.item()
        ours, theirs = (abs(lif.w.grad.item() - truth) / abs(truth) for lif in (lif_fused, lif_ref))
        assert truth != 0 and ours <= max(1e-5, 2 * theirs)
    bn_ref.eval(), bn_fused.eval()
    with torch.inference_mode():
        evaluated, fired = bn_lif_pool(y, bn_fused, lif_fused, count=True)
        spikes = lif_ref(bn_ref(y.flatten(0, 1)).unflatten(0, (T, N)))
        assert torch.equal(evaluated, layers_in_turn(y, bn_ref, neuron=lif_ref))
    inside = 2 * (shape[3] // 2)
    assert fired.item() == spikes[..., :inside, :inside].sum().item()


def test_the_plif_blocks_decay_gradient_does_not_depend_on_the_thread_count():
    g = torch.Generator().manual_seed(5)
    y = channels_last_seq(8, 16, 16, 17, 17, g)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            lif = LIF(NEURONS["plif"], "fused", "cpp")
            out = bn_lif_pool(y, batch_norm(16, torch.Generator().manual_seed(1)), lif)
            (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
            results.append(lif.w.grad)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(*results)


def test_eval_uses_the_running_statistics():
    g = torch.Generator().manual_seed(3)
    bn = batch_norm(8, g).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5, generator=g)
        bn.running_var.uniform_(0.5, 2.0, generator=g)
    y = channels_last_seq(6, 4, 8, 12, 12, g)
    with torch.inference_mode():
        assert torch.equal(bn_lif_pool(y, bn, LIF(PARAMS, "fused", "cpp")), layers_in_turn(y, bn))
    assert bn.num_batches_tracked == 0


@pytest.mark.parametrize("backend", ["cpp", "torch"])
@pytest.mark.parametrize("size", [12, 17])  # 17: max-pooling drops a row and a column
def test_eval_counts_the_spikes_of_the_neurons_inside_the_windows(backend, size):
    g = torch.Generator().manual_seed(size)
    bn = batch_norm(5, g).eval()
    y = channels_last_seq(4, 3, 5, size, size, g)
    with torch.inference_mode():
        pooled, fired = bn_lif_pool(y, bn, LIF(PARAMS, "fused", backend), count=True)
        spikes = lif_reference(bn(y.flatten(0, 1)).unflatten(0, (4, 3)), PARAMS)
        expected = layers_in_turn(y, bn)
    inside = 2 * (size // 2)
    assert torch.equal(pooled, expected)
    assert fired.item() == spikes[..., :inside, :inside].sum().item() > 0


def test_gradients_do_not_depend_on_the_thread_count():
    g = torch.Generator().manual_seed(5)
    y = channels_last_seq(8, 16, 16, 17, 17, g)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            bn = batch_norm(16, torch.Generator().manual_seed(1))
            y_n = y.clone().requires_grad_()
            out = bn_lif_pool(y_n, bn, LIF(PARAMS, "fused", "cpp"))
            (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
            results.append((out, y_n.grad, bn.weight.grad, bn.bias.grad, bn.running_var))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("case", ["reference engine", "torch backend", "contiguous layout",
                                  "eval with grad", "float64"])
def test_other_cases_run_the_layers_in_turn(case):
    g = torch.Generator().manual_seed(9)
    y = channels_last_seq(4, 2, 3, 6, 6, g)
    bn, engine, backend = batch_norm(3, g), "fused", "cpp"
    if case == "reference engine":
        engine = "reference"
    elif case == "torch backend":
        backend = "torch"
    elif case == "contiguous layout":
        y = y.contiguous()
    elif case == "eval with grad":
        bn.eval()
    else:
        y, bn = y.double(), bn.double()
    lif = LIF(PARAMS, engine, backend)
    assert not fusable(y, bn, lif)
    expected = layers_in_turn(y, batch_norm_copy(bn))
    assert torch.equal(bn_lif_pool(y, bn, lif), expected)


def batch_norm_copy(bn):
    copy = nn.BatchNorm2d(bn.num_features).to(bn.weight.dtype)
    copy.load_state_dict(bn.state_dict())
    return copy.train(bn.training)


def test_the_triton_kernels_match_the_layers_in_turn_in_the_interpreter():
    """The CUDA fused block (snnflow.kernels.block_triton), run by Triton's interpreter on CPU:
    spikes and the gradients of y, the weight and the bias, channels_last (channel tiles,
    40 channels in two) and contiguous, float32 and bf16."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    pytest.importorskip("triton")
    script = """
import sys, json, tempfile, torch
from pathlib import Path
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from snnflow.gpu_check.report import Report
from snnflow.gpu_check.rows import check_block
settings = {"name": "cpu", "torch": "", "device": "cpu", "batch": 0, "n_train": 0, "n_test": 0}
report = Report(Path(tempfile.mkdtemp()), settings, 600)
check_block(report, torch.device("cpu"), shapes=((1, 2, 3, 4, 4), (4, 3, 5, 17, 17),
                                                 (3, 2, 4, 6, 7), (2, 2, 40, 5, 6)))
print(json.dumps(report.data["block"]))
assert len(report.data["block"]) == 20 and all(row["passed"] for row in report.data["block"])
assert sum(row["surrogate"] == "atan" for row in report.data["block"]) == 4
# evaluation: pooled spikes and the spikes per channel, counted with atomics per tile
from snnflow.kernels import block_triton
from snnflow.model.neuron import LIFParams, lif_reference
p = LIFParams()
g = torch.Generator().manual_seed(3)
for C, layout, dtype in ((5, "channels_last", torch.float32), (40, "channels_last", torch.bfloat16),
                         (6, "contiguous", torch.float32)):
    y = torch.randn(12, C, 9, 9, generator=g) * 1.5 + 0.3
    if layout == "channels_last":
        y = y.contiguous(memory_format=torch.channels_last)
    y = y.to(dtype).unflatten(0, (4, 3))
    scale, shift = torch.rand(C, generator=g) + 0.5, torch.rand(C, generator=g) - 0.5
    pooled, counts = block_triton.load().bn_lif_pool_forward(y, scale, shift, 2, 1.0, 0.0, True)
    z = torch.addcmul(shift.view(1, 1, C, 1, 1), y.float(), scale.view(1, 1, C, 1, 1))
    spikes = lif_reference(z, p)
    expected = torch.nn.functional.max_pool2d(spikes.flatten(0, 1), 2).unflatten(0, (4, 3))
    assert pooled.dtype == dtype and torch.equal(pooled.float(), expected), (C, layout)
    assert torch.equal(counts, spikes[..., :8, :8].sum((0, 1, 3, 4)).long()), (C, layout)
"""
    result = subprocess.run([sys.executable, "-c", script, str(REPO / "workflow"),
                             str(REPO / "benchmarks")], capture_output=True, text=True,
                            env={**os.environ, "TRITON_INTERPRET": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
