"""Hostile input and faults, round 2, through Snakemake: no writes outside the project
through planted links, bounded archives, OS errors named in one line (in the job's log
too), signals that leave a line and no partial output, studies that cannot mean anything
refused. docs/troubleshooting.md lists the same cases."""

import json
import re
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from conftest import REPO, make_nmnist_tree
from test_bad_input import (TINY_SNN, TRAIN_SNN_T4, expect_failure, mounted_tmpfs,
                            place_archive, run_target)

pytestmark = pytest.mark.workflow


@pytest.fixture
def nmnist(tmp_path, rng):
    make_nmnist_tree(tmp_path / "nmnist", 1, rng)
    return tmp_path / "nmnist"


# --- config values that pass the types but cannot mean anything, or that YAML misreads


@pytest.mark.parametrize("config, words", [
    ({"seeds": [2 ** 64]}, "config key seeds[0]: 18446744073709551616 is greater than the "
                           "maximum of 9223372036854775807"),
    ({"snn": {"v_threshold": 0.5, "v_reset": 1.0}},
     "config key snn.v_threshold: 0.5 is not above snn.v_reset 1.0"),
    ({"energy": {"e_ac_pj": 1e308}}, "config key energy.e_ac_pj: 1e+308 is greater than the "
                                     "maximum of 1000000.0"),
])
def test_a_meaningless_value_stops_before_any_job(tmp_path, config, words):
    expect_failure(tmp_path, "results/events/nmnist.h5", config, words)
    assert not (tmp_path / "results").exists()


def snakemake_in(workdir, *args, env=None):
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                             "--cores", "1", *args], cwd=workdir, capture_output=True,
                            text=True, env=env)
    return result.returncode, result.stdout + result.stderr


def error_lines(output):
    return [line for line in output.splitlines() if line.startswith("error: ")]


def test_yaml_octal_numbers_are_refused_naming_the_file(tmp_path):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (tmp_path / "case.yaml").write_text("snn:\n  T: [010, 016]\n  main_T: 8\n")
    rc, output = snakemake_in(tmp_path, "-n", "--configfile", "case.yaml")
    assert rc == 1 and error_lines(output) == [
        f"error: config key snn.T[0]: 010 in {tmp_path / 'case.yaml'} is read by YAML as the "
        "octal number 8 - write it without the leading zero (10) or as 8"]


BOMB = "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10) if i else '1'}]\n"
               for i in range(9))  # 10**9 values


@pytest.mark.parametrize("text, words", [
    ("snn:\n  epochs: 1\n  lr: 0.01\n  epochs: 100\n",
     "case.yaml: config key snn.epochs is given twice, on line 2 and line 4; YAML would "
     "keep only the second silently - keep one"),
    ("snn:\n  epochs: 1\ncnn:\n  epochs: 1\nsnn:\n  lr: 0.01\n",
     "case.yaml: config key snn is given twice, on line 1 and line 5"),
    (BOMB, "case.yaml: line 6: its aliases expand to more than 100000 values (a config file "
           "holds a few hundred) - write the values out, without aliases"),
])
def test_what_yaml_would_read_otherwise_is_refused_naming_file_key_and_lines(tmp_path, text,
                                                                             words):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (tmp_path / "case.yaml").write_text(text)
    start = time.monotonic()
    rc, output = snakemake_in(tmp_path, "-n", "--configfile", "case.yaml")
    lines = error_lines(output)
    assert rc == 1 and len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / words}"), \
        output
    assert time.monotonic() - start < 60


def test_a_sweep_file_that_is_a_fifo_stops_the_workflow_at_once(tmp_path):
    os.mkfifo(tmp_path / "rows.tsv")
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (tmp_path / "case.yaml").write_text("sweep:\n  file: rows.tsv\n")
    rc, output = snakemake_in(tmp_path, "-n", "--configfile", "case.yaml")
    assert rc == 1 and error_lines(output) == [
        "error: config key sweep.file: rows.tsv is not a regular file - point it at a "
        "tab-separated table of a few rows"], output


@pytest.mark.parametrize("content, words", [
    ("", "error: config.yaml: empty - it must map config keys to values"),
    ("[4, 8]\n", "error: config.yaml: a list, not config keys - it must map config keys"),
])
def test_a_config_file_that_is_not_a_mapping_is_named(tmp_path, content, words):
    (tmp_path / "config.yaml").write_text(content)
    rc, output = snakemake_in(tmp_path, "-n")
    assert rc == 1 and error_lines(output)[0].startswith(words), output


