import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.deploy.nir_graph import export
from snnflow.jobs.run import run_job


def main(log):
    import torch

    torch.set_num_threads(snakemake.threads)  # beside the other jobs, not over them
    graph = export(snakemake.input.model, snakemake.input.run, snakemake.output[0])
    log(f"wrote {snakemake.output[0]}: {len(graph.nodes)} nodes, dt {graph.metadata['dt']} s")


run_job(snakemake, main)
