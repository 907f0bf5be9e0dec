"""Which implementation runs the SNN's fused ops: one explicit decision, logged by the
training job and written to its run.json (as SpikingJelly's neurons take a `backend`).

- "cpp": the C++ CPU kernels (snnflow.kernels.cpu_ops): fused LIF, fused BatchNorm + LIF +
  2x2 max-pool of each conv block, convolutions of spikes from their nonzeros;
- "triton": the Triton LIF kernels on CUDA (snnflow.kernels.lif_triton), cuDNN and
  nn.BatchNorm2d for the rest;
- "torch": the same maths in PyTorch ops (no compiled kernel).

The kernels switch (snnflow.kernels: off | auto | require) decides whether a compiled
backend may be used; a backend whose kernels cannot be built here falls back to
"torch" under `auto`, and the reason is part of the decision's description.
"""

from snnflow.kernels import cpu_ops, lif_triton, loader


def select(device):
    """(backend, description) for training on `device` (a torch.device)."""
    if device.type == "cuda":
        name, family, loaded = "triton", lif_triton.TRITON_LIF, lif_triton.load()
    else:
        name, family, loaded = "cpp", cpu_ops.EXTENSION, cpu_ops.load()
    detail = loader.status().get(family.name, "")
    if loaded is None:
        return "torch", f"torch: PyTorch ops ({family.name} {detail})"
    return name, f"{name}: {family.name} ({detail})"
