"""A training run's live curves: TensorBoard event files written as the job trains.

Each run writes to its own folder (snnflow.runs.tensorboard_folder) a point per epoch
of every metrics.csv column (METRIC_TAGS) and of each spiking layer's layers.csv
values (LAYER_TAGS), samples per second, the running training loss every few batches
(RUNNING_LOSS_TAG, its step the batch counted from the run's start) and the run's
settings as TensorBoard hparams with its final and chosen epoch's test accuracy
(FINAL_TAGS). `make watch` serves them.

Each computation of a run (its settings, code, data and CPU threads: what a checkpoint
resumes only with) is a TensorBoard run of its own, a folder `settings-<hash>` inside
the run's (attempt_folder): a run started fresh with new settings never writes into
the series a running TensorBoard already holds, and shows beside the earlier one with
its own hparams; a resumed run continues its own.

The event files are derived from the run's checkpoint, never read back by the
pipeline and never an output: each job writes a new event file holding the
checkpoint's history (which keeps the running-loss points too) and continues there;
the files of earlier attempts are then emptied (and removed by the attempt after), so
every epoch is in them once, whatever a killed attempt had written past its last
checkpoint. A job that starts fresh starts them fresh. The new file opens with a purge
at step 0, so a TensorBoard already showing the run drops what it had read; emptied,
not removed, since TensorBoard's Python loader stops reading a run whose current file
disappears.
"""

import hashlib
import json
import math
import os
import time

from snnflow.runs import chosen_epoch, is_number

# metrics.csv column -> tag
METRIC_TAGS = {
    "train_loss": "loss/train", "val_loss": "loss/validation", "test_loss": "loss/test",
    "train_acc": "accuracy/train", "val_acc": "accuracy/validation",
    "test_acc": "accuracy/test", "lr": "learning_rate",
    "train_seconds": "time/train_seconds", "test_seconds": "time/test_seconds",
    "train_joules": "energy/train_joules", "test_joules": "energy/test_joules",
}
SAMPLES_PER_SECOND_TAG = "time/train_samples_per_second"
# layers.csv column -> tag of a spiking layer ("{layer}": conv1 ... fc2)
LAYER_TAGS = {"firing_rate": "layers/{layer}/firing_rate",
              "synaptic_ops": "layers/{layer}/synaptic_ops_per_sample"}
RUNNING_LOSS_TAG = "loss/train_running"
# written once the last epoch is trained: the HParams view's metrics
FINAL_TAGS = {"final": "hparams/test_acc_final", "chosen": "hparams/test_acc_chosen",
              "chosen_epoch": "hparams/chosen_epoch"}
POINTS_PER_EPOCH = 20  # of the running training loss
FLUSH_SECONDS = 30
EVENT_FILE_PREFIX = "events.out.tfevents."
ATTEMPT_PREFIX = "settings-"


def attempt_folder(folder, origin):
    """The folder of the curves of a run computed from `origin` (snnflow.train.loop's
    Job.computed_from) inside the run's `folder`: `settings-<hash of origin>`."""
    digest = hashlib.sha256(json.dumps(origin, sort_keys=True, default=str).encode())
    return folder / f"{ATTEMPT_PREFIX}{digest.hexdigest()[:10]}"


def hparams_of(settings, sweep=None):
    """The run's settings as TensorBoard hparams: numbers, strings and booleans (a
    list as its text; a setting without a value is left out, so that a key's values
    are one type across runs and the HParams view keeps it)."""
    values = {"run": settings.name if sweep is None else f"{sweep['name']}/{sweep['variant']}"}
    if sweep is not None:
        values["sweep"] = sweep["name"]
    for key, value in settings.as_config().items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = str(value).lower()  # else a number: 1.0 or 0.0
        values[key] = value if isinstance(value, (int, float, str)) else str(value)
    return values


def _earlier_attempts_files(folder):
    """The event files in `folder` of earlier attempts, the empty ones removed."""
    found = []
    if not folder.is_dir() or folder.is_symlink():
        return found
    for path in sorted(folder.iterdir()):
        if not path.name.startswith(EVENT_FILE_PREFIX):
            continue
        if path.is_symlink() or not path.is_file() or path.stat().st_size == 0:
            path.unlink()
        else:
            found.append(path)
    return found


def _empty(path):
    """Truncate `path` (never a file a link points to)."""
    handle = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        os.ftruncate(handle, 0)
    finally:
        os.close(handle)


