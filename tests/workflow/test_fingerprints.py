"""Code fingerprints follow a job script's imports, in every form the package uses, to
exactly the files it runs: module boundaries decide what reruns."""

import shutil

import pytest

from conftest import REPO
from snnflow.plan import fingerprints
from snnflow.plan.fingerprints import code_files, code_fingerprint


def test_a_training_job_runs_its_network_kernels_and_loop_but_no_report_code():
    train = code_files("train_snn")
    for indirect in ("snnflow/model/fused_block.py", "snnflow/model/sparse_conv.py",
                     "snnflow/kernels/cpu_ops.py", "snnflow/model/neuron.py",
                     "snnflow/train/loop.py", "snnflow/data/caches.py", "snnflow/runs.py",
                     "snnflow/kernels/loader.py", "snnflow/__init__.py",
                     "snnflow/model/__init__.py", "snnflow/kernels/csrc/lif.cpp",
                     "snnflow/kernels/csrc/lif_step.h"):
        assert indirect in train
    assert not [f for f in train if f.startswith("snnflow/report/")]
    cnn = code_files("train_cnn")
    assert "snnflow/model/neuron.py" not in cnn and "snnflow/kernels/cpu_ops.py" not in cnn
    assert not [f for f in cnn if f.startswith("snnflow/kernels/csrc/")]


def test_the_data_jobs_run_no_training_code():
    frames = code_files("frames")
    assert "snnflow/kernels/csrc/prep.c" in frames
    assert not [f for f in frames if f.startswith(("snnflow/model/", "snnflow/train/"))]
    synthetic = code_files("synthetic_dataset")  # writes recordings and IDX files only
    assert "snnflow/data/nmnist.py" in synthetic and "snnflow/data/idx.py" in synthetic
    for reader in ("snnflow/data/events.py", "snnflow/data/mnist.py",
                   "snnflow/kernels/csrc/prep.c", "snnflow/kernels/loader.py"):
        assert reader not in synthetic


def test_the_report_runs_only_report_code_and_the_run_and_scores_contracts():
    """The scoring's __init__ (its file and columns) but none of its code: editing how
    NeuroBench is run reruns the scoring jobs, and the report only through their files."""
    assert code_files("report") == [
        "scripts/report.py", "snnflow/__init__.py", "snnflow/jobs/__init__.py",
        "snnflow/jobs/atomic.py", "snnflow/jobs/run.py", "snnflow/report/__init__.py",
        "snnflow/report/build.py", "snnflow/report/export.py",
        "snnflow/report/figures.py", "snnflow/report/page.html.j2", "snnflow/report/page.py",
        "snnflow/report/registry.py", "snnflow/report/study.py", "snnflow/report/tables.py",
        "snnflow/runs.py", "snnflow/scoring/__init__.py"]


@pytest.fixture
def package(tmp_path, monkeypatch):
    """An empty workflow folder with one script; write modules into it."""
    workflow = tmp_path / "workflow"
    (workflow / "snnflow" / "kernels" / "csrc").mkdir(parents=True)
    (workflow / "scripts").mkdir()
    monkeypatch.setattr(fingerprints, "WORKFLOW_DIR", workflow)

    def write(path, text=""):
        (workflow / path).parent.mkdir(parents=True, exist_ok=True)
        (workflow / path).write_text(text)
    return write


def test_relative_dotted_and_package_imports_are_followed(package):
    package("scripts/job.py", "import snnflow.a.b\nfrom snnflow.c import d\n")
    for init in ("snnflow", "snnflow/a", "snnflow/c", "snnflow/e"):
        package(f"{init}/__init__.py")
    package("snnflow/a/b.py", "from . import sibling\nfrom ..e.f import name\n")
    package("snnflow/a/sibling.py", "from .. import c\nx = 'kernel.c'\n")
    package("snnflow/c/d.py")
    package("snnflow/c/unused.py")
    package("snnflow/e/f.py", "from .g import *\n")
    package("snnflow/e/g.py")
    package("snnflow/kernels/csrc/kernel.c")
    package("snnflow/kernels/csrc/other.c")
    assert code_files("job") == [
        "scripts/job.py", "snnflow/__init__.py", "snnflow/a/__init__.py", "snnflow/a/b.py",
        "snnflow/a/sibling.py", "snnflow/c/__init__.py", "snnflow/c/d.py",
        "snnflow/e/__init__.py", "snnflow/e/f.py", "snnflow/e/g.py",
        "snnflow/kernels/csrc/kernel.c"]


