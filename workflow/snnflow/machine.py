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
