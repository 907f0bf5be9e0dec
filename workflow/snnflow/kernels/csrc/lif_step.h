// The neurons' per-step maths, shared by every CPU kernel that runs them (the LIF's in
// lif.cpp and bn_lif_pool.cpp, the IF's and PLIF's in neuron.cpp and bn_neuron_pool.cpp):
// the forward and the backward's recomputation use the same charge, so their membrane
// potentials are bitwise equal by construction.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace snnflow {

// One step of the membrane: H[t] from V[t-1] and the input X[t], in the reference's
// float32 operations (so spikes are bit-identical); every forward and the backward's
// recomputation go through it.
inline float charge(float v, float x, float tau, float v_reset) {
  return v + (x - (v - v_reset)) / tau;
}

// exp(x) for x <= 0 to about 2 ulp, in plain arithmetic so the compiler vectorises it
// (a call to std::exp keeps the backward loop scalar and makes it 5x slower).
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  bits += static_cast<int32_t>(n) << 23;
  std::memcpy(&p, &bits, sizeof p);
  return p;
}

// The surrogate gradients of the Heaviside step (config key snn.surrogate), by the
// index the Python side passes (snnflow.model.neuron.SURROGATES).
enum Surrogate : int64_t { SIGMOID = 0, ATAN = 1 };

// d Heaviside(x) / dx as the surrogate's derivative at x = H - V_th, of slope alpha:
// sigmoid: alpha s(1 - s), s = sigmoid(alpha x); atan (SpikingJelly's ATan):
// alpha / 2 / (1 + (pi / 2 alpha x)^2).
template <int S>
inline float surrogate_derivative(float x, float alpha) {
  if constexpr (S == ATAN) {
    const float z = 1.57079632679489662f * alpha * x;
    return 0.5f * alpha / (1.0f + z * z);
  } else {
    // sigmoid(z) and sigmoid(-z) share exp(-|z|); s(1-s) is symmetric in z
    const float e = exp_nonpositive(-std::fabs(alpha * x));
    const float sig = 1.0f / (1.0f + e);
    return alpha * sig * (e * sig);
  }
}

// One backward step of one neuron: from dL/dS (from downstream) and dL/dV (from the
// next step), store dL/dX and return dL/dV of the previous step. (Multiplying by
// 1 / tau instead of dividing moves the gradient by at most an ulp.)
template <int S>
inline float backward_step(float h, float grad_spike, float grad_v, float* __restrict__ grad_x,
                           float inv_tau, float v_th, float v_reset, float alpha) {
  const float g_s = grad_spike + grad_v * (v_reset - h);  // through the reset, too
  const float g_h = g_s * surrogate_derivative<S>(h - v_th, alpha) + (h >= v_th ? 0.0f : grad_v);
  const float g_x = g_h * inv_tau;
  *grad_x = g_x;
  return g_h - g_x;
}

// The neurons besides the LIF (config key snn.neuron), by the index the Python side
// passes (snnflow.model.neuron.NEURONS): lif.cpp's neuron_forward / neuron_backward.
enum Neuron : int64_t { LIF = 0, IF = 1, PLIF = 2 };

// H[t] of the IF and the PLIF as SpikingJelly's IFNode and ParametricLIFNode (and the
// reference engine) compute it: the IF adds the input; the PLIF multiplies by its decay
// k = sigmoid(w), the product rounded to float before the sum as two PyTorch ops round
// it. Computing the product in double guarantees that: a product of two floats is exact
// in double, so it is rounded once, and no compiler contracts it with the sum into an fma.
template <int N>
inline float charge_of(float v, float x, float k, float v_reset) {
  if constexpr (N == IF) {
    return v + x;
  } else {
    const float drive = x - (v - v_reset);
    return v + static_cast<float>(static_cast<double>(drive) * static_cast<double>(k));
  }
}

// One backward step of an IF or PLIF neuron: as backward_step, with dH/dX = 1 and
// dH/dV[t-1] = 1 for the IF, k and 1 - k for the PLIF; returns dL/dV of the previous step
// and stores dL/dH in *grad_h (the PLIF's decay gradient sums dL/dH times its drive).
template <int N, int S>
inline float neuron_backward_step(float h, float grad_spike, float grad_v,
                                  float* __restrict__ grad_x, float* __restrict__ grad_h,
                                  float k, float v_th, float v_reset, float alpha) {
  const float g_s = grad_spike + grad_v * (v_reset - h);
  const float g_h = g_s * surrogate_derivative<S>(h - v_th, alpha) + (h >= v_th ? 0.0f : grad_v);
  *grad_h = g_h;
  if constexpr (N == IF) {
    *grad_x = g_h;
    return g_h;
  } else {
    const float g_x = g_h * k;
    *grad_x = g_x;
    return g_h - g_x;
  }
}

}  // namespace snnflow
