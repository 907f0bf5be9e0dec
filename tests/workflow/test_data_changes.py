"""Results follow the data: a changed recording or MNIST file reruns exactly what it feeds,
a checkpoint of other data or of another CPU thread count is never resumed."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, all_classes, dry_run_plan, make_nmnist_tree, random_events
from snnflow.data.idx import write_idx
from snnflow.data.nmnist import write_events

pytestmark = pytest.mark.workflow

TINY = {"seeds": [0],
        "snn": {"T": [2, 4], "main_T": 4, "epochs": 1, "batch_size": 10, "lr": 0.01,
                "channels": [4, 8, 8], "hidden": 16},
        "cnn": {"epochs": 1, "batch_size": 10, "lr": 0.01, "channels": [4, 8, 8],
                "hidden": 16},
        "nir": {"enabled": False, "samples": None},  # test_workflow.py: what reruns them
        "neurobench": {"enabled": False, "samples": None}}
NMNIST_SIDE = {"nmnist_events": 1, "frames": 2, "data_summary": 1, "train_snn": 2,
               "report": 1, "all": 1}
MNIST_SIDE = {"mnist_cache": 1, "data_summary": 1, "train_cnn": 1, "report": 1, "all": 1}


def snakemake(workdir, *args, cores=2):
    result = subprocess.run([sys.executable, "-m", "snakemake", *args, "-s",
                             str(REPO / "Snakefile"), "--cores", str(cores), "--configfile",
                             "case.yaml"],
                            cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def planned(workdir):
    return dry_run_plan(snakemake(workdir, "-n"))


def write_mnist(folder, rng, n_train=20, n_test=10):
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", all_classes(rng, n))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study run once on local copies of N-MNIST and MNIST (nmnist_dir, mnist_dir)."""
    root = tmp_path_factory.mktemp("data-changes")
    rng = np.random.default_rng(3)
    make_nmnist_tree(root / "nmnist", 2, rng, sizes=(50, 200))
    write_mnist(root / "mnist", rng)
    shutil.copy(REPO / "config.yaml", root / "config.yaml")
    (root / "case.yaml").write_text(yaml.safe_dump(
        {**TINY, "nmnist_dir": str(root / "nmnist"), "mnist_dir": str(root / "mnist")}))
    snakemake(root)
    assert planned(root) == {}
    return root


@pytest.fixture
def restored(study):
    """The study's data folders restored afterwards, and its results marked up to date
    (--touch: what the next test checks is what a change plans, not the numbers)."""
    nmnist, mnist = study / "nmnist", study / "mnist"
    shutil.copytree(nmnist, study / "nmnist.saved", copy_function=shutil.copy2)
    shutil.copytree(mnist, study / "mnist.saved", copy_function=shutil.copy2)
    yield study
    for folder in (nmnist, mnist):
        shutil.rmtree(folder)
        (study / f"{folder.name}.saved").rename(folder)
    snakemake(study, "--touch")


def test_an_added_recording_reruns_the_nmnist_side_and_changes_the_report(restored):
    before = pd.read_csv(restored / "results" / "tables" / "dataset.csv")
    write_events(restored / "nmnist" / "Train" / "3" / "new.bin",
                 random_events(np.random.default_rng(9), 120))
    assert planned(restored) == NMNIST_SIDE
    snakemake(restored)
    after = pd.read_csv(restored / "results" / "tables" / "dataset.csv")
    train = (after["dataset"] == "N-MNIST") & (after["split"] == "train")
    assert after.loc[train, "samples"].item() == before.loc[train, "samples"].item() + 1
    assert planned(restored) == {}


def test_a_recording_replaced_with_its_old_timestamp_reruns_the_nmnist_side(restored):
    victim = restored / "nmnist" / "Test" / "5" / "00000.bin"
    stat = victim.stat()
    replacement = restored / "replacement.bin"
    data = bytearray(victim.read_bytes())
    data[0] = (data[0] + 1) % 34  # one event moves: same size
    replacement.write_bytes(bytes(data))
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    shutil.copy2(replacement, victim)  # as `cp -p` does: the old mtime kept
    assert victim.stat().st_mtime_ns == stat.st_mtime_ns
    assert victim.stat().st_size == stat.st_size
    assert planned(restored) == NMNIST_SIDE


def test_a_removed_recording_reruns_the_nmnist_side(restored):
    (restored / "nmnist" / "Train" / "7" / "00001.bin").unlink()
    assert planned(restored) == NMNIST_SIDE


def test_an_mnist_file_replaced_with_an_older_timestamp_reruns_the_mnist_side(restored):
    images = restored / "mnist" / "t10k-images-idx3-ubyte.gz"
    old = images.stat().st_mtime_ns - 10**12  # older than every output
    write_idx(images, np.random.default_rng(5).integers(0, 256, (10, 28, 28), dtype=np.uint8))
    os.utime(images, ns=(old, old))
    assert planned(restored) == MNIST_SIDE
    snakemake(restored)
    import h5py

    with h5py.File(restored / "results" / "frames" / "mnist.h5") as h5:
        assert "t10k-images-idx3-ubyte" in h5.attrs["sources_md5"]


