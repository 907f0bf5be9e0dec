// The IF's and PLIF's time loops on CPU (snn.neuron), as lif.cpp's LIF: each element's
// T-step recurrence in registers, threads splitting the elements; the PLIF's decay
// gradient summed in double per tile and the tiles added in order.
#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>

#include <vector>

#include "cpu_ops.h"
#include "lif_step.h"
#include "time_loop.h"

namespace snnflow {

template <int N>
static void neuron_forward_with(const float* xp, float* sp, float* hp, int64_t T, int64_t M,
                                float k, float fth, float fr) {
  at::parallel_for(0, (M + TILE - 1) / TILE, 1, [&](int64_t tile_begin, int64_t tile_end) {
    float v[TILE];
    for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
      const int64_t begin = tile * TILE, n = std::min(TILE, M - begin);
      for (int64_t i = 0; i < n; ++i) v[i] = fr;
      for (int64_t t = 0; t < T; ++t) {
        const float* xt = xp + t * M + begin;
        float* ht = hp + t * M + begin;
        float* st = sp + t * M + begin;
        for (int64_t i = 0; i < n; ++i) {
          const float h = charge_of<N>(v[i], xt[i], k, fr);
          const bool fired = h >= fth;
          ht[i] = h;
          st[i] = fired ? 1.0f : 0.0f;
          v[i] = fired ? fr : h;
        }
      }
    }
  });
}

// (spikes, H) of the IF (neuron 1) or the PLIF (neuron 2, of decay k = sigmoid(w)).
std::vector<at::Tensor> neuron_forward(at::Tensor x, int64_t neuron, double decay, double v_th,
                                       double v_reset) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, "fused neuron (CPU): float32 only");
  TORCH_CHECK(neuron == IF || neuron == PLIF, "fused neuron (CPU): neuron ", neuron, " unknown");
  auto xc = time_major_dense(x) ? x : x.contiguous();
  const int64_t T = xc.size(0), M = xc.numel() / T;
  auto spikes = at::empty_like(xc), h_seq = at::empty_like(xc);
  const float* xp = xc.data_ptr<float>();
  float* sp = spikes.data_ptr<float>();
  float* hp = h_seq.data_ptr<float>();
  if (neuron == IF) {
    neuron_forward_with<IF>(xp, sp, hp, T, M, 1.0f, (float)v_th, (float)v_reset);
  } else {
    neuron_forward_with<PLIF>(xp, sp, hp, T, M, (float)decay, (float)v_th, (float)v_reset);
  }
  return {spikes, h_seq};
}

// dL/dX and, for the PLIF, dL/dk: the sum over every element and step of dL/dH[t] times
// the drive X[t] - (V[t-1] - V_reset), V[t-1] recomputed from the saved H. Each tile
// sums in double into its own slot and the slots are added in order, so the sum does
// not depend on how the threads split the tiles.
template <int N, int S>
static std::vector<at::Tensor> neuron_backward_with(at::Tensor grad_spikes, at::Tensor h_seq,
                                                    at::Tensor x_seq, double decay, double v_th,
                                                    double v_reset, double alpha) {
  auto gc = same_layout(grad_spikes, h_seq);
  auto xc = N == PLIF ? same_layout(x_seq, h_seq) : h_seq;
  const int64_t T = h_seq.size(0), M = h_seq.numel() / T, tiles = (M + TILE - 1) / TILE;
  auto grad_x = at::empty_like(h_seq);
  std::vector<double> tile_sums(tiles, 0.0);
  const float* gp = gc.data_ptr<float>();
  const float* hp = h_seq.data_ptr<float>();
  const float* xp = xc.data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  const float k = (float)decay, fth = (float)v_th, fr = (float)v_reset, fa = (float)alpha;
  at::parallel_for(0, tiles, 1, [&](int64_t tile_begin, int64_t tile_end) {
    float gv[TILE], gh[TILE];
    for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
      const int64_t begin = tile * TILE, n = std::min(TILE, M - begin);
      double sum = 0.0;
      for (int64_t i = 0; i < n; ++i) gv[i] = 0.0f;
      for (int64_t t = T - 1; t >= 0; --t) {
        const float* ht = hp + t * M + begin;
        const float* gt = gp + t * M + begin;
        float* gxt = gxp + t * M + begin;
        for (int64_t i = 0; i < n; ++i) {
          gv[i] = neuron_backward_step<N, S>(ht[i], gt[i], gv[i], gxt + i, gh + i, k, fth, fr, fa);
        }
        if constexpr (N == PLIF) {
          const float* xt = xp + t * M + begin;
          const float* before = t > 0 ? hp + (t - 1) * M + begin : nullptr;
          for (int64_t i = 0; i < n; ++i) {
            const float v = before == nullptr || before[i] >= fth ? fr : before[i];
            sum += (double)gh[i] * (double)(xt[i] - (v - fr));
          }
        }
      }
      tile_sums[tile] = sum;
    }
  });
  double grad_k = 0.0;
  for (double part : tile_sums) grad_k += part;
  return {grad_x, at::scalar_tensor(grad_k, h_seq.options())};
}

std::vector<at::Tensor> neuron_backward(at::Tensor grad_spikes, at::Tensor h_seq,
                                        at::Tensor x_seq, int64_t neuron, double decay,
                                        double v_th, double v_reset, double alpha,
                                        int64_t surrogate) {
  TORCH_CHECK(neuron == IF || neuron == PLIF, "fused neuron (CPU): neuron ", neuron, " unknown");
  TORCH_CHECK(surrogate == SIGMOID || surrogate == ATAN, "fused neuron (CPU): surrogate ",
              surrogate, " unknown");
  if (neuron == IF) {
    return surrogate == ATAN
               ? neuron_backward_with<IF, ATAN>(grad_spikes, h_seq, x_seq, decay, v_th, v_reset, alpha)
               : neuron_backward_with<IF, SIGMOID>(grad_spikes, h_seq, x_seq, decay, v_th, v_reset,
                                                   alpha);
  }
  return surrogate == ATAN
             ? neuron_backward_with<PLIF, ATAN>(grad_spikes, h_seq, x_seq, decay, v_th, v_reset, alpha)
             : neuron_backward_with<PLIF, SIGMOID>(grad_spikes, h_seq, x_seq, decay, v_th, v_reset,
                                                   alpha);
}

}  // namespace snnflow
