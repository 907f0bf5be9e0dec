"""A training job killed with SIGKILL resumes after its last finished epoch, and the
final metrics equal those of an uninterrupted run (times aside); its curves hold each
epoch once and the killed attempt's log lines stay on disk. (Rerun with another CPU
thread count it starts fresh instead: tests/workflow/test_data_changes.py.)"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import REPO, event_scalars
from snnflow.train.curves import METRIC_TAGS

pytestmark = pytest.mark.workflow

EPOCHS = 5
CONFIG = {
    "synthetic": {"enabled": True, "train_per_class": 40, "test_per_class": 4, "seed": 1},
    "snn": {"T": [8], "main_T": 8, "epochs": EPOCHS, "batch_size": 16, "lr": 0.005,
            "channels": [8, 16, 16], "hidden": 32},
}
TARGET = "results/runs/snn_T8/seed0/metrics.csv"


def workflow_copy(path):
    path.mkdir()
    shutil.copy(REPO / "config.yaml", path / "config.yaml")
    (path / "resume.yaml").write_text(yaml.safe_dump(CONFIG))
    return path


def snakemake_command(*args, cores=2):
    return [sys.executable, "-m", "snakemake", *args, "-s", str(REPO / "Snakefile"),
            "--cores", str(cores), "--configfile", "resume.yaml"]


def wait_for_line(log, words, process, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and words in log.read_text():
            return
        if process.poll() is not None:
            raise AssertionError(f"snakemake ended before '{words}' appeared")
        time.sleep(0.02)
    raise AssertionError(f"'{words}' did not appear in {log}")


def test_sigkill_then_rerun_continues_at_the_next_epoch(tmp_path):
    rerun_cores = 2
    straight = workflow_copy(tmp_path / "straight")
    subprocess.run(snakemake_command(TARGET, cores=rerun_cores), cwd=straight, check=True,
                   capture_output=True)

    killed = workflow_copy(tmp_path / "killed")
    log = killed / "results" / "logs" / "train_snn_T8_seed0.log"
    process = subprocess.Popen(snakemake_command(TARGET), cwd=killed, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_line(log, f"epoch 1/{EPOCHS}:", process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_lines = log.read_text().splitlines()
    done = sum(f"/{EPOCHS}: train loss" in line for line in killed_lines)
    assert done < EPOCHS, "the job finished before it could be killed"

    # what the README tells a user to do after a killed run
    subprocess.run(snakemake_command("--unlock"), cwd=killed, check=True, capture_output=True)
    rerun = subprocess.run(snakemake_command(TARGET, "--rerun-incomplete", cores=rerun_cores),
                           cwd=killed, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"after epoch {done}" in log.read_text()
    assert f"epoch {done + 1}/{EPOCHS}:" in log.read_text()

    columns = ["train_seconds", "test_seconds"]
    expected = pd.read_csv(straight / TARGET).drop(columns=columns)
    resumed = pd.read_csv(killed / TARGET).drop(columns=columns)
    pd.testing.assert_frame_equal(resumed, expected)

    # the curves: each epoch once in the event files, as in metrics.csv
    (curves_folder,) = (killed / "results" / "tensorboard" / "runs" / "snn_T8" / "seed0").iterdir()
    points = event_scalars(curves_folder)
    for column in ("train_loss", "test_acc"):
        assert [step for tag, step, _ in points if tag == METRIC_TAGS[column]] == \
            list(range(1, EPOCHS + 1))
    # the killed attempt's lines, then the resumed one's, beside the checkpoint
    attempts = (killed / "results" / "checkpoints" / "snn_T8_seed0.log").read_text()
    first, second = attempts.split("===== attempt started")[1:]
    assert all(line in first for line in killed_lines)
    assert f"after epoch {done}" in second and f"epoch {EPOCHS}/{EPOCHS}:" in second


def test_a_second_run_started_after_unlock_stops_and_the_first_ends_whole(tmp_path):
    """`--unlock` while a study trains lets a second Snakemake start the same training
    job: it stops with one line naming the first, and the first's files end whole, each
    epoch once."""
    study = workflow_copy(tmp_path / "study")
    epochs = 40  # the first job still trains while the second starts
    (study / "resume.yaml").write_text(yaml.safe_dump(
        {**CONFIG, "snn": {**CONFIG["snn"], "epochs": epochs}}))
    log = study / "results" / "logs" / "train_snn_T8_seed0.log"
    first = subprocess.Popen(snakemake_command(TARGET), cwd=study, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_line(log, f"epoch 1/{epochs}:", first)
        subprocess.run(snakemake_command("--unlock"), cwd=study, check=True,
                       capture_output=True)
        second = subprocess.run(snakemake_command(TARGET, "--rerun-incomplete", cores=1),
                                cwd=study,
                                capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first job ended before the second started"
        assert second.returncode != 0
        refusal = [line for line in (second.stdout + second.stderr).splitlines()
                   if "another job is training this run" in line]
        assert refusal and refusal[0].startswith(
            "error: results/checkpoints/snn_T8_seed0.pt: another job is training this run "
            "(process "), second.stdout + second.stderr
        output, _ = first.communicate(timeout=300)
        assert first.returncode == 0, output
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    metrics = pd.read_csv(study / TARGET)
    assert list(metrics["epoch"]) == list(range(1, epochs + 1))
    layers = pd.read_csv(study / "results" / "runs" / "snn_T8" / "seed0" / "layers.csv")
    assert not layers.duplicated(["epoch", "layer"]).any() and len(layers) == 5 * epochs
    attempts = (study / "results" / "checkpoints" / "snn_T8_seed0.log").read_text()
    assert f"done: {epochs} epochs" in attempts  # the first job's lines, all of them
