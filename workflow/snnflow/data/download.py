"""Downloading the datasets: bounded retries, a timeout, md5 verification, atomic files.

N-MNIST's URLs and md5 sums are read from tonic (`tonic.datasets.NMNIST`), so they
follow tonic's releases. MNIST comes from mirrors of LeCun's (dead) site.

Every transfer is bounded: each read by the timeout, the whole transfer by its size
(a file far larger than the dataset's is refused as it streams, whether or not the
server declared its length) and by its pace (one that has averaged under
MIN_BYTES_PER_SECOND after SLOW_AFTER_SECONDS is given up), so a server that trickles
or never ends cannot hold a job or fill the disk.
"""

import hashlib
import re
import socket
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from snnflow import SnnflowError
from snnflow.jobs.atomic import atomic_path
from snnflow.data import archives

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CHUNK_BYTES = 1 << 20
# The largest file each dataset can be: N-MNIST's train.zip is about 1 GB, test.zip
# 170 MB; MNIST's largest file (train-images) 9.9 MB.
MAX_NMNIST_ARCHIVE_BYTES = 2 << 30
MAX_MNIST_FILE_BYTES = 32 << 20
MAX_TONIC_ARCHIVE_BYTES = 16 << 30  # the largest of tonic's event-camera archives is a few GB
MIN_BYTES_PER_SECOND = 16 << 10
SLOW_AFTER_SECONDS = 20.0


def nmnist_archive(split, mirror=None):
    """(url, md5, top folder) of N-MNIST's train or test archive, as tonic knows them;
    with a mirror, the URL is the mirror's file of tonic's name (train.zip, test.zip)."""
    from tonic.datasets import NMNIST

    url = getattr(NMNIST, f"{split}_url")
    if mirror:
        url = mirror.rstrip("/") + "/" + getattr(NMNIST, f"{split}_filename")
    return url, getattr(NMNIST, f"{split}_md5"), getattr(NMNIST, f"{split}_folder")


def mnist_urls(name, mirror=None):
    """Where to fetch one MNIST file: the configured mirror, else the built-in ones."""
    return [mirror.rstrip("/") + "/" + name] if mirror else [m + name for m in MNIST_MIRRORS]


class _NotTheFile(Exception):
    """Not the file: a wrong md5, more bytes than it can be, or a pace that never ends."""


def fetch(urls, dest, md5, alternative, max_bytes, timeout=30.0, retries=3, backoff=2.0,
          log=print):
    """Download the first of `urls` that answers with the expected md5, in at most
    `max_bytes`, into `dest`.

    Transient failures (timeouts, refused connections, 5xx) are retried `retries`
    times with exponential backoff; a 4xx, a wrong md5, a file over `max_bytes` or a
    transfer slower than MIN_BYTES_PER_SECOND moves on to the next URL. When every URL
    fails, the error names them and `alternative` (what to do instead).
    """
    failures = []
    for url in urls:
        for attempt in range(1, retries + 1):
            try:
                _download(url, dest, md5, timeout, max_bytes)
                log(f"downloaded {url} -> {dest} (md5 {md5} verified)")
                return
            except _NotTheFile as err:
                failures.append(f"{url}: {err}")
                break
            except urllib.error.HTTPError as err:
                failures.append(f"{url}: HTTP {err.code}")
                if err.code < 500:
                    break
            except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as err:
                reason = getattr(err, "reason", err)
                failures.append(f"{url}: {reason}")
            if attempt < retries:
                log(f"attempt {attempt} of {url} failed ({failures[-1]}); retrying")
                time.sleep(backoff * 2 ** (attempt - 1))
    raise SnnflowError(f"cannot download {Path(dest).name} ({failures[-1]}) - {alternative}")


def _download(url, dest, md5, timeout, max_bytes, clock=time.monotonic):
    with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(dest) as tmp:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise _NotTheFile(f"declares {declared} bytes, more than the {max_bytes} "
                                    "the file can be")
        digest, received, started = hashlib.md5(), 0, clock()
        with open(tmp, "wb") as f:
            for block in iter(lambda: response.read1(CHUNK_BYTES), b""):
                received += len(block)
                if received > max_bytes:
                    raise _NotTheFile(f"sent more than the {max_bytes} bytes the file "
                                            "can be")
                elapsed = clock() - started
                if elapsed > SLOW_AFTER_SECONDS and received < MIN_BYTES_PER_SECOND * elapsed:
                    raise _NotTheFile(f"{received} bytes in {elapsed:.0f} s, slower than "
                                            f"{MIN_BYTES_PER_SECOND // 1024} kB/s")
                digest.update(block)
                f.write(block)
        if digest.hexdigest() != md5:
            raise _NotTheFile(f"md5 {digest.hexdigest()}, expected {md5}")


# What an N-MNIST archive can hold: its recordings are 4-33 kB (the 100 real ones in the
# test fixtures: 21 kB on average, 32 kB the largest) and a split's archive unpacks to
# about 1.3 GB. Anything far beyond is refused before, and while, it is extracted.
MAX_RECORDING_BYTES = 1 << 20        # 1 MiB, 30x the largest real recording
MAX_UNPACKED_BYTES = 4 << 30         # 4 GiB per archive, 3x the training split
MAX_MEMBERS = 200_000                # 60,000 recordings in the training split


def unpack_split(archive, dest, top_folder):
    """Extract `top_folder/<label>/*.bin` from a zip archive into `dest` (which then
    holds `<label>/*.bin`) through snnflow.data.archives: the layout, each member's type
    and path and the declared sizes checked first, then each member's size (against its
    declaration and the caps, while it streams out) and CRC."""
    pattern = re.compile(rf"^{re.escape(top_folder)}/([0-9])/([^/]+\.bin)$")
    limits = archives.Limits(MAX_MEMBERS, MAX_RECORDING_BYTES, MAX_UNPACKED_BYTES,
                             "an N-MNIST", "N-MNIST's recordings are a few kB and a split "
                                           "unpacks to about 1.3 GB")

    def target_of(path):
        if path.parts[0] == "__MACOSX":
            return None
        found = pattern.match(path.as_posix())
        if found is None:
            raise SnnflowError(f"{archive}: unexpected entry {path.as_posix()}; the archive "
                               f"must hold {top_folder}/<label>/*.bin - delete it and "
                               "download again")
        return Path(*found.groups())

    if not zipfile.is_zipfile(archive):
        raise SnnflowError(f"{archive}: not a complete zip archive - delete it and download "
                           "again")
    with atomic_path(dest) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        if not archives.unpack(archive, tmp, limits, target_of):
            raise SnnflowError(f"{archive}: no files; the archive must hold "
                               f"{top_folder}/<label>/*.bin - delete it and download again")
