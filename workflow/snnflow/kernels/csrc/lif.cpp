// The fused LIF time loop on CPU: one pass over memory per direction. Each element's
// whole T-step recurrence runs in registers (threads split the elements). The forward
// repeats the reference's float32 operations exactly, so spikes are bit-identical; the
// backward computes the surrogate with a vectorisable polynomial exp, within 1e-6 of the
// reference.
#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty_like.h>

#include <vector>

#include "cpu_ops.h"
#include "lif_step.h"
#include "time_loop.h"

namespace snnflow {

std::vector<at::Tensor> lif_forward(at::Tensor x, double tau, double v_th, double v_reset) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, "fused LIF (CPU): float32 only");
  auto xc = time_major_dense(x) ? x : x.contiguous();
  const int64_t T = xc.size(0), M = xc.numel() / T;
  auto spikes = at::empty_like(xc), h_seq = at::empty_like(xc);
  const float* xp = xc.data_ptr<float>();
  float* sp = spikes.data_ptr<float>();
  float* hp = h_seq.data_ptr<float>();
  const float ftau = (float)tau, fth = (float)v_th, fr = (float)v_reset;
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
          const float h = charge(v[i], xt[i], ftau, fr);
          const bool fired = h >= fth;
          ht[i] = h;
          st[i] = fired ? 1.0f : 0.0f;
          v[i] = fired ? fr : h;
        }
      }
    }
  });
  return {spikes, h_seq};
}

template <int S>
static at::Tensor lif_backward_with(at::Tensor grad_spikes, at::Tensor h_seq, double tau,
                                    double v_th, double v_reset, double alpha) {
  auto gc = same_layout(grad_spikes, h_seq);
  const int64_t T = h_seq.size(0), M = h_seq.numel() / T;
  auto grad_x = at::empty_like(h_seq);
  const float* gp = gc.data_ptr<float>();
  const float* hp = h_seq.data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  const float ftau = (float)tau, fth = (float)v_th, fr = (float)v_reset, fa = (float)alpha;
  const float inv_tau = 1.0f / ftau;
  at::parallel_for(0, (M + TILE - 1) / TILE, 1, [&](int64_t tile_begin, int64_t tile_end) {
    float gv[TILE];
    for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
      const int64_t begin = tile * TILE, n = std::min(TILE, M - begin);
      for (int64_t i = 0; i < n; ++i) gv[i] = 0.0f;
      for (int64_t t = T - 1; t >= 0; --t) {
        const float* ht = hp + t * M + begin;
        const float* gt = gp + t * M + begin;
        float* gxt = gxp + t * M + begin;
        for (int64_t i = 0; i < n; ++i) {
          gv[i] = backward_step<S>(ht[i], gt[i], gv[i], gxt + i, inv_tau, fth, fr, fa);
        }
      }
    }
  });
  return grad_x;
}

at::Tensor lif_backward(at::Tensor grad_spikes, at::Tensor h_seq, double tau, double v_th,
                        double v_reset, double alpha, int64_t surrogate) {
  TORCH_CHECK(surrogate == SIGMOID || surrogate == ATAN, "fused LIF (CPU): surrogate ",
              surrogate, " unknown");
  return surrogate == ATAN
             ? lif_backward_with<ATAN>(grad_spikes, h_seq, tau, v_th, v_reset, alpha)
             : lif_backward_with<SIGMOID>(grad_spikes, h_seq, tau, v_th, v_reset, alpha);
}

}  // namespace snnflow
