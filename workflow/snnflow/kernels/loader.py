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

A library in the cache runs code in every job that loads it, so the cache is trusted
only as far as nobody else can write it (`safe_folder`: the cache and every build
folder owned by this user, writable by nobody else (its own private group aside), never
a link; the folders above it likewise unless sticky, like /tmp), and a library is
loaded only if its SHA-256 is the one recorded when this user's build made it; otherwise
it is rebuilt. A build holds an exclusive lock on its folder (released by the system when the
process dies, so a killed build never leaves a lock that blocks the next), and a job
that waits for another's build says so in its log.
"""

import errno
import fcntl
import functools
import hashlib
import logging
import os
import platform
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from snnflow import SnnflowError, first_line
from snnflow.device.machine import cpu_fields
from snnflow.jobs.own_folder import create_own_folder

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
        try:
            loaded, how = family.build_and_load()  # (the kernels, how they were obtained)
        except OSError as err:
            _refuse_unwritable_cache(err)
            raise
    except UnsafeCache as err:  # never loaded from there, nor built into it
        if switch == "require":
            raise SnnflowError(f"config key kernels: require, but {err}") from None
        _status[family.name] = f"unavailable ({err}); {fallback} instead"
        _log.warning("%s unavailable: %s; using %s", family.name, err, fallback)
        return None
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


def _refuse_unwritable_cache(err):
    """An UnsafeCache naming the kernel cache when `err` is its folder refusing a write
    (read-only, no permission): the remedy is the folder's, not a compiler's."""
    root = cache_root()
    names = [str(name) for name in (err.filename, getattr(err, "filename2", None)) if name]
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and any(
            name == str(root) or name.startswith(f"{root}{os.sep}") for name in names):
        raise UnsafeCache(f"the kernel cache {root} cannot be written ({err.strerror}) - make "
                          "it writable, or set SNNFLOW_KERNEL_CACHE to a folder you can "
                          "write") from None


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


class UnsafeCache(SnnflowError):
    """The kernel cache is not this user's alone: nothing is loaded from it."""


def safe_folder(folder):
    """`folder`, created (mode 0700) if absent, after checking that nobody but this user
    can put a file in it: it must be a folder, not a link, owned by this user and
    writable by nobody else, and each folder above it must be owned by this user or
    root and writable by nobody else unless sticky (like /tmp). UnsafeCache names the
    folder and the fix."""
    def refuse(path, what):
        return UnsafeCache(f"the kernel cache {folder} is unsafe: {path} {what} - fix that, or "
                           "set SNNFLOW_KERNEL_CACHE to a folder only you can write (compiled "
                           "kernels are loaded from there into every training job)")
    uid = os.geteuid()
    try:
        create_own_folder(folder)
    except OSError as err:
        _refuse_unwritable_cache(err)
        raise refuse(folder, f"cannot be created ({err.strerror})") from None
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode):
        raise refuse(folder, "is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        raise refuse(folder, "is not a folder")
    if info.st_uid != uid:
        raise refuse(folder, f"belongs to another user (uid {info.st_uid})")
    if _others_can_write(info):
        raise refuse(folder, f"is writable by others (mode {stat.filemode(info.st_mode)})")
    for above in Path(os.path.realpath(folder.parent)).joinpath("x").parents:
        info = os.stat(above)
        if info.st_uid not in (uid, 0):
            raise refuse(above, f"belongs to another user (uid {info.st_uid})")
        if _others_can_write(info) and not info.st_mode & stat.S_ISVTX:
            raise refuse(above, f"is writable by others (mode {stat.filemode(info.st_mode)})")
    return folder


def _others_can_write(info):
    """Whether someone but its owner can write the folder of `info`: anyone, or its group
    unless that is the owner's own private group (a group of the user's name with no
    other member, as many systems give each user)."""
    import grp
    import pwd

    if info.st_mode & 0o002:
        return True
    if not info.st_mode & 0o020:
        return False
    try:
        group, owner = grp.getgrgid(info.st_gid), pwd.getpwuid(info.st_uid)
    except KeyError:
        return True
    return not (group.gr_name == owner.pw_name and set(group.gr_mem) <= {owner.pw_name})


def _file_digest(path):
    """SHA-256 of a regular file of this user's that nobody else can write, else None."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(handle, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() \
                or info.st_mode & 0o022:
            return None
        return hashlib.file_digest(f, "sha256").hexdigest()


def _trusted(library, record):
    """Whether `library` is the one this user's build made: its SHA-256 is `record`'s."""
    try:
        recorded = record.read_text().strip()
    except OSError:
        return False
    return bool(recorded) and _file_digest(library) == recorded


def _record(library, record):
    """Record `library`'s SHA-256 in `record` (whole, or not at all)."""
    tmp = record.with_name(f".{record.name}.{os.getpid()}")
    tmp.write_text(_file_digest(library) or "")
    os.replace(tmp, record)


class _BuildLock:
    """An exclusive lock on a build folder, saying in the log when it must wait."""

    def __init__(self, folder):
        self.path = folder / "build.lock"

    def __enter__(self):
        self.handle = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log.warning("waiting for another job's kernel build in %s (lock %s)",
                         self.path.parent, self.path)
            fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.handle)  # releases the lock


