"""Content identities: what each cache was made from, as a hash stored in the cache
(attribute `identity`) and carried on by everything made from it, so that a training
run can tell that its checkpoint was made on other data (snnflow.train.loop)."""

import hashlib

CHUNK_BYTES = 1 << 20


def md5sum(path):
    """The md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def derived(*parts):
    """The identity of something made from `parts` (identities, settings, a code
    fingerprint), in order."""
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:32]


def sha256_of(array):
    """The sha256 digest (bytes) of an array's contents, for Digest.add; hashlib releases
    the GIL, so worker threads can hash their parts at once."""
    return hashlib.sha256(memoryview(array).cast("B")).digest()


class Digest:
    """An identity built from data as it streams by (arrays, text)."""

    def __init__(self, kind):
        self._sha = hashlib.sha256(kind.encode())

    def add(self, data):
        """Add an array or bytes (contiguous arrays are not copied) or text."""
        self._sha.update(data.encode("utf-8", "surrogateescape") if isinstance(data, str)
                         else memoryview(data).cast("B"))

    def hexdigest(self):
        return self._sha.hexdigest()[:32]
