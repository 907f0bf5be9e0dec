import os
import sys
from pathlib import Path

PACKAGE_DIR = str(Path(workflow.basedir) / "workflow")
sys.path.insert(0, PACKAGE_DIR)
# Job scripts run in their own Python processes: let them import snnflow too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [PACKAGE_DIR] + [p for p in [os.environ.get("PYTHONPATH")] if p]
)

from snnflow import SnnflowError
from snnflow.mnist import ALL_FILES as MNIST_FILES, find_idx_file
from snnflow.settings import cnn_settings, code_fingerprint, snn_settings, validate_config

try:
    validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
except SnnflowError as err:
    raise WorkflowError(str(err)) from None

SYNTHETIC = config["synthetic"]["enabled"]
SYNTHETIC_DIR = "results/raw/synthetic"
T_VALUES = config["snn"]["T"]
MODELS = [f"snn_T{T}" for T in T_VALUES] + ["cnn"]


def code(*modules, script):
    """Fingerprint of the package modules and the script a job runs."""
    return code_fingerprint(*[f"snnflow/{m}.py" for m in modules], f"scripts/{script}.py")


def nmnist_root():
    if SYNTHETIC:
        return f"{SYNTHETIC_DIR}/NMNIST"
    return config["nmnist_dir"] or "results/raw/NMNIST"


def nmnist_inputs():
    if SYNTHETIC:
        return [SYNTHETIC_DIR]
    return [f"{nmnist_root()}/Train", f"{nmnist_root()}/Test"]


def mnist_root():
    if SYNTHETIC:
        return f"{SYNTHETIC_DIR}/MNIST"
    return config["mnist_dir"] or "results/raw/MNIST"


def mnist_inputs():
    if SYNTHETIC:
        return [SYNTHETIC_DIR]
    if config["mnist_dir"]:
        return [str(find_idx_file(config["mnist_dir"], name)) for name in MNIST_FILES]
    return [f"results/raw/MNIST/{name}.gz" for name in MNIST_FILES]
