"""Bad input through the workflow: exit status 1, one line `error: <file or key>: <what>
- <what to do>` on the terminal and in the job's own log, no partial output left behind.
docs/troubleshooting.md lists the same cases."""

import gzip
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, all_classes, make_nmnist_tree, random_events
from snnflow.data.idx import write_idx
from snnflow.data.nmnist import EVENT_DTYPE, write_events

pytestmark = pytest.mark.workflow

TRAIN_SNN_T4 = "results/runs/snn_T4/seed0/metrics.csv"
TINY_SNN = {"T": [4], "main_T": 4, "epochs": 1, "batch_size": 5, "channels": [4, 8, 8],
            "hidden": 16}


def run_target(workdir, target, config, *args, prefix=()):
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    (workdir / "case.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "snakemake", target, "-s", str(REPO / "Snakefile"),
         "--cores", "1", "--configfile", "case.yaml", *args],
        cwd=workdir, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


def leftovers(folder):
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


@pytest.fixture
def nmnist(tmp_path, rng):
    make_nmnist_tree(tmp_path / "nmnist", 1, rng)
    return tmp_path / "nmnist"


def expect_failure(tmp_path, target, config, words, log=None, prefix=()):
    """Run `target`, expect exit status 1 and an `error: ` line holding `words`, the same
    line in results/logs/<log>.log when a job ran, and no output or temporary left."""
    rc, output = run_target(tmp_path, target, config, prefix=prefix)
    assert rc == 1, output
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert lines and any(words in line for line in lines), output
    if log is not None:
        logged = (tmp_path / "results" / "logs" / f"{log}.log").read_text().splitlines()
        assert any(words in line and line.startswith("error: ") for line in logged), logged
    assert not (tmp_path / target).exists()
    if (tmp_path / "results").exists():
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
                           {"nmnist_dir": str(nmnist)}, words, log="nmnist_events")
    assert any(str(bad) in line for line in lines)


def test_label_folder_outside_0_to_9(tmp_path, nmnist, rng):
    write_events(nmnist / "Train" / "12" / "a.bin", random_events(rng, 10))
    expect_failure(tmp_path, "results/events/nmnist.h5", {"nmnist_dir": str(nmnist)},
                   "Train/12: label folder must be one of 0-9", log="nmnist_events")


def test_split_folder_without_recordings(tmp_path, nmnist):
    shutil.rmtree(nmnist / "Test")
    (nmnist / "Test" / "3").mkdir(parents=True)
    expect_failure(tmp_path, "results/events/nmnist.h5", {"nmnist_dir": str(nmnist)},
                   "Test: no <label>/*.bin recordings found", log="nmnist_events")


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
    expect_failure(tmp_path, "results/raw/NMNIST/Train", {}, "not a complete zip archive",
                   log="unpack_nmnist_Train")


def test_archive_with_the_wrong_layout_stops_the_unpack_job(tmp_path):
    def build(path):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("NMNIST/Train/0/00001.bin", bytes(500))

    place_archive(tmp_path, build)
    expect_failure(tmp_path, "results/raw/NMNIST/Train", {},
                   "the archive must hold Train/<label>/*.bin", log="unpack_nmnist_Train")


@pytest.fixture
def mnist(tmp_path, rng):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, n in (("train", 20), ("t10k", 10)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", all_classes(rng, n))
    return folder


def test_idx_with_a_wrong_magic_number(tmp_path, mnist):
    shutil.copy(mnist / "train-labels-idx1-ubyte.gz", mnist / "train-images-idx3-ubyte.gz")
    expect_failure(tmp_path, "results/frames/mnist.h5", {"mnist_dir": str(mnist)},
                   "train-images-idx3-ubyte.gz: magic number 2049, expected 2051",
                   log="mnist_cache")


def test_idx_whose_size_disagrees_with_its_header(tmp_path, mnist):
    path = mnist / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))
    expect_failure(tmp_path, "results/frames/mnist.h5", {"mnist_dir": str(mnist)},
                   "t10k-images-idx3-ubyte.gz: 7851 bytes but the header promises 7856",
                   log="mnist_cache")


def test_image_count_not_matching_the_label_count(tmp_path, mnist):
    write_idx(mnist / "train-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    expect_failure(tmp_path, "results/frames/mnist.h5", {"mnist_dir": str(mnist)},
                   "20 images but train-labels-idx1-ubyte.gz holds 19 labels", log="mnist_cache")


