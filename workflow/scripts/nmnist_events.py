import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.events import build_event_store
from snnflow.job import run_job


def main(log):
    build_event_store(snakemake.params.root, snakemake.output[0], snakemake.threads,
                      snakemake.params.allow_missing_classes)
    log(f"parsed {snakemake.params.root} into {snakemake.output[0]}")


run_job(snakemake, main)
