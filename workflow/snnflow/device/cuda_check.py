"""No CPU training by accident: with `device: auto` on a machine that has NVIDIA GPUs,
a torch that cannot use them stops the study instead of training on the CPU for days.

The workflow checks before any job (where the Snakemake process has torch) and every
training job checks again, since on a cluster the jobs run on other nodes than the one
that plans them. The GPUs are counted without initialising CUDA
(snnflow.train.gpu_slots.count_gpus); torch is asked only when there are some.
"""

import os
import sys
import warnings

from snnflow import SnnflowError, first_line

GPU_INSTALL_GUIDE = 'docs/running.md "Training on a GPU"'


def cuda_problem():
    """Why the torch of this Python cannot use CUDA here (one phrase), or None if it can."""
    import torch

    found = f"torch {torch.__version__} ({sys.executable})"
    if torch.version.cuda is None:
        return f"{found} is a CPU-only build"
    with warnings.catch_warnings(record=True) as caught:  # torch says why as a warning
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        return None
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and not hidden.strip():
        why = "CUDA_VISIBLE_DEVICES is set to nothing, which hides every GPU"
    elif caught:
        why = first_line(caught[0].message, 200)
    else:
        why = "CUDA reports no usable device"
    return f"{found}, built for CUDA {torch.version.cuda}, cannot use them: {why}"


def accidental_cpu_error(gpus, problem):
    """The one-line refusal for `gpus` NVIDIA GPUs that torch cannot use because of
    `problem` (cuda_problem's phrase)."""
    import torch

    release = torch.__version__.split("+")[0]
    pip = f"{os.path.dirname(sys.executable)}/pip"
    plural = "s" if gpus != 1 else ""
    return SnnflowError(
        f"config key device: auto, but this machine has {gpus} NVIDIA GPU{plural} and "
        f"{problem} - install a CUDA build of torch ({pip} uninstall -y torch && {pip} "
        f"install torch=={release}; {GPU_INSTALL_GUIDE} for other CUDA versions) or set "
        "device: cpu to train on the CPU on purpose")


def refuse_accidental_cpu(device, gpus):
    """Raise accidental_cpu_error when `device` is auto, the machine has `gpus` > 0 NVIDIA
    GPUs and the torch here cannot use them."""
    if device != "auto" or gpus < 1:
        return
    problem = cuda_problem()
    if problem is not None:
        raise accidental_cpu_error(gpus, problem)
