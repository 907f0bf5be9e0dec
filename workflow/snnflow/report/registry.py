"""What the report holds, in the order of the page: one entry per table and figure.

Adding a table is one function in snnflow.report.tables, one entry here and one caption
file, workflow/report/tables/<name>.rst (a figure: snnflow.report.figures and
workflow/report/figures/<name>.rst). The caption is shown under the item on the study
page and beside it in Snakemake's report; the rule declares every entry as an output.
This module is read when the Snakefile is parsed: it names the functions and imports
neither pandas nor matplotlib.
"""

from dataclasses import dataclass, field
from pathlib import Path

from snnflow.report import FEWER_EVENTS_THAN

CAPTIONS = Path(__file__).resolve().parents[2] / "report"  # workflow/report/
FIGURE_FORMATS = ("png", "pdf", "svg")  # the page embeds the PNG; vector ones for papers
TABLE_FORMATS = ("csv", "tex", "md")    # the CSV holds the numbers, the others the page's
                                        # cells (snnflow.report.export)
SECTIONS = ("Data", "Training", "Comparison", "Spikes and energy", "Sweeps",
            "Deploying the SNN (NIR)", "NeuroBench", "Errors", "Runs")


@dataclass(frozen=True)
class Display:
    """How the page shows a table: `percent` columns as percentages with two decimals,
    other float columns with `digits[column]` decimals (else `default_digits`),
    `drop`ped columns (names or fnmatch patterns) and the rows holding `rows_without` =
    (column, value) left out, columns renamed by `rename`; a `listed` column is shown as
    a list below the table, one item per value of the first column, instead of in it.
    Columns `<c>` and `<c>_std` become one "mean ± std" column; with `class_columns`,
    columns class_<label> are named by the class's name."""
    percent: tuple = ()
    digits: dict = field(default_factory=dict)
    default_digits: int = 4
    drop: tuple = ()
    rows_without: tuple = ()
    rename: dict = field(default_factory=dict)
    listed: str | None = None
    class_columns: bool = False


@dataclass(frozen=True)
class Entry:
    name: str               # the file: results/<kind>/<name>.<csv or png>, its caption
    section: str            # one of SECTIONS
    title: str              # on the page; {main_T} is filled in


@dataclass(frozen=True)
class Table(Entry):
    build: str              # the function of snnflow.report.tables: (study) -> DataFrame
    display: Display | None = Display()  # None: in the CSV and Snakemake's report only
    needs: str | None = None  # made only by a study with "sweeps" (config key sweep.file),
                              # "nir" (nir.enabled) or "neurobench" (neurobench.enabled)

    kind = "tables"


@dataclass(frozen=True)
class Figure(Entry):
    draw: str               # the function of snnflow.report.figures: (study) -> figure
    alt: str                # the image's alternative text; {main_T} is filled in
    other_snns: bool = False  # drawn only when there is an SNN besides the main one;
                              # folded on the page
    needs: str | None = None  # drawn only by a study with "sweeps"

    kind = "figures"


def report_category(section, present=SECTIONS):
    """The category of Snakemake's report for a section: numbered among the sections the
    study has (`present`), since that report lists its categories alphabetically and they
    should read in the order data flows, without gaps."""
    shown = [name for name in SECTIONS if name in present]
    return f"{shown.index(section) + 1}. {section}"


def present_sections(figures, tables):
    """The sections that hold one of the named figures or tables."""
    return {entry.section for entry in (*(FIGURES[n] for n in figures),
                                        *(TABLES[n] for n in tables))}


def caption_file(entry):
    return CAPTIONS / entry.kind / f"{entry.name}.rst"