@pytest.mark.parametrize("config, words", [
    ({"snn": {"T": [4, 4]}}, "config key snn.T: [4, 4] has non-unique elements"),
    ({"cnn": {"epochs": 0}}, "config key cnn.epochs: 0 is less than the minimum of 1"),
    ({"device": "tpu"}, "config key device: 'tpu' does not match"),
    ({"nmnist_dir": "/no/such/dir"}, "config key nmnist_dir: folder /no/such/dir does not exist"),
    ({"nmnist_dir": "/data/{T}"}, "config key nmnist_dir: /data/{T} holds '{' or '}'"),
    ({"snn": {"main_T": 4.0}}, "config key snn.main_T: 4.0 is not of type 'integer'"),
    ({"snn": {"T": [4.0], "main_T": 4}}, "config key snn.T[0]: 4.0 is not of type 'integer'"),
    ({"snn": {"epochs": 1.0}}, "config key snn.epochs: 1.0 is not of type 'integer'"),
    ({"cnn": {"batch_size": 4.0}}, "config key cnn.batch_size: 4.0 is not of type 'integer'"),
    ({"cnn": {"channels": [4.0, 8, 8]}}, "config key cnn.channels[0]: 4.0 is not of type"),
    ({"snn": {"lr": float("nan")}}, "config key snn.lr: nan is not a finite number"),
    ({"snn": {"v_threshold": float("nan")}}, "config key snn.v_threshold: nan is not a finite"),
])
def test_bad_config_stops_before_any_job(tmp_path, config, words):
    expect_failure(tmp_path, "results/events/nmnist.h5", config, words)
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
    expect_failure(tmp_path, "results/frames/nmnist_T4.h5", config, words, log="frames_T4")


def test_batch_larger_than_the_dataset_stops_the_training_job(tmp_path, nmnist):
    config = {"nmnist_dir": str(nmnist), "snn": {"T": [4], "main_T": 4, "batch_size": 64}}
    expect_failure(tmp_path, TRAIN_SNN_T4, config,
                   "config key snn.batch_size: 64 is larger than the 10 training samples",
                   log="train_snn_T4_seed0")


def test_download_with_a_wrong_md5_keeps_nothing(tmp_path, server, rng):
    root, url = server
    with zipfile.ZipFile(root / "train.zip", "w") as zf:
        zf.writestr("Train/0/00001.bin", bytes(500))
    lines = expect_failure(tmp_path, "results/raw/downloads/nmnist_train.zip",
                           {"download": {"nmnist_mirror": url, "retries": 1}}, "md5",
                           log="download_nmnist_train")
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
        f"http://127.0.0.1:{port}/test.zip", log="download_nmnist_test")
    assert time.monotonic() - start < 60
    assert any("set nmnist_dir" in line for line in lines)


def test_mnist_mirror_without_the_files(tmp_path, server):
    _, url = server
    expect_failure(tmp_path, "results/raw/MNIST/train-images-idx3-ubyte.gz",
                   {"download": {"mnist_mirror": url, "retries": 1}},
                   f"{url}train-images-idx3-ubyte.gz: HTTP 404", log="download_mnist")


def test_nested_keys_can_be_overridden_on_the_command_line(tmp_path):
    rc, output = run_target(tmp_path, "results/report.html", {"synthetic": {"enabled": True}},
                            "-n", "--config", "snn={T: [4, 8], main_T: 8, lr: 0.01}")
    assert rc == 0, output
    assert "results/runs/snn_T8/seed0/metrics.csv" in output and "snn_T16" not in output
    rc, output = run_target(tmp_path, "results/report.html", {}, "-n", "--config",
                            "snn={T: [four]}")
    assert rc == 1 and "config key snn.T[0]: 'four' is not of type 'integer'" in output
    assert "a value given with --config is read as YAML" in output


def test_a_crafted_checkpoint_never_runs_and_the_job_starts_fresh(tmp_path, nmnist):
    marker = tmp_path / "code-ran"

    class Payload:  # what an attacker would plant: unpickling it runs a shell command
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    checkpoint = tmp_path / "results" / "checkpoints" / "snn_T4_seed0.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"key": Payload()}, checkpoint)
    rc, output = run_target(tmp_path, TRAIN_SNN_T4, {"nmnist_dir": str(nmnist), "snn": TINY_SNN})
    assert rc == 0, output
    assert not marker.exists()
    log = (tmp_path / "results" / "logs" / "train_snn_T4_seed0.log").read_text()
    notice = [line for line in log.splitlines() if "snn_T4_seed0.pt is unreadable" in line]
    assert len(notice) == 1 and notice[0].endswith("starting fresh"), log
    assert "resuming" not in log and (tmp_path / TRAIN_SNN_T4).exists()


def test_an_unexpected_error_leaves_its_traceback_in_the_job_log(tmp_path, mnist):
    workflow = tmp_path / "copy"
    shutil.copytree(REPO / "workflow", workflow / "workflow",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "Snakefile", workflow / "Snakefile")
    script = workflow / "workflow" / "scripts" / "mnist_cache.py"
    call = "    build_image_cache("
    script.write_text(script.read_text().replace(call, "    1 / 0\n" + call))
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "case.yaml").write_text(yaml.safe_dump({"mnist_dir": str(mnist)}))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "results/frames/mnist.h5", "-s",
         str(workflow / "Snakefile"), "--cores", "1", "--configfile", "case.yaml"],
        cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    line = ("error: results/logs/mnist_cache.log: unexpected ZeroDivisionError (division by "
            "zero) - the full traceback is in this log")
    assert line in result.stdout + result.stderr
    log = (tmp_path / "results" / "logs" / "mnist_cache.log").read_text()
    assert "Traceback (most recent call last)" in log and "1 / 0" in log and line in log


