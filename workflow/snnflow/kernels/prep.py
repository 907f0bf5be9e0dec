"""The data-prep C kernels (csrc/prep.c: parse files, bin a chunk of samples, compress a
chunk), built and loaded by snnflow.kernels and called through ctypes.

ctypes releases the GIL during each call, so the kernels run in parallel threads.
When they are unavailable (no C compiler, or kernels: off) `library()` returns None
and the data stages use their numpy and zlib code instead: same files, slower.
"""

import ctypes
import functools

from snnflow.kernels import loader

PREP = loader.CLibrary("snnflow_prep", sources=("prep.c",))

_SIGNATURES = {
    "parse_files": (ctypes.c_int64, [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int64,
                                     ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                                     ctypes.c_void_p]),
    "bin_frames": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                  ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                  ctypes.c_void_p, ctypes.c_int64]),
    "bin_frames_by_time": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                          ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]),
    "zlib_sparse": (ctypes.c_int64, [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                                     ctypes.c_void_p]),
    "zlib_sparse_bound": (ctypes.c_int64, [ctypes.c_int64]),
}


def library():
    """The loaded loader, or None when they are unavailable here."""
    lib = loader.load(PREP, "numpy and zlib")
    return None if lib is None else _declare_signatures(lib)


@functools.cache
def _declare_signatures(lib):
    """`lib` with its functions' C types declared (once: the data stages ask per chunk)."""
    for name, (restype, argtypes) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib
