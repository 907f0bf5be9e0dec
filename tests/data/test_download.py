"""The download code against a real HTTP server on 127.0.0.1 serving archives built here."""

import hashlib
import socket
import time
import zipfile

import pytest

from conftest import random_events
from snnflow import SnnflowError
from snnflow.data.download import fetch, nmnist_archive, unpack_split
from snnflow.data.identity import md5sum
from snnflow.data.nmnist import read_events, write_events


def build_archive(path, rng, top="Train", labels=(0, 7)):
    events = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{top}/", "")
        for label in labels:
            for i in range(2):
                ev = random_events(rng, 30)
                tmp = path.parent / "tmp.bin"
                write_events(tmp, ev)
                name = f"{label}/{i:05d}.bin"
                zf.write(tmp, f"{top}/{name}")
                events[name] = ev
                tmp.unlink()
    return events


def test_good_archive_is_fetched_verified_and_unpacked(tmp_path, server, rng):
    root, url = server
    events = build_archive(root / "train.zip", rng)
    md5 = hashlib.md5((root / "train.zip").read_bytes()).hexdigest()
    dest = tmp_path / "downloads" / "nmnist_train.zip"
    fetch([url + "train.zip"], dest, md5, alternative="set nmnist_dir", log=lambda m: None)
    assert md5sum(dest) == md5
    unpack_split(dest, tmp_path / "NMNIST" / "Train", "Train")
    for name, ev in events.items():
        assert (read_events(tmp_path / "NMNIST" / "Train" / name) == ev).all()


def test_md5_mismatch_keeps_nothing_and_says_what_to_do(tmp_path, server, rng):
    root, url = server
    build_archive(root / "train.zip", rng)
    dest = tmp_path / "nmnist_train.zip"
    with pytest.raises(SnnflowError) as err:
        fetch([url + "train.zip"], dest, "0" * 32, alternative="set nmnist_dir instead",
              backoff=0, log=lambda m: None)
    message = str(err.value)
    assert "md5" in message and url + "train.zip" in message and "set nmnist_dir" in message
    assert list(tmp_path.glob("*nmnist_train*")) == []


def test_404_is_not_retried_and_names_the_url(tmp_path, server):
    _, url = server
    with pytest.raises(SnnflowError, match="missing.zip: HTTP 404"):
        fetch([url + "missing.zip"], tmp_path / "x.zip", "0" * 32, alternative="x",
              retries=5, backoff=10, log=lambda m: None)  # a retry would sleep 10 s


def test_second_mirror_is_used_when_the_first_fails(tmp_path, server, rng):
    root, url = server
    build_archive(root / "a.zip", rng)
    md5 = md5sum(root / "a.zip")
    fetch([url + "gone.zip", url + "a.zip"], tmp_path / "a.zip", md5, alternative="x",
          log=lambda m: None)
    assert md5sum(tmp_path / "a.zip") == md5


def test_no_network_fails_fast_after_bounded_retries(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(SnnflowError, match=f"127.0.0.1:{port}.*put it there by hand"):
        fetch([f"http://127.0.0.1:{port}/train.zip"], tmp_path / "t.zip", "0" * 32,
              alternative="put it there by hand", timeout=2, retries=3, backoff=0.01,
              log=lambda m: None)
    assert time.monotonic() - start < 10
    assert not (tmp_path / "t.zip").exists()


def test_truncated_zip_is_refused(tmp_path, rng):
    build_archive(tmp_path / "a.zip", rng)
    data = (tmp_path / "a.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(SnnflowError, match="cut.zip: not a complete zip archive"):
        unpack_split(tmp_path / "cut.zip", tmp_path / "out", "Train")
    assert not (tmp_path / "out").exists()


def test_wrong_layout_is_refused(tmp_path, rng):
    build_archive(tmp_path / "a.zip", rng, top="Stuff")
    with pytest.raises(SnnflowError, match="must hold Train/<label>/\\*.bin"):
        unpack_split(tmp_path / "a.zip", tmp_path / "out", "Train")
    assert not (tmp_path / "out").exists()


def test_corrupt_member_fails_its_crc(tmp_path, rng):
    build_archive(tmp_path / "a.zip", rng)
    data = bytearray((tmp_path / "a.zip").read_bytes())
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        info = zf.infolist()[1]
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 2] ^= 0xFF
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    with pytest.raises(SnnflowError, match="bad.zip"):
        unpack_split(tmp_path / "bad.zip", tmp_path / "out", "Train")
    assert not (tmp_path / "out").exists()


def test_nmnist_urls_come_from_tonic():
    from tonic.datasets import NMNIST

    url, md5, folder = nmnist_archive("test")
    assert (url, md5, folder) == (NMNIST.test_url, NMNIST.test_md5, "Test")


def test_an_archive_whose_files_unpack_beyond_the_cap_is_refused_before_writing(tmp_path,
                                                                               monkeypatch):
    import zipfile

    from snnflow import SnnflowError
    from snnflow.data import download

    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(3):
            zf.writestr(f"Train/{i}/0000{i}.bin", bytes(1000))
    monkeypatch.setattr(download, "MAX_UNPACKED_BYTES", 2500)
    with pytest.raises(SnnflowError, match="its files unpack to 3000 bytes, more than 2500"):
        download.unpack_split(archive, tmp_path / "Train", "Train")
    assert not (tmp_path / "Train").exists()


def test_a_member_that_streams_more_than_it_declares_is_cut_off(tmp_path, monkeypatch):
    """A member whose data runs past its declared size (a forged header) never writes more
    than the cap while it streams out."""
    import zipfile

    from snnflow import SnnflowError
    from snnflow.data import download

    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Train/0/00000.bin", bytes(5000))
    monkeypatch.setattr(download, "MAX_RECORDING_BYTES", 100_000)
    original = zipfile.ZipFile.infolist

    def understated(self):
        members = original(self)
        for m in members:
            m.file_size = 1000  # the listing says 1 kB; the data holds 5 kB
        return members
    monkeypatch.setattr(zipfile.ZipFile, "infolist", understated)
    monkeypatch.setattr(download, "CHUNK_BYTES", 512)
    with pytest.raises(SnnflowError):
        download.unpack_split(archive, tmp_path / "Train", "Train")
    assert not (tmp_path / "Train").exists()
