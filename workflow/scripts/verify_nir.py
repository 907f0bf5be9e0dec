import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.deploy.nir_check import verify
from snnflow.jobs.run import run_job


def main(log):
    import torch

    torch.set_num_threads(snakemake.threads)  # beside the other jobs, not over them
    i = snakemake.input
    verify(i.graph, i.model, i.run, i.frames, snakemake.params.samples, snakemake.output[0],
           log)
    log(f"wrote {snakemake.output[0]}")


run_job(snakemake, main)
