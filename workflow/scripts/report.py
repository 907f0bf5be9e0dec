import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from pathlib import Path

from snnflow.jobs.run import run_job
from snnflow.report.build import build_report


def main(log):
    p = snakemake.params
    build_report(p.runs, p.main_T, p.data, p.energy, snakemake.output.html,
                 Path(snakemake.output.tables[0]).parent, Path(snakemake.output.figures[0]).parent,
                 p.sweep_runs, p.nir_checks, p.neurobench)
    log(f"wrote {snakemake.output.html}")


run_job(snakemake, main)
