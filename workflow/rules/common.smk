import os
import re
import sys
from pathlib import Path

# The package holds the logic; job scripts add the same folder to their own path. Paths
# are taken from this file, not from workflow.basedir: used as a module, the workflow's
# basedir is the outer one's.
WORKFLOW_DIR = Path(workflow.current_basedir).parent
sys.path.insert(0, str(WORKFLOW_DIR))

from snakemake.settings.types import DeploymentMethod

from snnflow import SnnflowError
from snnflow.device.cuda_check import refuse_accidental_cpu
from snnflow.data import manifest, tonic_datasets
from snnflow.data.idx import ALL_FILES as MNIST_FILES, find_idx_file
from snnflow.plan.fingerprints import code_fingerprint
from snnflow.plan.results_folder import check_results_dir, claim_results_dir, protected_folders
from snnflow.plan.results_folder import refuse_links_inside
from snnflow.report.registry import CONTENTS as REPORT_CONTENTS, FIGURES as REPORT_FIGURES
from snnflow.report.registry import TABLES as REPORT_TABLES, caption_file, figure_names
from snnflow.report.registry import FIGURE_FORMATS, TABLE_FORMATS, present_sections
from snnflow.report.registry import report_category, table_names
from snnflow.runs import REPORTED_FILES, RUN_FILES, checkpoint_path, model_name, run_folder
from snnflow.runs import nir_check_path, run_outputs, sweep_checkpoint_path, sweep_run_folder
from snnflow.scoring import neurobench_path
from snnflow.runs import sweep_tensorboard_folder, sweep_variant, tensorboard_folder
from snnflow.plan.settings import as_written, cnn_settings, fill_in_defaults, snn_settings
from snnflow.plan.settings import validate_config
from snnflow.plan.sweeps import read_sweeps
from snnflow.deploy.importers import importer_versions, installed_version
from snnflow.train.gpu_slots import count_gpus, slot_count

def stop_before_any_job(err):
    """One line, as the jobs report bad input, and exit status 1."""
    print(f"error: {err}", file=sys.stderr)
    sys.exit(1)


# Used as a module with only some keys (`module ...: config: {...}`), the other keys take
# the project's defaults: its config.yaml.
fill_in_defaults(config, WORKFLOW_DIR.parent / "config.yaml")
try:
    validate_config(config, WORKFLOW_DIR / "schemas" / "config.schema.yaml", workflow.configfiles)
except SnnflowError as err:
    stop_before_any_job(err)

# The sweeps' tables are read here, every cell checked: a bad one stops the workflow.
try:
    SWEEPS = {sweep.name: sweep
              for sweep in read_sweeps(config, WORKFLOW_DIR / "schemas" / "config.schema.yaml")}
except SnnflowError as err:
    stop_before_any_job(err)

# Everything the study makes goes under this folder: one study per folder (the demo's
# is results-demo), so two studies never mix their files.
RESULTS = config["results_dir"]


PATH_MODIFIER = workflow.modifier.path_modifier  # this module's: params are computed later


def on_disk(path):
    """Where a rule's relative input or output `path` lies: Snakemake moves those into the
    folder of a module's `prefix:` (the workflow used as a module), and the workflow must
    do the same for what it writes itself (at parse time) or passes as params."""
    return PATH_MODIFIER.replace_prefix(path)


def workflow_file(path):
    """A file of the workflow itself (a caption) as a rule's input: relative where that
    names it (Snakemake's report lists a job's inputs, and people share it), absolute
    where a module's `prefix:` would move the relative path away from the file (the
    workflow's clone inside the outer project)."""
    relative = os.path.relpath(path)
    return relative if on_disk(relative) == relative else str(path)


try:
    claim_results_dir(on_disk(RESULTS))
    check_results_dir(on_disk(RESULTS), protected_folders(WORKFLOW_DIR.parent),
                      {"nmnist_dir": config["nmnist_dir"], "mnist_dir": config["mnist_dir"],
                       "dataset.dir": config["dataset"]["dir"]})
    refuse_links_inside(on_disk(RESULTS))
except SnnflowError as err:
    stop_before_any_job(err)
