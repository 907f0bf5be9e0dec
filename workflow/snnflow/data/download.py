"""Downloading the datasets: bounded retries, a timeout, md5 verification, atomic files.

N-MNIST's URLs and md5 sums are read from tonic (`tonic.datasets.NMNIST`), so they
follow tonic's releases. MNIST comes from mirrors of LeCun's (dead) site.
"""

import hashlib
import re
import socket
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from snnflow import SnnflowError
from snnflow.atomic import atomic_path

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


class _ChecksumMismatch(Exception):
    pass


def fetch(urls, dest, md5, alternative, timeout=30.0, retries=3, backoff=2.0, log=print):
    """Download the first of `urls` that answers with the expected md5 into `dest`.

    Transient failures (timeouts, refused connections, 5xx) are retried `retries`
    times with exponential backoff; a 4xx or a wrong md5 moves on to the next URL.
    When every URL fails, the error names them and `alternative` (what to do instead).
    """
    failures = []
    for url in urls:
        for attempt in range(1, retries + 1):
            try:
                _download(url, dest, md5, timeout)
                log(f"downloaded {url} -> {dest} (md5 {md5} verified)")
                return
            except _ChecksumMismatch as err:
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


def _download(url, dest, md5, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(dest) as tmp:
        digest = hashlib.md5()
        with open(tmp, "wb") as f:
            for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                digest.update(block)
                f.write(block)
        if digest.hexdigest() != md5:
            raise _ChecksumMismatch(f"md5 {digest.hexdigest()}, expected {md5}")


def unpack_split(archive, dest, top_folder):
    """Extract `top_folder/<label>/*.bin` from a zip archive into `dest` (which then
    holds `<label>/*.bin`), checking CRCs and layout first."""
    pattern = re.compile(rf"^{re.escape(top_folder)}/([0-9])/([^/]+\.bin)$")
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist()
                       if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
            unexpected = [m.filename for m in members if not pattern.match(m.filename)]
            if unexpected or not members:
                what = f"unexpected entry {unexpected[0]}" if unexpected else "no files"
                raise SnnflowError(f"{archive}: {what}; the archive must hold "
                                   f"{top_folder}/<label>/*.bin - delete it and download again")
            bad = zf.testzip()
            if bad is not None:
                raise SnnflowError(f"{archive}: {bad} fails its CRC check - delete the "
                                   "archive and download again")
            with atomic_path(dest) as tmp:
                for member in members:
                    label, name = pattern.match(member.filename).groups()
                    target = tmp / label / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(member))
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise SnnflowError(f"{archive}: not a complete zip archive ({err}) - delete it and "
                           "download again") from None
