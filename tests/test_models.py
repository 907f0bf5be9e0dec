import torch

from snnflow.models import CNN, CSNN, firing_rate


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


def test_engines_give_the_same_network_output():
    torch.manual_seed(0)
    fused = CSNN(channels=(4, 8, 8), hidden=16, engine="fused")
    reference = CSNN(channels=(4, 8, 8), hidden=16, engine="reference")
    reference.load_state_dict(fused.state_dict())
    x = torch.rand(4, 2, 2, 34, 34) * 3
    assert torch.equal(fused(x), reference(x))


def test_cnn_logits_shape():
    model = CNN(channels=(4, 8, 8), hidden=16)
    assert model(torch.rand(7, 1, 28, 28)).shape == (7, 10)


def test_step_by_step_execution_equals_multi_step_in_eval_mode():
    torch.manual_seed(0)
    model = CSNN(channels=(4, 8, 8), hidden=16).eval()
    x = torch.rand(6, 3, 2, 34, 34) * 3
    with torch.no_grad():
        multi, stepwise = model(x), model.forward_step_by_step(x)
    assert stepwise.shape == multi.shape
    assert (stepwise == multi).float().mean() > 0.999


def test_engines_agree_in_channels_last_training():
    torch.manual_seed(0)
    fused = CSNN(channels=(4, 8, 8), hidden=16, engine="fused").to(
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


def test_optimised_cpu_path_uses_its_kernels_and_agrees_with_the_reference(monkeypatch):
    from snnflow import fused_block, sparse_conv

    calls = {"block": 0, "conv": 0}
    for module, name, key in ((fused_block, "_bn_lif_pool", "block"),
                              (sparse_conv, "_sparse_conv", "conv")):
        original = getattr(module, name)

        def counted(*args, _original=original, _key=key):
            calls[_key] += 1
            return _original(*args)
        monkeypatch.setattr(module, name, counted)
    torch.manual_seed(0)
    fused = CSNN(engine="fused").to(memory_format=torch.channels_last)
    reference = CSNN(engine="reference").to(memory_format=torch.channels_last)
    reference.load_state_dict(fused.state_dict())
    x = (torch.rand(4, 8, 2, 34, 34) < 0.1).float() * 2
    outputs, grads = [], []
    for model in (fused, reference):
        out = model(x)
        (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        outputs.append(out)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert calls == {"block": 3, "conv": 2}  # the reference engine used neither
    # BatchNorm as one fma flips the odd spike that sits on the threshold (3 of 296k in
    # the first block here), and the flips spread a little through later layers
    assert (outputs[0] != outputs[1]).float().mean() < 0.02
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.98
