"""One loader for every compiled kernel: the switch, the keyed build cache, and what a
second checkout or another environment on the same machine does with it."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from snnflow import SnnflowError
from snnflow.kernels import cpu_ops, loader, prep

LOAD_SCRIPT = """
import sys, logging
logging.basicConfig(level=logging.WARNING)
sys.path.insert(0, sys.argv[1])
import torch
from snnflow.kernels import cpu_ops, loader, prep
prep.library(), cpu_ops.load()
for name, what in sorted(loader.status().items()):
    print(name, "->", what)
"""


def load_in_fresh_process(workflow, **env):
    result = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(workflow)],
                            capture_output=True, text=True, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return dict(line.split(" -> ", 1) for line in result.stdout.splitlines())


def test_a_second_checkout_loads_the_first_ones_build_without_compiling(tmp_path):
    assert prep.library() is not None and cpu_ops.load() is not None  # built here
    second = tmp_path / "second-checkout" / "workflow"
    shutil.copytree(REPO / "workflow", second, ignore=shutil.ignore_patterns("__pycache__"))
    # with no working compiler, anything but a cache hit would fall back
    status = load_in_fresh_process(second, CC="/bin/false", CXX="/bin/false")
    assert status["snnflow_cpu"].startswith("C++, loaded from cache")
    assert status["snnflow_prep"].startswith("C, loaded from cache")


@pytest.mark.parametrize("change", ["torch version", "python", "cpu", "source", "flags"])
def test_the_build_key_changes_with_what_makes_a_build_valid(monkeypatch, tmp_path, change):
    family, versions = cpu_ops.EXTENSION, ("2.13.0+cpu", "abc", "cpython-311")
    before = loader.build_key(family, versions)
    if change == "torch version":
        versions = ("2.11.0+cu130", "def", "cpython-311")
    elif change == "python":
        versions = ("2.13.0+cpu", "abc", "cpython-312")
    elif change == "cpu":
        identity = loader.cpu_identity()
        monkeypatch.setattr(loader, "cpu_identity", lambda: identity.replace("avx2", ""))
        if loader.cpu_identity() == identity:
            monkeypatch.setattr(loader, "cpu_identity", lambda: identity + " another cpu")
    elif change == "source":
        monkeypatch.setattr(loader, "CSRC", _edited_csrc(tmp_path))
    else:
        family = loader.TorchExtension(family.name, family.sources, family.headers,
                                        flags=(*family.flags, "-DNDEBUG"))
    assert loader.build_key(family, versions) != before


def _edited_csrc(folder):
    """A copy of csrc/ with one kernel source edited."""
    shutil.copytree(loader.CSRC, folder / "csrc")
    with open(folder / "csrc" / "lif.cpp", "a") as f:
        f.write("// edited\n")
    return folder / "csrc"


def test_auto_falls_back_and_says_why(tmp_path):
    status = load_in_fresh_process(REPO / "workflow", SNNFLOW_KERNEL_CACHE=str(tmp_path),
                                   CC="/bin/false", CXX="/bin/false")
    assert status["snnflow_cpu"].startswith("unavailable (")
    assert status["snnflow_cpu"].endswith("; PyTorch ops instead")
    assert status["snnflow_prep"].endswith("; numpy and zlib instead")
    assert list(tmp_path.glob("*/*.so")) == []


def test_require_stops_with_one_line_when_a_build_fails(tmp_path):
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import torch; "
              "from snnflow.kernels import cpu_ops; cpu_ops.load()")
    result = subprocess.run([sys.executable, "-c", script, str(REPO / "workflow")],
                            capture_output=True, text=True,
                            env={**os.environ, "SNNFLOW_KERNELS": "require",
                                 "SNNFLOW_KERNEL_CACHE": str(tmp_path), "CXX": "/bin/false"})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("snnflow.SnnflowError: config key kernels: require, but "
                           "snnflow_cpu cannot be built here (")
    assert last.endswith("or set kernels: auto")


def test_off_loads_nothing():
    status = load_in_fresh_process(REPO / "workflow", SNNFLOW_KERNELS="off")
    assert status == {"snnflow_cpu": "off (kernels: off); PyTorch ops instead",
                      "snnflow_prep": "off (kernels: off); numpy and zlib instead"}


def test_a_bad_switch_is_named():
    with pytest.raises(SnnflowError, match="config key kernels: 'sometimes'"):
        loader.set_mode("sometimes")
