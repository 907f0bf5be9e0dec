import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.jobs.run import run_job
from snnflow.model import cnn
from snnflow.runs import attempts_log_path
from snnflow.train.loop import run_rule


def main(log):
    run_rule(cnn.KIND, snakemake, log)


run_job(snakemake, main, attempts_log=attempts_log_path(snakemake.params.checkpoint))
