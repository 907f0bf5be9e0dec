"""The float precision a CUDA job computes in, decided explicitly: autocast's dtypes and
TF32.

TF32 (tensor-float-32) rounds the inputs of convolutions and matrix products to a
10-bit mantissa on Ampere and newer GPUs. cuDNN uses it for convolutions unless told
not to, PyTorch's matrix products do not; a job sets both from `performance.tf32`
(recorded in run.json with its settings), and every correctness check runs with it
off, so that a check compares kernels, not TF32's rounding.
"""

import contextlib

import torch

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def set_tf32(enabled):
    """TF32 for cuDNN's convolutions and cuBLAS's matrix products, on or off."""
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


@contextlib.contextmanager
def tf32_off():
    """Full float32 inside, the previous TF32 settings restored after."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    set_tf32(False)
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
