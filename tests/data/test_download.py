"""The download code against a real HTTP server on 127.0.0.1 serving archives built here."""

import hashlib
import http.server
import socket
import threading
import time
import zipfile

import pytest

from conftest import random_events
from snnflow import SnnflowError
from snnflow.data import download
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
    fetch([url + "train.zip"], dest, md5, max_bytes=1 << 20, alternative="set nmnist_dir",
          log=lambda m: None)
    assert md5sum(dest) == md5
    unpack_split(dest, tmp_path / "NMNIST" / "Train", "Train")
    for name, ev in events.items():
        assert (read_events(tmp_path / "NMNIST" / "Train" / name) == ev).all()


def test_md5_mismatch_keeps_nothing_and_says_what_to_do(tmp_path, server, rng):
    root, url = server
    build_archive(root / "train.zip", rng)
    dest = tmp_path / "nmnist_train.zip"
    with pytest.raises(SnnflowError) as err:
        fetch([url + "train.zip"], dest, "0" * 32, max_bytes=1 << 20,
              alternative="set nmnist_dir instead",
              backoff=0, log=lambda m: None)
    message = str(err.value)
    assert "md5" in message and url + "train.zip" in message and "set nmnist_dir" in message
    assert list(tmp_path.glob("*nmnist_train*")) == []


def test_404_is_not_retried_and_names_the_url(tmp_path, server):
    _, url = server
    with pytest.raises(SnnflowError, match="missing.zip: HTTP 404"):
        fetch([url + "missing.zip"], tmp_path / "x.zip", "0" * 32, max_bytes=1 << 20,
              alternative="x",
              retries=5, backoff=10, log=lambda m: None)  # a retry would sleep 10 s


def test_second_mirror_is_used_when_the_first_fails(tmp_path, server, rng):
    root, url = server
    build_archive(root / "a.zip", rng)
    md5 = md5sum(root / "a.zip")
    fetch([url + "gone.zip", url + "a.zip"], tmp_path / "a.zip", md5, max_bytes=1 << 20,
          alternative="x",
          log=lambda m: None)
    assert md5sum(tmp_path / "a.zip") == md5


def test_no_network_fails_fast_after_bounded_retries(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(SnnflowError, match=f"127.0.0.1:{port}.*put it there by hand"):
        fetch([f"http://127.0.0.1:{port}/train.zip"], tmp_path / "t.zip", "0" * 32,
              max_bytes=1 << 20, alternative="put it there by hand", timeout=2, retries=3,
              backoff=0.01, log=lambda m: None)
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


@pytest.fixture
def hostile_server():
    """A server on 127.0.0.1 whose GET sends no length and then `behaviour(wfile)`:
    yields (set the behaviour, base URL)."""
    behaviour = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()  # no Content-Length: the body ends when the server says
            try:
                behaviour[0](self.wfile)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield behaviour.append, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def trickle(wfile):
    while True:  # a byte every 0.2 s, forever: each read is on time, the transfer never is
        wfile.write(b"x")
        wfile.flush()
        time.sleep(0.2)


def endless(wfile):
    while True:  # fast and without end
        wfile.write(bytes(1 << 16))


@pytest.mark.parametrize("behaviour, words", [
    (trickle, r"x.zip: \d+ bytes in \d s, slower than 16 kB/s\) - set nmnist_dir"),
    (endless, r"x.zip: sent more than the 1048576 bytes the file can be\) - set nmnist_dir"),
])
def test_a_transfer_that_never_ends_is_bounded_in_time_and_bytes(
        tmp_path, hostile_server, monkeypatch, behaviour, words):
    serve, url = hostile_server
    serve(behaviour)
    monkeypatch.setattr(download, "SLOW_AFTER_SECONDS", 3.0)  # the study's: 20 s
    start = time.monotonic()
    with pytest.raises(SnnflowError, match=words):
        fetch([url + "x.zip"], tmp_path / "x.zip", "0" * 32, max_bytes=1 << 20,
              alternative="set nmnist_dir", timeout=10, retries=3, log=lambda m: None)
    assert time.monotonic() - start < 8  # not retried: that server will not do better
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_a_declared_length_beyond_the_files_size_is_refused_before_reading(tmp_path, server):
    root, url = server
    (root / "big.zip").write_bytes(bytes(2 << 20))
    with pytest.raises(SnnflowError, match="big.zip: declares 2097152 bytes, more than the "
                                           "1048576 the file can be"):
        fetch([url + "big.zip"], tmp_path / "big.zip", "0" * 32, max_bytes=1 << 20,
              alternative="x", log=lambda m: None)


def test_the_bounds_hold_the_real_files():
    assert download.MAX_NMNIST_ARCHIVE_BYTES > 1_100_000_000  # train.zip: about 1 GB
    assert download.MAX_MNIST_FILE_BYTES > 9_912_422  # train-images-idx3-ubyte.gz
    # the slowest transfer allowed gets N-MNIST's train.zip in under a day
    assert 1_100_000_000 / download.MIN_BYTES_PER_SECOND < 24 * 3600
