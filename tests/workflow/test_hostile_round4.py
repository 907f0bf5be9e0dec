"""Hostile input and faults, round 4, through Snakemake: a results folder that is not the
study's own is refused by its key before anything walks it, a special file inside it is
refused before any job (never waited on), and `make stale` lists and removes only files
the workflow writes. docs/troubleshooting.md lists the same lines."""

import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, copy_workflow, make_nmnist_tree

pytestmark = pytest.mark.workflow


@pytest.fixture
def nmnist(tmp_path, rng):
    make_nmnist_tree(tmp_path / "data" / "nmnist", 1, rng)
    return tmp_path / "data" / "nmnist"


def dry_run(workdir, config, *args, timeout=120):
    """`snakemake -n` of the study with `config`, bounded in time (a FIFO must never
    block it): (exit status, output)."""
    (workdir / "case.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                             "--cores", "1", "--configfile", "case.yaml", *args],
                            cwd=workdir, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def error_lines(output):
    return [line for line in output.splitlines() if line.startswith("error: ")]


RESULTS_DIRS = [
    ("/", "is the file system's root or holds it"),
    ("~", "is your home folder or holds it"),
    ("..", "is the project (the folder Snakemake runs in) or holds it"),
    (".", "is the project (the folder Snakemake runs in) or holds it"),
    ("{project}", "is the project (the folder Snakemake runs in) or holds it"),
    ("{workflow}", "is the workflow's own folder or holds it"),
    ("{data}", "is, holds or lies inside the dataset folder of nmnist_dir"),
    ("{data}/results", "is, holds or lies inside the dataset folder of nmnist_dir"),
    ("{data}/..", "is, holds or lies inside the dataset folder of nmnist_dir"),
    ("{file}", "is a file, not a folder"),
]


@pytest.mark.parametrize("results_dir, words", RESULTS_DIRS)
def test_a_results_folder_that_is_not_the_studys_own_is_refused_by_its_key(
        tmp_path, monkeypatch, results_dir, words):
    """Every case on the check itself, as the Snakefile calls it (two of them through
    Snakemake below)."""
    from snnflow import SnnflowError
    from snnflow.plan.results_folder import check_results_dir, protected_folders

    project, data = tmp_path / "project", tmp_path / "data" / "nmnist"
    project.mkdir()
    data.mkdir(parents=True)
    (project / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(project)
    results_dir = os.path.expanduser(results_dir.format(
        project=project, workflow=REPO, data=data, file=project / "notes.txt"))
    with pytest.raises(SnnflowError, match=re.escape(f"config key results_dir: {results_dir} "
                                                     f"{words}")):
        check_results_dir(results_dir, protected_folders(REPO),
                          {"nmnist_dir": str(data), "mnist_dir": None, "dataset.dir": None})
    check_results_dir("results", protected_folders(REPO),
                      {"nmnist_dir": str(data), "mnist_dir": None, "dataset.dir": None})


@pytest.mark.parametrize("results_dir, words", [RESULTS_DIRS[2], RESULTS_DIRS[6]])
def test_snakemake_stops_on_such_a_folder_before_anything_walks_it(
        tmp_path, nmnist, results_dir, words):
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine\n")
    rc, output = dry_run(project, {"nmnist_dir": str(nmnist),
                                   "results_dir": results_dir.format(data=nmnist)}, "-n")
    assert rc == 1, output
    lines = error_lines(output)
    assert len(lines) == 1 and lines[0].startswith("error: config key results_dir: "), output
    assert words in lines[0], lines
    assert "symbolic link" not in output  # refused before anything walks it
    assert sorted(p.name for p in project.iterdir()) == ["case.yaml", "notes.txt"]


def test_a_fifo_in_the_results_folder_is_refused_before_any_job_never_waited_on(
        tmp_path, nmnist):
    where = "results/checkpoints/snn_T4_seed0.log"  # the run's every attempt's log
    fifo = tmp_path / where
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    for args in (["-n"], []):  # planning and running alike
        rc, output = dry_run(tmp_path, {"nmnist_dir": str(nmnist)}, *args)
        assert rc == 1, output
        assert error_lines(output) == [
            f"error: {where}: a FIFO (named pipe) inside the results folder, where a job "
            "reading or writing it would wait forever - remove it: the pipeline makes only "
            "files and folders there"], output
    assert not (tmp_path / "results" / "events").exists()


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_any_special_file_is_named_by_the_check(tmp_path, kind):
    import socket

    from snnflow import SnnflowError
    from snnflow.plan.results_folder import refuse_links_inside

    special = tmp_path / "results" / "manifests" / "nmnist.tsv"
    special.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(special)
        words = "a FIFO (named pipe)"
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(special))
        words = "a socket"
    with pytest.raises(SnnflowError, match=re.escape(f"{special}: {words} inside the results")):
        refuse_links_inside(tmp_path / "results")


def test_stale_lists_only_what_the_workflow_writes(tmp_path, nmnist):
    """A user's own files anywhere in the results folder are never stale, whatever their
    folder; a dropped T's run files are."""
    copy_workflow(tmp_path)
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(
        {"nmnist_dir": str(nmnist), "snn": {"T": [4], "main_T": 4}}))
    results = tmp_path / "results"
    mine = [results / "figures" / "my_sketch.png", results / "runs" / "snn_T4" / "notes.txt",
            results / "runs" / "my-idea" / "seed0" / "metrics.csv", results / "thesis.tex",
            results / "tables" / "extra.csv"]
    dropped = [results / "runs" / "snn_T2" / "seed0" / "metrics.csv",
               results / "logs" / "train_snn_T2_seed0.log",
               results / "checkpoints" / "snn_T2_seed0.pt"]
    for path in mine + dropped:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")

    def stale(*options):
        result = subprocess.run([sys.executable, "-m", "snnflow.plan.stale", *options, "--cores",
                                 "1", "--configfile", "case.yaml"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.splitlines()

    listed = stale()[1:]
    assert sorted(listed[:-1]) == sorted(str(p.relative_to(tmp_path)) for p in dropped)
    stale("--remove")
    assert all(path.exists() for path in mine)
    assert not any(path.exists() for path in dropped)


def test_stale_names_the_folder_it_looks_at_and_one_that_does_not_exist(tmp_path):
    copy_workflow(tmp_path)
    result = subprocess.run([sys.executable, "-m", "snnflow.plan.stale", "--cores", "1",
                             "--configfile", "workflow/small.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "make stale: the study in results-small/ (the config of: --configfile "
        "workflow/small.yaml)",
        "results-small/ does not exist: no study with this config ran here - give the options "
        "the study ran with, e.g. make stale CONFIG=\"--configfile workflow/small.yaml\""]
