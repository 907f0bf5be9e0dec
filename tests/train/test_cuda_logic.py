"""The CUDA path's logic that a GPU would exercise, checked on the CPU with mocks where a
GPU is needed: `cuda:N` made the current device, a resumed optimiser in this process's
form, the CUDA graph's pool in the memory check, float settings for the kernels, the
recording's taps cached per device."""

import pytest
import torch

import snnflow.train.loop as training
import snnflow.train.memory as memory
from snnflow import SnnflowError
from snnflow.model import snn
from snnflow.model.architecture import conv_synaptic_ops, conv_taps
from snnflow.model.neuron import LIFParams
from snnflow.runs import RunSettings


@pytest.fixture
def two_gpus(monkeypatch):
    """torch.cuda as on a machine with two GPUs; the devices made current are recorded."""
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    return current


@pytest.mark.parametrize("name, index", [("cuda:1", 1), ("cuda", 0), ("auto", 0)])
def test_a_cuda_device_is_made_current_so_kernels_streams_and_graphs_run_on_it(two_gpus,
                                                                               name, index):
    device = training.resolve_device(name)
    assert device == torch.device("cuda", index)
    assert two_gpus == [device]


def test_a_cuda_index_this_job_cannot_see_is_named(two_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with pytest.raises(SnnflowError, match=r"^config key device: 'cuda:2', but this job sees 2 "
                                           r"CUDA device\(s\) \(CUDA_VISIBLE_DEVICES=2,3\)"):
        training.resolve_device("cuda:2")
    assert two_gpus == []


def adam_and_schedule(graphs):
    """Adam and the cosine schedule as build_job makes them, with or without CUDA graphs
    (capturable Adam, a tensor learning rate)."""
    model = torch.nn.Linear(3, 2)
    lr = torch.tensor(0.01) if graphs else 0.01
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, capturable=graphs)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    return model, optimizer, scheduler


def saved_after_two_epochs(graphs):
    model, optimizer, scheduler = adam_and_schedule(graphs)
    if not graphs:  # a capturable Adam steps on CUDA only
        for _ in range(2):
            model(torch.ones(1, 3)).sum().backward()
            optimizer.step()
            scheduler.step()
    else:
        for _ in range(2):
            scheduler.step()
    return {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}


# a capturable Adam steps on CUDA only: its saved run's schedule steps without it
SCHEDULE_ONLY = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")


@SCHEDULE_ONLY
def test_resuming_with_graphs_from_a_run_without_keeps_adam_capturable_with_its_lr_tensor():
    saved = saved_after_two_epochs(graphs=False)
    _, optimizer, scheduler = adam_and_schedule(graphs=True)
    lr_tensor = optimizer.param_groups[0]["lr"]
    training.restore_optimizer(optimizer, scheduler, saved)
    group = optimizer.param_groups[0]
    assert group["capturable"] is True
    assert group["lr"] is lr_tensor  # the tensor a captured graph reads, with the saved value
    assert float(lr_tensor) == pytest.approx(saved["optimizer"]["param_groups"][0]["lr"])
    steps = [state["step"] for state in optimizer.state.values()]
    assert steps and all(step.dtype == torch.float32 for step in steps)  # capturable's form
    scheduler.step()  # updates the tensor in place
    assert group["lr"] is lr_tensor


@SCHEDULE_ONLY
def test_resuming_without_graphs_from_a_graphed_run_trains_with_a_plain_adam():
    saved = saved_after_two_epochs(graphs=True)
    model, optimizer, scheduler = adam_and_schedule(graphs=False)
    training.restore_optimizer(optimizer, scheduler, saved)
    group = optimizer.param_groups[0]
    assert group["capturable"] is False
    assert isinstance(group["lr"], float) and isinstance(group["initial_lr"], float)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()  # a non-capturable Adam with a tensor lr would refuse this
    scheduler.step()
    assert isinstance(group["lr"], float)


def snn_settings(**overrides):
    values = dict(model="snn", epochs=1, batch_size=64, lr=1e-3, seed=0, T=8,
                  device="cuda")
    return RunSettings(**{**values, **overrides})


def test_the_memory_check_counts_the_cuda_graphs_pool(small_caches, monkeypatch):
    """With CUDA graphs a batch's activations are held twice: a GPU that holds the run
    eagerly may not hold it graphed, and the refusal says why."""
    cache = small_caches / "nmnist_T4.h5"
    s = snn_settings(T=4)
    shape, data = memory.cache_layout(cache)
    _, network, activations = memory.network_bytes(snn.KIND, s, shape)
    between = network + int(1.5 * activations)
    monkeypatch.setattr(memory, "available_bytes", lambda device: (between, 10 * data))
    memory.refuse_what_cannot_fit(snn.KIND, s, cache, torch.device("cuda"))
    with pytest.raises(SnnflowError, match=r"config key snn.batch_size: 64 makes this run need "
                                           r".*activations .* \(twice: eager and in the CUDA "
                                           r"graph's pool\)"):
        memory.refuse_what_cannot_fit(snn.KIND, snn_settings(T=4, cuda_graphs=True), cache,
                                      torch.device("cuda"))


def test_integer_neuron_settings_reach_the_kernels_as_floats():
    """`tau: 2` in YAML is an int, which Triton would specialise as an integer argument
    its division does not compile with."""
    p = LIFParams(2, 1, 0, 4)
    assert all(type(v) is float for v in (p.tau, p.v_threshold, p.v_reset, p.alpha))
    assert p == LIFParams()


def test_the_recordings_taps_live_on_the_spikes_device_once():
    """Counting a batch's synaptic operations copies nothing to the device: the taps are
    made there once (a copy per batch and layer would block every evaluation step)."""
    meta = torch.device("meta")
    spikes = torch.empty(4, 3, 17, 17, device=meta)
    assert conv_synaptic_ops(spikes, 8).device == meta
    assert conv_taps(17, 17, meta) is conv_taps(17, 17, meta)
    assert conv_taps(17, 17).device == torch.device("cpu")
    assert conv_taps(3, 3)[1, 1] == 9 and conv_taps(3, 3)[0, 0] == 4
