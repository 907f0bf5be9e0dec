import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.data.mnist import build_image_cache
from snnflow.jobs.run import run_job


def main(log):
    build_image_cache(snakemake.params.folder, snakemake.output[0],
                      snakemake.params.allow_missing_classes, code=snakemake.params.code)
    log(f"wrote {snakemake.output[0]} from {snakemake.params.folder}")


run_job(snakemake, main)
