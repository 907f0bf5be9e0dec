"""Bad input through the workflow: non-zero exit, a one-line message naming the file,
and no partial output left behind."""

import gzip
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import yaml

from conftest import REPO, make_nmnist_tree, random_events
from snnflow.events import write_events
from snnflow.mnist import write_idx

pytestmark = pytest.mark.workflow


def run_target(workdir, target, config):
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    (workdir / "case.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", target, "-s", str(REPO / "Snakefile"), "--cores", "1",
         "--configfile", "case.yaml"], cwd=workdir, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


def leftovers(folder):
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


@pytest.fixture
def nmnist(tmp_path, rng):
    make_nmnist_tree(tmp_path / "nmnist", 1, rng, labels=[0, 1])
    return tmp_path / "nmnist"


def expect_failure(tmp_path, target, config, words):
    rc, output = run_target(tmp_path, target, config)
    assert rc != 0
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert lines and any(words in line for line in lines), output
    assert not (tmp_path / target).exists()
    assert leftovers(tmp_path / "results") == []
    return lines


@pytest.mark.parametrize("content, words", [
    (b"\x01\x02\x03\x04\x05\x06", "is not a multiple of 5"),
    (b"", "empty file"),
    (bytes([40, 3, 0, 0, 1]), "outside the 34x34 sensor"),
])
def test_bad_recording_stops_the_events_job(tmp_path, nmnist, content, words):
    bad = nmnist / "Test" / "1" / "bad.bin"
    bad.write_bytes(content)
    lines = expect_failure(tmp_path, "results/events/nmnist.h5",
                           {"nmnist_dir": str(nmnist)}, words)
    assert any(str(bad) in line for line in lines)


def test_label_folder_outside_0_to_9(tmp_path, nmnist, rng):
    write_events(nmnist / "Train" / "12" / "a.bin", random_events(rng, 10))
    expect_failure(tmp_path, "results/events/nmnist.h5", {"nmnist_dir": str(nmnist)},
                   "Train/12: label folder must be one of 0-9")


def test_split_folder_without_recordings(tmp_path, nmnist):
    shutil.rmtree(nmnist / "Test")
    (nmnist / "Test" / "3").mkdir(parents=True)
    expect_failure(tmp_path, "results/events/nmnist.h5", {"nmnist_dir": str(nmnist)},
                   "Test: no <label>/*.bin recordings found")


def place_archive(tmp_path, build):
    archive = tmp_path / "results" / "raw" / "downloads" / "nmnist_train.zip"
    archive.parent.mkdir(parents=True)
    build(archive)
    return archive


def test_truncated_archive_stops_the_unpack_job(tmp_path, rng):
    def build(path):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("Train/0/00001.bin", bytes(500))
        path.write_bytes(path.read_bytes()[:-30])

    place_archive(tmp_path, build)
    expect_failure(tmp_path, "results/raw/NMNIST/Train", {}, "not a complete zip archive")


def test_archive_with_the_wrong_layout_stops_the_unpack_job(tmp_path):
    def build(path):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("NMNIST/Train/0/00001.bin", bytes(500))

    place_archive(tmp_path, build)
    expect_failure(tmp_path, "results/raw/NMNIST/Train", {},
                   "the archive must hold Train/<label>/*.bin")


@pytest.fixture
def mnist(tmp_path, rng):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, n in (("train", 20), ("t10k", 10)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    return folder


def test_idx_with_a_wrong_magic_number(tmp_path, mnist):
    shutil.copy(mnist / "train-labels-idx1-ubyte.gz", mnist / "train-images-idx3-ubyte.gz")
    expect_failure(tmp_path, "results/frames/mnist.h5", {"mnist_dir": str(mnist)},
                   "train-images-idx3-ubyte.gz: magic number 2049, expected 2051")


def test_idx_whose_size_disagrees_with_its_header(tmp_path, mnist):
    path = mnist / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))
    expect_failure(tmp_path, "results/frames/mnist.h5", {"mnist_dir": str(mnist)},
                   "t10k-images-idx3-ubyte.gz: 7851 bytes but the header promises 7856")


