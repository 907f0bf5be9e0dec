import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.data.events import build_tonic_event_store
from snnflow.jobs.run import run_job


def main(log):
    p = snakemake.params
    build_tonic_event_store(p.name, p.root, snakemake.output[0], p.test_fraction, p.split_seed,
                            p.allow_missing_classes, log, p.with_times)
    log(f"read {p.name} from {p.root} with tonic into {snakemake.output[0]}")


run_job(snakemake, main)