class Curves:
    """The event files of one run in `folder`; `n_batches` training batches of
    `batch_size` of `n_train` samples an epoch."""

    def __init__(self, folder, hparams, n_train, batch_size):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        self.n_train, self.batch_size = n_train, batch_size
        self.n_batches = math.ceil(n_train / batch_size)
        self.every = max(1, self.n_batches // POINTS_PER_EPOCH)
        self.points = []  # this epoch's running-loss points: (step, loss, wall time)
        self._last = (0.0, 0)  # loss sum and samples at the last point
        if folder.is_symlink():
            folder.unlink()
        self.earlier = _earlier_attempts_files(folder)
        self.writer = SummaryWriter(str(folder), purge_step=0, flush_secs=FLUSH_SECONDS)
        _, session_start, self.session_end = hparams_summaries(
            hparams, {tag: 0.0 for tag in FINAL_TAGS.values()})
        self.writer.file_writer.add_summary(session_start)

    @classmethod
    def open(cls, folder, settings, sweep, n_train, history, log):
        """The curves of a run in `folder` with `history` (one dict per finished epoch, as
        snnflow.train.loop.fit keeps it) rewritten; None, said in the log, when
        TensorBoard is not installed or the folder cannot hold the curves (read-only, a
        folder where an event file belongs): the curves are optional, the run trains on
        without them."""
        try:
            curves = cls(folder, hparams_of(settings, sweep), n_train, settings.batch_size)
        except ImportError as err:
            log(f"TensorBoard curves: off, {err.name or 'tensorboard'} is not importable - "
                "install the project's dependencies (pip install -e .) to watch runs live")
            return None
        except OSError as err:
            where = err.filename or folder
            log(f"warning: TensorBoard curves: off, {where}: cannot be written "
                f"({err.strerror or err}) - make {folder} a writable folder of its own to "
                "watch this run live; it trains on without its curves")
            return None
        for row in history:
            for step, loss, when in row.get("running", ()):
                curves.writer.add_scalar(RUNNING_LOSS_TAG, loss, step, walltime=when)
            curves.epoch(row)
        if history:
            log(f"TensorBoard curves in {folder}: the checkpoint's {len(history)} epoch(s) "
                f"written again, continuing at epoch {len(history) + 1}")
        elif curves.earlier:
            log(f"TensorBoard curves in {folder}: starting fresh, the earlier curves there "
                "are dropped")
        elif others := sorted(p.name for p in folder.parent.glob(f"{ATTEMPT_PREFIX}*")
                              if p != folder):
            log(f"TensorBoard curves in {folder}: a new TensorBoard run for these settings; "
                f"the run's earlier ones stay apart ({', '.join(others)})")
        else:
            log(f"TensorBoard curves in {folder}")
        curves.writer.flush()
        for path in curves.earlier:
            _empty(path)
        return curves

    def start_epoch(self):
        self.points = []
        self._last = (0.0, 0)

    def batch(self, epoch, b, sums):
        """After training batch `b` of `epoch`, every few batches: the mean training loss
        since the last point (read from the epoch's sums on the device: snnflow.train.steps)."""
        if b % self.every or b == self.n_batches:
            return
        total, samples = sums.loss.item(), min(b * self.batch_size, self.n_train)
        loss = (total - self._last[0]) / max(samples - self._last[1], 1)
        self._last = (total, samples)
        point = ((epoch - 1) * self.n_batches + b, loss, time.time())
        self.points.append(point)
        self.writer.add_scalar(RUNNING_LOSS_TAG, loss, point[0], walltime=point[2])

    def epoch(self, row):
        """An epoch's points, from its row (metrics columns, its "layers" rows and, as
        `fit` adds it, "wall_time"), flushed."""
        epoch, wall = row["epoch"], row.get("wall_time")
        for column, tag in METRIC_TAGS.items():
            if is_number(row[column]):
                self.writer.add_scalar(tag, row[column], epoch, walltime=wall)
        if is_number(row["train_seconds"]) and row["train_seconds"] > 0:
            self.writer.add_scalar(SAMPLES_PER_SECOND_TAG, self.n_train / row["train_seconds"],
                                   epoch, walltime=wall)
        for layer in row["layers"]:
            if not is_number(layer["firing_rate"]):
                continue  # not a spiking layer (the CNN's)
            for column, tag in LAYER_TAGS.items():
                self.writer.add_scalar(tag.format(layer=layer["layer"]), layer[column], epoch,
                                       walltime=wall)
        self.writer.flush()

    def finish(self, history):
        """The final and chosen epoch's test accuracy (the HParams view's metrics) and
        the session's end."""
        if history:
            chosen, _ = chosen_epoch(history)
            last = history[-1]["epoch"]
            for key, value in (("final", history[-1]["test_acc"]),
                               ("chosen", chosen["test_acc"]),
                               ("chosen_epoch", chosen["epoch"])):
                self.writer.add_scalar(FINAL_TAGS[key], value, last)
            self.writer.file_writer.add_summary(self.session_end)

    def close(self):
        self.writer.close()
