"""A training job's progress lines and end summary (snnflow.train.progress), on a fake
clock."""

import time

from snnflow.train import progress as progress_module
from snnflow.train.progress import Progress


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_line_every_30_seconds_with_rate_elapsed_and_the_end():
    clock, lines = Clock(), []
    wall = 1_800_000_000.0
    p = Progress(1, 3, 10, 256, lines.append, clock=clock, wall_clock=lambda: wall)
    p.start_epoch(1)
    for b in range(1, 11):
        clock.now += 4.0  # 4 s per batch of 256
        p.batch(1, b)
    assert len(lines) == 1  # after batch 8 (32 s)
    assert p.where() == "epoch 1 batch 10 of 10"
    end = time.strftime("%H:%M", time.localtime(wall + 22 * 4.0 + 3 * 0))
    assert lines[0] == (f"epoch 1/3 batch 8/10 | 64 samples/s | elapsed 0:00:32 | ends ~{end} "
                        "(in 0:01:28, evaluation not yet timed)")
    clock.now += 10.0  # the evaluation
    timing = p.end_epoch(1, 10.0)
    # 20 batches of 4 s and 2 evaluations of 10 s left
    assert timing.endswith("(in 0:01:40)") and timing.startswith("elapsed 0:00:50 | ends ~")


def test_the_last_epoch_ends_with_the_elapsed_time_and_a_summary():
    clock, lines = Clock(), []
    p = Progress(2, 2, 1, 16, lines.append, clock=clock)
    clock.now += 5.0
    p.batch(2, 1)
    assert p.end_epoch(2, 1.0) == "elapsed 0:00:05"
    history = [{"epoch": 1, "test_acc": 0.9, "val_acc": "", "val_loss": ""},
               {"epoch": 2, "test_acc": 0.85, "val_acc": "", "val_loss": ""}]
    assert p.summary(history) == ("done: 2 epochs (1 in this job), last test acc 0.8500, "
                                  "0.9000 at epoch 1 (chosen on test (optimistic)), 0:00:05 "
                                  "in this job")
    validated = [{**history[0], "val_acc": 0.7, "val_loss": 0.2},
                 {**history[1], "val_acc": 0.7, "val_loss": 0.1}]  # a tie: the lower loss
    assert "0.8500 at epoch 2 (chosen on validation)" in p.summary(validated)
    assert progress_module.PROGRESS_EVERY_SECONDS == 30.0
