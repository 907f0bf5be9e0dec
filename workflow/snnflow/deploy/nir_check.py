"""The exported NIR graph run by the frameworks that import it, compared spike for spike
with the project's own model on the same frames (docs/nir.md).

Each importer (IMPORTERS) loads the graph written by nir.write and runs the test frames
step by step with dt = nir_graph.DT. Compared with the trained model (the reference
engine, BatchNorm unfolded): the output spikes (T, N, 10), the predictions (the class of
highest mean), the accuracy, and the spikes of every LIF layer. The study's neurons fire
on v >= v_threshold, NIR's on v > v_threshold: an output spike that differs from the
trained model's but equals what the model gives with a strict threshold is counted as a
tie, apart from the others.
"""

import contextlib
import io
import math

import numpy as np
import torch

from snnflow.deploy.importers import IMPORTER_PACKAGES, installed_version
from snnflow.deploy.nir_graph import DT
from snnflow.runs import NIR_COLUMNS

# The graph's LIF nodes, by the report's layer names (only the neurons inside the
# pooling windows of a conv layer count, as in layers.csv).
def lif_node(layer):
    """The graph's LIF node after a layer (snnflow.deploy.nir_graph): conv2 -> lif2, fc1 ->
    lif_fc1."""
    return f"lif{layer[4:]}" if layer.startswith("conv") else f"lif_{layer}"
BATCH = 256


def _restore_batch_flatten(module):
    """Norse's and snnTorch's importers make NIR's Flatten(0, -1), whose dimensions do not
    count the batch, a torch Flatten(0, -1) that folds the batch in too; flattening from
    dimension 1 computes per sample what they compute on one unbatched sample."""
    for child in module.modules():
        if isinstance(child, torch.nn.Flatten) and child.start_dim == 0:
            child.start_dim = 1


def quiet_triton_probe():
    """Silence torch's "Triton not available, find_triton_kernels = []": SpikingJelly
    registers its Triton ops on first use, and where Triton is not installed (a CPU
    install) torch logs that line for each of them, asking nothing of the user. Only
    that logger of torch's, which says nothing else of use here, is turned down."""
    import logging

    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)


def import_spikingjelly(graph):
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    quiet_triton_probe()
    model = import_from_nir(graph, dt=DT, step_mode="m")

    def run(x_seq):  # multi-step: the whole sequence at once
        return model(x_seq, None)[0]
    return model, run, "nir_exchange.import_from_nir (dt given, multi-step mode)"


def import_norse(graph):
    import norse.torch

    model = norse.torch.from_nir(graph, dt=DT)
    _restore_batch_flatten(model)

    def run(x_seq):  # step by step, the state passed on
        state, outputs = None, []
        for x in x_seq:
            out, state = model(x, state)
            outputs.append(out)
        return torch.stack(outputs)
    return model, run, ("norse.torch.from_nir (dt given); Flatten made to keep the batch "
                        "dimension (its importer folds it in)")


def import_snntorch(graph):
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # a warning per LIF, printed
        model = import_from_nir(graph)
    _restore_batch_flatten(model)

    def run(x_seq):
        utils.reset(model)
        outputs = []
        for x in x_seq:
            out = model(x)
            outputs.append(out[0] if isinstance(out, tuple) else out)
        return torch.stack(outputs)
    return model, run, ("snntorch.import_nir.import_from_nir (it assumes dt = 1e-4, the graph's "
                        "dt; LIF as Leaky with its threshold scaled); Flatten made to keep the "
                        "batch dimension")


IMPORTERS = dict(zip(IMPORTER_PACKAGES, (import_spikingjelly, import_norse, import_snntorch)))


