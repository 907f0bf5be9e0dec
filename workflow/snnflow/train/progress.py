"""A training job's progress in its log: every PROGRESS_EVERY_SECONDS and at each
epoch's end, the epoch, the batch, samples per second, the time this job has run and
when it should end; at the end one summary line.

The estimate extrapolates this job's own pace: the training batches run so far, and
once an epoch has ended, its evaluation too (until then evaluation is not counted).
"""

import time
from datetime import timedelta

from snnflow.runs import chosen_epoch

PROGRESS_EVERY_SECONDS = 30.0


def _duration(seconds):
    return str(timedelta(seconds=round(max(0.0, seconds))))


class Progress:
    """Progress of the epochs `first_epoch`..`epochs` of `n_batches` batches each."""

    def __init__(self, first_epoch, epochs, n_batches, batch_size, log, clock=time.monotonic,
                 wall_clock=time.time):
        self.first_epoch, self.epochs, self.n_batches = first_epoch, epochs, n_batches
        self.batch_size, self.log, self.clock, self.wall_clock = batch_size, log, clock, wall_clock
        self.started = self.last_line = clock()
        self.batches_done = 0           # by this job
        self.test_seconds = []
        self.epoch_started = self.started
        self.position = (first_epoch, 0)

    def start_epoch(self, epoch):
        self.epoch_started = self.clock()
        self.position = (epoch, 0)

    def where(self):
        """Where the job is: "epoch 3 batch 40" (the batches it has finished)."""
        epoch, b = self.position
        return f"epoch {epoch} batch {b} of {self.n_batches}"

    def batch(self, epoch, b):
        """After batch `b` of `epoch`: a line when one is due."""
        self.position = (epoch, b)
        self.batches_done += 1
        now = self.clock()
        if now - self.last_line < PROGRESS_EVERY_SECONDS:
            return
        self.last_line = now
        rate = b * self.batch_size / max(now - self.epoch_started, 1e-9)
        self.log(f"epoch {epoch}/{self.epochs} batch {b}/{self.n_batches} | {rate:.0f} samples/s"
                 f" | {self._timing(epoch, b)}")

    def end_epoch(self, epoch, test_seconds):
        """The timing part of the epoch's line, which the caller logs."""
        self.test_seconds.append(test_seconds)
        self.last_line = self.clock()
        return self._timing(epoch, self.n_batches, evaluated=True)

    def _timing(self, epoch, b, evaluated=False):
        """"elapsed 0:05:12 | ends ~14:32 (in 1:10:05)" after batch `b` of `epoch`."""
        now = self.clock()
        elapsed = now - self.started
        per_batch = (now - self.started - sum(self.test_seconds)) / max(self.batches_done, 1)
        batches_left = (self.epochs - epoch) * self.n_batches + (self.n_batches - b)
        evaluations_left = self.epochs - epoch + (0 if evaluated else 1)
        per_evaluation = (sum(self.test_seconds) / len(self.test_seconds)
                          if self.test_seconds else 0.0)
        left = batches_left * per_batch + evaluations_left * per_evaluation
        if epoch >= self.epochs and evaluated:
            return f"elapsed {_duration(elapsed)}"
        end = time.strftime("%H:%M", time.localtime(self.wall_clock() + left))
        unevaluated = "" if self.test_seconds else ", evaluation not yet timed"
        return f"elapsed {_duration(elapsed)} | ends ~{end} (in {_duration(left)}{unevaluated})"

    def summary(self, history):
        """The job's last line: epochs, the last and the chosen epoch's test accuracy
        (snnflow.runs.chosen_epoch), time."""
        if not history:
            return "done: no epoch to train"
        chosen, how = chosen_epoch(history)
        trained = len(history) - self.first_epoch + 1
        return (f"done: {len(history)} epochs ({trained} in this job), last test acc "
                f"{history[-1]['test_acc']:.4f}, {chosen['test_acc']:.4f} at epoch "
                f"{chosen['epoch']} ({how}), {_duration(self.clock() - self.started)} in "
                "this job")
