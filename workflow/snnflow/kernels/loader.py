"""Building and loading every compiled kernel of the project, with one switch.

The native sources live in `snnflow/kernels/csrc/`, one file per kernel family; the modules
that use a family declare it (`native.py`: the data-prep C library loaded with
ctypes; `cpu_ops.py`: the CPU training kernels as a torch extension; `lif_triton.py`:
Triton kernels for CUDA, compiled by Triton itself) and load it through `load()`.

The switch is `kernels` in the config (the jobs call `set_mode`) or SNNFLOW_KERNELS
for anything else: `off` runs the PyTorch/numpy code everywhere, `auto` (default)
uses a family when it builds here and says so when it does not, `require` stops with
a one-line error when a family cannot be built.

Builds are cached in a folder per build key: the sources' contents, the compiler
flags, the torch and Python versions and the CPU's model and instruction-set flags.
So a build happens once per install and machine type, two environments never
rebuild each other's kernels, and a binary compiled with -march=native is never
loaded on a CPU that may lack its instructions (a home folder shared by cluster
nodes of different generations gets one build per CPU type). The cache is
$SNNFLOW_KERNEL_CACHE, default $XDG_CACHE_HOME/snnflow/kernels.
"""

import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from snnflow import SnnflowError, first_line
from snnflow.machine import cpu_fields

CSRC = Path(__file__).with_name("csrc")
MODES = ("off", "auto", "require")
_log = logging.getLogger(__name__)
_mode = None
_status = {}  # family name -> what happened, for logs and run.json


def set_mode(mode):
    """Set the switch for this process (a job passes its config value)."""
    global _mode
    if mode not in MODES:
        raise SnnflowError(f"config key kernels: {mode!r} - use one of {', '.join(MODES)}")
    _mode = mode


def mode():
    if _mode is not None:
        return _mode
    value = os.environ.get("SNNFLOW_KERNELS", "auto")
    if value not in MODES:
        raise SnnflowError(f"SNNFLOW_KERNELS={value!r}: use one of {', '.join(MODES)}")
    return value


def status():
    """{family: what happened} for every family this process tried to load."""
    return dict(_status)


@dataclass(frozen=True)
class CLibrary:
    """A C library built with the system's C compiler and loaded with ctypes."""
    name: str
    sources: tuple
    flags: tuple = ("-O3", "-shared", "-fPIC")

    def build_and_load(self):
        return _c_library(self)


@dataclass(frozen=True)
class TorchExtension:
    """C++ torch operators (TORCH_LIBRARY(name, ...)) built with
    torch.utils.cpp_extension and ninja."""
    name: str
    sources: tuple
    headers: tuple = ()
    flags: tuple = ("-O3", "-fopenmp", "-march=native")
    ldflags: tuple = ("-fopenmp",)

    def build_and_load(self):
        return _torch_extension(self)


@dataclass(frozen=True)
class TritonModule:
    """Triton kernels in a Python module: `build()` compiles nothing until first use."""
    name: str
    build: object  # () -> the kernels object; raises ImportError without Triton

    def build_and_load(self):
        return self.build(), "Triton"


def load(family, fallback):
    """The loaded family, or None when the switch is off or (with `auto`) it cannot be
    built here, in which case the callers run `fallback`. Decided once per process."""
    return _load(family, fallback, mode())


@functools.cache
def _load(family, fallback, switch):
    if switch == "off":
        _status[family.name] = f"off (kernels: off); {fallback} instead"
        return None
    start = time.perf_counter()
    try:
        loaded, how = family.build_and_load()  # (the kernels, how they were obtained)
    except Exception as err:  # no compiler, no ninja, no Triton, a failed build
        reason = _reason(err)
        if switch == "require":
            raise SnnflowError(f"config key kernels: require, but {family.name} cannot be "
                               f"built here ({reason}) - install what it needs (a C/C++ "
                               "compiler and ninja; Triton on CUDA) or set kernels: auto") \
                from None
        _status[family.name] = f"unavailable ({reason}); {fallback} instead"
        _log.warning("%s unavailable (%s); using %s", family.name, reason, fallback)
        return None
    _status[family.name] = f"{how} in {time.perf_counter() - start:.1f} s"
    return loaded


