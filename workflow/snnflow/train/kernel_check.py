"""Every compiled path a training job is about to use, checked on the device it trains
on before its first epoch, against PyTorch's ops on the same device.

A kernel that compiles on a new GPU (or CPU) but computes something else would
otherwise train the study wrong without a word. So each job runs its paths on a few
samples of its own training data, through its own network's layers at its own T and
widths:

- the model's compiled paths, which its ModelKind names (the SNN's: C++ CPU ops, Triton
  LIF, fused CUDA block, the block in the precision the job's autocast gives it;
  snnflow.model.kernel_paths; the CNN has none);
- "CUDA graphs" (performance.cuda_graphs): training steps replayed from one captured
  graph against the same steps run eagerly from the same weights.

With `kernels: auto` a path that raises or disagrees is switched off for the job (the
PyTorch ops, the three layers in turn, eager steps) and the job's log says which and by
how much; with `require` the job stops with that line. The outcome goes to run.json and
the report's run table. The same comparisons, over more shapes, are `make gpu-check`'s.
"""

import copy
import time
from dataclasses import dataclass, field, replace

import torch

from snnflow import SnnflowError, first_line
from snnflow.device.path_check import PathCheck, relative_difference
from snnflow.device.precision import tf32_off
from snnflow.train.steps import EpochSums, GraphedSteps, Trainer, sync

GRAPH_TOLERANCE = 1e-5      # relative: losses and weights of replayed against eager steps
CHECK_SAMPLES = 4           # training samples the check runs (the CNN: 4 x 4)


@dataclass
class Outcome:
    """What the job trains with after the check, and what the check found."""
    backend: str
    fused_cuda_block: bool
    cuda_graphs: bool
    checks: list = field(default_factory=list)
    fell_back: list = field(default_factory=list)  # "<path> -> <what runs instead>"
    seconds: float = 0.0
    note: str = ""           # why nothing was checked

    def summary(self):
        """One phrase for the log, run.json and the report's run table."""
        if not self.checks:
            return f"nothing to check ({self.note})"
        failed = [c for c in self.checks if not c.passed]
        if failed:
            return "failed: " + "; ".join(f"{c.path} ({c.detail})" for c in failed) + \
                " - fell back to " + ", ".join(self.fell_back)
        worst = max(c.grad_diff for c in self.checks)
        paths = ", ".join(c.path for c in self.checks)
        return f"passed, max grad diff {worst:.1e} ({paths}; {self.seconds:.1f} s)"

    def as_record(self):
        return {"summary": self.summary(), "seconds": round(self.seconds, 3),
                "fell_back": self.fell_back,
                "checks": [{"path": c.path, "passed": c.passed, "detail": c.detail,
                            "grad_diff": c.grad_diff} for c in self.checks]}


def check_graph_steps(kind, s, backend, x, y, autocast):
    """CUDA graphs: the job's training step captured and replayed (snnflow.train.steps's
    GraphedSteps) against the same steps run eagerly from the same weights."""
    device = x.device
    on_cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if on_cuda else []):
        torch.manual_seed(s.seed)
        model = kind.build(s, backend).to(device)
    if s.channels_last and s.engine != "reference":
        model = model.to(memory_format=torch.channels_last)
    twin = copy.deepcopy(model)
    runs = []
    for net, graphs in ((model, True), (twin, False)):
        lr = torch.tensor(s.lr, device=device) if on_cuda else s.lr  # as the job's
        optimizer = torch.optim.Adam(net.parameters(), lr=lr, capturable=on_cuda)
        trainer = Trainer(net, net, kind, optimizer, len(y), autocast, None, print,
                          cuda_graphs=graphs)
        net.train()
        sums = EpochSums(device)
        for batch in range(GraphedSteps.WARMUP + 2):  # warm-up, capture and replay, replay
            if graphs:
                trainer.graphs.step(trainer, x, y, batch + 1, sums)
            else:
                trainer.eager_step(x, y, batch + 1, sums)
        sync(device)
        runs.append((float(sums.loss), torch.cat([p.detach().flatten() for p in net.parameters()])))
    (loss_graph, weights_graph), (loss_eager, weights_eager) = runs
    loss_diff = abs(loss_graph - loss_eager) / max(abs(loss_eager), 1e-12)
    weight_diff = relative_difference(weights_graph, weights_eager)
    passed = loss_diff <= GRAPH_TOLERANCE and weight_diff <= GRAPH_TOLERANCE
    return PathCheck("CUDA graphs", passed, f"loss of replayed steps diff {loss_diff:.1e}, "
                                            f"weights diff {weight_diff:.1e}", weight_diff)


def verify(kind, s, backend, train, autocast, log):
    """Check the paths the job with settings `s` is about to use on `backend`, on a few
    samples of its training split `train` (a ResidentDataset), with TF32 off (the checks
    compare kernels, not TF32's rounding); an Outcome."""
    with tf32_off():
        return _verify(kind, s, backend, train, autocast, log)


def _verify(kind, s, backend, train, autocast, log):
    device = train.device
    graphs = s.cuda_graphs and device.type == "cuda"
    outcome = Outcome(backend, s.fused_cuda_block and backend == "triton", graphs)
    started = time.perf_counter()
    n = CHECK_SAMPLES if kind.time_major else 4 * CHECK_SAMPLES
    x, y = next(train.batches(min(n, len(train))))
    generator = torch.Generator(device=device).manual_seed(s.seed)
    checks, outcome.note = kind.compiled_paths(kind, s, backend, x, generator)
    if not checks and not graphs:
        log(f"kernel check: {outcome.summary()}")
        return outcome
    if graphs:  # last: it trains with what the checks before it left switched on
        checks.append(("CUDA graphs", lambda: check_graph_steps(
            kind, replace(s, fused_cuda_block=outcome.fused_cuda_block), outcome.backend, x, y,
            autocast), "eager steps"))
    for path, run_check, fallback in checks:
        try:
            result = run_check()
        except Exception as err:  # a kernel that does not run here is a failed check
            result = PathCheck(path, False, f"raised {type(err).__name__}: {first_line(err, 160)}",
                               float("inf"))
        outcome.checks.append(result)
        if result.passed:
            continue
        line = f"kernel check: {path} failed on {device} ({result.detail})"
        if s.kernels == "require":
            raise SnnflowError(f"config key performance.kernels: require, but the {line} - "
                               f"report it with this log, or set kernels: auto to fall back "
                               f"to {fallback}")
        log(f"{line} - falling back to {fallback} for this job")
        outcome.fell_back.append(f"{path} -> {fallback}")
        if path in ("C++ CPU ops", "Triton LIF"):
            outcome.backend, outcome.fused_cuda_block = "torch", False
        elif path == "fused CUDA block":
            outcome.fused_cuda_block = False
        else:
            outcome.cuda_graphs = False
    outcome.seconds = time.perf_counter() - started
    log(f"kernel check: {outcome.summary()}")
    return outcome
