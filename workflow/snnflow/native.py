"""The data-prep C kernels (prep.c): compiled on first use, loaded with ctypes.

The shared library is cached under $XDG_CACHE_HOME/snnflow (default ~/.cache/snnflow),
keyed by the source, the compiler and the machine type, and written by rename, so
jobs that start together never load a half-written file. Without a C compiler (or
with SNNFLOW_DISABLE_CPP=1) `library()` returns None and the data stages use their
numpy and zlib code instead: same files, slower. ctypes releases the GIL during each
call, so the kernels run in parallel threads.
"""

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import subprocess
import sysconfig
from pathlib import Path

SOURCE = Path(__file__).with_name("prep.c")

_SIGNATURES = {
    "parse_files": (ctypes.c_int64, [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int64,
                                     ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]),
    "bin_frames": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                  ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                  ctypes.c_void_p, ctypes.c_int64]),
    "zlib_sparse": (ctypes.c_int64, [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                                     ctypes.c_void_p]),
    "zlib_sparse_bound": (ctypes.c_int64, [ctypes.c_int64]),
}

def _compiler():
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[:1]


def _build():
    source = SOURCE.read_bytes()
    compiler = _compiler()
    key = hashlib.sha256(source + repr((compiler, platform.machine())).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "snnflow"
    library = cache / f"prep-{key}.so"
    if not library.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".prep-{key}.{os.getpid()}.so"
        try:
            subprocess.run([*compiler, "-O3", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE)],
                           check=True, capture_output=True, text=True)
            os.replace(tmp, library)
        finally:
            tmp.unlink(missing_ok=True)
    return ctypes.CDLL(str(library))


@functools.cache
def library():
    """The loaded kernels, or None when they cannot be built here."""
    if os.environ.get("SNNFLOW_DISABLE_CPP") == "1":
        return None
    try:
        lib = _build()
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        logging.getLogger(__name__).warning(
            "data-prep C kernels unavailable (%s); using numpy and zlib",
            detail.strip().splitlines()[0] if detail.strip() else type(err).__name__)
        return None
    for name, (restype, argtypes) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib
