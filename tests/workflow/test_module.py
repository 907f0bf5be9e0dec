"""The workflow used as a Snakemake module by an outer Snakefile in another folder: every
path is resolved from the workflow's own files, not from the outer workflow's basedir."""

import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, copy_workflow

pytestmark = pytest.mark.workflow

OUTER = f"""
configfile: "{REPO / 'config.yaml'}"

module snnflow:
    snakefile: "{REPO / 'Snakefile'}"
    config: config

use rule * from snnflow as snnflow_*
"""
TINY = {"synthetic": {"enabled": True, "train_per_class": 3, "test_per_class": 2, "seed": 0},
        "snn": {"T": [4], "main_T": 4, "epochs": 1, "batch_size": 10, "channels": [4, 8, 8],
                "hidden": 16},
        "cnn": {"epochs": 1, "batch_size": 10, "channels": [4, 8, 8], "hidden": 16}}


def test_an_outer_snakefile_plans_the_study_as_a_module(tmp_path):
    (tmp_path / "Snakefile").write_text(OUTER)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "tiny.yaml"]
    plan = subprocess.run([*command, "-n"], cwd=tmp_path, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "snnflow_train_snn" in plan.stdout and "snnflow_report" in plan.stdout
    assert not (tmp_path / "workflow").exists()  # nothing looked for beside the outer file


def readme_module_recipe():
    """The outer Snakefile of the README's recipe, as printed there."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    (recipe,) = [block for block in blocks if "module study_a:" in block]
    return recipe


def test_the_readmes_module_recipe_runs_two_studies_with_some_keys_each(tmp_path):
    """Exactly the README's snippet: two studies from a few keys each (the rest the
    project's defaults), each under its own prefix, nothing of one in the other's folder
    or outside both."""
    (tmp_path / "Snakefile").write_text(readme_module_recipe())
    (tmp_path / "snnflow").mkdir()  # "your clone of snnflow": a real copy inside the project
    copy_workflow(tmp_path / "snnflow")
    for study, T in (("study_a", 4), ("study_b", 8)):
        keys = {**TINY, "seeds": [0], "nir": {"enabled": False},
                "neurobench": {"enabled": False}, "snn": {**TINY["snn"], "T": [T], "main_T": T}}
        (tmp_path / f"{study}.yaml").write_text(yaml.safe_dump(keys))
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    for study, label, other in (("study_a", "SNN-4", "SNN-8"), ("study_b", "SNN-8", "SNN-4")):
        results = tmp_path / study / "results"
        page = (results / "report.html").read_text()
        assert label in page and other not in page
        assert list((results / "checkpoints").glob("snn_T*_seed0.pt")) == [
            results / "checkpoints" / f"snn_{label.replace('SNN-', 'T')}_seed0.pt"]
        assert (results / "tensorboard" / "runs" / "cnn" / "seed0").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".snakemake", "Snakefile", "snnflow", "study_a", "study_a.yaml", "study_b",
        "study_b.yaml"]


def test_two_modules_with_one_prefix_are_refused_in_one_line(tmp_path):
    recipe = readme_module_recipe().replace('prefix: "study_b"', 'prefix: "study_a"')
    (tmp_path / "Snakefile").write_text(recipe)
    (tmp_path / "snnflow").mkdir()
    copy_workflow(tmp_path / "snnflow")
    for study in ("study_a", "study_b"):
        (tmp_path / f"{study}.yaml").write_text(yaml.safe_dump(TINY))
    plan = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "-n"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert plan.returncode == 1
    errors = [line for line in plan.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: config key results_dir: study_a/results is the results folder of "
                      "two studies (modules of one Snakefile with the same prefix: and "
                      "results_dir) - give each module its own prefix:"], plan.stderr
