import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.data.synthetic import write_dataset
from snnflow.jobs.run import run_job


def main(log):
    p = snakemake.params
    write_dataset(snakemake.output[0], p.train_per_class, p.test_per_class, p.seed)
    log(f"wrote synthetic N-MNIST and MNIST to {snakemake.output[0]}")


run_job(snakemake, main)
