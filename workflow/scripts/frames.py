import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.data.frames import build_frame_cache, fewer_events_than
from snnflow.jobs.run import run_job
from snnflow.kernels import loader


def main(log):
    loader.set_mode(snakemake.params.kernels)
    dtype = build_frame_cache(snakemake.input[0], snakemake.params.T, snakemake.output[0],
                              snakemake.threads, code=snakemake.params.code,
                              size=snakemake.params.size)
    T = snakemake.params.T
    log(f"wrote {snakemake.output[0]} (T={T}, {dtype})")
    short = fewer_events_than(snakemake.input[0], T)
    log(f"samples with fewer events than T={T} (all their frames but the last empty): "
        + ", ".join(f"{n} of {total} {split} ({100 * n / max(total, 1):.1f} %)"
                    for split, (n, total) in short.items()))


run_job(snakemake, main)
