import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.data.download import MAX_NMNIST_ARCHIVE_BYTES, fetch, nmnist_archive
from snnflow.jobs.run import run_job


def main(log):
    url, md5, _ = nmnist_archive(snakemake.wildcards.split, snakemake.params.mirror)
    fetch([url], snakemake.output[0], md5,
          alternative=f"check the network, or download it by hand to {snakemake.output[0]}, "
                      f"or set nmnist_dir to a folder holding Train/ and Test/",
          max_bytes=MAX_NMNIST_ARCHIVE_BYTES, timeout=snakemake.params.timeout,
          retries=snakemake.params.retries, log=log)


run_job(snakemake, main)