def _build_folder(family, versions):
    """The family's build folder, with a copy of its sources made on first use (so
    the build reads fixed paths whatever checkout asked for it)."""
    root = safe_folder(cache_root())
    folder = safe_folder(root / f"{family.name}-{build_key(family, versions)}")
    if not (folder / "src").is_dir():
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
    record = folder / f"lib{family.name}.so.sha256"
    how = "loaded from cache"
    if not _trusted(library, record):
        with _BuildLock(folder):
            if not _trusted(library, record):  # or another job built it meanwhile
                tmp = folder / f".lib{family.name}.{os.getpid()}.so"
                try:
                    sources = [str(folder / "src" / s) for s in family.sources]
                    subprocess.run([*compiler, *family.flags, "-o", str(tmp), *sources],
                                   check=True, capture_output=True, text=True)
                    os.replace(tmp, library)  # whole: a job beside it never loads half
                finally:
                    tmp.unlink(missing_ok=True)
                _record(library, record)
                how = "built"
    return ctypes.CDLL(str(library)), f"C, {how} ({folder})"


def _torch_extension(family):
    """The family's operators, torch.ops.<family name>.* (registered with TORCH_LIBRARY)."""
    import torch

    versions = (torch.__version__, torch.version.git_version, sys.implementation.cache_tag)
    folder = _build_folder(family, versions)
    library = folder / f"{family.name}.so"
    done = folder / "complete"  # the library's SHA-256, written once a build loaded
    how = "loaded from cache"
    if _trusted(library, done):
        torch.ops.load_library(str(library))
    else:
        with _BuildLock(folder):
            if _trusted(library, done):  # another job built it meanwhile
                torch.ops.load_library(str(library))
            else:
                _build_extension(family, folder)  # loads the operators, too
                _record(library, done)
                how = "built"
    return getattr(torch.ops, family.name), f"C++, {how} ({folder})"


def _build_extension(family, folder):
    """Build the family's extension in `folder` (holding its _BuildLock) with
    torch.utils.cpp_extension and load it. What an earlier build left is removed first,
    the sources aside: a library that failed its check is never linked or loaded, and a
    lock file of torch's own left by a killed build would make torch wait forever."""
    from torch.utils.cpp_extension import load as build

    for path in folder.iterdir():
        if path.name not in ("src", "build.lock"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    _put_ninja_on_path()
    build(name=family.name, sources=[str(folder / "src" / s) for s in family.sources],
          extra_cflags=list(family.flags), extra_ldflags=list(family.ldflags),
          extra_include_paths=[str(folder / "src")], build_directory=str(folder),
          is_python_module=False, verbose=False)


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
