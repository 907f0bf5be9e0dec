"""The manifest of a dataset folder: one line per file, rewritten only when they change."""

import os
import shutil

import numpy as np
import pytest

from conftest import make_nmnist_tree
from snnflow import SnnflowError
from snnflow.data import manifest


def test_the_listing_names_every_recording_with_size_mtime_and_ctime(tmp_path, rng):
    make_nmnist_tree(tmp_path / "nmnist", 2, rng, labels=[0, 1])
    (tmp_path / "nmnist" / "Train" / "0" / "notes.txt").write_text("ignored")
    lines = manifest.nmnist_listing(tmp_path / "nmnist")
    assert [line.split("\t")[0] for line in lines] == [
        "Test/0/", "Test/0/00000.bin", "Test/0/00001.bin", "Test/1/", "Test/1/00000.bin",
        "Test/1/00001.bin", "Train/0/", "Train/0/00000.bin", "Train/0/00001.bin", "Train/1/",
        "Train/1/00000.bin", "Train/1/00001.bin"]
    stat = (tmp_path / "nmnist" / "Train" / "1" / "00001.bin").stat()
    assert f"Train/1/00001.bin\t{stat.st_size}\t{stat.st_mtime_ns}\t{stat.st_ctime_ns}" in lines


def test_a_file_copied_over_with_its_old_mtime_changes_the_listing(tmp_path, rng):
    make_nmnist_tree(tmp_path / "nmnist", 1, rng, labels=[0])
    before = manifest.nmnist_listing(tmp_path / "nmnist")
    victim = tmp_path / "nmnist" / "Train" / "0" / "00000.bin"
    other = tmp_path / "other.bin"
    other.write_bytes(bytes(reversed(victim.read_bytes())))
    os.utime(other, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns))
    shutil.copy2(other, victim)  # cp -p: same size, same mtime
    assert manifest.nmnist_listing(tmp_path / "nmnist") != before


def test_an_unchanged_listing_leaves_the_manifest_untouched(tmp_path):
    path = tmp_path / "results" / "manifests" / "x.tsv"
    manifest.update(path, ["a\t1\t2\t3"])
    os.utime(path, ns=(10**9, 10**9))
    manifest.update(path, ["a\t1\t2\t3"])
    assert path.stat().st_mtime_ns == 10**9
    manifest.update(path, ["a\t1\t2\t4"])
    assert path.stat().st_mtime_ns > 10**9 and path.read_text() == "a\t1\t2\t4\n"


def test_a_manifest_that_cannot_be_written_is_one_line_naming_it(tmp_path):
    (tmp_path / "results").write_text("a file where the folder should be")
    with pytest.raises(SnnflowError, match=r"results/manifests/x.tsv: cannot be written .* "
                                           "make results/ writable"):
        manifest.update(tmp_path / "results" / "manifests" / "x.tsv", ["a"])


def test_mnist_files_are_listed_by_name(tmp_path):
    files = [tmp_path / "b.gz", tmp_path / "a.gz"]
    for f in files:
        f.write_bytes(np.arange(5, dtype=np.uint8).tobytes())
    assert [line.split("\t")[0] for line in manifest.file_listing(files)] == ["a.gz", "b.gz"]
