import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.jobs.run import run_job
from snnflow.report.data_summary import summarize


def main(log):
    summarize(snakemake.input.events, dict(zip(snakemake.params.T, snakemake.input.frames)),
              snakemake.input.cnn, snakemake.params.sources, snakemake.output.dataset,
              snakemake.output.examples)
    log(f"wrote {snakemake.output.dataset} and {snakemake.output.examples}")


run_job(snakemake, main)
