// The CPU training kernels registered as torch operators torch.ops.snnflow_cpu.* (built
// by snnflow.kernels; each family is a source file of its own). Registering through the
// dispatcher instead of pybind11 keeps Python's and pybind11's headers out of the build.
#include <torch/library.h>

#include "cpu_ops.h"

TORCH_LIBRARY(snnflow_cpu, m) {
  // fused LIF: (spikes, H) forward; grad of the input backward
  m.def("lif_forward(Tensor x, float tau, float v_th, float v_reset) -> Tensor[]");
  // surrogate: the index of snnflow.model.neuron.SURROGATES (0 sigmoid, 1 atan)
  m.def("lif_backward(Tensor grad_spikes, Tensor h_seq, float tau, float v_th, float v_reset, "
        "float alpha, int surrogate) -> Tensor");
  // fused IF / PLIF: neuron is the index of snnflow.model.neuron.NEURONS (1 if, 2 plif),
  // decay the PLIF's sigmoid(w); backward: grad of the input and of the decay
  m.def("neuron_forward(Tensor x, int neuron, float decay, float v_th, float v_reset) "
        "-> Tensor[]");
  m.def("neuron_backward(Tensor grad_spikes, Tensor h_seq, Tensor x_seq, int neuron, "
        "float decay, float v_th, float v_reset, float alpha, int surrogate) -> Tensor[]");
  // fused BatchNorm + LIF + 2x2 max-pool: batch moments, pooled spikes, grads of y, weight, bias
  m.def("channel_moments(Tensor y) -> Tensor[]");
  m.def("bn_lif_pool_forward(Tensor y, Tensor scale, Tensor shift, float tau, float v_th, "
        "float v_reset, bool count) -> Tensor[]");  // pooled spikes, spikes per channel
  m.def("bn_lif_pool_backward(Tensor grad_pooled, Tensor y, Tensor scale, Tensor shift, "
        "Tensor mean, Tensor invstd, float tau, float v_th, float v_reset, float alpha, "
        "int surrogate) -> Tensor[]");
  // the same block with the IF or PLIF (neuron, decay as for neuron_forward); backward:
  // grads of y, weight, bias and the decay
  m.def("bn_neuron_pool_forward(Tensor y, Tensor scale, Tensor shift, int neuron, float decay, "
        "float v_th, float v_reset, bool count) -> Tensor[]");
  m.def("bn_neuron_pool_backward(Tensor grad_pooled, Tensor y, Tensor scale, Tensor shift, "
        "Tensor mean, Tensor invstd, int neuron, float decay, float v_th, float v_reset, "
        "float alpha, int surrogate) -> Tensor[]");
  // 3x3 convolution from the input's nonzeros (CSR per pixel) and its weight gradient
  m.def("spike_nonzeros(Tensor x) -> Tensor[]");
  m.def("sparse_conv_forward(Tensor counts, Tensor channel, Tensor value, Tensor weight, "
        "int B, int H, int W) -> Tensor");
  m.def("sparse_conv_weight_grad(Tensor grad_y, Tensor counts, Tensor channel, "
        "Tensor value, int Cin) -> Tensor");
}

// CPU kernels only: the snnflow:: operators in Python give them their autograd, and
// snnflow/cpu_ops.py their shapes for tracing (fake implementations).
TORCH_LIBRARY_IMPL(snnflow_cpu, CPU, m) {
  using namespace snnflow;
  m.impl("lif_forward", &lif_forward);
  m.impl("lif_backward", &lif_backward);
  m.impl("neuron_forward", &neuron_forward);
  m.impl("neuron_backward", &neuron_backward);
  m.impl("channel_moments", &channel_moments);
  m.impl("bn_lif_pool_forward", &bn_lif_pool_forward);
  m.impl("bn_lif_pool_backward", &bn_lif_pool_backward);
  m.impl("bn_neuron_pool_forward", &bn_neuron_pool_forward);
  m.impl("bn_neuron_pool_backward", &bn_neuron_pool_backward);
  m.impl("spike_nonzeros", &spike_nonzeros);
  m.impl("sparse_conv_forward", &sparse_conv_forward);
  m.impl("sparse_conv_weight_grad", &sparse_conv_weight_grad);
}
