"""The kernel cache runs code in every job that loads from it, so it is trusted only as
far as nobody else can write it (snnflow.kernels.loader.safe_folder), a library is
loaded only if its SHA-256 is the one its build recorded, and a killed build never
leaves a lock that blocks the next one."""

import fcntl
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO
from snnflow.kernels import loader, prep

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the kernels build on Linux")


def load_prep(cache, **env):
    """Load the data-prep C library in a fresh process with `cache` as the kernel cache."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from snnflow.kernels import prep; "
              "print('kernels:', prep.library() is not None)")
    return subprocess.Popen([sys.executable, "-c", script, str(REPO / "workflow")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SNNFLOW_KERNEL_CACHE": str(cache), **env})


def finished(process, timeout=120):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def unsafe(tmp_path, case):
    """A kernel cache folder that is not this user's alone."""
    if case == "writable by others":
        cache = tmp_path / "cache"
        cache.mkdir()
        cache.chmod(0o777)
    elif case == "a link":
        (tmp_path / "real").mkdir(mode=0o700)
        cache = tmp_path / "cache"
        cache.symlink_to(tmp_path / "real")
    elif case == "inside a folder others can write":
        (tmp_path / "open").mkdir()
        (tmp_path / "open").chmod(0o777)
        cache = tmp_path / "open" / "cache"
    else:  # another user's
        if os.geteuid() != 0:
            pytest.skip("needs root to make a folder of another user")
        cache = tmp_path / "cache"
        cache.mkdir(mode=0o700)
        os.chown(cache, 12345, 12345)
    return cache


CASES = {"writable by others": "is writable by others (mode drwxrwxrwx)",
         "a link": "is a symbolic link",
         "inside a folder others can write": "open is writable by others (mode drwxrwxrwx)",
         "another user's": "belongs to another user (uid 12345)"}


@pytest.mark.parametrize("case", CASES)
def test_an_unsafe_cache_is_never_loaded_from_nor_built_into(tmp_path, case):
    cache = unsafe(tmp_path, case)
    rc, out, err = finished(load_prep(cache))
    assert rc == 0 and "kernels: False" in out, err  # auto: numpy and zlib instead
    assert f"the kernel cache {cache} is unsafe: " in err and CASES[case] in err, err
    assert "set SNNFLOW_KERNEL_CACHE to a folder only you can write" in err
    assert not list(tmp_path.rglob("*.so"))
    rc, out, err = finished(load_prep(cache, SNNFLOW_KERNELS="require"))
    last = err.strip().splitlines()[-1]
    assert rc != 0 and last.startswith("snnflow.SnnflowError: config key kernels: require, but "
                                       f"the kernel cache {cache} is unsafe: "), err
    assert "compiler" not in last  # the remedy is the folder's


def test_a_library_that_is_not_the_one_built_is_rebuilt_never_loaded(tmp_path):
    cache = tmp_path / "cache"
    rc, out, err = finished(load_prep(cache))
    assert rc == 0 and "kernels: True" in out, err
    (library,) = cache.glob("snnflow_prep-*/libsnnflow_prep.so")
    record = library.with_name(library.name + ".sha256")
    built = record.read_text()
    # a library whose constructor would leave a mark, put in its place
    marker = tmp_path / "constructor-ran"
    source = tmp_path / "foreign.c"
    source.write_text('#include <stdio.h>\n__attribute__((constructor)) static void run(void) '
                      f'{{ fclose(fopen("{marker}", "w")); }}\n')
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    rc, out, err = finished(load_prep(cache))
    assert rc == 0 and "kernels: True" in out, err
    assert not marker.exists(), "the foreign library was loaded"
    assert record.read_text() == built and loader._file_digest(library) == built


def test_a_build_that_waits_for_another_says_so_and_goes_on_when_it_ends(tmp_path):
    cache = tmp_path / "cache"
    key = loader.build_key(prep.PREP, ())
    folder = loader.safe_folder(loader.safe_folder(cache) / f"snnflow_prep-{key}")
    lock = os.open(folder / "build.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another job's build, still running
    process = load_prep(cache)
    time.sleep(5)
    assert process.poll() is None, "it did not wait"
    os.close(lock)  # that build ended (or its job was killed: the system releases the lock)
    rc, out, err = finished(process)
    assert rc == 0 and "kernels: True" in out, err
    assert f"waiting for another job's kernel build in {folder} (lock {folder}/build.lock)" \
        in err


def test_a_lock_file_left_by_a_killed_torch_build_is_removed_before_building(
        tmp_path, monkeypatch):
    """torch.utils.cpp_extension waits forever while a `lock` file of a killed build is
    in the build folder; the build holding snnflow's lock removes it first."""
    import torch.utils.cpp_extension

    folder = loader.safe_folder(tmp_path / "build")
    (folder / "src").mkdir()
    (folder / "lock").write_text("")  # left by a build whose job was killed
    (folder / "snnflow_cpu.so").write_bytes(b"a library that failed its check")
    seen = []
    monkeypatch.setattr(torch.utils.cpp_extension, "load",
                        lambda **kwargs: seen.append(sorted(p.name for p in folder.iterdir())))
    family = loader.TorchExtension("snnflow_cpu", ())
    with loader._BuildLock(folder):
        loader._build_extension(family, folder)
    assert seen == [["build.lock", "src"]]


def test_a_read_only_cache_names_the_folder_not_the_compilers(tmp_path):
    import shutil

    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare to mount a read-only folder")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from snnflow.kernels import prep; "
              "print('kernels:', prep.library() is not None)")
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f'mount -t tmpfs -o ro,size=64k,mode=0700 tmpfs {cache} && exec "$0" "$@"', sys.executable, "-c", script, str(REPO / "workflow")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "SNNFLOW_KERNEL_CACHE": str(cache), "SNNFLOW_KERNELS": "require"})
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and last == (
        f"snnflow.SnnflowError: config key kernels: require, but the kernel cache {cache} "
        "cannot be written (Read-only file system) - make it writable, or set "
        "SNNFLOW_KERNEL_CACHE to a folder you can write"), result.stderr


def test_a_folder_writable_by_the_users_own_private_group_is_safe(tmp_path):
    """Many systems give each user a group of their own name: group-writable homes are
    the user's alone there."""
    import grp
    import pwd

    me = pwd.getpwuid(os.geteuid())
    try:
        own = grp.getgrnam(me.pw_name)
    except KeyError:
        pytest.skip(f"no group named {me.pw_name} here")
    if set(own.gr_mem) - {me.pw_name}:
        pytest.skip(f"group {me.pw_name} has other members here")
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, me.pw_uid, own.gr_gid)
    home.chmod(0o775)
    assert loader.safe_folder(home / "cache").is_dir()
    other = tmp_path / "shared"
    other.mkdir()
    other.chmod(0o777)
    with pytest.raises(loader.UnsafeCache, match="is writable by others"):
        loader.safe_folder(other / "cache")