def test_an_unchanged_tree_plans_nothing_and_keeps_the_manifest(study):
    manifest = study / "results" / "manifests" / "nmnist.tsv"
    before = manifest.stat().st_mtime_ns
    assert planned(study) == {}
    assert manifest.stat().st_mtime_ns == before


def test_framing_by_time_reruns_the_snn_side_alone_and_back_rebuilds_nothing(study):
    """dataset.framing: time builds a store with timestamps beside the one framed by count,
    its own caches and SNN runs; the CNN keeps its run. Switching back finds the store and
    caches by count where they were: only the SNN runs and the report rerun."""
    case = yaml.safe_load((study / "case.yaml").read_text())
    by_time = {**case, "dataset": {"framing": "time"}}
    (study / "case.yaml").write_text(yaml.safe_dump(by_time))
    try:
        assert planned(study) == NMNIST_SIDE
        snakemake(study)
        results = study / "results"
        assert (results / "events" / "nmnist_timed.h5").is_file()
        assert (results / "events" / "nmnist.h5").is_file()  # kept for framing by count
        log = (results / "logs" / "frames_T4_by_time.log").read_text()
        assert "events after the 4 windows, taken by the last frame" in log
        run = json.loads((results / "runs" / "snn_T4" / "seed0" / "run.json").read_text())
        assert run["framing"] == "time"
        models = pd.read_csv(results / "tables" / "models.csv").set_index("model")
        assert models.loc["SNN-4", "framing"] == "by time"
    finally:
        (study / "case.yaml").write_text(yaml.safe_dump(case))
    assert planned(study) == {"train_snn": 2, "data_summary": 1, "report": 1, "all": 1}
    snakemake(study)
    models = pd.read_csv(study / "results" / "tables" / "models.csv").set_index("model")
    assert models.loc["SNN-4", "framing"] == "by event count"


def test_a_sweep_over_framing_plans_the_store_and_cache_by_time_alone(study):
    """A framing column in a sweep: its time rows train on frames by time, binned from a
    store with timestamps beside the study's; its count rows on the study's own caches.
    And a first sweep added to a finished study runs (the report's new tables are asked
    for by the rule all)."""
    (study / "framing.tsv").write_text("framing\tneuron\ncount\tplif\ntime\tplif\n")
    case = yaml.safe_load((study / "case.yaml").read_text())
    sweep = {**case, "sweep": {"file": "framing.tsv", "T": None}}
    (study / "case.yaml").write_text(yaml.safe_dump(sweep))
    try:
        output = snakemake(study, "-n")
        plan = dry_run_plan(output)
        # the store and cache by time: planned here, or left by the test above
        by_time = [study / "results" / "events" / "nmnist_timed.h5",
                   study / "results" / "frames" / "nmnist_T4_by_time.h5"]
        assert plan.get("nmnist_events", 0) + plan.get("frames", 0) == sum(
            not path.exists() for path in by_time)
        assert {rule: plan[rule] for rule in ("train_sweep", "report", "all")} == {
            "train_sweep": 2, "report": 1, "all": 1}
        assert set(plan) <= {"nmnist_events", "frames", "train_sweep", "report", "all"}
        jobs = output.split("rule train_sweep:")[1:]
        inputs = sorted(job.split("input: ")[1].split("\n")[0] for job in jobs)
        assert inputs == ["results/frames/nmnist_T4.h5", "results/frames/nmnist_T4_by_time.h5"]
    finally:
        (study / "case.yaml").write_text(yaml.safe_dump(case))
    assert planned(study) == {}


def test_training_on_other_data_starts_fresh_with_a_line_in_its_log(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    config = {**TINY, "snn": {**TINY["snn"], "T": [4], "epochs": 2},
              "synthetic": {"enabled": True, "train_per_class": 3, "test_per_class": 2,
                            "seed": 0}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(config))
    target = "results/runs/snn_T4/seed0/metrics.csv"
    snakemake(tmp_path, target)
    config["synthetic"].update(train_per_class=6, seed=1)
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, target)
    log = (tmp_path / "results" / "logs" / "train_snn_T4_seed0.log").read_text()
    assert "was made on other data" in log and "resuming" not in log
    assert list(pd.read_csv(tmp_path / target)["epoch"]) == [1, 2]


def test_the_cpu_thread_count_reruns_training_and_is_never_resumed_across(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    config = {**TINY, "snn": {**TINY["snn"], "T": [4]}, "train_threads": 2,
              "synthetic": {"enabled": True, "train_per_class": 3, "test_per_class": 2,
                            "seed": 0}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path)
    config["train_threads"] = 1
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(config))
    assert planned(tmp_path) == {"train_snn": 1, "train_cnn": 1, "report": 1, "all": 1}
    snakemake(tmp_path)
    log = (tmp_path / "results" / "logs" / "train_cnn_seed0.log").read_text()
    assert "made with 2 CPU threads, this job has 1" in log and "resuming" not in log
