"""How a training run steps through batches: the Trainer (an epoch of training, an
evaluation), each full batch eager or replayed from one captured CUDA graph
(GraphedSteps), the epoch's sums kept on the device. snnflow.train.loop runs it for a
job; snnflow.train.kernel_check replays it against eager steps before the first epoch.
"""

import torch
from torch import nn

from snnflow import SnnflowError

# BatchNorm's running statistics (momentum 0.1) still weigh their initial values by 0.9^n
# after n optimizer steps and lag the weights of the last ten or so: measured on 1,000
# synthetic N-MNIST samples (SNN-8, the study's network), evaluation with them was silent
# (no output spike, 10 %) after 4 to 32 steps in all and right (as with statistics
# recomputed) after 64 (docs/method.md, "BatchNorm's statistics after few steps"). Below
# this many steps they are recomputed over the training split before each evaluation.
BATCHNORM_SETTLED_STEPS = 100


def loss_and_scores(model, kind, x, y):
    """(loss, class scores) of `model` on a batch; the loss is computed in float32."""
    return kind.loss(model(x).float(), y)


def sync(device):
    """Wait until a CUDA `device` has run what it was given (a measured time ends there)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def capture_cuda_graph(step):
    """A CUDA graph of `step()` (captured, not run: replay() runs it)."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph


def run_on_side_stream(step):
    """Run `step()` on a side stream, as the warm-up before a capture must."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()
    torch.cuda.current_stream().wait_stream(stream)


class EpochSums:
    """Loss and accuracy of an epoch summed on the device, and its first non-finite batch;
    the same tensors all run long (a CUDA graph writes into them), zeroed per epoch."""

    def __init__(self, device):
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.first_bad = torch.zeros((), dtype=torch.int64, device=device)
        self.bad_loss = torch.zeros((), dtype=torch.float32, device=device)

    def zero(self):
        for total in (self.loss, self.correct, self.first_bad, self.bad_loss):
            total.zero_()


class GraphedSteps:
    """The whole training step (forward, loss, backward, optimiser) as one CUDA graph,
    replayed for every full batch: a small step is mostly kernel launches, which the
    graph does away with. The first WARMUP full batches train eagerly on a side stream
    (a capture needs it), the next is captured and replayed, and every later one is
    copied into the captured inputs and replayed; a smaller last batch trains eagerly.
    Needs Adam with `capturable=True` and a tensor learning rate (snnflow.train.loop.prepare
    sets them). The trainer is passed to each step, not kept: a Trainer that holds its
    GraphedSteps and is held by them would be freed only by the garbage collector, and
    with it the graph's private memory pool (gpu-check measures each row's own peak)."""

    WARMUP = 3

    def __init__(self):
        self.warmups_left = self.WARMUP
        self.graph = self.inputs = None

    def step(self, trainer, x, y, batch, sums):
        if self.graph is None and self.warmups_left > 0:
            self.warmups_left -= 1
            run_on_side_stream(lambda: trainer.eager_step(x, y, batch, sums))
            return
        if self.graph is None:
            self.inputs = (x.clone(), y.clone(), torch.full((), batch, device=y.device))
            trainer.optimizer.zero_grad(set_to_none=True)  # gradients from the graph's pool
            self.graph = capture_cuda_graph(lambda: trainer.step(*self.inputs, sums))
        else:
            self.inputs[0].copy_(x)
            self.inputs[1].copy_(y)
            self.inputs[2].fill_(batch)
        self.graph.replay()


class Trainer:
    """Runs epochs of one model: training with the optimiser, evaluation without.

    Loss and accuracy are summed on the device and read once per epoch; so is the
    non-finite-loss check (the first bad batch is remembered on the device)."""

    def __init__(self, model, eager, kind, optimizer, batch_size, autocast, scaler, log,
                 cuda_graphs=False):
        self.model, self.eager, self.kind, self.optimizer = model, eager, kind, optimizer
        self.batch_size, self.autocast, self.scaler, self.log = batch_size, autocast, scaler, log
        self.graphs = GraphedSteps() if cuda_graphs else None
        self.sums = None

    def step(self, x, y, batch, sums):
        """Forward, loss, backward and optimiser step on a batch (gradients cleared by the
        caller), its loss and accuracy added to `sums` in place; `batch` (a number or a
        device tensor) is remembered if its loss is the epoch's first non-finite one."""
        with self.autocast():
            loss, scores = loss_and_scores(self.model, self.kind, x, y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        loss = loss.detach()
        new_bad = (sums.first_bad == 0) & ~torch.isfinite(loss)
        sums.first_bad.copy_(torch.where(new_bad, batch, sums.first_bad))
        sums.bad_loss.copy_(torch.where(new_bad, loss, sums.bad_loss))
        sums.loss.add_(loss * len(y))
        sums.correct.add_((scores.argmax(1) == y).sum())

    def eager_step(self, x, y, batch, sums):
        self.optimizer.zero_grad(set_to_none=True)
        self.step(x, y, batch, sums)

    def train_epoch(self, data, generator, epoch, on_batch=None):
        """(mean loss, accuracy) over one shuffled pass of `data`, calling
        `on_batch(epoch, b, sums)` after each batch `b` (the job's progress lines and
        curves: the epoch's EpochSums so far)."""
        self.model.train()
        if self.sums is None:
            self.sums = EpochSums(data.device)
        sums = self.sums
        sums.zero()
        for b, (x, y) in enumerate(data.batches(self.batch_size, generator), start=1):
            if self.graphs is not None and len(y) == self.batch_size:
                self.graphs.step(self, x, y, b, sums)
            else:
                self.eager_step(x, y, b, sums)
            if on_batch is not None:
                on_batch(epoch, b, sums)
        if sums.first_bad.item():
            raise SnnflowError(f"epoch {epoch} batch {sums.first_bad.item()}: loss is "
                               f"{sums.bad_loss.item()} - lower lr; the last good checkpoint "
                               "is kept")
        return sums.loss.item() / len(data), sums.correct.item() / len(data)

    @torch.no_grad()
    def recompute_batchnorm_statistics(self, data):
        """Set every BatchNorm layer's running statistics to the average of the batch
        statistics over `data` (the training split, in order) with the current weights,
        as a network trained for more steps would carry them; True if it had any."""
        norms = [m for m in self.eager.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the batches
        self.eager.train()
        try:
            for x, _ in data.batches(self.batch_size):
                with self.autocast():
                    self.eager(x)
        finally:
            for norm, momentum in zip(norms, momenta):
                norm.momentum = momentum
        return bool(norms)

    @torch.inference_mode()
    def evaluate(self, data, recorded=True):
        """(mean loss, accuracy, layer rows, predicted classes) over `data` in order, in
        eval mode, recording the layers' activity unless not `recorded` (then no rows;
        the eager model: recording does not go through torch.compile)."""
        self.eager.eval()
        record = self.kind.new_record(self.eager) if recorded else None
        forward = record.forward if recorded else self.model
        total_loss = torch.zeros((), dtype=torch.float64, device=data.device)
        correct = torch.zeros((), dtype=torch.int64, device=data.device)
        predictions = []
        for x, y in data.batches(self.batch_size):
            with self.autocast():
                loss, scores = self.kind.loss(forward(x).float(), y)
            total_loss += loss * len(y)
            predicted = scores.argmax(1)
            correct += (predicted == y).sum()
            predictions.append(predicted)
        return (total_loss.item() / len(data), correct.item() / len(data),
                record.rows() if recorded else [], torch.cat(predictions).cpu())
