"""The trained CSNN as a NIR graph (the Neuromorphic Intermediate Representation, the
`nir` package), node by node as docs/nir.md describes.

- Each convolution with its BatchNorm folded in (eval mode, running statistics):
  W * g / sqrt(var + eps) per output channel, bias b - mean * g / sqrt(var + eps).
- Each LIF as NIR's continuous-time LIF, tau dv/dt = (v_leak - v) + r I, whose Euler step
  of length DT is the study's H = V + (X - (V - V_reset)) / tau: NIR's tau = tau * DT,
  r = 1, v_leak = v_reset (the potential it decays to), v_threshold and v_reset as
  trained.
- Each 2x2 max-pool as a construction exact on binary spikes that SpikingJelly's and
  Norse's importers both run (one has no SumPool2d, the other no AvgPool2d, neither a
  Threshold node): a 2x2 convolution of stride 2 with an identity weight, which sums
  each window's spikes (0 to 4, exactly), then a LIF that fires on any sum of at least
  one and holds no state: with tau = 2 * DT and v_threshold 1/4, a sum s gives v = s / 2,
  so it fires on s >= 1 and resets to 0, and a window without spikes leaves v at 0.
- Flatten, then the two fully connected layers (no bias) with their LIFs; the output
  is the last LIF's spikes at each step, the prediction the class of highest mean.
"""

import numpy as np

# The step the graph assumes, in seconds: SpikingJelly's default, and the one snnTorch's
# importer assumes whatever the graph says.
DT = 1e-4
THRESHOLD_RULE = ("trained to fire when v >= v_threshold (Heaviside(H - V_th) with "
                  "Heaviside(0) = 1); NIR's LIF fires when v > v_threshold: the two differ "
                  "only on exact ties")
POOL_THRESHOLD = 0.25
FORMAT_VERSION = 1


def fold_batchnorm(conv, bn):
    """(weight, bias) of the convolution `conv` (no bias) followed by BatchNorm `bn` in
    eval mode, in float64 and then float32."""
    scale = bn.weight.detach().double() / (bn.running_var.double() + bn.eps).sqrt()
    weight = conv.weight.detach().double() * scale[:, None, None, None]
    bias = bn.bias.detach().double() - bn.running_mean.double() * scale
    return weight.float().numpy(), bias.float().numpy()


def _lif(shape, tau, v_threshold, v_reset):
    import nir

    full = lambda value: np.full(shape, value, dtype=np.float32)  # noqa: E731
    return nir.LIF(tau=full(tau * DT), r=full(1.0), v_leak=full(v_reset),
                   v_threshold=full(v_threshold), v_reset=full(v_reset))


def _neuron(layer, shape, v_threshold, v_reset):
    """The NIR node of a spiking layer of the CSNN: NIR's LIF (a PLIF layer's with its
    learned tau), or NIR's IF, dv/dt = r I, whose Euler step of DT with r = 1 / DT is the
    IF's H = V + X."""
    import nir

    full = lambda value: np.full(shape, value, dtype=np.float32)  # noqa: E731
    if layer.params.neuron == "if":
        return nir.IF(r=full(1.0 / DT), v_threshold=full(v_threshold), v_reset=full(v_reset))
    return _lif(shape, layer.learned_tau() or layer.params.tau, v_threshold, v_reset)


def _sum_pool(channels, size):
    """A 2x2 window sum of stride 2 as a convolution (identity across channels) on an
    input of `size` (height, width)."""
    import nir

    weight = np.zeros((channels, channels, 2, 2), dtype=np.float32)
    weight[np.arange(channels), np.arange(channels)] = 1.0
    return nir.Conv2d(input_shape=size, weight=weight, stride=2, padding=0,
                      dilation=1, groups=1, bias=np.zeros(channels, dtype=np.float32))


