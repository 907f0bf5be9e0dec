#!/usr/bin/env bash
# Run by Snakemake in the new conda environment of envs/neurobench.yaml: NeuroBench and
# torchaudio without their dependencies, the versions of envs/neurobench.txt (why there).
set -euo pipefail
python -m pip install --no-deps neurobench==2.3.0 torchaudio==2.11.1
