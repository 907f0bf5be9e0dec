import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.jobs.run import run_job
from snnflow.scoring.harness import score


def main(log):
    import torch

    torch.set_num_threads(snakemake.threads)  # beside the other jobs, not over them
    i = snakemake.input
    score(i.model, i.run, i.predictions, i.data, snakemake.params.samples, snakemake.output[0],
          log)
    log(f"wrote {snakemake.output[0]}")


run_job(snakemake, main)