def test_a_negative_number_given_with_config_is_refused_as_out_of_range(tmp_path):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    rc, output = snakemake_in(tmp_path, "-n", "--config", "snn={lr: -1}")
    assert rc == 1 and error_lines(output)[0].startswith(
        "error: config key snn.lr: -1 is less than or equal to the minimum of 0")


def test_a_folder_under_the_home_folder_is_expanded(tmp_path, rng):
    make_nmnist_tree(tmp_path / "home" / "nmnist", 1, rng)
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (tmp_path / "case.yaml").write_text("nmnist_dir: ~/nmnist\n")
    rc, output = snakemake_in(tmp_path, "-n", "results/events/nmnist.h5", "--configfile",
                              "case.yaml", env={**os.environ, "HOME": str(tmp_path / "home")})
    assert rc == 0 and "nmnist_events" in output, output


# --- recordings, archives, caches and folders the system or the format refuses


def test_a_recording_that_is_a_link_loop_is_named(tmp_path, nmnist):
    (nmnist / "Train" / "0" / "loop.bin").symlink_to("loop.bin")
    expect_failure(tmp_path, "results/events/nmnist.h5", {"nmnist_dir": str(nmnist)},
                   f"{nmnist}/Train/0/loop.bin: cannot be read (Too many levels of symbolic "
                   "links) - make it readable, or remove it if it is not a recording")


def without_root_file_access():
    """A command prefix that runs as root without the capabilities that let root read
    any file (so a file's permissions apply), or a skip where that is not possible."""
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    try:
        probe = subprocess.run([*prefix, "sh", "-c", f"{sys.executable} -c 'import snakemake'"],
                               capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("setpriv (util-linux) is not installed")
    if probe.returncode != 0:
        pytest.skip(f"cannot drop root's file access here: {probe.stderr.strip()[-200:]}")
    return prefix


def test_a_recording_the_user_may_not_read_stops_the_events_job(tmp_path, nmnist):
    secret = nmnist / "Test" / "3" / "00000.bin"
    secret.chmod(0o000)
    expect_failure(tmp_path, "results/events/nmnist.h5", {"nmnist_dir": str(nmnist)},
                   f"{secret}: cannot be read (Permission denied) - make it readable",
                   log="nmnist_events", prefix=without_root_file_access())


def test_a_read_only_checkpoint_folder_stops_the_job_before_its_first_epoch(tmp_path, nmnist):
    prefix = mounted_tmpfs(tmp_path / "results" / "checkpoints", "64k")
    prefix[-1] = prefix[-1].replace("-o size=64k", "-o ro,size=64k")
    expect_failure(tmp_path, TRAIN_SNN_T4, {"nmnist_dir": str(nmnist), "snn": TINY_SNN},
                   "results/checkpoints: cannot be written (Read-only file system) - make it "
                   "writable", log="train_snn_T4_seed0", prefix=prefix)
    log = (tmp_path / "results" / "logs" / "train_snn_T4_seed0.log").read_text()
    assert "epoch 1/" not in log


@pytest.mark.parametrize("planted", [
    "results/benchmarks/train_snn_T4_seed0.tsv",  # Snakemake writes it through the link
    "results/checkpoints/snn_T4_seed0.log",       # the run's every attempt's log
    "results/logs",                               # a whole folder elsewhere
])
def test_a_link_planted_inside_the_results_folder_stops_the_workflow_before_any_job(
        tmp_path, nmnist, planted):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("precious\n")
    target = outside if planted.endswith("logs") else outside / "precious.txt"
    (tmp_path / planted).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / planted).symlink_to(target)
    expect_failure(tmp_path, TRAIN_SNN_T4, {"nmnist_dir": str(nmnist), "snn": TINY_SNN},
                   f"error: {planted}: a symbolic link inside the results folder, where jobs "
                   f"write through it (to {target}) - remove it: the pipeline makes no links "
                   "there")
    assert [p.name for p in outside.iterdir()] == ["precious.txt"]
    assert (outside / "precious.txt").read_text() == "precious\n"
    assert not (tmp_path / "results" / "events").exists()  # no job ran


def test_an_archive_member_larger_than_a_recording_can_be_is_refused_unread(tmp_path):
    def build(path):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("Train/0/00001.bin", bytes(500))
            zf.writestr("Train/1/00002.bin", bytes(2 << 20))  # 2 MiB of zeros, 2 kB packed

    archive = place_archive(tmp_path, build)
    assert archive.stat().st_size < 10_000
    expect_failure(tmp_path, "results/raw/NMNIST/Train", {},
                   "Train/1/00002.bin unpacks to 2097152 bytes, more than 1048576; N-MNIST's "
                   "recordings are a few kB", log="unpack_nmnist_Train")


