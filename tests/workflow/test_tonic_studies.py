"""The study on each of tonic's event-camera datasets through Snakemake, in the environment
`make demo` builds (runtime dependencies only): a small synthetic copy in the dataset's own
layout and format (tests/tonic_copies.py) read by tonic, frames, the SNN and the CNN (on
event images: these datasets have no static twin), the NIR export and its check, and the
report, every shape and class name taken from the data. Then what a change reruns."""

import json
import tarfile

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

import tonic_copies
from conftest import REPO, copy_workflow, dry_run_plan
from snnflow.data import tonic_datasets
from test_bad_input import expect_failure
from test_workflow import snakemake

pytestmark = pytest.mark.workflow

TINY = {"seeds": [0], "nir": {"enabled": True, "samples": 8},
        "snn": {"T": [4], "main_T": 4, "epochs": 1, "batch_size": 8, "lr": 0.01,
                "channels": [4, 8], "hidden": 16},
        "cnn": {"epochs": 1, "batch_size": 8, "lr": 0.01, "channels": [4, 8], "hidden": 16}}
# DVS Gesture's shape (128x128, 11 classes) summed into 32x32, four conv blocks: it must learn
DVSGESTURE = {"snn": {"T": [4], "main_T": 4, "epochs": 4, "batch_size": 16, "lr": 0.01,
                      "channels": [8, 8, 16, 16], "hidden": 32},
              "cnn": {"epochs": 4, "batch_size": 16, "lr": 0.01, "channels": [8, 8, 16, 16],
                      "hidden": 32}}
SIZES = {"DVSGesture": 32, "CIFAR10DVS": 32, "NCALTECH101": None, "POKERDVS": None}
CLASSES = {"DVSGesture": 11, "CIFAR10DVS": 10, "NCALTECH101": 14, "POKERDVS": 4}


def study_config(name, copy, **changes):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config.update(yaml.safe_load(yaml.safe_dump(DVSGESTURE)) if name == "DVSGesture" else {})
    config["dataset"] = {"name": name, "dir": str(copy), "size": SIZES[name],
                         "test_fraction": 0.3, "split_seed": 0}
    for section, values in changes.items():
        config[section].update(values)
    return config


@pytest.fixture(params=list(SIZES), scope="module")
def study(request, tmp_path_factory):
    """(dataset name, a workflow copy that ran the whole study on its synthetic copy)."""
    name = request.param
    workdir = tmp_path_factory.mktemp(name)
    copy_workflow(workdir)
    tonic_copies.write_copy(name, workdir / "copy", np.random.default_rng(1))
    (workdir / "study.yaml").write_text(yaml.safe_dump(study_config(name, workdir / "copy")))
    snakemake(workdir, "--configfile", "study.yaml", runtime_only=True)
    return name, workdir


def test_the_whole_study_runs_shaped_by_the_data(study):
    name, workdir = study
    results = workdir / "results"
    n_classes = CLASSES[name]
    data = tonic_datasets.store_name(name)
    with h5py.File(results / "events" / f"{data}.h5") as store:
        classes = json.loads(store.attrs["classes"])
        width, height, _ = (int(v) for v in store.attrs["sensor_size"])
    assert len(classes) == n_classes
    h, w = (SIZES[name], SIZES[name]) if SIZES[name] else (height, width)
    with h5py.File(results / "frames" / f"{data}_T4.h5") as frames:
        assert frames["train/frames"].shape[1:] == (4, 2, h, w)
    with h5py.File(results / "frames" / f"{data}_T1.h5") as images:  # the CNN's event images
        assert images["train/frames"].shape[1:] == (1, 2, h, w)
    for model in ("snn_T4", "cnn"):
        info = json.loads((results / "runs" / model / "seed0" / "run.json").read_text())
        assert info["settings"]["input_shape"] == [2, h, w]
        assert info["settings"]["classes"] == n_classes
    tables = results / "tables"
    dataset = pd.read_csv(tables / "dataset.csv")
    assert set(dataset["dataset"]) == {name}  # no MNIST rows: no static twin
    assert [c for c in dataset.columns if c.startswith("class_")] == [
        f"class_{c}" for c in range(n_classes)]
    per_class = pd.read_csv(tables / "per_class_accuracy.csv", keep_default_na=False)
    assert list(per_class[per_class["model"] == "CNN"]["class"].astype(str)) == classes
    confusion = pd.read_csv(tables / "confusion.csv")
    assert len(confusion) == 2 * n_classes ** 2
    comparison = pd.read_csv(tables / "comparison.csv")
    assert set(comparison["source"]) == {"ours"}  # the reference study ran N-MNIST only
    layers = pd.read_csv(tables / "layers.csv")
    blocks = len(DVSGESTURE["snn"]["channels"] if name == "DVSGesture" else TINY["snn"]["channels"])
    assert list(layers[layers["model"] == "SNN-4"]["layer"]) == [
        *(f"conv{k}" for k in range(1, blocks + 1)), "fc1", "fc2"]
    nir = pd.read_csv(tables / "nir.csv")
    ran = nir[nir["note"].fillna("").str.startswith(("not installed", "failed")) == False]  # noqa: E712
    assert len(ran) and (ran["spike_mismatches"] == 0).all(), nir
    assert (ran["layer_spikes"] == "equal").all() or set(ran["importer"]) == {"snntorch"}, nir
    # NeuroBench on another dataset's frames and the CNN's event images
    neurobench = pd.read_csv(tables / "neurobench.csv")
    assert len(neurobench) == 2 and neurobench["agreement"].str.startswith("yes").all(), \
        neurobench
    with np.load(results / "data" / "examples.npz") as examples:  # the first 12 classes
        assert len(examples["names"]) == min(12, n_classes)
        assert examples["frames_T4"].shape[1:] == (4, 2, h, w)
        assert "digits" not in examples
    page = (results / "report.html").read_text().replace("<wbr>", "")
    assert f"CSNN on {name} vs CNN on event images" in page
    assert "The reference study ran N-MNIST only" in page
    for class_name in classes[:3]:
        assert class_name in page


