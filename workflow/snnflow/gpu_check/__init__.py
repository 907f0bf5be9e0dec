"""make gpu-check: the CUDA path proven by one command, in a few minutes on one GPU.

The command, `benchmarks/gpu_check.py` (snnflow.gpu_check.command), its rows
(snnflow.gpu_check.rows) and their record and tables (snnflow.gpu_check.report):

    python3 benchmarks/gpu_check.py [--out results/gpu-check] [--budget-minutes 7]
                                    [--device cuda:N]

1. Correctness, with TF32 off (it compares kernels, not TF32's rounding)
   - the Triton LIF against the reference step, T = 1, 4, 16, 32, contiguous and
     channels_last, float32 and bf16 inputs: spikes bit-identical, gradients within
     LIF_GRAD_TOLERANCE of the largest (the training jobs' criterion);
   - the fused CUDA block against the three layers in turn, channels_last and
     contiguous, float32 and bf16: spikes, the gradients of y, the weight and the bias;
   - one training step of the CUDA engine (with and without the fused block): every
     parameter's gradient against the float64 reference engine's, beside PyTorch's
     float32 reference engine's own distance; then 30 steps of the loss, for
     information only (spikes that flip on the threshold grow into loss differences).
2. Speed: seconds per training and inference epoch at batch 256 of SNN-4/8/16/32 and
   the CNN, on a resident uint8 dataset of the full size (60,000 + 10,000 synthetic
   samples), each from at least 50 timed steps after a warm-up epoch, with the row's
   own peak reserved GPU memory (a CUDA graph's private pool included; every row's
   memory is freed, reference cycles collected, before the next); for the engine as it
   runs by default, with TF32, with CUDA graphs, with graphs and the fused block, and
   with all of that under bf16 autocast; the reference engine at T=16 beside them.
   Each row names the backend that really ran, what the job's kernel check found and
   any fallback.
3. Energy: NVML's energy counter over a fixed GPU load (float32 matrix products for a
   few seconds) and over one training epoch of SNN-16, the reading the training jobs'
   measured-energy columns rely on; "not measured" with the reason where NVML or the
   counter is absent, never 0.
4. Accuracy of the speed switches: 3 epochs of the demo data (SNN-16), final test
   accuracy with autocast none / bf16, CUDA graphs off / on, the fused block off / on.

Everything goes into the --out folder: gpu-check.json and gpu-check.md (the tables)
rewritten after every row, gpu-check.log (all it prints, line by line) and
environment.json (GPU, driver, torch, CUDA, Triton, numpy; nvidia-smi's report in
nvidia-smi.txt where there is one), so a killed or timed-out run leaves what it
measured. Every row is guarded (an error, out-of-memory included, becomes that row's
reason). Past the time budget the rows left are listed as skipped; the default leaves
a minute of margin under a 10-minute limit for the last row started.

Exit status, and the outcome as the last line printed: 0 all checks passed; 1 a
correctness row failed (MISMATCH), or the run is incomplete (skipped at the budget,
stopped by a signal); 2 the check cannot run here (no CUDA device, a device torch
does not know, Triton's interpreter unusable for --smoke), with one line saying why.
Needs only torch (with Triton), numpy, h5py and matplotlib: the Python of a GPU
machine that already holds torch, without installing anything (docs/gpu.md,
"Checking the GPU path").

`--device cpu --smoke` runs every part at toy sizes on the CPU, the Triton kernels in
Triton's interpreter (TRITON_INTERPRET=1): the test suite's check that the command works.
"""