PERCENT_ACC = ("train_acc", "test_acc")
CONTENTS = (
    Table("dataset", "Data", "The data", "dataset_table",
          Display(digits={"events_mean": 1, "events_min": 0, "events_max": 0},
                  drop=(f"{FEWER_EVENTS_THAN}*",),  # the page warns where one is not 0
                  class_columns=True, listed="source")),
    Figure("examples", "Data", "What the networks see", "examples",
           "one test sample per class at every T"),
    Figure("loss_curves", "Training", "Learning curves: loss", "loss_curves", "loss curves"),
    Figure("acc_curves", "Training", "Learning curves: accuracy", "acc_curves",
           "accuracy curves"),
    Table("epochs", "Training", "Every epoch", "epochs_table", None),
    Table("timing", "Training", "Time per epoch", "timing_table",
          Display(default_digits=2,
                  rename={"n_train": "train samples", "n_test": "test samples",
                          "train_seconds_per_60000": "train s per 60,000",
                          "inference_seconds_per_10000": "inference s per 10,000",
                          "train_seconds": "train s", "inference_seconds": "inference s",
                          "total_seconds": "total s", "reference_device": "reference device",
                          "reference_train_seconds": "reference train s (60,000)",
                          "reference_inference_seconds": "reference inference s (10,000)"})),
    Figure("time_per_epoch", "Training", "Seconds per epoch", "time_per_epoch",
           "seconds per epoch"),
    Table("models", "Comparison", "The models: network and training settings",
          "models_table", Display(digits={"lr": 4})),
    Table("comparison", "Comparison", "CNN vs SNN-{main_T}", "comparison_table",
          Display(percent=PERCENT_ACC)),
    Table("accuracy", "Comparison", "Test accuracy: the final epoch and the chosen epoch",
          "accuracy_table",
          Display(percent=("final_test_acc", "chosen_test_acc", "chosen_val_acc"))),
    Table("accuracy_by_T", "Comparison", "Test accuracy against T", "accuracy_by_T_table",
          Display(percent=("last_test_acc", "chosen_test_acc", "last_test_acc_min",
                           "last_test_acc_max"))),
    Figure("accuracy_vs_T", "Comparison", "Test accuracy against T", "accuracy_vs_T",
           "test accuracy against T"),
    Table("significance", "Comparison", "Is SNN-{main_T} better than the other T?",
          "significance_table",
          Display(percent=("mean_difference",), digits={"t": 3, "p_value": 4})),
    Figure("firing_rate_by_epoch", "Spikes and energy", "Firing rate during training",
           "firing_rate_by_epoch", "firing rate against the epoch"),
    Figure("firing_rate_vs_T", "Spikes and energy", "Firing rate against T",
           "firing_rate_vs_T", "firing rate against T"),
    Table("layers", "Spikes and energy", "Spikes and operations per layer", "layers_table",
          Display(digits={"firing_rate": 4, "synaptic_ops": 0, "macs": 0}, drop=("T",),
                  rows_without=("model", "CNN"))),
    Table("layers_by_epoch", "Spikes and energy", "Layers by epoch", "layers_by_epoch_table",
          None),
    Table("energy", "Spikes and energy", "Estimated energy per inference", "energy_table",
          Display(digits={"synaptic_ops": 0, "macs": 0, "e_ac_pj": 1, "e_mac_pj": 1,
                          "sops_energy_uj": 3, "macs_energy_uj": 3, "energy_uj": 3,
                          "measured_train_j_per_epoch": 1, "measured_uj_per_inference": 1})),
    Figure("energy", "Spikes and energy", "Estimated energy per inference", "energy",
           "estimated energy per inference"),
    Table("pareto", "Spikes and energy", "Accuracy against energy: every model and variant",
          "pareto_table", Display(percent=("final_test_acc",), digits={"energy_uj": 3})),
    Figure("pareto", "Spikes and energy", "Accuracy against energy: every model and variant",
           "pareto", "final test accuracy against estimated energy per inference, Pareto "
           "front marked"),
    Table("sweeps", "Sweeps", "The sweeps' variants", "sweeps_table",
          Display(percent=("final_test_acc", "chosen_test_acc"),
                  digits={"firing_rate": 4, "synaptic_ops": 0, "energy_uj": 3,
                          "train_seconds": 2, "inference_seconds": 2}, drop=("path",)),
          needs="sweeps"),
    Figure("sweep_accuracy", "Sweeps", "Test accuracy against each swept setting",
           "sweep_accuracy", "final test accuracy against each swept setting",
           needs="sweeps"),
    Table("nir", "Deploying the SNN (NIR)", "The exported graph in other frameworks",
          "nir_table", Display(percent=("prediction_agreement", "accuracy_ours",
                                        "accuracy_importer"), drop=("T",), listed="note"),
          needs="nir"),
    Table("neurobench", "NeuroBench", "NeuroBench's metrics of every model and variant",
          "neurobench_table",
          Display(percent=("ClassificationAccuracy",),
                  digits={"Footprint": 0, "ParameterCount": 0, "ConnectionSparsity": 4,
                          "ActivationSparsity": 4, "Effective_ACs": 0, "Effective_MACs": 0,
                          "Dense": 0, "samples": 0}),
          needs="neurobench"),
    Table("neurobench_agreement", "NeuroBench", "NeuroBench against the project's counts",
          "neurobench_agreement_table", None, needs="neurobench"),
    Figure("confusion_main", "Errors", "Confusion matrices: SNN-{main_T} and the CNN",
           "confusion_main", "confusion matrices of SNN-{main_T} and the CNN"),
    Figure("per_class_accuracy", "Errors", "Test accuracy per class", "per_class_accuracy",
           "test accuracy per class"),
    Table("per_class_accuracy", "Errors", "Test accuracy per class",
          "per_class_accuracy_table", None),
    Table("confusion", "Errors", "Confusion counts", "confusion_table", None),
    Figure("confusion_other", "Errors", "Confusion matrices of the other SNNs",
           "confusion_other", "confusion matrices of the other SNNs", other_snns=True),
    Table("runs", "Runs", "Runs: configuration, package versions, device", "runs_table",
          Display(drop=("settings",), rename={"settings_differing": "settings (differing)",
                                              "kernel_check": "kernel check"})),
)
TABLES = {e.name: e for e in CONTENTS if isinstance(e, Table)}
FIGURES = {e.name: e for e in CONTENTS if isinstance(e, Figure)}


def figure_names(t_values, main_T, present=()):
    """The figures a study with these T draws, `present` naming what it has of "sweeps"
    and "nir": no figure of the other SNNs without an SNN besides the main one, none of
    what it does not have."""
    others = any(T != main_T for T in t_values)
    return [name for name, figure in FIGURES.items()
            if (others or not figure.other_snns) and figure.needs in (None, *present)]


def table_names(present=()):
    """The tables a study with `present` (of "sweeps", "nir" and "neurobench") writes."""
    return [name for name, table in TABLES.items() if table.needs in (None, *present)]
