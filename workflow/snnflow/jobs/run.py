"""Running a pipeline step from a Snakemake script: log file, one-line errors, signals."""

import contextlib
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

from snnflow import SnnflowError, first_line
from snnflow.jobs.atomic import (disk_full_reason, full_disk_error, remove_path,
                            reporting_full_disk)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # a scheduler's limit or scancel; Ctrl-C
_position = [None]  # () -> where the job is ("epoch 3 batch 40"), for the interrupted line
_received = [None]  # the stop signal that arrived, if any


class Interrupted(BaseException):
    """A stop signal arrived; a BaseException, so no `except Exception` swallows it."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum, frame):
    for stop in STOP_SIGNALS:  # one interruption: a second signal must not cut the cleanup
        signal.signal(stop, signal.SIG_IGN)
    _received[0] = signum  # remembered: raised inside a finalizer or a weakref callback
    raise Interrupted(signum)  # (an import's module lock), Python only prints it


def report_position_with(describe):
    """Name where the job is, when a signal stops it, with `describe()`."""
    _position[0] = describe


class _NamedStreams:
    """A text stream writing to the job's log and, with one, its attempts' log: a full
    disk is named by the file it stopped."""

    def __init__(self, *named_files):
        self.named_files = named_files  # (file, its path)

    def write(self, text):
        for f, path in self.named_files:
            with reporting_full_disk(path):
                f.write(text)
        return len(text)

    def flush(self):
        for f, path in self.named_files:
            with reporting_full_disk(path):
                f.flush()


def _open_attempts_log(path, log_path):
    """The attempts' log `path` opened to append (never through a link), headed by a
    separator line naming this attempt; a SnnflowError if it cannot be."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        if path.is_symlink():
            raise SnnflowError(f"{path}: is a symbolic link - remove it: the log of every "
                               "attempt of this run is written there, never through a link") \
                from None
        raise SnnflowError(f"{path.parent}: cannot be written ({err.strerror}) - make it "
                           "writable: each epoch's checkpoint and the log of every attempt "
                           "go there") from None
    attempts = os.fdopen(handle, "a", buffering=1, errors="backslashreplace")
    try:
        with reporting_full_disk(path):
            attempts.write(f"===== attempt started {time.strftime('%Y-%m-%d %H:%M:%S')} on "
                           f"{platform.node()} (process {os.getpid()}); this attempt's own "
                           f"log: {log_path} =====\n")
    except BaseException:
        _close_quietly(attempts)
        raise
    return attempts


def _close_quietly(stream):
    with contextlib.suppress(OSError, ValueError):
        stream.close()


def _say(line, log, terminal):
    """`line` in the job's log, if it can still be written there, and on the terminal."""
    with contextlib.suppress(Exception):
        print(line, file=log, flush=True)
    print(line, file=terminal, flush=True)


def run_job(snakemake, main, attempts_log=None):
    """Call `main(log)` with stdout and stderr going to the rule's log file and, with
    `attempts_log`, appended to that file too, which keeps every attempt's lines (a
    resumed training job's declared log is deleted by Snakemake when it starts again).

    Whatever ends the job, its log says why, since on a cluster the job's own
    terminal output goes elsewhere:
    - a SnnflowError (bad input) ends it with its one-line message, in the log and
      on the terminal, and exit status 1;
    - a full disk that no output's writer named ends it likewise, naming the file
      the system reported;
    - anything else is a bug: the log gets the full traceback, the terminal one line
      that points to it, and the exit status is 1;
    - SIGTERM or SIGINT ends it with one line saying where it was, its declared outputs
      removed (what a finished epoch checkpointed is kept) and the exit status 128 +
      the signal's number.
    """
    log_path = snakemake.log[0]
    terminal = sys.__stderr__
    with contextlib.ExitStack() as stack:
        try:
            log_file = open(log_path, "w", buffering=1, errors="backslashreplace")
            stack.callback(_close_quietly, log_file)  # a full disk: closing fails too
        except OSError as err:
            print(f"error: {log_path}: cannot be written ({err.strerror}) - make its folder "
                  "writable (and free space there): the job's log goes there", file=terminal,
                  flush=True)
            sys.exit(1)
        try:
            attempts = _open_attempts_log(attempts_log, log_path) if attempts_log else None
            if attempts is not None:
                stack.callback(_close_quietly, attempts)
        except SnnflowError as err:
            _say(f"error: {err}", log_file, terminal)
            sys.exit(1)
        stream = _NamedStreams((log_file, log_path),
                               *([(attempts, attempts_log)] if attempts is not None else []))
        stack.enter_context(contextlib.redirect_stdout(stream))
        stack.enter_context(contextlib.redirect_stderr(stream))

        def log(message):
            print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

        def fail(line):
            _say(line, sys.stdout, terminal)
            sys.exit(1)

        for stop in STOP_SIGNALS:
            signal.signal(stop, _interrupt)
        try:
            if attempts is not None:
                log(f"every attempt of this run is logged to {attempts_log} too")
            main(log)
            if _received[0] is not None:  # the Interrupted was swallowed where it arrived
                raise Interrupted(_received[0])
        except Interrupted as err:
            where = f" at {_position[0]()}" if _position[0] is not None else ""
            for output in snakemake.output:  # an interrupted job's outputs are incomplete
                remove_path(Path(output))
            line = (f"error: {log_path}: interrupted by {err}{where} - rerun with "
                    "--rerun-incomplete to resume")
            _say(line, sys.stdout, terminal)
            sys.exit(128 + err.signum)
        except SnnflowError as err:
            fail(f"error: {err}")
        except Exception as err:
            reason = disk_full_reason(err)
            if reason is not None:
                fail(f"error: {full_disk_error(getattr(err, 'filename', None), reason)}")
            with contextlib.suppress(Exception):  # the log may be what failed
                traceback.print_exc()
            fail(f"error: {log_path}: unexpected {type(err).__name__} ({first_line(err)}) "
                 "- the full traceback is in this log; please report it with the log")
