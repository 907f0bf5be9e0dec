"""How far a LIF backward with a GPU's rounding, and wrong ones, are from the reference's
input gradient: the figures behind the kernel check's LIF tolerance (docs/kernels.md,
"Tolerances from the arithmetic").

    python benchmarks/lif_rounding.py

The kernels are the tests' (tests/wrong_kernels.py) around the C++ CPU ops; the
comparison is the training jobs' own (snnflow.model.kernel_paths.compare_lif)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "workflow"), str(REPO / "tests")]

import torch  # noqa: E402

from snnflow.kernels import cpu_ops  # noqa: E402
from snnflow.model.kernel_paths import LIF_GRAD_TOLERANCE, compare_lif  # noqa: E402
from snnflow.model.neuron import LIFParams  # noqa: E402
from wrong_kernels import GpuRoundingLif, NoResetPathLif, WrongSlopeLif  # noqa: E402


def main():
    ops = cpu_ops.load()
    if ops is None:
        sys.exit("lif_rounding: the C++ CPU ops do not build here (see the kernels' log)")
    kernels = {"the C++ kernel (exact operations)": ops, "GPU-like rounding": GpuRoundingLif(ops),
               "surrogate slope 1 % off": WrongSlopeLif(ops),
               "reset path detached": NoResetPathLif(ops)}
    g = torch.Generator().manual_seed(5)
    inputs = {T: torch.randn(T, 8, 16, 9, 9, generator=g) * 1.5 + 0.5 for T in (4, 16, 32)}
    print(f"criterion: within {LIF_GRAD_TOLERANCE:.0e} of the largest gradient")
    print(f"{'LIF backward':36} " + " ".join(f"{f'T={T}':>22}" for T in inputs))
    for name, k in kernels.items():
        cells = []
        for z in inputs.values():
            equal, _, diff, largest = compare_lif(k, z, LIFParams(),
                                                  torch.Generator().manual_seed(0))
            cells.append(f"{diff:.1e} ({diff / largest:.1e}){'' if equal else ' S!'}")
        print(f"{name:36} " + " ".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