def test_a_dvs_gesture_shaped_study_learns(study):
    name, workdir = study
    if name != "DVSGesture":
        pytest.skip("the DVS Gesture-shaped study is the one trained long enough")
    for model in ("snn_T4", "cnn"):
        metrics = pd.read_csv(workdir / "results" / "runs" / model / "seed0" / "metrics.csv")
        assert metrics["test_acc"].iloc[-1] > 0.5, (model, metrics)  # chance: 1/11


def test_a_new_frame_size_rebuilds_the_frames_and_what_follows_only(study):
    name, workdir = study
    if name != "POKERDVS":
        pytest.skip("checked on the fastest study")
    assert "Nothing to be done" in snakemake(workdir, "-n", "--configfile", "study.yaml").stdout
    config = study_config(name, workdir / "copy")
    config["dataset"]["size"] = 17
    (workdir / "sized.yaml").write_text(yaml.safe_dump(config))
    plan = dry_run_plan(snakemake(workdir, "-n", "--configfile", "sized.yaml").stdout)
    assert plan == {"frames": 2, "train_snn": 1, "train_cnn": 1, "export_nir": 1,
                    "verify_nir": 1, "neurobench": 2, "data_summary": 1, "report": 1,
                    "all": 1}, plan
    # another dataset in the same study folder: its own event store, this one's untouched
    tonic_copies.write_dvsgesture(workdir / "other", np.random.default_rng(2))
    other = study_config("DVSGesture", workdir / "other")
    (workdir / "other.yaml").write_text(yaml.safe_dump(other))
    output = snakemake(workdir, "-n", "--configfile", "other.yaml").stdout
    assert dry_run_plan(output)["tonic_events"] == 1
    assert "pokerdvs" not in output


def test_a_failed_download_says_where_to_put_a_local_copy(tmp_path, server):
    root, url = server
    for archive in tonic_datasets.SPECS["DVSGesture"].archives:
        (root / archive).write_bytes(b"not the archive")
    lines = expect_failure(
        tmp_path, "results/events/dvsgesture.h5",
        {"dataset": {"name": "DVSGesture"}, "download": {"tonic_mirror": url, "retries": 1}},
        "md5")
    assert any("set dataset.dir to a folder holding a copy of DVSGesture in tonic's layout"
               in line for line in lines), lines


@pytest.mark.parametrize("dataset, words", [
    ({"name": "NMINST"}, "config key dataset.name: 'NMINST' is not one of ['nmnist', "
                         "'DVSGesture', 'NCALTECH101', 'CIFAR10DVS', 'POKERDVS']"),
    ({"name": "POKERDVS"}, "config key dataset.dir: tonic cannot download POKERDVS - put a copy "
                           "in tonic's layout (POKERDVS/pips_train/"),
    ({"name": "DVSGesture", "dir": "."}, "config key dataset.dir: DVSGesture: folder not found "
                                         "- point it at the folder holding DVSGesture/"),
    ({"name": "nmnist", "dir": "."}, "config key dataset.dir: N-MNIST's copy is given by "
                                     "nmnist_dir"),
])
def test_a_bad_dataset_section_is_one_line(tmp_path, dataset, words):
    expect_failure(tmp_path, "results/report.html", {"dataset": dataset}, words)


def test_every_dataset_the_schema_offers_is_known_to_the_reader():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    offered = schema["properties"]["dataset"]["properties"]["name"]["enum"]
    assert offered[0] == tonic_datasets.NMNIST
    assert set(offered[1:]) == set(tonic_datasets.SPECS) - {"NMNIST"} == set(SIZES)
    for name, spec in tonic_datasets.SPECS.items():  # the archives' names are tonic's
        named = [file for _, file, _ in tonic_datasets.archives(name)] if spec.archives else []
        assert list(spec.archives) == named, name


def test_the_unpacked_archives_are_the_layout_tonic_reads(tmp_path, rng):
    """unpack_tonic's work (tonic's unpacker) on archives like DVS Gesture's tar.gz files."""
    tonic_copies.write_dvsgesture(tmp_path / "made", rng, train_users=2, test_users=1)
    archives = []
    for folder in ("ibmGestureTrain", "ibmGestureTest"):
        archive = tmp_path / f"{folder}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(tmp_path / "made" / "DVSGesture" / folder, arcname=folder)
        archives.append(archive)
    tonic_datasets.unpack("DVSGesture", archives, tmp_path / "raw" / "DVSGesture")
    assert not (tmp_path / "raw" / "DVSGesture.partial").exists()
    splits = tonic_datasets.open_splits("DVSGesture", tmp_path / "raw", 0.1, 0)
    assert {split: len(indices) for split, (_, indices) in splits.items()} == {
        "train": 22, "test": 11}
