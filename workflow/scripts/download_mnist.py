import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from pathlib import Path

from snnflow.data.download import MAX_MNIST_FILE_BYTES, MNIST_MD5, fetch, mnist_urls
from snnflow.jobs.run import run_job


def main(log):
    for dest in map(Path, snakemake.output):
        fetch(mnist_urls(dest.name, snakemake.params.mirror), dest, MNIST_MD5[dest.name],
              alternative=f"check the network, or put the four IDX files in {dest.parent}, "
                          "or set mnist_dir to a folder holding them",
              max_bytes=MAX_MNIST_FILE_BYTES, timeout=snakemake.params.timeout,
              retries=snakemake.params.retries, log=log)


run_job(snakemake, main)
