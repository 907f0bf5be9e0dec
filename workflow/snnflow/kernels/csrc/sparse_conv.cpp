// 3x3 convolutions (padding 1) of mostly-zero spike inputs on CPU, computed from the
// input's nonzeros: each nonzero adds its weight rows to the (up to) nine output pixels
// it meets, and the weight gradient is summed over the nonzeros the same way. Sums run
// in a fixed order, so results do not depend on the thread count.
#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "cpu_ops.h"

namespace snnflow {

// x: (B, C, H, W) float32 channels_last -> CSR of its nonzeros per pixel:
// counts (B*H*W + 1) int64 prefix sums, channel int32, value float32.
std::vector<at::Tensor> spike_nonzeros(at::Tensor x) {
  const int64_t C = x.size(1), P = x.numel() / C;
  auto counts = at::empty({P + 1}, at::kLong);
  int64_t* cp = counts.data_ptr<int64_t>();
  const float* xp = x.data_ptr<float>();
  at::parallel_for(0, P, 4096, [=](int64_t a, int64_t b) {
    for (int64_t p = a; p < b; ++p) {
      int64_t n = 0;
      for (int64_t c = 0; c < C; ++c) n += xp[p * C + c] != 0.0f;
      cp[p + 1] = n;
    }
  });
  cp[0] = 0;
  for (int64_t p = 0; p < P; ++p) cp[p + 1] += cp[p];
  auto channel = at::empty({cp[P]}, at::kInt);
  auto value = at::empty({cp[P]}, at::kFloat);
  int32_t* chp = channel.data_ptr<int32_t>();
  float* vp = value.data_ptr<float>();
  at::parallel_for(0, P, 4096, [=](int64_t a, int64_t b) {
    for (int64_t p = a; p < b; ++p) {
      int64_t k = cp[p];
      for (int64_t c = 0; c < C; ++c) {
        const float v = xp[p * C + c];
        if (v != 0.0f) { chp[k] = (int32_t)c; vp[k] = v; ++k; }
      }
    }
  });
  return {counts, channel, value};
}

// Calls contact(pixel, tap, ci, v) for every nonzero v = x[b, ci, sy, sx] of image b and
// every output pixel (yy, xx) it meets, pixel = yy * W + xx, through kernel tap
// ky * 3 + kx with yy = sy - ky + 1, xx = sx - kx + 1 (padding 1).
template <typename Contact>
static inline void for_each_contact(const int64_t* cp, const int32_t* chp, const float* vp,
                                    int64_t b, int64_t H, int64_t W, Contact contact) {
  for (int64_t sy = 0; sy < H; ++sy) {
    for (int64_t sx = 0; sx < W; ++sx) {
      const int64_t q = (b * H + sy) * W + sx;
      for (int64_t k = cp[q]; k < cp[q + 1]; ++k) {
        for (int ky = 0; ky < 3; ++ky) {
          const int64_t yy = sy - ky + 1;
          if (yy < 0 || yy >= H) continue;
          for (int kx = 0; kx < 3; ++kx) {
            const int64_t xx = sx - kx + 1;
            if (xx >= 0 && xx < W) contact(yy * W + xx, ky * 3 + kx, (int64_t)chp[k], vp[k]);
          }
        }
      }
    }
  }
}

// Calls f(std::integral_constant<int, width>) for the output widths the kernels are
// compiled for (a width known at compile time keeps each output row in registers).
template <typename F>
static void with_width(int64_t width, F f) {
  switch (width) {
    case 32: f(std::integral_constant<int, 32>()); break;
    case 64: f(std::integral_constant<int, 64>()); break;
    case 128: f(std::integral_constant<int, 128>()); break;
    default: TORCH_CHECK(false, "sparse conv: Cout must be 32, 64 or 128");
  }
}

template <int COUT>
static void forward_impl(const int64_t* cp, const int32_t* chp, const float* vp, const float* wt,
                         float* yp, int64_t B, int64_t H, int64_t W, int64_t Cin) {
  // images are independent, so threads split them without sharing any output
  at::parallel_for(0, B, 1, [=](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      float* yb = yp + b * H * W * COUT;
      std::fill(yb, yb + H * W * COUT, 0.0f);
      for_each_contact(cp, chp, vp, b, H, W, [=](int64_t pixel, int tap, int64_t ci, float v) {
        const float* __restrict__ w = wt + (tap * Cin + ci) * COUT;
        float* __restrict__ out = yb + pixel * COUT;
        for (int co = 0; co < COUT; ++co) out[co] += v * w[co];
      });
    }
  });
}