def test_image_count_not_matching_the_label_count(tmp_path, mnist):
    write_idx(mnist / "train-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    expect_failure(tmp_path, "results/frames/mnist.h5", {"mnist_dir": str(mnist)},
                   "20 images but train-labels-idx1-ubyte.gz holds 19 labels")


@pytest.mark.parametrize("config, words", [
    ({"snn": {"T": [4, 4]}}, "config key snn.T: [4, 4] has non-unique elements"),
    ({"cnn": {"epochs": 0}}, "config key cnn.epochs: 0 is less than the minimum of 1"),
    ({"device": "tpu"}, "config key device: 'tpu' does not match"),
    ({"nmnist_dir": "/no/such/dir"}, "config key nmnist_dir: folder /no/such/dir does not exist"),
])
def test_bad_config_stops_before_any_job(tmp_path, config, words):
    rc, output = run_target(tmp_path, "results/events/nmnist.h5", config)
    assert rc != 0 and words in output, output
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("damage, words", [
    ("truncate", "results/events/nmnist.h5: unreadable HDF5 file"),
    ("drop dataset", "results/events/nmnist.h5: incomplete file (missing test/codes)"),
])
def test_damaged_cache_is_named_never_loaded(tmp_path, nmnist, damage, words):
    import h5py

    config = {"nmnist_dir": str(nmnist), "snn": {"T": [4], "main_T": 4}}
    rc, output = run_target(tmp_path, "results/events/nmnist.h5", config)
    assert rc == 0, output
    store = tmp_path / "results" / "events" / "nmnist.h5"
    if damage == "truncate":  # as a crash outside Snakemake would leave it
        store.write_bytes(store.read_bytes()[:5000])
    else:
        with h5py.File(store, "a") as h5:
            del h5["test/codes"]
    expect_failure(tmp_path, "results/frames/nmnist_T4.h5", config, words)


def test_batch_larger_than_the_dataset_stops_the_training_job(tmp_path, nmnist):
    config = {"nmnist_dir": str(nmnist), "snn": {"T": [4], "main_T": 4, "batch_size": 64}}
    expect_failure(tmp_path, "results/runs/snn_T4/metrics.csv", config,
                   "config key snn.batch_size: 64 is larger than the 2 training samples")


def test_download_with_a_wrong_md5_keeps_nothing(tmp_path, server, rng):
    root, url = server
    with zipfile.ZipFile(root / "train.zip", "w") as zf:
        zf.writestr("Train/0/00001.bin", bytes(500))
    lines = expect_failure(tmp_path, "results/raw/downloads/nmnist_train.zip",
                           {"download": {"nmnist_mirror": url, "retries": 1}}, "md5")
    assert any(url + "train.zip" in line and "nmnist_dir" in line for line in lines)
    assert not list((tmp_path / "results" / "raw" / "downloads").glob("*.zip"))


def test_download_without_network_fails_fast_naming_url_and_alternative(tmp_path):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    lines = expect_failure(
        tmp_path, "results/raw/downloads/nmnist_test.zip",
        {"download": {"nmnist_mirror": f"http://127.0.0.1:{port}/", "timeout_seconds": 2,
                      "retries": 2}},
        f"http://127.0.0.1:{port}/test.zip")
    assert time.monotonic() - start < 60
    assert any("set nmnist_dir" in line for line in lines)


def test_mnist_mirror_without_the_files(tmp_path, server):
    _, url = server
    expect_failure(tmp_path, "results/raw/MNIST/train-images-idx3-ubyte.gz",
                   {"download": {"mnist_mirror": url, "retries": 1}},
                   f"{url}train-images-idx3-ubyte.gz: HTTP 404")