def test_a_frame_cache_larger_than_the_machines_memory_is_refused_before_writing(tmp_path,
                                                                                  nmnist):
    config = {"nmnist_dir": str(nmnist), "snn": {"T": [10 ** 7], "main_T": 10 ** 7}}
    expect_failure(tmp_path, "results/frames/nmnist_T10000000.h5", config,
                   "config key snn.T: 10000000 makes a frame cache of 462 GB (20 recordings x "
                   "10000000 frames x 2312 bytes)", log="frames_T10000000")


def test_a_network_too_large_for_memory_is_refused_before_allocating(tmp_path, nmnist):
    config = {"nmnist_dir": str(nmnist), "snn": {**TINY_SNN, "hidden": 10 ** 9}}
    lines = expect_failure(tmp_path, TRAIN_SNN_T4, config,
                           "config key snn.hidden: 1000000000 makes this run need about",
                           log="train_snn_T4_seed0")
    assert "parameters with their gradients and Adam's moments" in lines[0]


def test_a_lock_folder_planted_as_a_link_is_refused_and_never_re_moded(tmp_path, nmnist,
                                                                        monkeypatch):
    elsewhere = tmp_path / "someone-elses"
    elsewhere.mkdir(mode=0o755)
    planted = tmp_path / "locks"
    planted.symlink_to(elsewhere)
    monkeypatch.setenv("SNNFLOW_GPU_LOCK_DIR", str(planted))
    config = {"nmnist_dir": str(nmnist), "snn": TINY_SNN, "gpus": 1, "device": "auto"}
    expect_failure(tmp_path, TRAIN_SNN_T4, config,
                   f"error: {planted}: is a symbolic link, so GPU slots cannot be claimed there "
                   "safely - remove it, or set SNNFLOW_GPU_LOCK_DIR", log="train_snn_T4_seed0")
    assert elsewhere.stat().st_mode & 0o7777 == 0o755 and not list(elsewhere.iterdir())


# --- what a finished study's later stages refuse to read