// y = conv2d(x, weight, padding 1) from x's nonzeros; y is (B, Cout, H, W) channels_last.
at::Tensor sparse_conv_forward(at::Tensor counts, at::Tensor channel, at::Tensor value,
                      at::Tensor weight, int64_t B, int64_t H, int64_t W) {
  const int64_t Cout = weight.size(0), Cin = weight.size(1);
  auto wt = weight.permute({2, 3, 1, 0}).contiguous();  // (ky, kx, ci, co)
  auto y = at::empty({B, Cout, H, W}, weight.options().memory_format(at::MemoryFormat::ChannelsLast));
  const int64_t* cp = counts.data_ptr<int64_t>();
  const int32_t* chp = channel.data_ptr<int32_t>();
  const float* vp = value.data_ptr<float>();
  const float* wp = wt.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  with_width(Cout, [&](auto width) {
    forward_impl<decltype(width)::value>(cp, chp, vp, wp, yp, B, H, W, Cin);
  });
  return y;
}

static const int64_t WEIGHT_GRAD_BLOCKS = 16;  // fixed: the sum order does not depend on threads

template <int COUT>
static void weight_grad_impl(const float* gp, const int64_t* cp, const int32_t* chp, const float* vp,
                             float* partial, int64_t B, int64_t H, int64_t W, int64_t Cin) {
  const int64_t per_block = 9 * Cin * COUT;
  at::parallel_for(0, WEIGHT_GRAD_BLOCKS, 1, [=](int64_t first, int64_t last) {
    for (int64_t blk = first; blk < last; ++blk) {
      float* dw = partial + blk * per_block;
      std::fill(dw, dw + per_block, 0.0f);
      for (int64_t b = B * blk / WEIGHT_GRAD_BLOCKS; b < B * (blk + 1) / WEIGHT_GRAD_BLOCKS; ++b) {
        const float* gb = gp + b * H * W * COUT;
        for_each_contact(cp, chp, vp, b, H, W, [=](int64_t pixel, int tap, int64_t ci, float v) {
          const float* __restrict__ g = gb + pixel * COUT;
          float* __restrict__ d = dw + (tap * Cin + ci) * COUT;
          for (int co = 0; co < COUT; ++co) d[co] += v * g[co];
        });
      }
    }
  });
}

// dL/dweight (Cout, Cin, 3, 3) from dL/dy and x's nonzeros: each nonzero meets up to 9
// output pixels. Sums run in WEIGHT_GRAD_BLOCKS fixed blocks of images, added in order.
at::Tensor sparse_conv_weight_grad(at::Tensor grad_y, at::Tensor counts, at::Tensor channel,
                          at::Tensor value, int64_t Cin) {
  const int64_t B = grad_y.size(0), Cout = grad_y.size(1), H = grad_y.size(2), W = grad_y.size(3);
  auto g = grad_y.contiguous(at::MemoryFormat::ChannelsLast);
  auto partial = at::empty({WEIGHT_GRAD_BLOCKS, 3, 3, Cin, Cout}, grad_y.options());
  const float* gp = g.data_ptr<float>();
  const int64_t* cp = counts.data_ptr<int64_t>();
  const int32_t* chp = channel.data_ptr<int32_t>();
  const float* vp = value.data_ptr<float>();
  float* pp = partial.data_ptr<float>();
  with_width(Cout, [&](auto width) {
    weight_grad_impl<decltype(width)::value>(gp, cp, chp, vp, pp, B, H, W, Cin);
  });
  auto total = partial[0].clone();
  for (int64_t blk = 1; blk < WEIGHT_GRAD_BLOCKS; ++blk) total.add_(partial[blk]);
  return total.permute({3, 2, 0, 1}).contiguous();  // (co, ci, ky, kx)
}

}  // namespace snnflow
