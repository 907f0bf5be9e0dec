"""Dotted keys in `snakemake --config`: `--config snn.epochs=2 snn.T=[4,8]` sets the
nested keys snn.epochs and snn.T, as a config file would.

Snakemake accepts only plain names as --config keys: at `snn.epochs=2` it stops with its
own traceback, before any code of the workflow runs. While it builds its command line,
before it reads --config, Snakemake imports every installed package whose name starts
with snakemake_logger_plugin_; this one is found that way (the project's install puts
workflow/ on Python's path) and wraps Snakemake's reader of --config so that a dotted key
becomes nested keys, its value read as Snakemake reads any --config value. The
workflow then checks the result as it checks a config file (snnflow.plan.settings). Other
keys are left to Snakemake. As a logger (`--logger snnflow`) it writes nothing: it is
not meant to be chosen.
"""

import re
import sys
from logging import LogRecord

import snakemake.cli
from snakemake.utils import update_config
from snakemake_interface_logger_plugins.base import LogHandlerBase

_snakemakes_reader = snakemake.cli.parse_config
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
MAX_LEVELS = 8  # the schema's deepest key has 3


def refuse(message):
    """One line, as the workflow reports a bad config, and exit status 1: Snakemake would
    print a traceback for an exception raised while it reads its command line."""
    print(f"error: --config {message}", file=sys.stderr)
    sys.exit(1)


def read_config_entries(entries):
    """Snakemake's --config reader, with `a.b.c=value` read as {a: {b: {c: value}}}; a key
    set twice in ways that would drop one (`snn=5 snn.epochs=2`) is refused."""
    config, given = {}, {}
    for entry in entries or ():
        key, equals, value = entry.partition("=")
        if "." not in key or not equals:
            read = _snakemakes_reader([entry])
            for name, value in read.items():
                if name in given and (isinstance(config.get(name), dict)
                                      != isinstance(value, dict)):
                    refuse(f"{entry}: sets {name}, which {given[name]} set too - give one "
                           "of them")
                given[name] = entry
            update_config(config, read)
            continue
        parts = key.split(".")
        if len(parts) > MAX_LEVELS:
            refuse(f"{key[:60]}...: {len(parts)} levels of keys; the config has at most 3 - "
                   "check the key (docs/configuration.md)")
        if not all(NAME.fullmatch(part) for part in parts):
            refuse(f"{entry[:80]}: {key[:60]} is not a dotted config key (names of ASCII "
                   "letters, digits, _ and - joined by single dots) - check the key "
                   "(docs/configuration.md)")
        node = config
        for depth, part in enumerate(parts[:-1]):
            if part in node and not isinstance(node[part], dict):
                earlier = given.get(".".join(parts[:depth + 1]), "an earlier entry")
                refuse(f"{entry}: sets a key inside {'.'.join(parts[:depth + 1])}, which "
                       f"{earlier} set to a single value - give one of them")
            node = node.get(part, {})
        nested = _snakemakes_reader([f"value={value}"])["value"]  # read as Snakemake reads it
        for depth in range(len(parts)):
            given.setdefault(".".join(parts[:depth + 1]), entry)
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
