# Read before the Snakefile's `configfile:` directive, which would fail on a bad
# config.yaml with a message that does not name it.


def refuse_unreadable_config(path):
    """One line naming `path` when it is not a YAML mapping: Snakemake's own message does
    not name the file (and says it before this file is read, for --configfile files)."""
    import os
    import sys

    import yaml

    if not os.path.exists(path):
        return
    try:
        content = yaml.safe_load(open(path, encoding="utf-8"))
        problem = None if isinstance(content, dict) else (
            "empty" if content is None else f"a {type(content).__name__}, not config keys")
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        problem = f"not readable as YAML ({str(err).splitlines()[0]})"
    if problem:
        print(f"error: {path}: {problem} - it must map config keys to values (the project's "
              "config.yaml shows them all)", file=sys.stderr)
        sys.exit(1)


refuse_unreadable_config("config.yaml")
