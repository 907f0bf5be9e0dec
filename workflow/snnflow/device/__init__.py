"""The machine a job runs on: its CPU and memory (machine), whether CUDA is usable or a
GPU would be lost to a CPU build of torch (cuda_check), TF32 and autocast decided
explicitly (precision), and how two computations of one path are compared (path_check).
gpu-check, the CUDA path's own check, lives with what it checks (snnflow.train.gpu_check)."""
