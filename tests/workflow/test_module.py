"""The workflow used as a Snakemake module by an outer Snakefile in another folder: every
path is resolved from the workflow's own files, not from the outer workflow's basedir."""

import subprocess
import sys

import pytest
import yaml

from conftest import REPO

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


def test_an_outer_snakefile_plans_and_runs_the_study_as_a_module(tmp_path):
    (tmp_path / "Snakefile").write_text(OUTER)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "tiny.yaml"]
    plan = subprocess.run([*command, "-n"], cwd=tmp_path, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "snnflow_train_snn" in plan.stdout and "snnflow_report" in plan.stdout
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SNN-4" in (tmp_path / "results" / "report.html").read_text()
    assert not (tmp_path / "workflow").exists()  # nothing looked for beside the outer file
