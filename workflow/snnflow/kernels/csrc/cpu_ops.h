// The CPU training kernels, one family per source file, registered as torch operators
// in cpu_ops.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace snnflow {

// lif.cpp: the LIF time loop over x (T, ...) float32
std::vector<at::Tensor> lif_forward(at::Tensor x, double tau, double v_th, double v_reset);
at::Tensor lif_backward(at::Tensor grad_spikes, at::Tensor h_seq, double tau, double v_th,
                        double v_reset, double alpha, int64_t surrogate);

// neuron.cpp: the IF (neuron 1) and PLIF (neuron 2, decay k) time loops; the backward's
// second tensor is dL/dk (0 for the IF)
std::vector<at::Tensor> neuron_forward(at::Tensor x, int64_t neuron, double decay, double v_th,
                                       double v_reset);
std::vector<at::Tensor> neuron_backward(at::Tensor grad_spikes, at::Tensor h_seq,
                                        at::Tensor x_seq, int64_t neuron, double decay,
                                        double v_th, double v_reset, double alpha,
                                        int64_t surrogate);

// bn_lif_pool.cpp: BatchNorm -> LIF -> 2x2 max-pool over channels_last (T, N, C, H, W)
std::vector<at::Tensor> channel_moments(at::Tensor y);
std::vector<at::Tensor> bn_lif_pool_forward(at::Tensor y, at::Tensor scale, at::Tensor shift,
                                            double tau, double v_th, double v_reset, bool count);
std::vector<at::Tensor> bn_lif_pool_backward(at::Tensor grad_pooled, at::Tensor y,
                                             at::Tensor scale, at::Tensor shift,
                                             at::Tensor mean, at::Tensor invstd, double tau,
                                             double v_th, double v_reset, double alpha,
                                             int64_t surrogate);

// bn_neuron_pool.cpp: the same block with the IF (neuron 1) or PLIF (neuron 2, decay k);
// the backward's fourth tensor is dL/dk
std::vector<at::Tensor> bn_neuron_pool_forward(at::Tensor y, at::Tensor scale, at::Tensor shift,
                                               int64_t neuron, double decay, double v_th,
                                               double v_reset, bool count);
std::vector<at::Tensor> bn_neuron_pool_backward(at::Tensor grad_pooled, at::Tensor y,
                                                at::Tensor scale, at::Tensor shift,
                                                at::Tensor mean, at::Tensor invstd,
                                                int64_t neuron, double decay, double v_th,
                                                double v_reset, double alpha,
                                                int64_t surrogate);

// sparse_conv.cpp: 3x3 convolutions (padding 1) from a channels_last input's nonzeros
std::vector<at::Tensor> spike_nonzeros(at::Tensor x);
at::Tensor sparse_conv_forward(at::Tensor counts, at::Tensor channel, at::Tensor value,
                               at::Tensor weight, int64_t B, int64_t H, int64_t W);
at::Tensor sparse_conv_weight_grad(at::Tensor grad_y, at::Tensor counts, at::Tensor channel,
                                   at::Tensor value, int64_t Cin);

}  // namespace snnflow
