import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.data.events import build_event_store
from snnflow.jobs.run import run_job
from snnflow.kernels import loader


def main(log):
    loader.set_mode(snakemake.params.kernels)
    build_event_store(snakemake.params.root, snakemake.output[0], snakemake.threads,
                      snakemake.params.allow_missing_classes, snakemake.params.with_times)
    log(f"parsed {snakemake.params.root} into {snakemake.output[0]}")


run_job(snakemake, main)
