"""The SNN's loss choices (snn.loss) and dropout (snn.dropout) against the frameworks
they come from: snnTorch's ce_rate_loss, SpikingJelly's multi-step layer.Dropout."""

import pytest
import torch

from snnflow.model import snn
from snnflow.runs import RunSettings


def output_spikes(T=6, N=5, classes=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    spikes = (torch.rand(T, N, classes, generator=generator) < 0.3).float()
    labels = torch.randint(0, classes, (N,), generator=generator)
    return spikes.requires_grad_(), labels


def test_ce_rate_is_snntorchs_ce_rate_loss_in_value_and_gradient():
    functional = pytest.importorskip("snntorch.functional", reason="envs/nir-importers.txt")
    ours_in, labels = output_spikes()
    theirs_in = ours_in.detach().clone().requires_grad_()
    ours, scores = snn.LOSSES["ce_rate"](ours_in, labels)
    theirs = functional.ce_rate_loss()(theirs_in, labels)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours, theirs.reshape(()), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours_in.grad, theirs_in.grad, rtol=1e-6, atol=1e-8)
    assert torch.equal(scores, ours_in.detach().mean(0))  # predictions: the highest rate


def test_the_default_loss_is_the_reference_studys_mse_of_rates():
    spikes, labels = output_spikes()
    loss, _ = snn.KIND.trained_with(RunSettings(model="snn", epochs=1, batch_size=1, lr=0.1,
                                                seed=0, T=6)).loss(spikes, labels)
    expected = ((spikes.mean(0) - torch.nn.functional.one_hot(labels, 10)) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    ce = snn.KIND.trained_with(RunSettings(model="snn", epochs=1, batch_size=1, lr=0.1, seed=0,
                                           T=6, loss="ce_rate"))
    assert ce.loss is snn.LOSSES["ce_rate"]


def network(dropout):
    return snn.CSNN(channels=(4, 8, 8), hidden=16, dropout=dropout, engine="reference")


def test_dropout_is_spikingjellys_multi_step_dropout_one_mask_for_all_steps():
    layer = pytest.importorskip("spikingjelly.activation_based.layer",
                                reason="envs/nir-importers.txt")
    x_seq = torch.rand(7, 3, 20) + 0.5
    model = network(0.4).train()
    torch.manual_seed(11)
    ours = model.drop(x_seq)
    torch.manual_seed(11)
    theirs = layer.Dropout(0.4, step_mode="m").train()(x_seq)
    assert torch.equal(ours, theirs)
    dropped = ours == 0
    assert dropped.any() and not dropped.all()
    assert torch.equal(dropped, dropped[:1].expand_as(dropped))  # the same at every step
    torch.testing.assert_close(ours[~dropped], x_seq[~dropped] / 0.6)
    assert torch.equal(model.eval().drop(x_seq), x_seq)


def fully_connected_inputs(model, x, training):
    """The inputs of fc1 and fc2 (T, N, features) on x."""
    seen = []
    handles = [fc.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
               for fc in (model.fc1, model.fc2)]
    torch.manual_seed(0)
    with torch.no_grad():
        model.train(training)(x)
    for handle in handles:
        handle.remove()
    T, N = x.shape[:2]
    return seen[0].unflatten(0, (T, N)), seen[1]


def test_dropout_masks_fc1s_input_per_sample_for_all_steps_and_nothing_in_evaluation():
    x = (torch.rand(4, 8, 2, 34, 34, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    model = network(0.5)
    plain = network(0.0)
    plain.load_state_dict(model.state_dict())
    for ours, reference in zip(fully_connected_inputs(model, x, False),
                               fully_connected_inputs(plain, x, False)):
        assert torch.equal(ours, reference)  # evaluation: no dropout
    fc1_in, _ = fully_connected_inputs(model, x, True)
    fc1_plain, _ = fully_connected_inputs(plain, x, True)
    dropped = (fc1_plain != 0) & (fc1_in == 0)  # what the mask removed, step by step
    assert dropped.any()
    mask = dropped.any(0)  # per sample and feature: a mask shared by every step
    assert torch.equal(dropped, (fc1_plain != 0) & mask)
    kept = fc1_in != 0
    torch.testing.assert_close(fc1_in[kept], fc1_plain[kept] * 2.0)
