import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.data.download import MAX_TONIC_ARCHIVE_BYTES, fetch
from snnflow.data.tonic_datasets import archives
from snnflow.jobs.run import run_job


def main(log):
    name, target = snakemake.params.name, snakemake.output[0]
    url, md5 = next((url, md5) for url, file, md5 in archives(name, snakemake.params.mirror)
                    if file == snakemake.wildcards.archive)
    fetch([url], target, md5,
          alternative=f"check the network, or download it by hand to {target}, or set "
                      f"dataset.dir to a folder holding a copy of {name} in tonic's layout",
          max_bytes=MAX_TONIC_ARCHIVE_BYTES, timeout=snakemake.params.timeout,
          retries=snakemake.params.retries, log=log)


run_job(snakemake, main)
