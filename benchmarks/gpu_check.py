"""make gpu-check: the CUDA path checked and timed on one GPU (snnflow.gpu_check, and
docs/gpu.md, "Checking the GPU path").

    python3 benchmarks/gpu_check.py [--out results/gpu-check] [--budget-minutes 7]
                                    [--device cuda:N] [--smoke]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

from snnflow.gpu_check.command import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
