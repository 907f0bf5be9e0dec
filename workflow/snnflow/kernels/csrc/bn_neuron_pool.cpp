// The fused BatchNorm -> neuron -> 2x2 max-pool block with the IF (neuron 1) or the PLIF
// (neuron 2, decay k = sigmoid(w)): bn_lif_pool.cpp's LIF block with the neuron's charge and
// backward step (lif_step.h), and for the PLIF the decay's gradient, summed in double per
// tile and added in block order (independent of the thread count).

#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <mutex>
#include <utility>
#include <vector>

#include "bn_pool.h"
#include "cpu_ops.h"
#include "lif_step.h"

namespace snnflow {

// Pooled spikes and, when `count` (evaluation), the number of spikes per channel of the
// neurons inside the windows (the others reach nothing downstream and are not computed).
template <bool COUNT, int N>
static void bn_neuron_pool_forward_impl(const Windows& w, const float* yp, const float* ap,
                                     const float* bp, float* pp, int64_t* counts,
                                     float decay_k, float fth, float fr) {
  const int64_t C = w.C, tile = w.tile();
  std::mutex merge;
  at::parallel_for(0, (w.positions + tile - 1) / tile, 1, [=, &merge](int64_t first, int64_t last) {
    std::vector<float> state(tile * 4 * C);
    std::vector<int64_t> offsets(tile * 4), fired_in_chunk(COUNT ? C : 0, 0);
    for (int64_t k = first; k < last; ++k) {
      const int64_t p0 = k * tile, np = std::min(tile, w.positions - p0);
      w.corners(p0, np, offsets.data());
      std::fill(state.begin(), state.begin() + np * 4 * C, fr);
      const auto next = w.span(k + 1);
      for (int64_t t = 0; t < w.T; ++t) {
        prefetch(yp + t * w.M, next);
        for (int64_t j = 0; j < np; ++j) {
          float* __restrict__ out = pp + t * w.MO + (p0 + j) * C;
          for (int64_t c = 0; c < C; ++c) out[c] = 0.0f;
          for (int e = 0; e < 4; ++e) {
            const float* __restrict__ ye = yp + t * w.M + offsets[j * 4 + e];
            float* __restrict__ ve = state.data() + (j * 4 + e) * C;
            int64_t* __restrict__ fc = fired_in_chunk.data();
            for (int64_t c = 0; c < C; ++c) {
              const float h = charge_of<N>(ve[c], std::fma(ye[c], ap[c], bp[c]), decay_k, fr);
              const bool fired = h >= fth;
              ve[c] = fired ? fr : h;
              out[c] = fired ? 1.0f : out[c];
              if constexpr (COUNT) fc[c] += fired;
            }
          }
        }
      }
    }
    if constexpr (COUNT) {  // integer sums: the order of the chunks does not matter
      std::lock_guard<std::mutex> lock(merge);
      for (int64_t c = 0; c < C; ++c) counts[c] += fired_in_chunk[c];
    }
  });
}

// The same block with the IF (neuron 1) or the PLIF (neuron 2, decay k = sigmoid(w)).
std::vector<at::Tensor> bn_neuron_pool_forward(at::Tensor y, at::Tensor scale, at::Tensor shift,
                                               int64_t neuron, double decay, double v_th,
                                               double v_reset, bool count) {
  TORCH_CHECK(time_major_channels_last(y), "fused BN+neuron+pool (CPU): float32 channels_last (T, N, C, H, W)");
  TORCH_CHECK(neuron == IF || neuron == PLIF, "fused BN+neuron+pool (CPU): neuron ", neuron,
              " unknown");
  const Windows w(y);
  auto pooled = at::empty({w.T * w.N, w.C, w.OH, w.OW},
                          y.options().memory_format(at::MemoryFormat::ChannelsLast))
                    .view({w.T, w.N, w.C, w.OH, w.OW});
  auto counts = at::zeros({w.C}, y.options().dtype(at::kLong));
  const auto scale_c = scale.contiguous(), shift_c = shift.contiguous();
  const float* ap = scale_c.data_ptr<float>();
  const float* bp = shift_c.data_ptr<float>();
  float* pp = pooled.data_ptr<float>();
  int64_t* cp = counts.data_ptr<int64_t>();
  const float* yp = y.data_ptr<float>();
  const float k = (float)decay, fth = (float)v_th, fr = (float)v_reset;
  if (neuron == IF) {
    count ? bn_neuron_pool_forward_impl<true, IF>(w, yp, ap, bp, pp, cp, k, fth, fr)
          : bn_neuron_pool_forward_impl<false, IF>(w, yp, ap, bp, pp, cp, k, fth, fr);
  } else {
    count ? bn_neuron_pool_forward_impl<true, PLIF>(w, yp, ap, bp, pp, cp, k, fth, fr)
          : bn_neuron_pool_forward_impl<false, PLIF>(w, yp, ap, bp, pp, cp, k, fth, fr);
  }
  return {pooled, counts};
}

// The backward of one tile of windows, in two passes over cache-sized buffers.
// Pass 1a: the membrane potentials H of the tile's T steps, recomputed from y exactly as
// the forward computed them (`v`: V[t-1], per neuron).
template <int N>
static void recompute_neuron_potentials(const Windows& w, const float* yp, const float* ap,
                                 const float* bp, const int64_t* offsets, int64_t np,
                                 std::pair<int64_t, int64_t> next, float* h_tile, float* v,
                                 float k, float fth, float fr) {
  const int64_t C = w.C, width = np * 4 * C;
  std::fill(v, v + width, fr);
  for (int64_t t = 0; t < w.T; ++t) {
    prefetch(yp + t * w.M, next);
    for (int64_t j = 0; j < np; ++j) {
      for (int e = 0; e < 4; ++e) {
        const float* __restrict__ ye = yp + t * w.M + offsets[j * 4 + e];
        float* __restrict__ ve = v + (j * 4 + e) * C;
        float* __restrict__ he = h_tile + t * width + (j * 4 + e) * C;
        for (int64_t c = 0; c < C; ++c) {
          const float h = charge_of<N>(ve[c], std::fma(ye[c], ap[c], bp[c]), k, fr);
          he[c] = h;
          ve[c] = h >= fth ? fr : h;
        }
      }
    }
  }
}

// Pass 1b: the IF's or PLIF's backward in reverse time (as bn_lif_pool.cpp's LIF), the PLIF's
// decay gradient summed too, each pooled gradient sent to the neuron
// nn.MaxPool2d picks, dL/dx written to grad_y and summed per channel into sum_g and
// (times y) sum_gy (`grad_v`: dL/dV[t], per neuron).
template <int N, int S>
static void neuron_backward_tile(const Windows& w, const float* yp, const float* gp,
                              const int64_t* offsets, int64_t p0, int64_t np,
                              const float* h_tile, float* grad_v, float* gyp, float* sum_g,
                              float* sum_gy, Routing& routing, float fth, float fr, float fa,
                              const float* ap, const float* bp, float k, double* sum_decay) {
  const int64_t C = w.C, width = np * 4 * C;
  std::fill(grad_v, grad_v + width, 0.0f);
  std::fill(sum_g, sum_g + C, 0.0f);
  std::fill(sum_gy, sum_gy + C, 0.0f);
  for (int64_t t = w.T - 1; t >= 0; --t) {
    for (int64_t j = 0; j < np; ++j) {
      const float* __restrict__ gout = gp + t * w.MO + (p0 + j) * C;
      const float* __restrict__ ht = h_tile + t * width + j * 4 * C;
      float* __restrict__ none_later = routing.later.data();    // corners 1-3 did not fire
      float* __restrict__ none_before = routing.before.data();  // no earlier corner fired
      for (int64_t c = 0; c < C; ++c) {
        none_later[c] = 1.0f;
        none_before[c] = 1.0f;
      }
      for (int e = 1; e < 4; ++e) {
        for (int64_t c = 0; c < C; ++c)
          none_later[c] = ht[e * C + c] >= fth ? 0.0f : none_later[c];
      }
      for (int e = 0; e < 4; ++e) {
        const int64_t at = t * w.M + offsets[j * 4 + e];
        const float* __restrict__ he = ht + e * C;
        const float* __restrict__ ye = yp + at;
        float* __restrict__ gye = gyp + at;
        float* __restrict__ gve = grad_v + (j * 4 + e) * C;
        float* __restrict__ sg = sum_g;
        float* __restrict__ sgy = sum_gy;
        // corner 0 wins if it fired or corners 1-3 did not; a later corner wins
        // if it fired and no earlier one did
        const float* __restrict__ if_silent = e == 0 ? none_later : routing.zeros.data();
        // the PLIF's decay gradient: dL/dH times the drive x - (V[t-1] - V_reset),
        // V[t-1] from the tile's H of the step before
        const float* __restrict__ before = t > 0 ? he - width : nullptr;
        double decay_part = 0.0;
        for (int64_t c = 0; c < C; ++c) {
          const bool fired = he[c] >= fth;
          const float share = fired ? none_before[c] : if_silent[c];
          float grad_x, grad_h;
          gve[c] = neuron_backward_step<N, S>(he[c], gout[c] * share, gve[c], &grad_x, &grad_h,
                                              k, fth, fr, fa);
          gye[c] = grad_x;
          sg[c] += grad_x;
          none_before[c] = fired ? 0.0f : none_before[c];
          if constexpr (N == PLIF) {
            const float v = before == nullptr || before[c] >= fth ? fr : before[c];
            decay_part += (double)grad_h * (double)(std::fma(ye[c], ap[c], bp[c]) - (v - fr));
          }
        }
        *sum_decay += decay_part;
        // a loop of its own: inside the one above, gcc leaves it scalar
        for (int64_t c = 0; c < C; ++c) sgy[c] += gye[c] * ye[c];
      }
    }
  }
}

// Gradients of y, of BatchNorm's weight and of its bias (training mode: the batch
// statistics depend on y). Pass 1 recomputes each tile's membrane potentials, runs the
// neuron backward into grad_y and sums dL/dx and dL/dx * y per channel, per block of
// tiles; pass 2 applies BatchNorm's backward in place:
// grad_y = scale * (g - mean(g) - xhat * mean(g xhat)).
// (One instance per surrogate, each calling its tile function directly: called through a
// pointer chosen at run time, the sigmoid's tile loop compiled to other roundings.)
template <int N, int S>
static std::vector<at::Tensor> bn_neuron_pool_backward_with(at::Tensor grad_pooled, at::Tensor y,
                                                         at::Tensor scale, at::Tensor shift,
                                                         at::Tensor mean, at::Tensor invstd,
                                                         double decay, double v_th,
                                                         double v_reset, double alpha) {
  TORCH_CHECK(time_major_channels_last(y), "fused BN+neuron+pool (CPU): float32 channels_last (T, N, C, H, W)");
  const Windows w(y);
  const int64_t C = w.C, T = w.T, tile = w.tile();
  const int64_t tiles = (w.positions + tile - 1) / tile;
  const int64_t tiles_per_block = std::max<int64_t>(1, ROWS_PER_BLOCK / (4 * tile));
  const int64_t blocks = (tiles + tiles_per_block - 1) / tiles_per_block;
  // the forward wrote the pooled spikes channels_last; read their gradient likewise
  auto gc = grad_pooled.flatten(0, 1).contiguous(at::MemoryFormat::ChannelsLast);
  auto grad_y = (w.H % 2 || w.W % 2) ? at::zeros_like(y) : at::empty_like(y);
  const float* gp = gc.data_ptr<float>();
  const float* yp = y.data_ptr<float>();
  const auto scale_c = scale.contiguous(), shift_c = shift.contiguous();
  const float* ap = scale_c.data_ptr<float>();
  const float* bp = shift_c.data_ptr<float>();
  float* gyp = grad_y.data_ptr<float>();
  const float fth = (float)v_th, fr = (float)v_reset, fa = (float)alpha;
  const float decay_k = (float)decay;
  std::vector<double> partial(blocks * 2 * C, 0.0);  // per block: sum g, sum g * y
  double* partial_p = partial.data();
  std::vector<double> decay_partial(blocks, 0.0);  // per block: the PLIF's dL/dk
  double* decay_partial_p = decay_partial.data();
  // capture by value: through references the compiler cannot rule out aliasing and
  // leaves the loops scalar
  at::parallel_for(0, blocks, 1, [=](int64_t first_block, int64_t last_block) {
    // `carry` is V[t-1] while recomputing the forward, then dL/dV[t] going backwards
    std::vector<float> h_tile(T * tile * 4 * C), carry(tile * 4 * C), sum_g(C), sum_gy(C);
    std::vector<int64_t> offsets(tile * 4);
    Routing routing(C);
    for (int64_t b = first_block; b < last_block; ++b) {
      double* block_sums = partial_p + b * 2 * C;
      for (int64_t k = b * tiles_per_block; k < std::min(tiles, (b + 1) * tiles_per_block); ++k) {
        const int64_t p0 = k * tile, np = std::min(tile, w.positions - p0);
        w.corners(p0, np, offsets.data());
        recompute_neuron_potentials<N>(w, yp, ap, bp, offsets.data(), np, w.span(k + 1),
                                       h_tile.data(), carry.data(), decay_k, fth, fr);
        neuron_backward_tile<N, S>(w, yp, gp, offsets.data(), p0, np, h_tile.data(),
                                   carry.data(), gyp, sum_g.data(), sum_gy.data(), routing, fth,
                                   fr, fa, ap, bp, decay_k, decay_partial_p + b);
        for (int64_t c = 0; c < C; ++c) {
          block_sums[c] += sum_g[c];
          block_sums[C + c] += sum_gy[c];
        }
      }
    }
  });
  const int64_t rows = y.numel() / C;
  auto grad_weight = at::empty({C}, y.options()), grad_bias = at::empty({C}, y.options());
  const auto mean_c = mean.contiguous(), invstd_c = invstd.contiguous();
  const BatchNormBackward bn(add_blocks(partial, 2 * C), ap, mean_c.data_ptr<float>(),
                             invstd_c.data_ptr<float>(), C, rows,
                             grad_weight.data_ptr<float>(), grad_bias.data_ptr<float>());
  apply_batch_norm_backward(bn, gyp, yp, rows, C);
  double grad_decay = 0.0;
  for (double part : decay_partial) grad_decay += part;
  return {grad_y, grad_weight, grad_bias, at::scalar_tensor(grad_decay, y.options())};
}

// The backward of bn_neuron_pool_forward: grad_y, BatchNorm's weight and bias, and dL/dk
// (the PLIF's; 0 for the IF).
std::vector<at::Tensor> bn_neuron_pool_backward(at::Tensor grad_pooled, at::Tensor y,
                                                at::Tensor scale, at::Tensor shift,
                                                at::Tensor mean, at::Tensor invstd,
                                                int64_t neuron, double decay, double v_th,
                                                double v_reset, double alpha,
                                                int64_t surrogate) {
  TORCH_CHECK(neuron == IF || neuron == PLIF, "fused BN+neuron+pool (CPU): neuron ", neuron,
              " unknown");
  TORCH_CHECK(surrogate == SIGMOID || surrogate == ATAN, "fused BN+neuron+pool (CPU): surrogate ",
              surrogate, " unknown");
  if (neuron == IF) {
    return surrogate == ATAN
               ? bn_neuron_pool_backward_with<IF, ATAN>(grad_pooled, y, scale, shift, mean, invstd,
                                                        decay, v_th, v_reset, alpha)
               : bn_neuron_pool_backward_with<IF, SIGMOID>(grad_pooled, y, scale, shift, mean,
                                                           invstd, decay, v_th, v_reset, alpha);
  }
  return surrogate == ATAN
             ? bn_neuron_pool_backward_with<PLIF, ATAN>(grad_pooled, y, scale, shift, mean, invstd,
                                                        decay, v_th, v_reset, alpha)
             : bn_neuron_pool_backward_with<PLIF, SIGMOID>(grad_pooled, y, scale, shift, mean,
                                                           invstd, decay, v_th, v_reset, alpha);
}

}  // namespace snnflow
