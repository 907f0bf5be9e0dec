"""Run a command as `make demo`'s environment would: with every module that only the
test extras bring (pytest and what it pulls in, pygments among them) made unimportable,
so a dependency the runtime install lacks fails here as it would for a user.

    python tests/runtime_only.py -m snakemake ...   (like `python -m snakemake ...`)
"""

import importlib.abc
import importlib.metadata
import runpy
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def closure(name, extras=()):
    """Canonical names of the distribution `name` (with `extras`) and of everything it
    requires, as far as it is installed."""
    seen, todo = set(), [(name, tuple(extras))]
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append((requirement.name, tuple(sorted(requirement.extras))))
    return {dist for dist, _ in seen}


def test_only_modules():
    """Top-level modules whose every distribution comes only with snnflow's `test` extra
    (the `slurm` extra is a user's install too, and Snakemake imports every installed
    plugin it finds)."""
    runtime = closure("snnflow")
    extra_only = closure("snnflow", ("test",)) - runtime
    return {module for module, dists in importlib.metadata.packages_distributions().items()
            if dists and all(canonicalize_name(d) in extra_only for d in dists)}


class _Refuse(importlib.abc.MetaPathFinder):
    def __init__(self, modules):
        self.modules = modules

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.modules:
            raise ModuleNotFoundError(f"No module named '{name}' (only the test extras have "
                                      "it)", name=name)
        return None


if __name__ == "__main__":
    blocked = test_only_modules()
    for module in [m for m in sys.modules if m.split(".")[0] in blocked]:
        del sys.modules[module]
    sys.meta_path.insert(0, _Refuse(blocked))
    if sys.argv[1] != "-m":
        raise SystemExit("usage: runtime_only.py -m MODULE [ARGS]")
    sys.argv = [sys.argv[2], *sys.argv[3:]]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
