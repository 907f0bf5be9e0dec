"""Dotted keys in `snakemake --config`: `--config snn.epochs=2 snn.T=[4,8]` sets the
nested keys snn.epochs and snn.T, as a config file would.

Snakemake accepts only plain names as --config keys: at `snn.epochs=2` it stops with its
own traceback, before any code of the workflow runs. While it builds its command line,
before it reads --config, Snakemake imports every installed package whose name starts
with snakemake_logger_plugin_; this one is found that way (the project's install puts
workflow/ on Python's path) and wraps Snakemake's reader of --config so that a dotted key
becomes nested keys, its value read as Snakemake reads any --config value. The
workflow then checks the result as it checks a config file (snnflow.settings). Other
keys are left to Snakemake. As a logger (`--logger snnflow`) it writes nothing: it is
not meant to be chosen.
"""

import re
from logging import LogRecord

import snakemake.cli
from snakemake.utils import update_config
from snakemake_interface_logger_plugins.base import LogHandlerBase

_snakemakes_reader = snakemake.cli.parse_config
NAME = re.compile(r"[A-Za-z_][\w-]*")


def read_config_entries(entries):
    """Snakemake's --config reader, with `a.b.c=value` read as {a: {b: {c: value}}}."""
    config = {}
    for entry in entries or ():
        key, equals, value = entry.partition("=")
        if "." not in key or not equals:
            update_config(config, _snakemakes_reader([entry]))
            continue
        parts = key.split(".")
        if not all(NAME.fullmatch(part) for part in parts):
            raise ValueError(f"Invalid config definition: {key} is not a dotted config key "
                             "(names of letters, digits, _ and - joined by dots)")
        nested = _snakemakes_reader([f"value={value}"])["value"]  # read as Snakemake reads it
        for part in reversed(parts):
            nested = {part: nested}
        update_config(config, nested)
    return config


if getattr(snakemake.cli.parse_config, "__name__", "") != read_config_entries.__name__:
    snakemake.cli.parse_config = read_config_entries


class LogHandler(LogHandlerBase):
    """Not a logger anyone needs: this package exists for read_config_entries."""

    def emit(self, record: LogRecord) -> None:
        pass

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return False

    @property
    def has_formatter(self) -> bool:
        return False

    @property
    def needs_rulegraph(self) -> bool:
        return False