def test_a_kernel_source_changes_the_fingerprint_of_the_jobs_that_build_it(tmp_path,
                                                                            monkeypatch):
    shutil.copytree(REPO / "workflow", tmp_path / "workflow",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprints, "WORKFLOW_DIR", tmp_path / "workflow")
    scripts = ("train_snn", "train_cnn", "frames", "report")
    before = {script: code_fingerprint(script) for script in scripts}
    block = tmp_path / "workflow" / "snnflow" / "kernels" / "csrc" / "bn_lif_pool.cpp"
    block.write_text(block.read_text() + "// an edit\n")
    after = {script: code_fingerprint(script) for script in scripts}
    assert after["train_snn"] != before["train_snn"]
    assert {k: after[k] == before[k] for k in scripts[1:]} == dict.fromkeys(scripts[1:], True)


STAGES = ("data", "model", "train", "deploy", "scoring", "report")  # the order data flows in
ALLOWED = {  # package: the subpackages its modules may import from
    "data": {"kernels", "jobs", "device"},
    "model": {"kernels", "data", "device"},
    "train": {"kernels", "data", "jobs", "device", "plan"},  # the loop reads the caches and
    # names config keys (plan.settings); the networks come as specs
    "deploy": {"model", "data", "jobs"},  # the trained network from its model.pt; the HDF5 opener
    "scoring": {"model", "data", "jobs"},  # the trained network and its counting code
    "report": {"data", "jobs", "scoring"},  # the scores' file and columns (scoring/__init__)
    "kernels": {"jobs", "device"},
    "gpu_check": {"kernels", "data", "model", "train", "device"},  # what it checks
    "plan": {"data", "jobs", "device"},  # settings checks the data's file names
    "jobs": set(),
    "device": set(),
    "": set(),  # the root: the package's face and the run contract
}


def snnflow_imports(path):
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("snnflow"):
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("snnflow"))


def test_no_module_imports_from_a_later_stage():
    package = REPO / "workflow" / "snnflow"
    offending = []
    for path in package.rglob("*.py"):
        own = path.parent.name if path.parent != package else ""
        for module in snnflow_imports(path):
            parts = module.split(".")
            imported = parts[1] if len(parts) > 2 or (len(parts) == 2 and (
                package / parts[1]).is_dir()) else ""
            if imported and imported != own and imported not in ALLOWED[own]:
                offending.append(f"{path.relative_to(package)} imports {module}")
    assert offending == []


def test_the_subpackages_import_one_way():
    """No circle between subpackages: the imports that exist, as a graph, have an order."""
    package = REPO / "workflow" / "snnflow"
    edges = {}
    for path in package.rglob("*.py"):
        own = path.parent.relative_to(package).parts[0] if path.parent != package else ""
        for module in snnflow_imports(path):
            parts = module.split(".")
            if len(parts) > 1 and (package / parts[1]).is_dir() and parts[1] != own:
                edges.setdefault(own, set()).add(parts[1])
    assert set(edges) - {""} <= set(ALLOWED), "a subpackage the ALLOWED map does not know"
    done, visiting = set(), []

    def visit(node):
        assert node not in visiting, " -> ".join([*visiting, node])
        if node in done:
            return
        visiting.append(node)
        for target in edges.get(node, ()):
            visit(target)
        visiting.pop()
        done.add(node)
    for node in list(edges):
        visit(node)


def test_the_top_level_holds_the_face_the_run_contract_and_subpackages():
    package = REPO / "workflow" / "snnflow"
    modules = sorted(p.name for p in package.glob("*.py"))
    assert modules == ["__init__.py", "runs.py"]
    for folder in (p for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"
                   and (p / "__init__.py").exists()):
        code = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(code) > 1 or sum(len(p.read_text().splitlines()) for p in code) >= 40, \
            folder.name
