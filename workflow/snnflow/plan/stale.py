"""Files in a study's results folder that its current config no longer makes: the runs of
a dropped T, seed or sweep row, an earlier config's figures, tables, logs, benchmarks and
checkpoints. Listed, and removed on request; the downloads (raw/) and files at the top
of the folder (a Snakemake report archive, gpu-check's table) are never touched.

    python -m snnflow.plan.stale [--remove] [SNAKEMAKE OPTIONS]     (make stale [REMOVE=1])

Snakemake says what the current config makes: `--summary` lists every output of the
study (made or still to make) and `--list-untracked` every file the workflow does not
use, logs counted as used. Only a file the workflow itself writes can be stale: its
path must match one of the rules' own output, log or benchmark patterns (from
Snakemake's parse of the Snakefile), a figure or table of the report's registry, or a
run's undeclared files (snnflow.runs.undeclared_file_patterns); a file of the user's
in the folder is never listed, whatever it is named. Benchmarks and checkpoints are not declared as such, so they
are judged by what they belong to: a job's benchmark by its log (benchmarks/X.tsv and
logs/X.log), a run's checkpoint, lock, attempts' log and curves by its run folder. The
page and Snakemake's report read only the current config's runs either way; this keeps
the folder itself honest.
"""

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

from snnflow.device.machine import size_text
from snnflow.runs import RUN_FILES, undeclared_file_patterns

KEPT = ("raw",)  # downloads and the synthetic data: costly to make again, never stale


def snakemake_lines(option, arguments):
    """The lines `snakemake <option> <arguments>` prints, or SystemExit with its error."""
    result = subprocess.run([sys.executable, "-m", "snakemake", option, *arguments],
                            capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(f"error: snakemake {option} failed: {last}")
    return result.stdout.splitlines()


def rule_patterns(arguments):
    """The regular expressions of every output, log and benchmark path of the workflow's
    rules, as Snakemake parses the Snakefile with the study's options, and of every figure
    and table the report can draw (the registry the Snakefile holds, whatever this config
    draws)."""
    import snakemake.cli as cli
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    _, args = cli.parse_args(["--cores", "1", *arguments])
    config = cli.parse_config(args.config) if args.config else {}
    with contextlib.redirect_stderr(io.StringIO()), SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(config=config, configfiles=[
                Path(f) for f in args.configfile or []]),
            snakefile=Path(args.snakefile or "Snakefile"))
        parsed = workflow._workflow  # noqa: SLF001 - the only list of the rules' patterns
        patterns = []
        for rule in parsed.rules:
            files = [*rule.output, *rule.log, *([rule.benchmark] if rule.benchmark else [])]
            patterns += [f.regex() for f in files if hasattr(f, "regex")]
        names = parsed.globals
        root = re.escape(names["RESULTS"])
        for folder, entries, formats in (
                ("figures", names["REPORT_FIGURES"], names["FIGURE_FORMATS"]),
                ("tables", names["REPORT_TABLES"], names["TABLE_FORMATS"])):
            patterns.append(re.compile(rf"{root}/{folder}/({'|'.join(map(re.escape, entries))})"
                                       rf"\.({'|'.join(formats)})$"))
    return patterns


def stale_files(arguments):
    """(results folder, its files that the config of `arguments` no longer makes)."""
    outputs = {line.split("\t")[0] for line in snakemake_lines("--summary", arguments)[1:]}
    pages = [path for path in outputs if Path(path).name == "report.html"]
    if not pages:
        raise SystemExit("error: the workflow makes no report.html here - run this from the "
                         "project with the options the study runs with")
    root = Path(pages[0]).parent
    untracked = {Path(line) for line in snakemake_lines("--list-untracked", arguments)}

    def belongs(path, part):
        """Whether `path` (`part`: its parts under root) belongs to a job or run the
        config still makes."""
        if part[0] == "benchmarks":  # benchmarks/X.tsv belongs to the job logging logs/X.log
            log = root.joinpath("logs", *part[1:]).with_suffix(".log")
            return log.exists() and log not in untracked
        if part[0] == "tensorboard":  # tensorboard/<run folder>/settings-<hash>/<event file>
            folder = part[1:-1]
            if folder and folder[-1].startswith("settings-"):  # snnflow.train.curves
                folder = folder[:-1]
            return str(root.joinpath(*folder, RUN_FILES["run"])) in outputs
        if part[0] == "checkpoints":  # <name>_seed<S>.pt or sweeps/<sweep>/<variant>/seed<S>.pt
            # and beside it .pt.lock (the run's lock) and .log (every attempt's log)
            run = path.name.split(".")[0]
            if part[1] == "sweeps":
                folder = root.joinpath("sweeps", *part[2:-1], run)
            else:
                name, _, seed = run.rpartition("_seed")
                folder = root / "runs" / name / f"seed{seed}"
            return str(folder / RUN_FILES["run"]) in outputs
        return False

    # what the workflow writes: the rules' outputs, logs and benchmarks, the report's
    # figures and tables, and the runs' undeclared files
    patterns = rule_patterns(arguments) + [
        re.compile(f"{pattern}$") for pattern in undeclared_file_patterns(re.escape(str(root)))]
    stale = []
    for path in untracked:
        part = path.relative_to(root).parts if root in path.parents else ()
        if (len(part) > 1 and part[0] not in KEPT and not belongs(path, part)
                and not path.is_symlink() and path.is_file()
                and any(pattern.match(path.as_posix()) for pattern in patterns)):
            stale.append(path)
    return root, sorted(stale)


def remove(root, paths):
    """Remove `paths`, then the folders under `root` they leave empty."""
    folders = set()
    for path in paths:
        path.unlink(missing_ok=True)
        folders.update(parent for parent in path.parents if root in parent.parents)
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--remove", action="store_true", help="remove them")
    args, snakemake_arguments = parser.parse_known_args(argv)
    root, stale = stale_files(snakemake_arguments)
    options = " ".join(a for a in snakemake_arguments if a not in ("--cores", "1")) or \
        "config.yaml alone"
    print(f"make stale: the study in {root}/ (the config of: {options})")
    if not root.is_dir():
        print(f"{root}/ does not exist: no study with this config ran here - give the options "
              "the study ran with, e.g. make stale CONFIG=\"--configfile workflow/small.yaml\"")
        return 0
    size = sum(os.path.getsize(path) for path in stale)
    for path in stale:
        print(path)
    if not stale:
        print(f"{root}/ holds nothing that the current config no longer makes")
    elif args.remove:
        remove(root, stale)
        print(f"removed {len(stale)} files ({size_text(size)}) from {root}/ that the current "
              "config no longer makes")
    else:
        print(f"{len(stale)} files ({size_text(size)}) in {root}/ that the current config no "
              "longer makes - `make stale REMOVE=1` (python -m snnflow.plan.stale --remove ...) "
              "removes them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
