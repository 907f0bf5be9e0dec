"""Running a pipeline step from a Snakemake script: log file, one-line errors."""

import contextlib
import sys
import time

from . import SnnflowError


def run_job(snakemake, main):
    """Call `main(log)` with stdout and stderr going to the rule's log file.

    A SnnflowError (bad input) ends the job with its one-line message, in the log
    and on the terminal, and exit status 1; anything else is a bug and keeps its
    traceback in the log.
    """
    log_path = snakemake.log[0]
    terminal = sys.__stderr__
    with open(log_path, "w", buffering=1) as log_file, \
            contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
        def log(message):
            print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

        try:
            main(log)
        except SnnflowError as err:
            print(f"error: {err}", flush=True)
            print(f"error: {err}", file=terminal, flush=True)
            sys.exit(1)