SYNTHETIC = config["synthetic"]["enabled"]
# The dataset (config section dataset): its event store and frame caches are named after
# it, so that a study's folder keeps each dataset's data apart.
DATASET = config["dataset"]["name"]
NMNIST = DATASET == tonic_datasets.NMNIST
DATA_NAME = tonic_datasets.store_name(DATASET)
# Framing by time needs each event's timestamp: a store with them, kept apart from the
# store of a study framed by count (which needs none), so that switching rebuilds nothing
# of the other's.
FRAMING = config["dataset"]["framing"]
# a path pattern of wildcard timed ("" or "_timed"; the store's rule is N-MNIST's or tonic's)
EVENT_STORES = f"{RESULTS}/events/{DATA_NAME}{{timed}}.h5"


def event_store(framing=FRAMING):
    """The event store the frames of `framing` are binned from (the study's by default)."""
    return EVENT_STORES.format(timed="_timed" if framing == "time" else "")


EVENT_STORE = event_store()
# a path pattern of wildcards T and by ("" for frames by count, "_by_time")
FRAMES = f"{RESULTS}/frames/{DATA_NAME}_T{{T}}{{by}}.h5"


def frames_of(T, framing=FRAMING):
    """The SNN's frame cache of T frames per sample (framed by config dataset.framing, or
    a sweep variant's framing)."""
    return FRAMES.format(T=T, by="_by_time" if framing == "time" else "")


# The CNN's input: MNIST, N-MNIST's static twin; elsewhere event images, the frames of T=1
# by count (every event of the sample, whatever the SNN's framing).
CNN_INPUT = f"{RESULTS}/frames/mnist.h5" if NMNIST else frames_of(1, "count")
# The archives tonic downloads for the dataset (none: N-MNIST, or a local copy)
TONIC_ARCHIVES = ([] if NMNIST or config["dataset"]["dir"]
                  else list(tonic_datasets.SPECS[DATASET].archives))
NIR = config["nir"]["enabled"]
# The NIR importers this Python has (snnflow.deploy.nir_check.IMPORTERS), by version:
# read from the installed packages' metadata, none imported.
NIR_IMPORTER_VERSIONS = importer_versions()
# Every trained run scored by NeuroBench (config key neurobench, snnflow.scoring), with
# the installed release (installing another reruns the scoring)
NEUROBENCH = config["neurobench"]["enabled"]
NEUROBENCH_VERSION = installed_version("neurobench")
SYNTHETIC_DIR = f"{RESULTS}/raw/synthetic"
T_VALUES = config["snn"]["T"]
SEEDS = config["seeds"]
MODELS = [model_name("snn", T) for T in T_VALUES] + [model_name("cnn")]

# Where the data came from, for the report's data table (URLs and md5 sums are resolved
# by the data_summary job, which has tonic); folders as the user wrote them.
DATA_SOURCES = (
    {"kind": "synthetic", **config["synthetic"]} if SYNTHETIC else
    {"kind": "datasets", "nmnist_dir": as_written(config["nmnist_dir"]),
     "mnist_dir": as_written(config["mnist_dir"]),
     "nmnist_mirror": config["download"]["nmnist_mirror"],
     "mnist_mirror": config["download"]["mnist_mirror"]} if NMNIST else
    {"kind": "tonic", "name": DATASET, "dir": as_written(config["dataset"]["dir"]),
     "mirror": config["download"]["tonic_mirror"],
     "test_fraction": config["dataset"]["test_fraction"],
     "split_seed": config["dataset"]["split_seed"]})

# Training jobs run one per GPU slot at once (--resources gpu=N), each with its share of
# the cores. A cluster run without --cores takes each rule's threads from its profile.
MACHINE_GPUS = count_gpus()
GPU_SLOTS = slot_count(config["gpus"], MACHINE_GPUS)
try:
    CORES = workflow.cores
except WorkflowError:
    CORES = None
