// What the fused BatchNorm -> neuron -> 2x2 max-pool kernels share (bn_lif_pool.cpp: the
// LIF's; bn_neuron_pool.cpp: the IF's and PLIF's): the layout check, the windows' walk, the
// routing of a window's gradient and BatchNorm's backward. The neurons' blocks are
// separate files so that adding one leaves the LIF's compiled code, and so its rounding,
// as it was (a shared template changed how the compiler contracted its multiply-adds).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace snnflow {

// float32 (T, N, C, H, W) whose memory is (T, N, H, W, C): channels_last time slices
static bool time_major_channels_last(const at::Tensor& x) {
  if (x.scalar_type() != at::kFloat || x.dim() != 5) return false;
  const int64_t N = x.size(1), C = x.size(2), H = x.size(3), W = x.size(4);
  const int64_t expected[5] = {N * C * H * W, H * W * C, 1, W * C, C};
  for (int d = 0; d < 5; ++d)  // the stride of a dimension of size 1 is never used
    if (x.size(d) > 1 && x.stride(d) != expected[d]) return false;
  return true;
}

// Per-channel sums are accumulated per block of this many rows of C values, then the
// blocks are added in order: the result does not depend on the thread count.
static const int64_t ROWS_PER_BLOCK = 2048;

// The blocks' partial sums (blocks x width doubles) added in block order.
static std::vector<double> add_blocks(const std::vector<double>& partial, int64_t width) {
  std::vector<double> total(width, 0.0);
  for (size_t b = 0; b < partial.size(); b += width)
    for (int64_t i = 0; i < width; ++i) total[i] += partial[b + i];
  return total;
}

// Walks the 2x2 windows of a (T, N, C, H, W) channels_last tensor in tiles of whole
// windows; `corner(p, e)` is where corner e (row-major) of window p sits at t = 0.
struct Windows {
  int64_t T, N, C, H, W, OH, OW, positions, M, MO;
  explicit Windows(const at::Tensor& x)
      : T(x.size(0)), N(x.size(1)), C(x.size(2)), H(x.size(3)), W(x.size(4)),
        OH(H / 2), OW(W / 2), positions(N * OH * OW), M(N * C * H * W), MO(N * C * OH * OW) {}
  int64_t corner(int64_t p, int e) const {  // at t = 0; add t * M
    const int64_t n = p / (OH * OW), r = p % (OH * OW);
    return ((n * H + 2 * (r / OW) + (e >> 1)) * W + 2 * (r % OW) + (e & 1)) * C;
  }
  // corner offsets of tile windows p0 .. p0+np-1, computed once per tile
  void corners(int64_t p0, int64_t np, int64_t* offsets) const {
    for (int64_t j = 0; j < np; ++j)
      for (int e = 0; e < 4; ++e) offsets[j * 4 + e] = corner(p0 + j, e);
  }
  // Windows per tile: each time step reads ~16 KiB in a row (consecutive windows sit
  // side by side, so the prefetcher streams them; short runs per step leave the loads
  // waiting on memory), and the backward's T steps of H stay within ~512 KiB of L2.
  int64_t tile() const {
    return std::max<int64_t>(1, std::min(4096 / (4 * C), 131072 / (4 * C * T)));
  }
  // [first, last) memory span of the windows of tile k at t = 0 (empty past the end)
  std::pair<int64_t, int64_t> span(int64_t k) const {
    const int64_t p0 = k * tile(), p1 = std::min(positions, p0 + tile()) - 1;
    if (p0 >= positions) return {0, 0};
    return {corner(p0, 0), corner(p1, 3) + C};
  }
};

// Start loading [first, last) of `base` (the next tile) into cache: each time step of a
// tile is a separate run of memory, too short for the hardware prefetcher.
static inline void prefetch(const float* base, std::pair<int64_t, int64_t> range) {
  for (int64_t i = range.first; i < range.second; i += 16) __builtin_prefetch(base + i);
}

// Scratch rows of C values for routing a window's gradient to nn.MaxPool2d's choice.
struct Routing {
  std::vector<float> later, before, zeros;
  explicit Routing(int64_t C) : later(C), before(C), zeros(C, 0.0f) {}
};

// BatchNorm's backward as grad_y = k_g g + k_y y + k_0 per channel, from the sums of
// dL/dx and dL/dx * y (`total`, summed in a fixed order), and its weight and bias
// gradients.
struct BatchNormBackward {
  std::vector<float> k_g, k_y, k_0;
  BatchNormBackward(const std::vector<double>& total, const float* ap, const float* mp,
                    const float* ip, int64_t C, int64_t rows, float* gwp, float* gbp)
      : k_g(C), k_y(C), k_0(C) {
    for (int64_t c = 0; c < C; ++c) {
      const double sum_g = total[c], sum_gy = total[C + c];
      const double sum_gxhat = ip[c] * (sum_gy - mp[c] * sum_g);  // sum of g * xhat
      gbp[c] = (float)sum_g;
      gwp[c] = (float)sum_gxhat;
      // scale (g - sum_g / rows - (y - mean) invstd sum_gxhat / rows) = k_g g + k_y y + k_0
      const double ky = -(double)ap[c] * ip[c] * sum_gxhat / rows;
      k_g[c] = ap[c];
      k_y[c] = (float)ky;
      k_0[c] = (float)(-(double)ap[c] * sum_g / rows - ky * mp[c]);
    }
  }
};

// Pass 2: BatchNorm's backward applied to grad_y in place, row by row.
static void apply_batch_norm_backward(const BatchNormBackward& bn, float* gyp, const float* yp,
                                      int64_t rows, int64_t C) {
  const float* __restrict__ kg = bn.k_g.data();
  const float* __restrict__ ky = bn.k_y.data();
  const float* __restrict__ k0 = bn.k_0.data();
  at::parallel_for(0, rows, 2048, [=](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      float* __restrict__ g = gyp + r * C;
      const float* __restrict__ yr = yp + r * C;
      for (int64_t c = 0; c < C; ++c) g[c] = kg[c] * g[c] + ky[c] * yr[c] + k0[c];
    }
  });
}

}  // namespace snnflow
