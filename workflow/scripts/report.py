import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.job import run_job
from snnflow.report import build_report


def main(log):
    build_report(snakemake.params.runs, snakemake.params.main_T, snakemake.output.html,
                 snakemake.output.tables, snakemake.output.figures)
    log(f"wrote {snakemake.output.html}")


run_job(snakemake, main)
