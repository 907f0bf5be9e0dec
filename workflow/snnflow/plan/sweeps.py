"""Ablation sweeps (config key sweep): tables of SNN variants, one training run per row
and seed, at one T.

A sweep file is tab-separated: a header naming columns among SWEEPABLE, then one row
per variant; blank lines and lines starting with `#` are left out. Each cell is checked
as the config's key of that name would be (snn.<column>, or dataset.framing for the
framing column: workflow/schemas/config.schema.yaml), and a bad one is named by file,
row and column. A variant's runs lie under
results/sweeps/<sweep>/<pattern>/seed<S>/, where <sweep> is the file's name without
.tsv and <pattern> the row's Snakemake Paramspace pattern (tau~1.5/surrogate_alpha~2.0):
values are written as Python writes an int or a float, so 2, 2.0 and 2.00 in a float
column are the same variant and the same folder.
"""

import csv
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from snnflow import SnnflowError

SWEEPABLE = ("tau", "v_threshold", "v_reset", "neuron", "surrogate", "surrogate_alpha", "loss",
             "dropout", "lr", "batch_size", "hidden", "epochs", "framing")
# The one column that is not an snn key: dataset.framing, each variant on the frames of
# its own framing (the study's by default)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
SCHEMA_HINT = "limits: workflow/schemas/config.schema.yaml"
MAX_SWEEP_BYTES = 1 << 20  # a sweep's table is a few rows


@dataclass(frozen=True)
class Sweep:
    name: str          # the file's stem: results/sweeps/<name>/
    path: str
    T: int
    columns: tuple     # the swept settings, in the file's order
    variants: dict     # {Paramspace pattern: {column: value}}, in the file's order


def sweep_files(config):
    """The configured sweep files, as a list."""
    files = config["sweep"]["file"]
    return [] if files is None else [files] if isinstance(files, str) else list(files)


def read_sweeps(config, schema_path):
    """Every configured Sweep, each of its cells checked; SnnflowError naming the file,
    row and column of the first bad one."""
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    T = config["sweep"]["T"] or config["snn"]["main_T"]
    sweeps = [read_sweep(path, T, config["snn"], schema) for path in sweep_files(config)]
    names = [s.name for s in sweeps]
    for name in names:
        if names.count(name) > 1:
            same = [s.path for s in sweeps if s.name == name]
            raise SnnflowError(f"config key sweep.file: {' and '.join(same)} would both write "
                               f"results/sweeps/{name}/ - rename one of them")
    return sweeps


def cell_schemas(schema):
    """{sweepable column: the JSON schema of the config key snn.<column>, or of
    dataset.framing}."""
    definitions = schema["definitions"]
    shared = {**definitions["optimisation"]["properties"], **definitions["widths"]["properties"]}
    snn = {**schema["properties"]["snn"]["properties"],
           "framing": schema["properties"]["dataset"]["properties"]["framing"]}
    return {column: snn[column] if isinstance(snn[column], dict) else shared[column]
            for column in SWEEPABLE}