def _reason(err):
    """The line of a failed build that says what went wrong: the compiler's first
    `error:` line where there is one."""
    text = getattr(err, "stderr", None) or getattr(err, "output", None) or str(err)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = str(text).splitlines()
    for marker in ("error:", "Error", "error"):
        found = [line for line in lines if marker in line]
        if found:
            return first_line(found[0].split("/src/")[-1], 200)
    return first_line(text or type(err).__name__, 200)


def cache_root():
    root = os.environ.get("SNNFLOW_KERNEL_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "snnflow" / "kernels"


def cpu_identity():
    """The CPU's model and instruction-set flags, as one line of the build key."""
    fields = cpu_fields() or {"processor": platform.processor()}
    return f"{platform.machine()} " + "; ".join(f"{k}={v}" for k, v in sorted(fields.items()))


def build_key(family, versions):
    """Hex key of everything that makes a build of `family` valid here."""
    digest = hashlib.sha256()
    for name in sorted((*family.sources, *getattr(family, "headers", ()))):
        digest.update(name.encode() + b"\0" + (CSRC / name).read_bytes() + b"\0")
    digest.update(repr((family.flags, getattr(family, "ldflags", ()), versions)).encode())
    digest.update(cpu_identity().encode())
    return digest.hexdigest()[:16]


def _build_folder(family, versions):
    """The family's build folder, with a copy of its sources made on first use (so
    the build reads fixed paths whatever checkout asked for it)."""
    folder = cache_root() / f"{family.name}-{build_key(family, versions)}"
    if not (folder / "src").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".src-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name in (*family.sources, *getattr(family, "headers", ())):
            shutil.copy2(CSRC / name, tmp / name)
        try:
            os.rename(tmp, folder / "src")
        except OSError:  # another process got there first: its copy is the same
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _c_library(family):
    import ctypes
    import shlex
    import sysconfig

    folder = _build_folder(family, ())  # plain C: neither torch nor Python is linked in
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[:1]
    library = folder / f"lib{family.name}.so"
    how = "loaded from cache"
    if not library.exists():
        tmp = folder / f".lib{family.name}.{os.getpid()}.so"
        try:
            sources = [str(folder / "src" / s) for s in family.sources]
            subprocess.run([*compiler, *family.flags, "-o", str(tmp), *sources],
                           check=True, capture_output=True, text=True)
            os.replace(tmp, library)  # whole, so a job starting beside it never loads half
        finally:
            tmp.unlink(missing_ok=True)
        how = "built"
    return ctypes.CDLL(str(library)), f"C, {how} ({folder})"


def _torch_extension(family):
    """The family's operators, torch.ops.<family name>.* (registered with TORCH_LIBRARY)."""
    import torch

    versions = (torch.__version__, torch.version.git_version, sys.implementation.cache_tag)
    folder = _build_folder(family, versions)
    done = folder / "complete"  # written after a build loaded: the library is whole
    how = "loaded from cache"
    if done.exists():
        torch.ops.load_library(str(folder / f"{family.name}.so"))
    else:
        from torch.utils.cpp_extension import load as build

        _put_ninja_on_path()
        build(name=family.name, sources=[str(folder / "src" / s) for s in family.sources],
              extra_cflags=list(family.flags), extra_ldflags=list(family.ldflags),
              extra_include_paths=[str(folder / "src")], build_directory=str(folder),
              is_python_module=False, verbose=False)  # loads the operators, too
        done.touch()
        how = "built"
    return getattr(torch.ops, family.name), f"C++, {how} ({folder})"


def _put_ninja_on_path():
    """torch runs `ninja` from PATH; the ninja that pip installs beside this Python is
    not on it unless the environment is activated."""
    if shutil.which("ninja"):
        return
    try:
        import ninja
        folder = ninja.BIN_DIR
    except (ImportError, AttributeError):
        folder = os.path.dirname(sys.executable)
    os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
