import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.data.tonic_datasets import unpack
from snnflow.jobs.run import run_job


def main(log):
    unpack(snakemake.params.name, snakemake.input, snakemake.output[0])
    log(f"unpacked {', '.join(snakemake.input)} into {snakemake.output[0]}")


run_job(snakemake, main)