def graph_of(model, v_threshold, v_reset, metadata):
    """The NIRGraph of a CSNN `model` (its trained weights and BatchNorm statistics, its
    neurons: LIF, IF or PLIF with each layer's learned tau) with `v_threshold` and
    `v_reset`; `metadata` is added to the graph's."""
    import nir

    (h, w), c_in = model.size, model.convs[0][0].in_channels
    nodes = {"input": nir.Input(input_type={"input": np.array([c_in, h, w])})}
    order = ["input"]
    for k, (conv, bn) in enumerate(model.convs, start=1):
        weight, bias = fold_batchnorm(conv, bn)
        channels = weight.shape[0]
        nodes[f"conv{k}"] = nir.Conv2d(input_shape=(h, w), weight=weight, stride=1,
                                       padding=1, dilation=1, groups=1, bias=bias)
        nodes[f"lif{k}"] = _neuron(model.neurons[k - 1], (channels, h, w), v_threshold, v_reset)
        nodes[f"pool{k}"] = _sum_pool(channels, (h, w))
        h, w = h // 2, w // 2
        nodes[f"pool{k}_fire"] = _lif((channels, h, w), 2.0, POOL_THRESHOLD, 0.0)
        order += [f"conv{k}", f"lif{k}", f"pool{k}", f"pool{k}_fire"]
    nodes["flatten"] = nir.Flatten(input_type={"input": np.array([channels, h, w])},
                                   start_dim=0, end_dim=-1)
    order.append("flatten")
    for name, linear, layer in (("fc1", model.fc1, model.lif1), ("fc2", model.fc2, model.lif2)):
        weight = linear.weight.detach().float().numpy()
        nodes[name] = nir.Linear(weight=weight)
        nodes[f"lif_{name}"] = _neuron(layer, (weight.shape[0],), v_threshold, v_reset)
        order += [name, f"lif_{name}"]
    nodes["output"] = nir.Output(output_type={"output": np.array([weight.shape[0]])})
    order.append("output")
    edges = list(zip(order[:-1], order[1:]))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={
        "dt": DT, "threshold_rule": THRESHOLD_RULE, "format_version": FORMAT_VERSION,
        "discretisation": "Euler steps of dt: NIR tau = trained tau * dt (a PLIF layer's "
                          "learned tau), r = 1, v_leak = v_reset; an IF's r = 1 / dt",
        "neuron": model.neurons[0].params.neuron,
        "max_pool": "2x2 max-pool of binary spikes = identity 2x2 conv of stride 2 (window "
                    "sum) + a LIF firing on sums >= 1 (tau = 2 dt, v_threshold 0.25)",
        "input": f"event counts (OFF, ON) x {model.size[0]} x {model.size[1]} per time step",
        "output": "spikes of lif_fc2 per step; prediction = argmax of their mean over T",
        **metadata})


def trained_model(model_pt, v_threshold=None):
    """(the CSNN of a run's model.pt in eval mode, on the reference engine; its
    RunSettings); with `v_threshold`, its neurons fire at that threshold instead."""
    from snnflow.model import snn
    from snnflow.model.saved import load_trained

    return load_trained(model_pt, {"snn": snn.KIND}, what="an SNN run's model",
                        **({"v_threshold": v_threshold} if v_threshold else {}))


def export(model_pt, run_json, nir_path):
    """Write the NIR graph of the run whose files are `model_pt` and `run_json` to
    `nir_path` (atomically); returns the graph."""
    import json

    import nir

    from snnflow.jobs.atomic import atomic_path

    model, s = trained_model(model_pt)
    info = json.loads(open(run_json).read())
    graph = graph_of(model, s.v_threshold, s.v_reset, {
        "model": info.get("name", s.name), "T": s.T, "seed": s.seed,
        "code_fingerprint": info.get("code_fingerprint", ""),
        "data_identity": info.get("data_identity", ""), "source": "snnflow"})
    with atomic_path(nir_path) as tmp:
        nir.write(str(tmp), graph)
    return graph
