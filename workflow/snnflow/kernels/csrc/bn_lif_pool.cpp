// A convolutional SNN block's tail, BatchNorm (training statistics) -> LIF -> 2x2
// max-pool (stride 2, floor), fused on CPU: the normalised input, the full-size spikes,
// the pooling indices and H are never stored.
//
// For channels_last activations y viewed as (T, N, C, H, W): C is innermost in memory.
// The LIF input is the batch-normalised x = y * scale[c] + shift[c] (one fma, the same
// in the forward and in the backward's recomputation). A pooled spike is 1 when any of
// the window's four neurons fires. Backward sends the pooled gradient to the neuron
// nn.MaxPool2d picks: the first maximum in row-major window order, i.e. the first
// neuron that fired, else the top-left one. Neurons outside every window (odd H or W)
// reach nothing downstream. Nothing full-size is saved: the backward recomputes each
// tile's membrane potentials from y, in cache.

#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <mutex>
#include <utility>
#include <vector>

#include "bn_pool.h"
#include "cpu_ops.h"
#include "lif_step.h"

namespace snnflow {

// Per-channel batch mean and biased variance of y, accumulated in double.
std::vector<at::Tensor> channel_moments(at::Tensor y) {
  TORCH_CHECK(time_major_channels_last(y), "channel moments (CPU): float32 channels_last (T, N, C, H, W)");
  const int64_t C = y.size(2), rows = y.numel() / C;
  const int64_t blocks = (rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK;
  std::vector<double> partial(blocks * 2 * C, 0.0);
  double* partial_p = partial.data();
  const float* yp = y.data_ptr<float>();
  at::parallel_for(0, blocks, 1, [=](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      double* __restrict__ sum = partial_p + b * 2 * C;
      double* __restrict__ squares = sum + C;
      const int64_t stop = std::min(rows, (b + 1) * ROWS_PER_BLOCK);
      for (int64_t r = b * ROWS_PER_BLOCK; r < stop; ++r) {
        const float* __restrict__ row = yp + r * C;
        for (int64_t c = 0; c < C; ++c) {
          const double v = row[c];
          sum[c] += v;
          squares[c] += v * v;
        }
      }
    }
  });
  auto mean = at::empty({C}, y.options()), var = at::empty({C}, y.options());
  float* mp = mean.data_ptr<float>();
  float* vp = var.data_ptr<float>();
  const auto total = add_blocks(partial, 2 * C);  // sums, then sums of squares
  for (int64_t c = 0; c < C; ++c) {
    const double m = total[c] / rows;
    mp[c] = (float)m;
    vp[c] = (float)std::max(0.0, total[C + c] / rows - m * m);
  }
  return {mean, var};
}

// Pooled spikes and, when `count` (evaluation), the number of spikes per channel of the
// neurons inside the windows (the others reach nothing downstream and are not computed).
template <bool COUNT>
static void bn_lif_pool_forward_impl(const Windows& w, const float* yp, const float* ap,
                                     const float* bp, float* pp, int64_t* counts, float ftau,
                                     float fth, float fr) {
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
              const float h = charge(ve[c], std::fma(ye[c], ap[c], bp[c]), ftau, fr);
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

std::vector<at::Tensor> bn_lif_pool_forward(at::Tensor y, at::Tensor scale, at::Tensor shift,
                                            double tau, double v_th, double v_reset, bool count) {
  TORCH_CHECK(time_major_channels_last(y), "fused BN+LIF+pool (CPU): float32 channels_last (T, N, C, H, W)");
  const Windows w(y);
  auto pooled = at::empty({w.T * w.N, w.C, w.OH, w.OW},
                          y.options().memory_format(at::MemoryFormat::ChannelsLast))
                    .view({w.T, w.N, w.C, w.OH, w.OW});
  auto counts = at::zeros({w.C}, y.options().dtype(at::kLong));
  const auto scale_c = scale.contiguous(), shift_c = shift.contiguous();
  const float* ap = scale_c.data_ptr<float>();
  const float* bp = shift_c.data_ptr<float>();
  if (count) {
    bn_lif_pool_forward_impl<true>(w, y.data_ptr<float>(), ap, bp, pooled.data_ptr<float>(),
                                   counts.data_ptr<int64_t>(), tau, v_th, v_reset);
  } else {
    bn_lif_pool_forward_impl<false>(w, y.data_ptr<float>(), ap, bp, pooled.data_ptr<float>(),
                                    counts.data_ptr<int64_t>(), tau, v_th, v_reset);
  }
  return {pooled, counts};
}

// The backward of one tile of windows, in two passes over cache-sized buffers.
// Pass 1a: the membrane potentials H of the tile's T steps, recomputed from y exactly as
// the forward computed them (`v`: V[t-1], per neuron).
static void recompute_potentials(const Windows& w, const float* yp, const float* ap,
                                 const float* bp, const int64_t* offsets, int64_t np,
                                 std::pair<int64_t, int64_t> next, float* h_tile, float* v,
                                 float ftau, float fth, float fr) {
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
          const float h = charge(ve[c], std::fma(ye[c], ap[c], bp[c]), ftau, fr);
          he[c] = h;
          ve[c] = h >= fth ? fr : h;
        }
      }
    }
  }
}

