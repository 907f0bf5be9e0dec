"""Every trained network scored by NeuroBench's harness (the `neurobench` package), beside
the project's own counts of the same things (docs/neurobench.md): `networks` loads a run's
network and shows it to NeuroBench, `agreement` compares the two sets of numbers by
NeuroBench's definitions, `harness` runs both on a run's test split and writes the rows.

Here: the scoring's file and its columns, which the Snakefile and the report read (this
module imports nothing: a job that reads it does not rerun when the scoring's code
changes, and the training jobs never read it).
"""

# NeuroBench's metrics, in its own names, in the report's order
NEUROBENCH_METRICS = ("Footprint", "ParameterCount", "ConnectionSparsity",
                      "ClassificationAccuracy", "ActivationSparsity", "Effective_ACs",
                      "Effective_MACs", "Dense")
# A run's scores: one row per metric, NeuroBench's value, the project's own count by
# NeuroBench's definition where it has one, and whether the two agree
NEUROBENCH_COLUMNS = ["model", "T", "seed", "samples", "neurobench_version", "metric",
                      "neurobench", "project", "difference", "tolerance", "agrees",
                      "compared_with"]


def neurobench_path(run):
    """Where the NeuroBench scores of the run in folder `run` go: beside its files, which
    the scoring job reads."""
    return f"{run}/neurobench.csv"
