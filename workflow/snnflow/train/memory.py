"""A training run that cannot fit in memory is refused before anything is allocated,
naming the config key that makes it large and the memory it would need.

What a run holds: its whole cache resident (the integers of both splits, as stored),
the network's parameters with their gradients and Adam's two moments (16 bytes each in
float32), and one batch's activations, saved for the backward pass. The network and
the activations are measured on PyTorch's meta device, which allocates nothing; the
activations are the outputs of every layer for one batch, counted three times (the
output, what backward keeps of it, its gradient): an estimate, meant to catch sizes
that cannot work, not to plan memory to the byte. With CUDA graphs a batch's
activations are held twice: the captured step allocates from a private memory pool of
its own, beside the blocks the eager warm-up steps left in PyTorch's cache.
"""

import torch

from snnflow import SnnflowError
from snnflow.device.machine import memory_bytes, size_text

ACTIVATION_COPIES = 3
GRAPH_POOLS = 2  # with CUDA graphs: the eager steps' cached blocks and the graph's pool
BYTES_PER_PARAMETER = 4 * 4  # float32 weight, gradient, Adam's exp_avg and exp_avg_sq


def cache_layout(cache):
    """(shape of one stored training input, bytes of every array in the cache as held in
    memory), read from the file's metadata: the input is the first array of more than one
    axis in the train split (the frames (T, 2, 34, 34), the images (1, 28, 28)). Opened
    as every HDF5 file the pipeline reads (snnflow.data.caches.open_checked)."""
    import h5py

    from snnflow.data.caches import open_checked

    arrays = []
    with open_checked(cache, []) as h5:
        h5.visititems(lambda name, item: arrays.append((name, item.shape, item.size *
                                                        item.dtype.itemsize))
                      if isinstance(item, h5py.Dataset) else None)
    inputs = [shape[1:] for name, shape, _ in arrays
              if name.startswith("train/") and len(shape) > 1]
    return (inputs[0] if inputs else None), sum(size for _, _, size in arrays)


def network_bytes(kind, s, sample_shape):
    """(parameter count, bytes of parameters and optimiser state, bytes of one batch's
    activations) of the run's network, measured on the meta device."""
    with torch.device("meta"):
        model = kind.build(s, "torch")
    parameters = sum(p.numel() for p in model.parameters())
    outputs = []

    def count(module, inputs, output):
        if torch.is_tensor(output):
            outputs.append(output.numel() * output.element_size())
    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    shape = (sample_shape[0], s.batch_size, *sample_shape[1:]) if kind.time_major else \
        (s.batch_size, *sample_shape[-3:])  # event images are stored as (1, P, H, W)
    try:
        with torch.no_grad():
            model(torch.empty(shape, device="meta"))
        activations = sum(outputs) * ACTIVATION_COPIES
    except (RuntimeError, NotImplementedError):  # an op without a meta kernel: unknown
        activations = 0
    finally:
        for hook in hooks:
            hook.remove()
    return parameters, parameters * BYTES_PER_PARAMETER, activations


def available_bytes(device):
    """(bytes the network and a batch may use, bytes the data may use) on `device`."""
    _, host = memory_bytes()
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, (host or 0) + free // 2  # the data goes to pinned host memory if need be
    return host, host


def refuse_what_cannot_fit(kind, s, cache, device):
    """Raise SnnflowError when the run of settings `s` on `cache` cannot fit in the
    memory of `device`."""
    sample_shape, data = cache_layout(cache)
    if sample_shape is None:
        return  # a damaged cache: loading it says what is wrong
    parameters, network, activations = network_bytes(kind, s, sample_shape)
    graphs = device.type == "cuda" and s.cuda_graphs
    if graphs:
        activations *= GRAPH_POOLS
    twice = " (twice: eager and in the CUDA graph's pool)" if graphs else ""
    for_network, for_data = available_bytes(device)
    if for_network is None:
        return  # no /proc/meminfo: nothing to compare with
    on_device = network + activations + (data if device.type == "cpu" else 0)
    if on_device <= for_network and data <= for_data:
        return
    parts = {"data": data, "network": network, "batch": activations}
    largest = max(parts, key=parts.get)
    section = kind.name
    key = {"data": f"{section}.T" if kind.time_major else None,
           "network": f"{section}.hidden" if s.hidden * 64 > max(s.channels) else
           f"{section}.channels", "batch": f"{section}.batch_size"}[largest]
    value = {f"{section}.T": s.T, f"{section}.hidden": s.hidden,
             f"{section}.channels": s.channels, f"{section}.batch_size": s.batch_size}.get(key)
    needed = (f"about {size_text(network + activations + data)}: the network "
              f"{size_text(network)} ({parameters:.3g} parameters with their gradients and "
              f"Adam's moments), one batch's activations {size_text(activations)}{twice}, "
              f"the resident data {size_text(data)}")
    has = f"{device.type} has {size_text(for_network)} available"
    if key is None:
        raise SnnflowError(f"{cache}: this run needs {needed}, and {has} - run it on a "
                           "machine with more memory")
    raise SnnflowError(f"config key {key}: {value} makes this run need {needed}, and {has} - "
                       "lower it")
