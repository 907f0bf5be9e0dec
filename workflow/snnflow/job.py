"""Running a pipeline step from a Snakemake script: log file, one-line errors."""

import contextlib
import sys
import time
import traceback

from snnflow import SnnflowError, first_line
from snnflow.atomic import disk_full_reason, full_disk_error


def run_job(snakemake, main):
    """Call `main(log)` with stdout and stderr going to the rule's log file.

    Whatever ends the job, its log says why, since on a cluster the job's own
    terminal output goes elsewhere:
    - a SnnflowError (bad input) ends it with its one-line message, in the log and
      on the terminal, and exit status 1;
    - a full disk that no output's writer named ends it likewise, naming the file
      the system reported;
    - anything else is a bug: the log gets the full traceback, the terminal one line
      that points to it, and the exit status is 1.
    """
    log_path = snakemake.log[0]
    terminal = sys.__stderr__
    with open(log_path, "w", buffering=1, errors="backslashreplace") as log_file, \
            contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
        def log(message):
            print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

        def fail(line):
            print(line, flush=True)
            print(line, file=terminal, flush=True)
            sys.exit(1)

        try:
            main(log)
        except SnnflowError as err:
            fail(f"error: {err}")
        except Exception as err:
            reason = disk_full_reason(err)
            if reason is not None:
                fail(f"error: {full_disk_error(getattr(err, 'filename', None), reason)}")
            traceback.print_exc()
            fail(f"error: {log_path}: unexpected {type(err).__name__} ({first_line(err)}) "
                 "- the full traceback is in this log; please report it with the log")
