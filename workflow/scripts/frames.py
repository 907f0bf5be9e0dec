import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.data.frames import build_frame_cache
from snnflow.job import run_job
from snnflow.kernels import loader


def main(log):
    loader.set_mode(snakemake.params.kernels)
    dtype = build_frame_cache(snakemake.input[0], snakemake.params.T, snakemake.output[0],
                              snakemake.threads, code=snakemake.params.code)
    log(f"wrote {snakemake.output[0]} (T={snakemake.params.T}, {dtype})")


run_job(snakemake, main)