def test_a_file_name_that_is_not_utf8(tmp_path, nmnist):
    folder = os.fsencode(nmnist / "Train" / "5")
    with open(os.path.join(folder, b"x\xe9.bin"), "wb") as f:
        f.write(bytes([1, 2, 0, 0, 1]))
    expect_failure(tmp_path, "results/events/nmnist.h5", {"nmnist_dir": str(nmnist)},
                   f"{nmnist}/Train/5/x\\xe9.bin: the file name is not valid UTF-8 - rename",
                   log="nmnist_events")


def test_a_split_missing_a_class(tmp_path, nmnist):
    shutil.rmtree(nmnist / "Test" / "7")
    config = {"nmnist_dir": str(nmnist)}
    expect_failure(tmp_path, "results/events/nmnist.h5", config,
                   f"{nmnist}/Test: no recordings of class 7 - a split must hold all ten "
                   "digits", log="nmnist_events")
    rc, output = run_target(tmp_path, "results/events/nmnist.h5",
                            {**config, "allow_missing_classes": True})
    assert rc == 0, output


def test_more_events_in_one_pixel_than_a_frame_cache_holds(tmp_path, nmnist):
    hot = np.zeros(65_536, dtype=EVENT_DTYPE)
    hot["x"], hot["y"] = 3, 3
    write_events(nmnist / "Train" / "2" / "hot.bin", hot)
    expect_failure(tmp_path, "results/frames/nmnist_T1.h5",
                   {"nmnist_dir": str(nmnist), "snn": {"T": [1], "main_T": 1}},
                   f"{nmnist}/Train/2/hot.bin: 65536 events in one pixel of one frame at T=1",
                   log="frames_T1")


@pytest.mark.parametrize("shape, words", [
    ((0, 28, 28), "t10k-images-idx3-ubyte.gz: holds no images"),
    ((10, 28, 29), "t10k-images-idx3-ubyte.gz: images of 28x29 pixels; MNIST's are 28x28"),
    ((10, 32, 32), "t10k-images-idx3-ubyte.gz: images of 32x32 pixels"),
])
def test_empty_or_misshapen_mnist_images(tmp_path, mnist, shape, words):
    write_idx(mnist / "t10k-images-idx3-ubyte.gz", np.zeros(shape, dtype=np.uint8))
    if shape[0] == 0:
        write_idx(mnist / "t10k-labels-idx1-ubyte.gz", np.zeros(0, dtype=np.uint8))
    expect_failure(tmp_path, "results/frames/mnist.h5", {"mnist_dir": str(mnist)}, words,
                   log="mnist_cache")


def mounted_tmpfs(folder, size):
    """A command prefix that runs the command with a tmpfs of `size` on `folder`, in a
    mount namespace of its own (so nothing outlives it); skips where that is impossible."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size={size} "
                            f"tmpfs {folder}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root and unshare): "
                    f"{probe.stderr.strip()}")
    return ["unshare", "-m", "sh", "-c",
            f'mount -t tmpfs -o size={size} tmpfs {folder} && exec "$0" "$@"']


def test_a_full_disk_under_the_event_store(tmp_path, nmnist):
    prefix = mounted_tmpfs(tmp_path / "results" / "events", "4k")
    expect_failure(tmp_path, "results/events/nmnist.h5", {"nmnist_dir": str(nmnist)},
                   "results/events/nmnist.h5: cannot be written, the disk is full - free "
                   f"space on {tmp_path}/results/events and rerun", log="nmnist_events",
                   prefix=prefix)


def test_a_full_disk_under_the_checkpoints(tmp_path, nmnist):
    """The first file there the job cannot write, named: the run's lock or its log of every
    attempt (beside the checkpoint) or, with room for those, the checkpoint."""
    prefix = mounted_tmpfs(tmp_path / "results" / "checkpoints", "4k")
    lines = expect_failure(tmp_path, TRAIN_SNN_T4, {"nmnist_dir": str(nmnist), "snn": TINY_SNN},
                           ": cannot be written, the disk is full - free space on "
                           f"{tmp_path}/results/checkpoints and rerun",
                           log="train_snn_T4_seed0", prefix=prefix)
    assert lines[0].startswith("error: results/checkpoints/snn_T4_seed0."), lines
    prefix = mounted_tmpfs(tmp_path / "results" / "checkpoints", "64k")
    expect_failure(tmp_path, TRAIN_SNN_T4, {"nmnist_dir": str(nmnist), "snn": TINY_SNN},
                   "results/checkpoints/snn_T4_seed0.pt: cannot be written, the disk is full",
                   log="train_snn_T4_seed0", prefix=prefix)


def test_a_killed_jobs_temporary_is_removed_by_the_next_run(tmp_path, nmnist):
    stale = tmp_path / "results" / "events" / ".nmnist.h5.tmp-4242"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a job whose process group got SIGTERM")
    rc, output = run_target(tmp_path, "results/events/nmnist.h5", {"nmnist_dir": str(nmnist)})
    assert rc == 0, output
    assert not stale.exists() and (tmp_path / "results" / "events" / "nmnist.h5").exists()
