"""From config.yaml to each job's settings: validation and per-job values.

The Snakefile calls these so that every value a job uses reaches it through
`params:` (and a changed value reruns exactly the jobs that use it). This module
must import quickly: no torch, h5py or pandas.
"""

import copy
import difflib
import math
import os
import re
from pathlib import Path

from snnflow import SnnflowError
from snnflow.data.idx import ALL_FILES as MNIST_FILES, idx_file

HINT = "fix the config (keys and limits: workflow/schemas/config.schema.yaml)"
COMMAND_LINE_HINT = ("a value given with --config is read as YAML: --config snn.T=[4,8] "
                     "snn.epochs=2 validation.fraction=0.1")


def _key_path(path):
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def strict_validator(schema):
    """A validator whose 'integer' refuses whole-number floats: JSON Schema counts 4.0
    as an integer, but `T: [4.0]` would name a run snn_T4.0 and `epochs: 1.0` breaks
    range()."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(base, type_checker=checker)(schema)


def _walk(node, path=()):
    """(path, value) of every leaf of a nested config."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, i))
    else:
        yield path, node


def _set(config, path, value):
    node = config
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _coerce_misread_values(config, validator):
    """Give back the value a user wrote where a reader changed its type and the schema
    refuses it:
    - text that stands for a number, a boolean or null: Snakemake passes nested values
      given with --config as strings (`--config 'snn={T: [4], main_T: 4}'` gives
      T == ['4'], `sweep={file: x.tsv, T: null}` gives T == 'null');
    - a boolean where the schema lists words: YAML 1.1 reads an unquoted `off` (no,
      on, yes) as a boolean (`kernels: off` gives False)."""
    for _ in range(100):  # each round fixes at least one value
        changed = False
        for err in validator.iter_errors(config):
            if err.validator == "type" and isinstance(err.instance, str):
                value = _number_boolean_or_null(err.instance)
            elif err.validator == "enum" and isinstance(err.instance, bool):
                value = _yaml_boolean_word(err.instance, err.validator_value)
            else:
                continue
            # of the right type: a value out of range is then refused as such (`-1`)
            wanted = {"type": err.schema["type"]} if "type" in err.schema else err.schema
            if value is not UNREAD and validator.evolve(schema=wanted).is_valid(value):
                _set(config, list(err.absolute_path), value)
                changed = True
        if not changed:
            return


YAML_OCTAL = re.compile(r"[-+]?0[0-7_]+")  # YAML 1.1 (PyYAML, Snakemake): 010 is 8


MAX_CONFIG_VALUES = 100_000  # a config file holds a few hundred