TRAIN_THREADS = config["train_threads"] or max(1, (CORES or 8) // max(1, GPU_SLOTS))
# On the CPU the thread count changes the last bits of the results (docs/performance.md),
# so where the jobs will train on the CPU it is a param: changing it reruns them.
CPU_TRAINING = config["device"] == "cpu" or (config["device"] == "auto" and MACHINE_GPUS == 0)
CPU_THREADS = min(TRAIN_THREADS, CORES or TRAIN_THREADS) if CPU_TRAINING else None


def refuse_accidental_cpu_training():
    """With device: auto on a machine with NVIDIA GPUs, stop before any job when the torch
    the jobs will run cannot use them (snnflow.device.cuda_check). Jobs in conda environments run
    another torch than this process's: they check it themselves, as every job does."""
    if config["device"] != "auto" or MACHINE_GPUS == 0:
        return
    deployment = workflow.deployment_settings
    if deployment is not None and DeploymentMethod.CONDA in deployment.deployment_method:
        return
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    try:
        refuse_accidental_cpu(config["device"], MACHINE_GPUS)
    except SnnflowError as err:
        stop_before_any_job(err)


refuse_accidental_cpu_training()


# A dataset folder of the user's is an input through its manifest (snnflow.data.manifest),
# rewritten here only when a file in it was added, removed or replaced; the pipeline's own
# synthetic and downloaded data are outputs of its rules.
def dataset_manifest(name, listing):
    """The manifest `name` holding `listing` (a function), written when it changed."""
    path = f"{RESULTS}/manifests/{name}"
    try:
        manifest.update(on_disk(path), listing())
    except SnnflowError as err:
        stop_before_any_job(err)
    return path


def nmnist_inputs():
    if SYNTHETIC:
        return [SYNTHETIC_DIR]
    if config["nmnist_dir"]:
        return [dataset_manifest("nmnist.tsv",
                                 lambda: manifest.nmnist_listing(config["nmnist_dir"]))]
    return [f"{RESULTS}/raw/NMNIST/Train", f"{RESULTS}/raw/NMNIST/Test"]


def tonic_inputs():
    """A tonic dataset's local copy through its manifest, or the folder it is unpacked to."""
    if config["dataset"]["dir"]:
        folder = Path(config["dataset"]["dir"]) / DATASET
        extension = tonic_datasets.SPECS[DATASET].extension
        return [dataset_manifest(f"{DATA_NAME}.tsv",
                                 lambda: manifest.tree_listing(folder, extension))]
    return [f"{RESULTS}/raw/{DATASET}"]


def tonic_root(wildcards, input):
    """The folder holding <name>/ in tonic's layout (tonic's save_to)."""
    return config["dataset"]["dir"] or str(Path(input[0]).parent)


def nmnist_root(wildcards, input):
    """The folder holding Train/ and Test/."""
    if SYNTHETIC:
        return f"{input[0]}/NMNIST"
    return config["nmnist_dir"] or str(Path(input[0]).parent)


def mnist_root(wildcards, input):
    """The folder holding the four IDX files."""
    return f"{input[0]}/MNIST" if SYNTHETIC else str(Path(input[0]).parent)


def mnist_inputs():
    if SYNTHETIC:
        return [SYNTHETIC_DIR]
    if config["mnist_dir"]:
        files = [str(find_idx_file(config["mnist_dir"], name)) for name in MNIST_FILES]
        # local(): the user's files, where a module's prefix must not move them
        return [*map(local, files),
                dataset_manifest("mnist.tsv", lambda: manifest.file_listing(files))]
    return [f"{RESULTS}/raw/MNIST/{name}.gz" for name in MNIST_FILES]


def sweep_of(wildcards):
    """The Sweep and the values of the variant a job's wildcards name."""
    sweep = SWEEPS.get(wildcards.sweep)
    if sweep is None or wildcards.variant not in sweep.variants:
        folder = sweep_run_folder(RESULTS, wildcards.sweep, wildcards.variant, wildcards.seed)
        raise WorkflowError(f"{folder}: no such variant in the sweeps of config key sweep.file")
    return sweep, sweep.variants[wildcards.variant]


def sweep_frames(wildcards):
    """The frame cache a sweep variant trains on: at the sweep's T, framed by the variant's
    framing column or the study's."""
    sweep, values = sweep_of(wildcards)
    return frames_of(sweep.T, values.get("framing", FRAMING))
