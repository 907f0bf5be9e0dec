import gzip

import h5py
import numpy as np
import pytest

from conftest import all_classes
from snnflow import SnnflowError
from snnflow.data.idx import IMAGE_MAGIC, LABEL_MAGIC, write_idx
from snnflow.data.mnist import build_image_cache, load_images, read_idx, read_split


def write_mnist(folder, rng, n_train=12, n_test=10, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = all_classes(rng, n)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
        data[split] = (images, labels)
    if not gz:
        for path in folder.glob("*.gz"):
            path.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
            path.unlink()
    return data


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_and_cache(tmp_path, rng, gz):
    data = write_mnist(tmp_path / "mnist", rng, gz=gz)
    images, labels = read_split(tmp_path / "mnist", "train")
    np.testing.assert_array_equal(images, data["train"][0])
    build_image_cache(tmp_path / "mnist", tmp_path / "mnist.h5")
    with h5py.File(tmp_path / "mnist.h5") as h5:
        assert h5["train/images"].shape == (12, 1, 28, 28) and h5["train/images"].dtype == np.uint8
    images, labels = load_images(tmp_path / "mnist.h5", "test")
    np.testing.assert_array_equal(images[:, 0], data["test"][0])
    np.testing.assert_array_equal(labels, data["test"][1])


def test_wrong_magic_is_refused(tmp_path, rng):
    write_mnist(tmp_path, rng)
    with pytest.raises(SnnflowError, match=f"magic number {LABEL_MAGIC}, expected {IMAGE_MAGIC}"):
        read_idx(tmp_path / "train-labels-idx1-ubyte.gz", IMAGE_MAGIC)


def test_size_disagreeing_with_header_is_refused(tmp_path, rng):
    write_mnist(tmp_path, rng)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(SnnflowError, match="train-images-idx3-ubyte.gz: .* truncated"):
        read_split(tmp_path, "train")


def test_image_and_label_counts_must_agree(tmp_path, rng):
    write_mnist(tmp_path, rng)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8))
    with pytest.raises(SnnflowError, match="10 images but t10k-labels-idx1-ubyte.gz holds 4"):
        read_split(tmp_path, "test")


def test_missing_file_names_the_folder_and_the_key(tmp_path, rng):
    write_mnist(tmp_path, rng)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(SnnflowError, match="t10k-images-idx3-ubyte.gz .*mnist_dir"):
        build_image_cache(tmp_path, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_corrupt_gzip_is_refused(tmp_path, rng):
    write_mnist(tmp_path, rng)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(SnnflowError, match="train-labels-idx1-ubyte.gz: cannot read"):
        read_split(tmp_path, "train")


@pytest.mark.parametrize("shape, words", [
    ((0, 28, 28), "train-images-idx3-ubyte.gz: holds no images"),
    ((12, 28, 29), "train-images-idx3-ubyte.gz: images of 28x29 pixels; MNIST's are 28x28"),
    ((12, 32, 32), "train-images-idx3-ubyte.gz: images of 32x32 pixels"),
])
def test_empty_or_misshapen_images_are_refused(tmp_path, rng, shape, words):
    write_mnist(tmp_path, rng)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros(shape, dtype=np.uint8))
    with pytest.raises(SnnflowError, match=words):
        read_split(tmp_path, "train")


def test_a_split_missing_a_class_is_refused_unless_allowed(tmp_path, rng):
    write_mnist(tmp_path, rng)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8) % 9)
    with pytest.raises(SnnflowError, match="t10k-labels-idx1-ubyte.gz: no images of class 9"):
        read_split(tmp_path, "test")
    assert len(read_split(tmp_path, "test", allow_missing_classes=True)[1]) == 10