def _check_yaml_file(path):
    """Refuse, naming the file, what YAML reads otherwise than the user meant: aliases
    that expand to more than MAX_CONFIG_VALUES values (an alias bomb: a few lines that
    are billions of values to whatever walks them), a key given twice in one mapping
    (YAML keeps the last silently: `snn: {epochs: 1, epochs: 100}`, or a second `snn:`
    section that replaces the first), and a number YAML 1.1 reads as octal (`T: [010,
    016]` is T=8 and T=14: nobody writes a time step count in octal on purpose). Each
    node is visited once, however many aliases name it."""
    import yaml

    try:
        root = yaml.compose(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return  # Snakemake has read it already; what it says about it stands
    _refuse_alias_bombs(root, path)
    seen, todo = set(), [((), root)]
    while todo:
        key_path, node = todo.pop(0)  # in the order of the file
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
                if name in first:
                    raise SnnflowError(
                        f"{path}: config key {_key_path((*key_path, name))} is given twice, on "
                        f"line {first[name] + 1} and line {key.start_mark.line + 1}; YAML "
                        "would keep only the second silently - keep one")
                first[name] = key.start_mark.line
                todo.append(((*key_path, name), value))
        elif isinstance(node, yaml.SequenceNode):
            todo += [((*key_path, i), v) for i, v in enumerate(node.value)]
        elif (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int"
              and YAML_OCTAL.fullmatch(node.value)):
            as_read = int(node.value.replace("_", ""), 8)
            raise SnnflowError(f"config key {_key_path(key_path)}: {node.value} in {path} is "
                               f"read by YAML as the octal number {as_read} - write it "
                               f"without the leading zero ({node.value.lstrip('0+-') or 0}) "
                               f"or as {as_read}")


def _refuse_alias_bombs(root, path):
    """Refuse a document whose values, aliases expanded, number more than
    MAX_CONFIG_VALUES (counted without expanding: each node's count is computed once)."""
    import yaml

    counts = {}
    order, todo = [], [root]
    while todo:  # each node once, children before their parents
        node = todo.pop()
        if id(node) in counts:
            continue
        counts[id(node)] = None
        order.append(node)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            for child in _children(node):
                if id(child) not in counts:
                    todo.append(child)
    for node in reversed(order):
        total = 1 + sum(counts[id(child)] or 0 for child in _children(node))
        counts[id(node)] = total
        if total > MAX_CONFIG_VALUES:
            raise SnnflowError(f"{path}: line {node.start_mark.line + 1}: its aliases expand "
                               f"to more than {MAX_CONFIG_VALUES} values (a config file holds "
                               "a few hundred) - write the values out, without aliases")


def _children(node):
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []


UNREAD = object()  # text that spells no number, boolean or null


def _number_boolean_or_null(text):
    """The int, float, boolean or None that `text` spells (YAML's words for booleans and
    null), else UNREAD."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None, "~": None}.get(text.strip().lower(),
                                                                      UNREAD)


def _yaml_boolean_word(flag, words):
    """The word among `words` that YAML 1.1 reads as `flag`, else None."""
    spellings = ("on", "yes", "true") if flag else ("off", "no", "false")
    return next((word for word in words if str(word).lower() in spellings), None)


def fill_in_defaults(config, defaults_path):
    """Give every key `config` lacks, at any level, the value of the defaults file (the
    project's config.yaml), in place: a workflow used as a module may be given only
    some keys."""
    import yaml

    def fill(node, defaults):
        for key, value in defaults.items():
            if key not in node:
                node[key] = copy.deepcopy(value)
            elif isinstance(node[key], dict) and isinstance(value, dict):
                fill(node[key], value)

    if Path(defaults_path).is_file():  # a copy of the workflow without it: keys named missing
        fill(config, yaml.safe_load(Path(defaults_path).read_text()))


def validate_config(config, schema_path, config_files=()):
    """Check `config` against the JSON schema and the rules a schema cannot express;
    raise SnnflowError naming the first offending key. A value a reader changed the type
    of (see _coerce_misread_values) is turned back into what the user wrote, in place,
    and `~` in a folder is expanded; `config_files` (the files the config was read from)
    are checked for what YAML reads otherwise than meant (_check_yaml_file)."""
    import yaml

    for path in config_files:
        _check_yaml_file(path)
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = strict_validator(schema)
    _coerce_misread_values(config, validator)
    for path, value in _walk(config):
        if isinstance(value, float) and not math.isfinite(value):
            raise SnnflowError(f"config key {_key_path(path)}: {value} is not a finite number "
                               f"- {HINT}")
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        err = errors[0]
        path = list(err.absolute_path)
        if err.validator == "additionalProperties":
            known = list(err.schema.get("properties", {}))
            unknown = sorted(set(err.instance) - set(known))
            path, message = path + unknown[:1], "unknown key"
            closest = difflib.get_close_matches(str(unknown[0]), known, n=1, cutoff=0.6)
            if closest:
                message += f" (did you mean {_key_path([*path[:-1], closest[0]])}?)"
        elif err.validator == "required":
            message = err.message.replace("is a required property", "is missing")
        else:
            message = err.message
        hint = HINT
        if err.validator == "type" and isinstance(err.instance, str) and len(path) > 1:
            hint += f"; {COMMAND_LINE_HINT}"
        raise SnnflowError(f"config key {_key_path(path)}: {message} - {hint}")
    performance = config["performance"]
    if performance["cuda_graphs"] and (performance["autocast"] == "fp16"
                                       or performance["compile"]):
        raise SnnflowError("config key performance.cuda_graphs: a CUDA graph of the training "
                           "step works with autocast none or bf16 (fp16's loss scaling waits "
                           "for the device) and without compile (which captures graphs "
                           "itself) - change one of them")
    snn = config["snn"]
    if performance["cuda_graphs"] and snn["dropout"] > 0:
        raise SnnflowError("config key snn.dropout: dropout inside a CUDA graph of the "
                           "training step (performance.cuda_graphs) has not been checked on a "
                           "GPU: its masks would come from a captured random-number state - "
                           "set dropout to 0 or turn cuda_graphs off")
    if snn["v_threshold"] <= snn["v_reset"]:
        raise SnnflowError(f"config key snn.v_threshold: {snn['v_threshold']} is not above "
                           f"snn.v_reset {snn['v_reset']}, so a neuron just reset is already "
                           "at the threshold and fires on any input: the network cannot "
                           "learn - set v_threshold above v_reset")
    if config["snn"]["main_T"] not in config["snn"]["T"]:
        raise SnnflowError(f"config key snn.main_T: {config['snn']['main_T']} is not one of "
                           f"snn.T {config['snn']['T']} - add it to snn.T or change it")
    if "{" in config["results_dir"] or "}" in config["results_dir"]:
        raise SnnflowError(f"config key results_dir: {config['results_dir']} holds '{{' or "
                           "'}}', which Snakemake reads as a wildcard - choose another folder")
    config["results_dir"] = os.path.expanduser(config["results_dir"]).rstrip("/") or "/"
    for path in (("nmnist_dir",), ("mnist_dir",), ("dataset", "dir")):
        _expand_folder(config, path)
    _check_dataset(config)
    if config["synthetic"]["enabled"]:
        return
    _check_dataset_folders(config)


def _expand_folder(config, path):
    """The folder at key `path` expanded as a shell would (~/data), refused if Snakemake
    would read it as a wildcard."""
    *sections, key = path
    node = config
    for section in sections:
        node = node[section]
    folder = node[key]
    if folder is None:
        return
    folder = node[key] = os.path.expanduser(folder)
    if "{" in folder or "}" in folder:
        raise SnnflowError(f"config key {_key_path(path)}: {folder} holds '{{' or '}}', which "
                           "Snakemake reads as a wildcard - rename the folder or point to it "
                           "through a symbolic link without braces")


def _check_dataset(config):
    """The dataset section's rules a schema cannot express."""
    from snnflow.data import tonic_datasets

    dataset = config["dataset"]
    name, folder = dataset["name"], dataset["dir"]
    if name == tonic_datasets.NMNIST:
        if folder is not None:
            raise SnnflowError("config key dataset.dir: N-MNIST's copy is given by nmnist_dir "
                               "(and MNIST's by mnist_dir) - set dataset.dir to null")
        return
    if config["synthetic"]["enabled"]:
        raise SnnflowError(f"config key synthetic.enabled: the synthetic data is N-MNIST and "
                           f"MNIST, not {name} - set synthetic.enabled: false, or "
                           "dataset.name: nmnist")
    if folder is None:
        if not tonic_datasets.SPECS[name].archives:
            raise SnnflowError(f"config key dataset.dir: tonic cannot download {name} - put a "
                               f"copy in tonic's layout ({tonic_datasets.SPECS[name].layout}) "
                               "in a folder and set dataset.dir to that folder")
        return
    problem = tonic_datasets.local_copy_problem(name, folder)
    if problem:
        raise SnnflowError(f"config key dataset.dir: {problem} - point it at the folder holding "
                           f"{tonic_datasets.SPECS[name].layout} (tonic's layout), or set it "
                           "to null to download the dataset")


def _check_dataset_folders(config):
    for key in ("nmnist_dir", "mnist_dir"):
        folder = config[key]
        if folder is not None and not Path(folder).is_dir():
            raise SnnflowError(f"config key {key}: folder {folder} does not exist - fix the "
                               "path or set it to null to download the dataset")
    if config["nmnist_dir"] is not None:
        for sub in ("Train", "Test"):
            if not (Path(config["nmnist_dir"]) / sub).is_dir():
                raise SnnflowError(f"config key nmnist_dir: {config['nmnist_dir']} has no "
                                   f"{sub}/ folder - point it at the folder holding "
                                   "Train/<label>/*.bin and Test/<label>/*.bin")
    if config["mnist_dir"] is not None:
        for name in MNIST_FILES:
            if idx_file(config["mnist_dir"], name) is None:
                raise SnnflowError(f"config key mnist_dir: {config['mnist_dir']} holds neither "
                                   f"{name}.gz nor {name} - put the four MNIST IDX files "
                                   "there or set mnist_dir to null to download them")


# The keys of each model's config section that its runs' settings take.
SECTION_KEYS = {
    "snn": ("epochs", "batch_size", "lr", "channels", "hidden", "tau", "v_threshold",
            "v_reset", "neuron", "surrogate", "surrogate_alpha", "loss", "dropout", "engine"),
    "cnn": ("epochs", "batch_size", "lr", "channels", "hidden"),
}


def validation_settings(config):
    """The validation split's settings of every run: the seed only where there is a split,
    so that changing it without one reruns nothing."""
    fraction = float(config["validation"]["fraction"])
    return dict(validation_fraction=fraction,
                validation_seed=int(config["validation"]["seed"]) if fraction > 0 else None)


def as_written(folder):
    """A dataset folder of the config as the user wrote it, for what people share (the
    page, the CSVs, Snakemake's report): the home folder as `~` again (validate_config
    expanded it), a relative folder as it is; never the machine's resolved path."""
    if not folder:
        return folder
    home = os.path.expanduser("~")
    if home not in ("~", "/") and (folder == home or folder.startswith(home.rstrip("/") + "/")):
        return "~" + folder[len(home.rstrip("/")):]
    return folder


def snn_settings(config, T, seed, values=None):
    """Settings of the SNN run with T time steps and `seed` (snnflow.runs.RunSettings
    fields), with a sweep's `values` ({snn key: value}) in place of the config's."""
    snn = {**config["snn"], **(values or {})}
    return dict(model="snn", T=int(T), seed=int(seed), device=config["device"],
                **config["performance"], **{k: snn[k] for k in SECTION_KEYS["snn"]},
                **validation_settings(config))


def cnn_settings(config, seed):
    """Settings of the CNN run with `seed` (snnflow.runs.RunSettings fields)."""
    cnn = config["cnn"]
    return dict(model="cnn", seed=int(seed), device=config["device"],
                **config["performance"], **{k: cnn[k] for k in SECTION_KEYS["cnn"]},
                **validation_settings(config))


def config_key(model, field):
    """The config key a RunSettings field of a `model` run comes from (snn.tau, seeds,
    performance.autocast), for telling a user what changed."""
    if field in SECTION_KEYS[model] or field == "T":
        return f"{model}.{field}"
    if field in ("device", "model"):
        return field
    if field.startswith("validation_"):
        return f"validation.{field.removeprefix('validation_')}"
    return "seeds" if field == "seed" else f"performance.{field}"