// Pass 1b: the LIF backward in reverse time, each pooled gradient sent to the neuron
// nn.MaxPool2d picks, dL/dx written to grad_y and summed per channel into sum_g and
// (times y) sum_gy (`grad_v`: dL/dV[t], per neuron).
template <int S>
static void lif_backward_tile(const Windows& w, const float* yp, const float* gp,
                              const int64_t* offsets, int64_t p0, int64_t np,
                              const float* h_tile, float* grad_v, float* gyp, float* sum_g,
                              float* sum_gy, Routing& routing, float inv_tau, float fth,
                              float fr, float fa) {
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
        for (int64_t c = 0; c < C; ++c) {
          const bool fired = he[c] >= fth;
          const float share = fired ? none_before[c] : if_silent[c];
          float grad_x;
          gve[c] = backward_step<S>(he[c], gout[c] * share, gve[c], &grad_x, inv_tau, fth, fr,
                                    fa);
          gye[c] = grad_x;
          sg[c] += grad_x;
          none_before[c] = fired ? 0.0f : none_before[c];
        }
        // a loop of its own: inside the one above, gcc leaves it scalar
        for (int64_t c = 0; c < C; ++c) sgy[c] += gye[c] * ye[c];
      }
    }
  }
}

// Gradients of y, of BatchNorm's weight and of its bias (training mode: the batch
// statistics depend on y). Pass 1 recomputes each tile's membrane potentials, runs the
// LIF backward into grad_y and sums dL/dx and dL/dx * y per channel, per block of
// tiles; pass 2 applies BatchNorm's backward in place:
// grad_y = scale * (g - mean(g) - xhat * mean(g xhat)).
// (One instance per surrogate, each calling its tile function directly: called through a
// pointer chosen at run time, the sigmoid's tile loop compiled to other roundings.)
template <int S>
static std::vector<at::Tensor> bn_lif_pool_backward_with(at::Tensor grad_pooled, at::Tensor y,
                                                         at::Tensor scale, at::Tensor shift,
                                                         at::Tensor mean, at::Tensor invstd,
                                                         double tau, double v_th,
                                                         double v_reset, double alpha) {
  TORCH_CHECK(time_major_channels_last(y), "fused BN+LIF+pool (CPU): float32 channels_last (T, N, C, H, W)");
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
  const float ftau = (float)tau, fth = (float)v_th, fr = (float)v_reset, fa = (float)alpha;
  const float inv_tau = 1.0f / ftau;
  std::vector<double> partial(blocks * 2 * C, 0.0);  // per block: sum g, sum g * y
  double* partial_p = partial.data();
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
        recompute_potentials(w, yp, ap, bp, offsets.data(), np, w.span(k + 1), h_tile.data(),
                             carry.data(), ftau, fth, fr);
        lif_backward_tile<S>(w, yp, gp, offsets.data(), p0, np, h_tile.data(), carry.data(),
                             gyp, sum_g.data(), sum_gy.data(), routing, inv_tau, fth, fr, fa);
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
  return {grad_y, grad_weight, grad_bias};
}

std::vector<at::Tensor> bn_lif_pool_backward(at::Tensor grad_pooled, at::Tensor y,
                                             at::Tensor scale, at::Tensor shift,
                                             at::Tensor mean, at::Tensor invstd, double tau,
                                             double v_th, double v_reset, double alpha,
                                             int64_t surrogate) {
  TORCH_CHECK(surrogate == SIGMOID || surrogate == ATAN, "fused BN+LIF+pool (CPU): surrogate ",
              surrogate, " unknown");
  return surrogate == ATAN
             ? bn_lif_pool_backward_with<ATAN>(grad_pooled, y, scale, shift, mean, invstd, tau,
                                               v_th, v_reset, alpha)
             : bn_lif_pool_backward_with<SIGMOID>(grad_pooled, y, scale, shift, mean, invstd,
                                                  tau, v_th, v_reset, alpha);
}

}  // namespace snnflow
