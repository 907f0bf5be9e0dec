import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.data.frames import build_frame_cache, fewer_events_than, after_the_windows
from snnflow.jobs.run import run_job
from snnflow.kernels import loader


def percent(n, total):
    return f"{100 * n / max(total, 1):.1f} %"


def main(log):
    loader.set_mode(snakemake.params.kernels)
    T, framing = snakemake.params.T, snakemake.params.framing
    dtype = build_frame_cache(snakemake.input[0], T, snakemake.output[0],
                              snakemake.threads, code=snakemake.params.code,
                              size=snakemake.params.size, framing=framing)
    log(f"wrote {snakemake.output[0]} (T={T}, framed by {framing}, {dtype})")
    if framing == "time":
        tally = after_the_windows(snakemake.output[0])
        log(f"events after the {T} windows, taken by the last frame (tonic's ToFrame leaves "
            "them out): " + ", ".join(f"{n} of {total} {split} ({percent(n, total)})"
                                      for split, (n, total, _, _) in tally.items()))
        log(f"samples shorter than T={T} microseconds (every event in the last frame): "
            + ", ".join(f"{n} of {total} {split} ({percent(n, total)})"
                        for split, (_, _, n, total) in tally.items()))
        return
    short = fewer_events_than(snakemake.input[0], T)
    log(f"samples with fewer events than T={T} (all their frames but the last empty): "
        + ", ".join(f"{n} of {total} {split} ({percent(n, total)})"
                    for split, (n, total) in short.items()))


run_job(snakemake, main)
