import pytest
import torch

from snnflow.model.cnn import CNN
from snnflow.model.snn import CSNN, firing_rate


def test_csnn_output_spikes_shape_and_values():
    torch.manual_seed(0)
    model = CSNN(channels=(4, 8, 8), hidden=16)
    out = model(torch.rand(5, 3, 2, 34, 34) * 2)
    assert out.shape == (5, 3, 10)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert firing_rate(out).shape == (3, 10)


def test_csnn_has_bias_free_convs_with_batchnorm():
    model = CSNN(channels=(4, 8, 8), hidden=16)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 3 and all(c.bias is None for c in convs) and len(norms) == 3
    assert sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == 2


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_engines_give_the_same_network_output(backend):
    torch.manual_seed(0)
    fused = CSNN(channels=(4, 8, 8), hidden=16, engine="fused", backend=backend)
    reference = CSNN(channels=(4, 8, 8), hidden=16, engine="reference")
    reference.load_state_dict(fused.state_dict())
    x = torch.rand(4, 2, 2, 34, 34) * 3
    assert torch.equal(fused(x), reference(x))


def test_cnn_logits_shape():
    model = CNN(channels=(4, 8, 8), hidden=16)
    assert model(torch.rand(7, 1, 28, 28)).shape == (7, 10)