STUDY = {"synthetic": {"enabled": True, "train_per_class": 3, "test_per_class": 2, "seed": 0},
         "snn": {"T": [4], "main_T": 4, "epochs": 1, "batch_size": 10, "channels": [4, 8, 8],
                 "hidden": 16},
         "cnn": {"epochs": 1, "batch_size": 10, "channels": [4, 8, 8], "hidden": 16},
         "nir": {"enabled": False, "samples": None},  # tests/workflow/test_workflow.py runs them
         "neurobench": {"enabled": False, "samples": None}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    rc, output = run_target(workdir, "results/report.html", STUDY)
    assert rc == 0, output
    return workdir


@pytest.fixture
def damaged(study):
    """Damage a file of the finished study for one test; put it back afterwards."""
    saved = {}

    def damage(relative, write):
        path = study / relative
        saved.setdefault(path, path.read_bytes())
        write(path)
        return relative
    yield damage
    for path, content in saved.items():
        path.write_bytes(content)


def forced(study, rule, target, words, log):
    rc, output = run_target(study, target, STUDY, "--forcerun", rule)
    assert rc == 1, output
    assert any(words in line for line in error_lines(output)), output
    logged = (study / "results" / "logs" / f"{log}.log").read_text().splitlines()
    assert any(words in line and line.startswith("error: ") for line in logged), logged
    assert not (study / target).exists()


def test_a_run_json_of_the_wrong_types_stops_the_report(study, damaged):
    def write(path):
        info = json.loads(path.read_text())
        path.write_text(json.dumps({**info, "seed": "zero"}))
    path = damaged("results/runs/cnn/seed0/run.json", write)
    forced(study, "report", "results/report.html",
           f"{path}: seed is 'zero', not a non-negative integer - rerun its training job",
           "report")


def test_examples_holding_a_pickle_stop_the_report(study, damaged):
    path = damaged("results/data/examples.npz", lambda p: np.savez(
        p.open("wb"), names=np.array([{"a": 1}] * 10, dtype=object)))
    forced(study, "report", "results/report.html",
           f"{path}: cannot be read as the data summary's examples (Object arrays cannot be "
           "loaded when allow_pickle=False)", "report")


def test_a_frame_cache_of_the_wrong_shape_stops_the_training_job(study, damaged):
    def write(path):
        with h5py.File(path, "a") as h5:
            frames = h5["train/frames"][...]
            del h5["train/frames"]
            h5["train/frames"] = frames[..., :30, :30]
    path = damaged("results/frames/nmnist_T4.h5", write)
    forced(study, "train_snn", "results/runs/snn_T4/seed0/metrics.csv",
           f"{path}: train/frames holds uint8 samples of shape 4x2x30x30, not unsigned "
           "integers of 4x2x34x34 - delete it and rerun", "train_snn_T4_seed0")


# --- signals: a scheduler's SIGTERM (time limit, scancel) and Ctrl-C's SIGINT


def job_pid(script, workdir, timeout=120):
    """The process id of the running job whose Snakemake script is `script`, run in
    `workdir` (other tests may run the same script at the same time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                here = os.readlink(entry / "cwd") == os.path.realpath(workdir)
            except OSError:
                continue
            if here and len(command) > 1 and command[1].endswith(f".{script}.py".encode()):
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"no {script} job appeared")


def wait_for(path, words, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and words in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"'{words}' did not appear in {path}")


def test_a_sigterm_to_a_training_job_leaves_its_line_its_checkpoint_and_no_outputs(
        tmp_path):
    stop = signal.SIGTERM  # a scheduler's time limit or scancel
    config = {**STUDY, "snn": {**STUDY["snn"], "epochs": 200}}
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(config))
    target = "results/runs/snn_T4/seed0/metrics.csv"
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", target, "-s", str(REPO / "Snakefile"), "--cores",
         "1", "--configfile", "case.yaml"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    log = tmp_path / "results" / "logs" / "train_snn_T4_seed0.log"
    wait_for(log, "epoch 2/200:")
    os.kill(job_pid("train_snn", tmp_path), stop)
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0
    name = signal.Signals(stop).name
    lines = [line for line in log.read_text().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and lines[0].startswith(
        f"error: results/logs/train_snn_T4_seed0.log: interrupted by {name} at epoch ")
    assert lines[0].endswith(" - rerun with --rerun-incomplete to resume")
    assert lines[0] in output
    assert not (tmp_path / "results" / "runs" / "snn_T4" / "seed0").exists() or not list(
        (tmp_path / "results" / "runs" / "snn_T4" / "seed0").iterdir())
    assert (tmp_path / "results" / "checkpoints" / "snn_T4_seed0.pt").exists()


def test_a_sigint_to_the_report_job_leaves_its_line_and_no_page(study):
    """Ctrl-C's SIGINT, sent to the job alone (a terminal sends it to Snakemake too)."""
    log = study / "results" / "logs" / "report.log"
    log.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "results/report.html", "-s",
         str(REPO / "Snakefile"), "--cores", "1", "--configfile", "case.yaml", "--forcerun",
         "report"], cwd=study, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid = job_pid("report", study)
    wait_for(log, "")  # the job has opened its log: it handles signals from here on
    time.sleep(0.5)
    os.kill(pid, signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode != 0
    log = log.read_text()
    assert "error: results/logs/report.log: interrupted by SIGINT - rerun with " \
           "--rerun-incomplete to resume" in log
    assert not (study / "results" / "report.html").exists()
    rc, output = run_target(study, "results/report.html", STUDY)  # and it comes back
    assert rc == 0 and (study / "results" / "report.html").exists(), output


def test_a_signal_that_lands_in_a_finalizer_still_ends_the_job_as_interrupted(tmp_path):
    """Python only prints an exception raised in a finalizer or a weakref callback (the
    report job once met SIGINT in an import's module lock and went on to exit 0): the
    job remembers the signal and ends as interrupted all the same."""
    script = """
import gc, os, signal, sys, types
sys.path.insert(0, sys.argv[1])
from snnflow.jobs.run import run_job

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside __del__
        for _ in range(1000):
            pass

def main(log):
    Finalized()
    gc.collect()
    log("finished the work")

snakemake = types.SimpleNamespace(log=[sys.argv[2]], output=[])
run_job(snakemake, main)
"""
    log = tmp_path / "job.log"
    result = subprocess.run([sys.executable, "-c", script, str(REPO / "workflow"), str(log)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stderr.strip().endswith(f"error: {log}: interrupted by SIGTERM - rerun "
                                          "with --rerun-incomplete to resume")


def test_a_job_never_appends_to_its_attempts_log_through_a_link(tmp_path):
    """Behind the check before any job (a link planted while the workflow runs): the
    training job's log of every attempt is opened without following a link."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    (tmp_path / "run.log").symlink_to(outside)
    script = """
import sys, types
sys.path.insert(0, sys.argv[1])
from snnflow.jobs.run import run_job
snakemake = types.SimpleNamespace(log=[sys.argv[2]], output=[])
run_job(snakemake, lambda log: log("trained"), attempts_log=sys.argv[3])
"""
    result = subprocess.run([sys.executable, "-c", script, str(REPO / "workflow"),
                             str(tmp_path / "job.log"), str(tmp_path / "run.log")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: {tmp_path / 'run.log'}: is a symbolic link - "
                                     "remove it: the log of every attempt of this run is "
                                     "written there, never through a link")
    assert outside.read_text() == "precious\n"


def test_a_full_disk_under_the_synthetic_data_is_one_line(tmp_path):
    """numpy's tofile reports a short write without an errno: still a full disk."""
    prefix = mounted_tmpfs(tmp_path / "results" / "raw", "64k")
    config = {"synthetic": {"enabled": True, "train_per_class": 20, "test_per_class": 5,
                            "seed": 0}}
    lines = expect_failure(tmp_path, "results/raw/synthetic", config,
                           "cannot be written, the disk is full - free space on "
                           f"{tmp_path}/results/raw and rerun", log="synthetic_dataset",
                           prefix=prefix)
    assert len(lines) == 1
    log = (tmp_path / "results" / "logs" / "synthetic_dataset.log").read_text()
    assert "Traceback" not in log


def test_a_full_log_folder_still_gives_the_terminal_one_line(tmp_path):
    prefix = mounted_tmpfs(tmp_path / "results" / "logs", "4k")
    prefix[-1] = prefix[-1].replace(" && exec", f" && head -c 1000000 /dev/zero > "
                                                f"{tmp_path}/results/logs/filler; exec")
    config = {"synthetic": {"enabled": True, "train_per_class": 2, "test_per_class": 1,
                            "seed": 0}}
    rc, output = run_target(tmp_path, "results/raw/synthetic", config, prefix=prefix)
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert rc == 1 and len(lines) == 1 and "cannot be written, the disk is full" in lines[0], \
        output
    assert "Traceback" not in output.split("Removing output files")[0], output


def test_a_log_that_cannot_be_opened_still_gives_the_terminal_one_line(tmp_path):
    (tmp_path / "job.log").mkdir()  # not a file: it cannot be opened for writing
    script = """
import sys, types
sys.path.insert(0, sys.argv[1])
from snnflow.jobs.run import run_job
run_job(types.SimpleNamespace(log=[sys.argv[2]], output=[]), lambda log: log("work"))
"""
    result = subprocess.run([sys.executable, "-c", script, str(REPO / "workflow"),
                             str(tmp_path / "job.log")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: {tmp_path / 'job.log'}: cannot be written (Is a "
                                     "directory) - make its folder writable (and free space "
                                     "there): the job's log goes there")


def test_the_frames_job_logs_the_samples_with_fewer_events_than_T(tmp_path, nmnist):
    config = {"nmnist_dir": str(nmnist), "snn": {"T": [300], "main_T": 300}}
    rc, output = run_target(tmp_path, "results/frames/nmnist_T300.h5", config)
    assert rc == 0, output
    log = (tmp_path / "results" / "logs" / "frames_T300.log").read_text()
    found = re.search(r"samples with fewer events than T=300 \(all their frames but the last "
                      r"empty\): (\d+) of 10 train \([\d.]+ %\), (\d+) of 10 test", log)
    assert found, log
    with h5py.File(tmp_path / "results" / "events" / "nmnist.h5") as store:
        short = [int((np.diff(store[f"{split}/offsets"][...]) < 300).sum())
                 for split in ("train", "test")]
    assert [int(n) for n in found.groups()] == short and sum(short) > 0


def test_a_planted_frame_cache_reading_a_file_outside_is_refused_by_the_training_job(
        tmp_path, nmnist):
    """A frame cache whose test frames are an external link to a file outside the project
    is refused by name, not trained and tested on."""
    config = {"nmnist_dir": str(nmnist), "snn": TINY_SNN}
    rc, output = run_target(tmp_path, "results/frames/nmnist_T4.h5", config)
    assert rc == 0, output
    cache = tmp_path / "results" / "frames" / "nmnist_T4.h5"
    secret = tmp_path / "secret.h5"
    with h5py.File(cache, "a") as h5, h5py.File(secret, "w") as outside:
        outside["data"] = np.full(h5["test/frames"].shape, 9, h5["test/frames"].dtype)
        del h5["test/frames"]
        h5["test/frames"] = h5py.ExternalLink(str(secret), "data")
    expect_failure(tmp_path, TRAIN_SNN_T4, config,
                   f"error: results/frames/nmnist_T4.h5: test/frames is an external link to "
                   f"{secret} - delete the file and rerun the workflow to rebuild it",
                   log="train_snn_T4_seed0")
