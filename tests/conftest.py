import http.server
import os
import re
import signal
import shutil
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "workflow"), str(REPO / "benchmarks")]

from snnflow.data.nmnist import EVENT_DTYPE, write_events  # noqa: E402


def copy_workflow(workdir, folders=("workflow", "envs")):
    """A runnable copy of the project's workflow in `workdir`: the Snakefile, config.yaml
    and `folders`, without caches or build metadata."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, workdir / name)
    for folder in folders:
        shutil.copytree(REPO / folder, workdir / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return workdir


def random_events(rng, n, t0=0):
    """n events in time order, anywhere on the 34x34 sensor."""
    events = np.empty(n, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, 34, n)
    events["y"] = rng.integers(0, 34, n)
    events["p"] = rng.integers(0, 2, n)
    events["t"] = np.sort(rng.integers(t0, t0 + 300_000, n))
    return events


def make_nmnist_tree(root, samples_per_label, rng, sizes=(50, 400), labels=range(10)):
    """Write Train/ and Test/ trees of random recordings; returns {(split, name): events}."""
    written = {}
    for folder in ("Train", "Test"):
        for label in labels:
            for i in range(samples_per_label):
                events = random_events(rng, int(rng.integers(*sizes)))
                name = f"{label}/{i:05d}.bin"
                write_events(Path(root) / folder / name, events)
                written[(folder, name)] = events
    return written


def dry_run_plan(output):
    """{rule: jobs} from the job stats of `snakemake -n`, {} for nothing to be done."""
    import re

    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def all_classes(rng, n):
    """n labels in random order that hold every digit (n >= 10)."""
    return rng.permutation(np.arange(n) % 10).astype(np.uint8)


def channels_last_seq(T, N, C, H, W, generator, requires_grad=False):
    """Conv outputs (T, N, C, H, W), each time step's (N, C, H, W) channels_last."""
    import torch

    y = torch.randn(T * N, C, H, W, generator=generator) * 1.5 + 0.3
    y = y.contiguous(memory_format=torch.channels_last).unflatten(0, (T, N))
    return y.requires_grad_(requires_grad)


def spikes(shape, density, generator, values=False):
    """Channels_last spikes (B, C, H, W) with `density` nonzeros."""
    import torch

    x = (torch.rand(shape, generator=generator) < density).float()
    if values:  # not only 0/1: the kernels multiply by the stored value
        x *= torch.randint(1, 5, shape, generator=generator).float()
    return x.contiguous(memory_format=torch.channels_last)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def small_caches(tmp_path_factory):
    """Frame caches (T=4) and an MNIST cache built from random data by the pipeline's code."""
    from snnflow.data.events import build_event_store
    from snnflow.data.frames import build_frame_cache
    from snnflow.data.idx import write_idx
    from snnflow.data.mnist import build_image_cache

    root = tmp_path_factory.mktemp("caches")
    rng = np.random.default_rng(7)
    make_nmnist_tree(root / "raw", 6, rng, sizes=(100, 300))
    build_event_store(root / "raw", root / "events.h5")
    build_frame_cache(root / "events.h5", 4, root / "nmnist_T4.h5")
    (root / "mnist").mkdir()
    for prefix, n in (("train", 60), ("t10k", 20)):
        write_idx(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz",
                  all_classes(rng, n))
    build_image_cache(root / "mnist", root / "mnist.h5")
    return root


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving (root folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def missing_commands(commands):
    return [c for c in commands if shutil.which(c) is None and not Path("/usr/sbin", c).exists()]


def ensure_debian_packages(commands, packages):
    """None once every command is there (installing `packages` with apt-get, as root,
    when one is missing), else the reason they cannot be had, for pytest.skip."""
    if not missing_commands(commands):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{', '.join(missing_commands(commands))} missing and not installable here " \
               f"(apt-get as root installs {' '.join(packages)})"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    for command in (install, ["apt-get", "update"], install):  # update only when needed
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode == 0 and command is install:
            break
    if missing_commands(commands):
        return f"apt-get install {' '.join(packages)} failed: {result.stderr.strip()[-300:]}"
    return None


def event_scalars(folder):
    """Every scalar point in the TensorBoard event files in `folder`, as written (no
    purge applied): [(tag, step, value)], file by file in name order."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    points = []
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    points.append((value.tag, event.step, value.tensor.float_val[0]))
    return points


def session_hparams(folder):
    """The hparams of the session started in the event files in `folder`: {name: value}."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import metadata

    found = {}
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == metadata.SESSION_START_INFO_TAG:
                    info = metadata.parse_session_start_info_plugin_data(
                        value.metadata.plugin_data.content)
                    found = {name: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                             for name, v in info.hparams.items()}
    return found


def started_watch(results):
    """`make watch` on `results` (a free port), its process group leading; (process, URL)."""
    import queue
    import threading

    if subprocess.run(["make", "-q", ".venv/.installed"], cwd=REPO).returncode != 0:
        pytest.skip("make's .venv is missing or out of date (make test builds it)")
    process = subprocess.Popen(["make", "-s", "watch", f"RESULTS_DIR={results}", "WATCH_PORT=0"],
                               cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr],
                     daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=120)
        except queue.Empty:
            os.killpg(process.pid, signal.SIGTERM)
            raise AssertionError("make watch printed no address in 120 s")
        found = re.search(r"TensorBoard [\d.]+ at (http://127\.0\.0\.1:\d+/)", line)
        if found:
            return process, found.group(1)


def tensorboard_get(url, route, body=None):
    """TensorBoard's data API at `url` (a server make watch started): GET `route`, or POST
    `body` as JSON; the JSON answer."""
    import json
    import urllib.request

    request = urllib.request.Request(url + route, method="POST" if body else "GET",
                                     data=body and json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)