def test_engines_agree_in_channels_last_training():
    torch.manual_seed(0)
    fused = CSNN(channels=(4, 8, 8), hidden=16, engine="fused", backend="torch").to(
        memory_format=torch.channels_last)
    reference = CSNN(channels=(4, 8, 8), hidden=16, engine="reference")
    reference.load_state_dict(fused.state_dict())
    x = torch.rand(6, 3, 2, 34, 34) * 3
    out_fused, out_ref = fused(x), reference(x)
    assert torch.equal(out_fused, out_ref)
    out_fused.sum().backward()
    out_ref.sum().backward()
    for (name, a), (_, b) in zip(fused.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_optimised_cpu_path_uses_its_kernels_and_matches_the_reference(monkeypatch):
    """The default network on the "cpp" backend (fused blocks, sparse convolutions,
    channels_last) against the reference engine (contiguous, nn.BatchNorm2d, the
    step-by-step LIF) and against the reference in float64, on identical weights."""
    from snnflow.model import fused_block, sparse_conv

    calls = {"block": 0, "conv": 0}
    for module, name, key in ((fused_block, "_bn_lif_pool", "block"),
                              (sparse_conv, "_sparse_conv", "conv")):
        original = getattr(module, name)

        def counted(*args, _original=original, _key=key):
            calls[_key] += 1
            return _original(*args)
        monkeypatch.setattr(module, name, counted)
    torch.manual_seed(0)
    fused = CSNN(engine="fused", backend="cpp").to(memory_format=torch.channels_last)
    reference = CSNN(engine="reference")
    reference.load_state_dict(fused.state_dict())
    reference64 = CSNN(engine="reference").double()
    reference64.load_state_dict(fused.state_dict())
    x = (torch.rand(4, 8, 2, 34, 34) < 0.1).float() * 2
    outputs, grads = [], []
    for model, inputs in ((fused, x), (reference, x), (reference64, x.double())):
        out = model(inputs)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view(out.shape)).sum().backward()
        outputs.append(out.double())
        grads.append(torch.cat([p.grad.flatten().double() for p in model.parameters()]))
    assert calls == {"block": 3, "conv": 2}  # the reference engine used neither
    # measured: spikes equal throughout, gradients within 7e-7 (float32 reference) and
    # 1.3e-6 (float64) of the largest gradient
    for reference_out, reference_grad in zip(outputs[1:], grads[1:]):
        assert torch.equal(outputs[0], reference_out)
        scale = reference_grad.abs().max()
        assert (grads[0] - reference_grad).abs().max() <= 1e-5 * scale


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_recorded_activity_matches_the_spikes_counted_by_hand(backend):
    """Firing rates, SOPs and first-layer MACs of SpikeRecord against the reference
    engine's spikes, with fan-outs counted by convolving with all-ones weights."""
    from torch.nn.functional import conv2d, max_pool2d

    from snnflow.model.neuron import lif_reference
    from snnflow.model.snn import SpikeRecord

    torch.manual_seed(0)
    model = CSNN(channels=(4, 8, 8), hidden=16, engine="fused", backend=backend)
    model = model.to(memory_format=torch.channels_last).eval()
    with torch.no_grad():  # every layer fires, as a fresh network's deeper layers do not
        for conv, _ in model.convs:
            conv.weight.mul_(6)
        for fc in (model.fc1, model.fc2):
            fc.weight.mul_(8)
    T, N = 5, 3
    x = (torch.rand(T, N, 2, 34, 34) < 0.1).float() * 2
    record = SpikeRecord(model)
    with torch.inference_mode():
        record.forward(x)
    rows = {r["layer"]: r for r in record.rows()}

    def fan_out(inputs, c_out):  # every (input, output) pair a nonzero input meets
        return conv2d(inputs.float(), torch.ones(c_out, inputs.shape[1], 3, 3), padding=1).sum()

    expected = {"conv1": {"macs": fan_out(x.flatten(0, 1) != 0, 4) / N}}
    with torch.inference_mode():
        y = x.flatten(0, 1)
        for k, ((conv, bn), lif) in enumerate(zip(model.convs, model.neurons)):
            layer = f"conv{k + 1}"
            if k:
                expected[layer] = {"synaptic_ops": fan_out(y, conv.out_channels) / N}
            spikes = lif_reference(bn(conv(y.contiguous())).unflatten(0, (T, N)), lif.params)
            inside = spikes[..., :2 * (spikes.shape[-2] // 2), :2 * (spikes.shape[-1] // 2)]
            expected[layer]["firing_rate"] = inside.sum() / (inside[0, 0].numel() * T * N)
            y = max_pool2d(spikes.flatten(0, 1), 2)
        hidden = lif_reference(model.fc1(y.flatten(1)).unflatten(0, (T, N)), model.lif1.params)
        out = lif_reference(model.fc2(hidden), model.lif2.params)
    expected["fc1"] = {"synaptic_ops": y.sum() * 16 / N, "firing_rate": hidden.mean()}
    expected["fc2"] = {"synaptic_ops": hidden.sum() * 10 / N, "firing_rate": out.mean()}
    assert all(float(values["firing_rate"]) > 0.1 for values in expected.values())
    for layer, values in expected.items():
        for column, value in values.items():
            assert rows[layer][column] == pytest.approx(float(value), rel=1e-6), (layer, column)
    assert rows["conv2"]["macs"] == 0 and rows["conv1"]["synaptic_ops"] == 0


def test_the_networks_are_shaped_by_the_data():
    """Any number of conv blocks (the PLIF paper's five for DVS Gesture), rectangular
    inputs, any number of classes: the layers' names and counts follow."""
    from snnflow.deploy.nir_graph import graph_of
    from snnflow.model import cnn, snn
    from snnflow.runs import RunSettings

    torch.manual_seed(0)
    settings = RunSettings(model="snn", epochs=1, batch_size=2, lr=0.1, seed=0, T=3,
                           channels=[4, 4, 4, 4, 4], hidden=8, input_shape=[2, 32, 32],
                           classes=11)
    model = snn.KIND.build(settings, "torch").eval()
    assert model(torch.rand(3, 2, 2, 32, 32) * 2).shape == (3, 2, 11)
    assert model.layers == ("conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2")
    assert model.layer_neurons()["conv5"] == 4 * 2 * 2  # its 2x2 map, pooled to 1x1
    graph = graph_of(model, 1.0, 0.0, {})
    assert [n for n in graph.nodes if n.startswith("conv")] == [f"conv{k}" for k in range(1, 6)]
    assert list(graph.nodes["output"].output_type["output"]) == [11]
    rectangular = RunSettings(model="cnn", epochs=1, batch_size=2, lr=0.1, seed=0,
                              channels=[4, 8], hidden=8, input_shape=[2, 19, 30], classes=4)
    net = cnn.KIND.build(rectangular, "torch")
    assert net(torch.rand(5, 2, 19, 30)).shape == (5, 4)
    assert net.layer_macs()["fc1"] == 8 * 4 * 7 * 8  # 19x30 -> 9x15 -> 4x7


def test_blocks_that_pool_below_one_pixel_name_the_key():
    from snnflow import SnnflowError
    from snnflow.model import snn
    from snnflow.runs import RunSettings

    settings = RunSettings(model="snn", epochs=1, batch_size=2, lr=0.1, seed=0, T=3,
                           channels=[4] * 6, hidden=8, input_shape=[2, 32, 32], classes=4)
    with pytest.raises(SnnflowError, match="config key snn.channels: 6 conv blocks halve the "
                                           "32x32 input 6 times, below one pixel"):
        snn.KIND.build(settings, "torch")
