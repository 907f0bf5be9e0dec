import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.data.download import unpack_split
from snnflow.jobs.run import run_job


def main(log):
    unpack_split(snakemake.input[0], snakemake.output[0], snakemake.wildcards.folder)
    log(f"unpacked {snakemake.input[0]} into {snakemake.output[0]}")


run_job(snakemake, main)
