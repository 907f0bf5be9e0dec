"""From config.yaml to each job's settings: validation, per-job values, code fingerprints.

The Snakefile calls these so that every value a job uses reaches it through
`params:` (and a changed value reruns exactly the jobs that use it). This module
must import quickly: no torch, h5py or pandas.
"""

import hashlib
from pathlib import Path

from . import SnnflowError

WORKFLOW_DIR = Path(__file__).resolve().parent.parent


def _key_path(path):
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate_config(config, schema_path):
    """Check `config` against the JSON schema and the rules a schema cannot express;
    raise SnnflowError naming the first offending key."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        err = errors[0]
        path = list(err.absolute_path)
        if err.validator == "additionalProperties":
            unknown = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            path, message = path + unknown[:1], "unknown key"
        elif err.validator == "required":
            message = err.message.replace("is a required property", "is missing")
        else:
            message = err.message
        raise SnnflowError(f"config key {_key_path(path)}: {message} - fix the config "
                           "(keys and limits: workflow/schemas/config.schema.yaml)")
    if config["snn"]["main_T"] not in config["snn"]["T"]:
        raise SnnflowError(f"config key snn.main_T: {config['snn']['main_T']} is not one of "
                           f"snn.T {config['snn']['T']} - add it to snn.T or change it")
    if config["synthetic"]["enabled"]:
        return
    for key, required in (("nmnist_dir", ("Train", "Test")), ("mnist_dir", ())):
        folder = config[key]
        if folder is None:
            continue
        if not Path(folder).is_dir():
            raise SnnflowError(f"config key {key}: folder {folder} does not exist - fix the "
                               "path or set it to null to download the dataset")
        for sub in required:
            if not (Path(folder) / sub).is_dir():
                raise SnnflowError(f"config key {key}: {folder} has no {sub}/ folder - point "
                                   "it at the folder holding Train/<label>/*.bin and "
                                   "Test/<label>/*.bin")


def code_fingerprint(*files):
    """Short hash of workflow files (paths relative to workflow/), e.g.
    'snnflow/neuron.py': passed as a param so that editing the code a job runs
    reruns that job (Snakemake does not track imported modules)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update((WORKFLOW_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def snn_settings(config, T):
    """Settings of the SNN run with T time steps (snnflow.training.RunSettings fields)."""
    snn = config["snn"]
    return dict(model="snn", T=int(T), seed=config["seed"], device=config["device"],
                **config["performance"],
                **{k: snn[k] for k in ("epochs", "batch_size", "lr", "channels", "hidden",
                                       "tau", "v_threshold", "v_reset", "surrogate_alpha",
                                       "engine")})


def cnn_settings(config):
    """Settings of the CNN run (snnflow.training.RunSettings fields)."""
    cnn = config["cnn"]
    return dict(model="cnn", seed=config["seed"], device=config["device"],
                **config["performance"],
                **{k: cnn[k] for k in ("epochs", "batch_size", "lr", "channels", "hidden")})
