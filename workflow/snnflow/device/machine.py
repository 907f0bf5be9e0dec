"""What this machine's CPU is, read once from /proc/cpuinfo: the kernel builds are keyed
by it (snnflow.kernels.loader) and a CPU run's device name shows it (run.json)."""

import functools
import platform
from pathlib import Path

IDENTIFYING = ("model name", "flags", "Features", "CPU implementer", "CPU part")


@functools.cache
def cpu_fields():
    """{field: value} of the first processor in /proc/cpuinfo that identify the CPU:
    its model and instruction-set flags (what -march=native compiles for). Empty where
    there is no /proc/cpuinfo."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in IDENTIFYING:
                fields.setdefault(key, value.strip())
            elif not line.strip() and fields:
                break  # the first processor is enough
    except OSError:
        pass
    return fields


def cpu_name():
    """The CPU's model name, for people."""
    return cpu_fields().get("model name") or platform.processor() or "CPU"


def memory_bytes():
    """(total, available) bytes of this machine's memory from /proc/meminfo, or (None,
    None) where it cannot be read."""
    values = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return values.get("MemTotal"), values.get("MemAvailable")


def size_text(n_bytes):
    """1.5 GB, 162 TB: a size for people (powers of 1000)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:.3g} {unit}" if unit != "bytes" else f"{int(n_bytes)} bytes"
        n_bytes /= 1000
