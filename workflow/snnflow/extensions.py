"""Building the C++ training kernels with torch on first use.

torch compiles each source once per machine and caches the build (TORCH_EXTENSIONS_DIR),
so only the first process pays for it. Without a compiler, or with
SNNFLOW_DISABLE_CPP=1, there is no module and the callers use PyTorch ops instead.
"""

import functools
import logging
import os


@functools.cache
def build(name, source, fallback):
    """The compiled module `name`, or None (logging that `fallback` is used instead)."""
    if os.environ.get("SNNFLOW_DISABLE_CPP") == "1":
        return None
    try:
        from torch.utils.cpp_extension import load_inline

        return load_inline(name=name, cpp_sources=[source], functions=None,
                           extra_cflags=["-O3", "-fopenmp", "-march=native"],
                           extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as err:  # no compiler, no headers, a failed build
        logging.getLogger(__name__).warning(
            "%s unavailable (%s); using %s", name,
            str(err).splitlines()[0] if str(err) else type(err).__name__, fallback)
        return None
