"""Every compiled kernel of the project and the one loader that builds them.

loader (the off | auto | require switch, build folders, logging), prep (the data-prep
C library), cpu_ops (the C++ training operators), lif_triton and block_triton (Triton
kernels for CUDA, sharing triton_lif_step), backends (which implementation trains);
the native sources are in csrc/.
"""