def read_sweep(path, T, snn, schema):
    """The Sweep in the file `path`, trained at T, its other settings those of the config's
    `snn` section."""
    from snnflow.plan.settings import strict_validator

    name = Path(path).name.removesuffix(".tsv")
    if not NAME.fullmatch(name):
        raise SnnflowError(f"config key sweep.file: {path}: the name {name!r} becomes a folder "
                           "of results/sweeps/ and may hold only letters, digits, _ and - "
                           "(not first) - rename the file")
    lines = _table_lines(path)
    if not lines:
        raise SnnflowError(f"{path}: no header line - write the swept settings' names, "
                           "tab-separated, then one row per variant")
    header_line, header = lines[0]
    columns = [c.strip() for c in header]
    for column in columns:
        if column not in SWEEPABLE:
            raise SnnflowError(f"{path}: line {header_line}, column {column!r} is not a "
                               f"setting a sweep varies - use some of {', '.join(SWEEPABLE)} "
                               "(tab-separated)")
        if columns.count(column) > 1:
            raise SnnflowError(f"{path}: line {header_line}: column {column} appears twice - "
                               "keep one")
    if len(lines) == 1:
        raise SnnflowError(f"{path}: no variants under the header - add a row per variant")
    schemas = cell_schemas(schema)
    validators = {c: strict_validator(schemas[c]) for c in columns}
    rows = []
    for row, (line, cells) in enumerate(lines[1:], start=1):
        where = f"{path}: row {row} (line {line})"
        if len(cells) != len(columns):
            raise SnnflowError(f"{where} has {len(cells)} cells, the header {len(columns)} "
                               "columns - give each row one value per column, tab-separated")
        values = {c: _cell(cells[i].strip(), schemas[c], validators[c], f"{where}, column {c}")
                  for i, c in enumerate(columns)}
        merged = {**snn, **values}
        if merged["v_threshold"] <= merged["v_reset"]:
            column = "v_threshold" if "v_threshold" in values else "v_reset"
            raise SnnflowError(f"{where}, column {column}: v_threshold {merged['v_threshold']} "
                               f"is not above v_reset {merged['v_reset']}, so a neuron just "
                               "reset fires on any input - change the cell")
        rows.append((where, values))
    return Sweep(name, str(path), int(T), tuple(columns), _named_variants(rows, columns))


def _table_lines(path):
    """[(line number, cells)] of the lines that are not blank or comments. Only a regular
    file of at most MAX_SWEEP_BYTES is read (a FIFO would block the workflow before any
    job, /dev/zero fill its memory); a byte-order mark at its start is not text."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SWEEP_BYTES:
            what = (f"{info.st_size} bytes, more than {MAX_SWEEP_BYTES}"
                    if stat.S_ISREG(info.st_mode) else "not a regular file")
            raise SnnflowError(f"config key sweep.file: {path} is {what} - point it at a "
                               "tab-separated table of a few rows")
        with open(path, "rb") as f:
            text = f.read(MAX_SWEEP_BYTES + 1).decode("utf-8-sig")
    except FileNotFoundError:
        raise SnnflowError(f"config key sweep.file: {path} does not exist - fix the path (it "
                           "is relative to the working directory) or set it to null") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SnnflowError(f"config key sweep.file: {path} cannot be read as text ({err}) - "
                           "point it at a tab-separated table") from None
    kept = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]
    return [(n, cells) for (n, _), cells in zip(kept, csv.reader(
        (line for _, line in kept), delimiter="\t", quoting=csv.QUOTE_NONE))]


def _cell(text, schema, validator, where):
    """The number a cell spells, of its column's type and within its limits; a choice's
    name (neuron, surrogate, loss, framing) as written, one of its choices."""
    if "enum" in schema:
        if text not in schema["enum"]:
            raise SnnflowError(f"{where}: {text!r} is not one of {', '.join(schema['enum'])} - "
                               "fix the cell")
        return text
    integer = schema.get("type") == "integer"
    try:
        value = int(text) if integer else float(text) + 0.0  # + 0.0: -0.0 is 0.0
    except ValueError:
        what = "an integer" if integer else "a number"
        raise SnnflowError(f"{where}: {text!r} is not {what} - fix the cell") from None
    if not integer and not math.isfinite(value):
        raise SnnflowError(f"{where}: {text} is not a finite number - fix the cell")
    errors = list(validator.iter_errors(value))
    if errors:
        raise SnnflowError(f"{where}: {errors[0].message} - fix the cell ({SCHEMA_HINT})")
    return value


def _named_variants(rows, columns):
    """{Paramspace pattern: values} of the rows, refusing two rows of one pattern."""
    import pandas as pd
    from snakemake.utils import Paramspace

    frame = pd.DataFrame([values for _, values in rows], columns=list(columns))
    for column in columns:  # every cell of a column of its type, whatever pandas infers
        frame[column] = frame[column].astype(type(rows[0][1][column]))
    variants, where_of = {}, {}
    for (where, values), pattern in zip(rows, Paramspace(frame).instance_patterns):
        if pattern in variants:
            raise SnnflowError(f"{where} repeats the variant of {where_of[pattern]} ({pattern})"
                               " - remove one of the two rows")
        variants[pattern], where_of[pattern] = values, where
    return variants
