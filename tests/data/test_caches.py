"""Every HDF5 file the pipeline reads goes through one opener (snnflow.data.caches
.open_checked) that refuses a file making its reader read other files (external
storage, virtual datasets, external and soft links) or declaring data beyond its end."""

import h5py
import numpy as np
import pytest

from snnflow import SnnflowError
from snnflow.data.caches import load_split, open_checked
from snnflow.data.caches import load_frames
from snnflow.deploy import nir_check
from snnflow.train import memory


def frame_cache(path, build_test_frames):
    """A frame cache (T=2) whose test frames `build_test_frames(h5, name, shape)` makes."""
    with h5py.File(path, "w") as h5:
        h5.attrs["T"] = 2
        h5.attrs["identity"] = "x"
        h5["train/frames"] = np.zeros((4, 2, 2, 34, 34), np.uint8)
        h5["train/labels"] = np.arange(4, dtype=np.uint8)
        h5["test/labels"] = np.arange(4, dtype=np.uint8)
        build_test_frames(h5, "test/frames", (4, 2, 2, 34, 34))
    return path


@pytest.fixture
def secret(tmp_path):
    """A file outside the project that a planted cache points at."""
    path = tmp_path / "outside" / "secret.bin"
    path.parent.mkdir()
    path.write_bytes(bytes(range(256)) * 200)
    return path


def external_storage(secret):
    return lambda h5, name, shape: h5.create_dataset(
        name, shape=shape, dtype=np.uint8, external=[(str(secret), 0, h5py.h5f.UNLIMITED)])


def virtual(secret_h5):
    def build(h5, name, shape):
        layout = h5py.VirtualLayout(shape=shape, dtype=np.uint8)
        layout[:] = h5py.VirtualSource(str(secret_h5), "data", shape=shape)
        h5.create_virtual_dataset(name, layout)
    return build


def external_link(secret_h5):
    def build(h5, name, shape):
        h5[name] = h5py.ExternalLink(str(secret_h5), "data")
    return build


def soft_link(h5, name, shape):
    h5["elsewhere"] = np.ones(shape, np.uint8)
    h5[name] = h5py.SoftLink("/elsewhere")


@pytest.fixture
def secret_h5(tmp_path):
    path = tmp_path / "outside" / "secret.h5"
    path.parent.mkdir(exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5["data"] = np.full((4, 2, 2, 34, 34), 7, np.uint8)
    return path


@pytest.mark.parametrize("case, words", [
    ("external_storage", "test/frames is stored in an external file ("),
    ("virtual", "test/frames is a virtual dataset, mapping other files"),
    ("external_link", "test/frames is an external link to "),
    ("soft_link", "test/frames is a soft link to /elsewhere"),
])
def test_a_cache_that_reads_another_file_is_refused_naming_file_and_dataset(
        tmp_path, secret, secret_h5, case, words):
    build = {"external_storage": external_storage(secret), "virtual": virtual(secret_h5),
             "external_link": external_link(secret_h5), "soft_link": soft_link}[case]
    cache = frame_cache(tmp_path / "nmnist_T2.h5", build)
    with h5py.File(cache, "r") as h5:  # as it was: h5py reads the other file
        assert h5["test/frames"][...].any()
    for read in (lambda: load_frames(cache, "test"), lambda: memory.cache_layout(cache),
                 lambda: open_checked(cache, [])):
        with pytest.raises(SnnflowError) as err:
            read()
        message = str(err.value)
        assert message.startswith(f"{cache}: ") and words in message, message
        assert "delete the file and rerun" in message and "\n" not in message


def test_a_dataset_declaring_bytes_beyond_the_files_end_is_refused(tmp_path):
    cache = frame_cache(tmp_path / "nmnist_T2.h5", lambda h5, name, shape: h5.create_dataset(
        name, data=np.ones(shape, np.uint8), chunks=(1, *shape[1:])))
    size = cache.stat().st_size - 5000
    with open(cache, "r+b") as f:  # the last chunks' bytes gone, the index intact, and the
        f.truncate(size)           # end of file the superblock records set to match
        assert f.read(9)[8] == 0   # superblock version 0: its end-of-file address at 40
        f.seek(40)
        f.write(size.to_bytes(8, "little"))
    with h5py.File(cache, "r") as h5:  # HDF5 itself opens it
        assert h5["test/frames"].shape == (4, 2, 2, 34, 34)
    with pytest.raises(SnnflowError, match=r"test/frames declares data up to byte \d+, beyond "
                                           rf"the file's {size} bytes"):
        load_split(cache, "test", "frames", (None, 2, 34, 34), attrs=("T",))


def test_a_nir_graph_with_an_external_link_is_refused_before_nir_reads_it(tmp_path, secret_h5):
    graph = tmp_path / "model.nir"
    with h5py.File(graph, "w") as h5:
        h5["node"] = h5py.ExternalLink(str(secret_h5), "data")
    with pytest.raises(SnnflowError, match="node is an external link to"):
        nir_check.verify(graph, tmp_path / "model.pt", tmp_path / "run.json",
                         tmp_path / "nmnist_T2.h5", 4, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_the_pipelines_own_caches_pass(small_caches):
    for name in ("nmnist_T4.h5", "mnist.h5", "events.h5"):
        with open_checked(small_caches / name, []) as h5:
            assert len(h5)
