"""gpu-check's command: where it may run (the device, the folder), what it runs on (the
environment), its log, its stop on a signal, and its outcome as exit status and last line
(snnflow.gpu_check)."""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from snnflow.gpu_check.report import Report, energy_line, markdown, one_line, result_line
from snnflow.gpu_check.rows import run_checks

REPO = Path(__file__).resolve().parents[3]
DEFAULT_BUDGET_MINUTES = 7.0  # + the longest row (about a minute) + a minute's margin < 10
EXIT_CODES = {"passed": 0, "failed": 1, "cannot run": 2}


class CannotRun(Exception):
    """The check cannot run on this machine (exit 2, one line)."""



class Tee:
    """A stream that also writes every line into the run's log file, flushed at once (a
    kill loses nothing printed)."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text):
        self.stream.write(text)
        self.log.write(text)
        self.log.flush()
        return len(text)

    def flush(self):
        self.stream.flush()
        self.log.flush()


def environment(device):
    """What the check ran on: GPU, driver, torch, CUDA, Triton and numpy (and nvidia-smi's
    own report, returned apart for its file; None where there is no nvidia-smi)."""
    import numpy
    import torch

    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    env = {"python": sys.version.split()[0], "torch": torch.__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
           "triton": triton_version, "numpy": numpy.__version__, "device": str(device),
           "gpu": None, "driver": None, "nvidia_smi": "not present"}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        env["gpu"] = {"name": properties.name,
                      "capability": f"{properties.major}.{properties.minor}",
                      "memory_gib": round(properties.total_memory / 2**30, 1),
                      "multiprocessors": properties.multi_processor_count}
    smi_report = None
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            smi_report = subprocess.run([smi], capture_output=True, text=True,
                                        timeout=30).stdout
            env["driver"] = subprocess.run(
                [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30).stdout.split("\n")[0].strip()
            env["nvidia_smi"] = "nvidia-smi.txt"
        except (OSError, subprocess.SubprocessError) as err:
            env["nvidia_smi"] = f"failed: {one_line(err)}"
    return env, smi_report


def interpreter_problem():
    """None where Triton's interpreter runs a kernel that loops over a run-time count, as
    the LIF kernels do; else one line saying why not. Triton 3.6's interpreter turns
    that count into a Python int through a one-element numpy array, which numpy 2.4 and
    later refuse."""
    import numpy
    import torch

    try:
        import triton
        import triton.language as tl
    except ImportError:
        return "Triton is not installed in this Python - install the test extras (make test)"

    @triton.jit
    def count_kernel(out_ptr, n):
        total = 0.0
        for _ in range(n):
            total += 1.0
        tl.store(out_ptr, total)

    out = torch.zeros(1)
    try:
        count_kernel[(1,)](out, 3)
    except Exception as err:  # noqa: BLE001 - InterpreterError wraps what numpy raised
        return (f"Triton {triton.__version__}'s interpreter cannot run the LIF kernels with "
                f"numpy {numpy.__version__} ({one_line(err, 120)}) - Triton's interpreter "
                "before 3.7 needs numpy < 2.4; the tests use Triton 3.9")
    return None if out.item() == 3.0 else "Triton's interpreter miscounts a loop"


def open_out_folder(folder):
    """The folder every file of the check goes into, made if needed; a file in its place
    or a folder that cannot be written is refused in one line."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CannotRun(f"--out {folder}: a file, not a folder - name a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".gpu-check-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise CannotRun(f"--out {folder}: cannot write there ({err.strerror}) - name a "
                        "folder you can write") from None
    return folder


def parse_device(name, smoke):
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise CannotRun(f"--device {name!r} is not a device torch knows - use cuda, cuda:N "
                        "or (with --smoke) cpu") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CannotRun(f"no CUDA device on this machine (torch {torch.__version__}) - run "
                        "it on a machine with an NVIDIA GPU")
    if device.type not in ("cuda", "cpu"):
        raise CannotRun(f"--device {name!r}: gpu-check checks NVIDIA GPUs (cuda, cuda:N)")
    if device.type == "cpu" and not smoke:
        raise CannotRun("--device cpu only with --smoke")
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        problem = interpreter_problem()
        if problem:
            raise CannotRun(problem)
    return device


def stop_on_signal(signum, frame):
    """Stop the check at the first SIGTERM or SIGINT; later ones (make passing a timeout's
    signal on) are ignored while the tables are written."""
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)
    raise Stopped(signal.Signals(signum).name)


class Stopped(BaseException):
    """A signal (a timeout's SIGTERM, Ctrl-C) stopped the check: not an Exception, so no
    row's guard takes it for that row's error."""


def main(argv=None):
    parser = argparse.ArgumentParser(description="the CUDA path, checked and timed")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "gpu-check",
                        help="the folder for every file the check writes (default "
                             "results/gpu-check)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget-minutes", type=float, default=DEFAULT_BUDGET_MINUTES,
                        help="stop starting rows after this long and write what is there "
                             f"(default {DEFAULT_BUDGET_MINUTES:g}: with the last row, "
                             "within 9 minutes)")
    parser.add_argument("--smoke", action="store_true",
                        help="toy sizes (the test suite's run on CPU)")
    args = parser.parse_args(argv)
    try:
        device = parse_device(args.device, args.smoke)
        out = open_out_folder(args.out)
    except CannotRun as err:
        print(f"gpu-check: {err}", file=sys.stderr)
        return EXIT_CODES["cannot run"]
    with open(out / "gpu-check.log", "w") as log:
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = Tee(stdout, log), Tee(stderr, log)
        handlers = {s: signal.signal(s, stop_on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return checked(args, device, out)
        finally:
            for s, handler in handlers.items():
                signal.signal(s, handler)
            sys.stdout, sys.stderr = stdout, stderr


def checked(args, device, out):
    import torch

    from snnflow.train import loop

    if device.type == "cuda":
        device = loop.resolve_device(str(device))  # made current: Triton launches there
    env, smi_report = environment(device)
    (out / "environment.json").write_text(json.dumps(env, indent=2))
    if smi_report is not None:
        (out / "nvidia-smi.txt").write_text(smi_report)
    print(f"gpu-check on {env['gpu']['name'] if env['gpu'] else 'the CPU (smoke)'}: torch "
          f"{env['torch']}, CUDA {env['cuda']}, Triton {env['triton']}, numpy {env['numpy']}, "
          f"driver {env['driver']}; writing into {out}", flush=True)
    sizes = dict(n_train=60_000, n_test=10_000, batch=256) if not args.smoke else \
        dict(n_train=64, n_test=32, batch=16)
    torch.backends.cudnn.benchmark = True
    report = Report(out, {"device": str(device), "torch": torch.__version__, **sizes,
                          "name": env["gpu"]["name"] if env["gpu"] else "cpu"},
                    args.budget_minutes * 60)
    try:
        run_checks(report, device, args.smoke)
    except Stopped as stop:
        report.data["stopped_by"] = str(stop)
        report.write()
        print(f"gpu-check: stopped by {stop}; the rows done so far are in {out}")
    else:
        report.finish()
        print(markdown(report.data))
    passed = report.data["passed"] and not report.data["stopped_by"]
    print(f"wrote gpu-check.json, gpu-check.md, gpu-check.log and environment.json into {out} "
          f"in {report.data['seconds']:.0f} s")
    status = EXIT_CODES["passed" if passed else "failed"]
    print(f"result: {result_line(report.data)}; {energy_line(report.data)} (exit {status})",
          flush=True)
    return status

