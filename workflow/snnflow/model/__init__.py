"""Stage 2, the networks: the shared architecture, the LIF neuron, the CSNN and the CNN
with their training specs, the fused BatchNorm + LIF + pool block and the convolution
of spikes. Runs its compiled parts through snnflow.kernels; never imports train or
report.
"""
