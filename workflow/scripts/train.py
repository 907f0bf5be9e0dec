import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the snnflow package

from snnflow.job import run_job
from snnflow.training import RunSettings, run


def main(log):
    run(RunSettings(**snakemake.params.settings), snakemake.input[0],
        metrics_csv=snakemake.output.metrics, model_path=snakemake.output.model,
        run_json=snakemake.output.run, checkpoint=snakemake.params.checkpoint,
        code_fingerprint=snakemake.params.code, threads=snakemake.threads, log=log)


run_job(snakemake, main)
