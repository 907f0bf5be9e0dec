# snnflow: CSNN on N-MNIST vs the same-architecture CNN on MNIST.
#   snakemake --cores 8 --resources gpu=1                              (the study)
#   snakemake --cores 2 --configfile workflow/demo.yaml                (offline demo)
from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/config_file.smk"


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/nir.smk"
include: "workflow/rules/neurobench.smk"
include: "workflow/rules/report.smk"


rule all:
    """The whole study, ending in <results_dir>/report.html (config key results_dir)."""
    input:
        f"{RESULTS}/report.html",
        # every table and figure too: Snakemake reruns a job for a missing output only
        # where a job downstream asks for it, so a table the config newly makes (a first
        # sweep, NIR switched on) would otherwise leave the report as it was
        rules.report.output,
    default_target: True