def _counting(model, names):
    """Forward hooks on the modules called `names` adding each one's output spikes (inside
    the pooling windows for a map) to the returned dict."""
    counts = dict.fromkeys(names, 0.0)
    modules = dict(model.named_modules())

    def hook(name):
        def add(module, inputs, output):
            spikes = output[0] if isinstance(output, tuple) else output
            if spikes.dim() >= 4:  # a map ([T,] N, C, H, W), not a layer's units ([T,] N, K)
                h, w = spikes.shape[-2:]
                spikes = spikes[..., :2 * (h // 2), :2 * (w // 2)]
            counts[name] += float(spikes.sum())
        return add
    handles = [modules[name].register_forward_hook(hook(name)) for name in names
               if name in modules]
    return counts, handles


def _ours(model, x_seq):
    """The trained model's output spikes and per-layer spikes on a batch."""
    from snnflow.model.snn import SpikeRecord

    record = SpikeRecord(model)
    out = record.forward(x_seq)
    return out, {layer: float(record.spikes[layer]) for layer in model.layers}


def compare(model, strict_model, graph, frames, labels, log=print):
    """One row per importer (NIR_COLUMNS but the run's identity) comparing it with
    `model` (and `strict_model`, the same with a strict threshold) on `frames`
    (N, T, P, H, W) with `labels`."""
    n = len(labels)
    batches = [(torch.as_tensor(frames[i:i + BATCH]).float().transpose(0, 1),
                torch.as_tensor(labels[i:i + BATCH])) for i in range(0, n, BATCH)]
    ours, ours_layers, truth = [], dict.fromkeys(model.layers, 0.0), []
    with torch.no_grad():
        for x, y in batches:
            out, layers = _ours(model, x)
            ours.append(out)
            truth.append(y)
            for layer in model.layers:
                ours_layers[layer] += layers[layer]
    ours, truth = torch.cat(ours, 1), torch.cat(truth)
    strict = None  # the model with a strict threshold, run once an importer differs
    predicted = ours.mean(0).argmax(1)
    rows = []
    for name, load in IMPORTERS.items():
        row = {"importer": name, "version": installed_version(name), "samples": n,
               "accuracy_ours": float((predicted == truth).double().mean())}
        if row["version"] is None:
            rows.append({**row, "note": f"not installed: pip install --no-deps {name} "
                                        "(docs/configuration.md \"Deploying the SNN\")"})
            continue
        try:
            imported, run, how = load(graph)
            counts, handles = _counting(imported, [lif_node(layer) for layer in model.layers])
            with torch.no_grad():
                theirs = torch.cat([run(x) for x, _ in batches], 1)
            for handle in handles:
                handle.remove()
        except Exception as err:  # an importer that cannot load or run this graph
            message = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            rows.append({**row, "note": f"failed: {type(err).__name__}: {message}"})
            log(f"{name}: failed: {type(err).__name__}: {message}")
            continue
        differ = theirs != ours
        if differ.any() and strict is None:
            with torch.no_grad():
                strict = torch.cat([strict_model(x) for x, _ in batches], 1)
        ties = differ & (theirs == strict) if differ.any() else differ
        theirs_predicted = theirs.mean(0).argmax(1)
        layer_text = _layer_differences(ours_layers, counts, handles_found=bool(handles))
        row.update(spike_mismatches=int(differ.sum()), tie_mismatches=int(ties.sum()),
                   other_mismatches=int((differ & ~ties).sum()),
                   samples_differing=int(differ.any(0).any(1).sum()),
                   prediction_agreement=float((theirs_predicted == predicted).double().mean()),
                   accuracy_importer=float((theirs_predicted == truth).double().mean()),
                   layer_spikes=layer_text, note=how)
        log(f"{name}: {row['spike_mismatches']} output spikes differ ({row['tie_mismatches']} "
            f"ties), predictions agree on {100 * row['prediction_agreement']:.2f} % of {n}; "
            f"layer spikes: {layer_text}")
        rows.append(row)
    return rows


def _layer_differences(ours, counts, handles_found):
    """"equal" or each layer's spikes theirs - ours, from the importer's LIF modules."""
    if not handles_found:
        return "not exposed"
    differences = {layer: counts[lif_node(layer)] - ours[layer] for layer in ours}
    if all(math.isclose(d, 0.0, abs_tol=0.5) for d in differences.values()):
        return "equal"
    return "; ".join(f"{layer} {d:+.0f} of {ours[layer]:.0f}"
                     for layer, d in differences.items())


def strict_threshold(v_threshold):
    """The float32 threshold just above `v_threshold`: firing on v >= it is firing on
    v > v_threshold."""
    return float(np.nextafter(np.float32(v_threshold), np.float32(np.inf)))


def verify(nir_path, model_pt, run_json, cache, samples, out_csv, log=print):
    """Load `nir_path` with nir.read, run the first `samples` test frames of `cache` (None:
    all) through every importer and the run's model, and write the rows to `out_csv`."""
    import json

    import nir
    import pandas as pd

    from snnflow import SnnflowError
    from snnflow.jobs.atomic import atomic_path
    from snnflow.data.caches import open_checked
    from snnflow.deploy.nir_graph import trained_model
    from snnflow.model import snn

    with open_checked(nir_path, []):  # nothing in it read from elsewhere
        pass
    try:
        graph = nir.read(str(nir_path))
    except Exception as err:
        raise SnnflowError(f"{nir_path}: cannot be read by nir.read ({type(err).__name__}) - "
                           "delete it and rerun the export_nir job") from None
    model, s = trained_model(model_pt)
    strict, _ = trained_model(model_pt, v_threshold=strict_threshold(s.v_threshold))
    frames, labels = snn.KIND.load(cache, "test")
    if samples is not None:
        frames, labels = frames[:samples], labels[:samples]
    info = json.loads(open(run_json).read())
    identity = {"model": info["label"], "T": s.T, "seed": s.seed}
    rows = [{**identity, **row} for row in compare(model, strict, graph, frames, labels, log)]
    with atomic_path(out_csv) as tmp:
        pd.DataFrame(rows, columns=NIR_COLUMNS).to_csv(tmp, index=False)
    return rows
