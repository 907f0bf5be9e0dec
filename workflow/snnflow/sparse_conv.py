"""3x3 convolutions of spike inputs, computed from the input's nonzeros (CPU).

The inputs of the SNN's second and third convolutions are pooled spikes, about one in
eight of them nonzero. Dense convolution multiplies every zero; here each nonzero adds
its weight rows to the (up to) nine output pixels it meets, and the weight gradient is
summed over the nonzeros the same way. On this project's 2-core machine that made the
forward 1.6-2.1x and the weight gradient 1.7-2x faster than oneDNN for those two layers
(`python -m snnflow.bench`); the input gradient, dense by nature, stays with PyTorch.
Sums run in a fixed order, so results do not depend on the thread count; they equal
the dense convolution up to float rounding.

C++ kernels compiled on first use (extensions.py); when they are unavailable,
the input is mostly nonzero, or the layer is not a plain 3x3/padding-1 convolution
with 32, 64 or 128 output channels, `conv_spikes` is nn.Conv2d's own forward.
"""

import torch
from torch import nn

from . import extensions

SPARSE_ENOUGH = 0.35  # above this fraction of nonzeros, dense convolution is faster
OUTPUT_CHANNELS = (32, 64, 128)  # the kernels are compiled for these widths

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <type_traits>
#include <vector>

// x: (B, C, H, W) float32 channels_last -> CSR of its nonzeros per pixel:
// counts (B*H*W + 1) int64 prefix sums, channel int32, value float32.
std::vector<torch::Tensor> nonzeros(torch::Tensor x) {
  const int64_t C = x.size(1), P = x.numel() / C;
  auto counts = torch::empty({P + 1}, torch::kInt64);
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
  auto channel = torch::empty({cp[P]}, torch::kInt32);
  auto value = torch::empty({cp[P]}, torch::kFloat32);
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
torch::Tensor forward(torch::Tensor counts, torch::Tensor channel, torch::Tensor value,
                      torch::Tensor weight, int64_t B, int64_t H, int64_t W) {
  const int64_t Cout = weight.size(0), Cin = weight.size(1);
  auto wt = weight.permute({2, 3, 1, 0}).contiguous();  // (ky, kx, ci, co)
  auto y = torch::empty({B, Cout, H, W}, weight.options().memory_format(at::MemoryFormat::ChannelsLast));
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
torch::Tensor weight_grad(torch::Tensor grad_y, torch::Tensor counts, torch::Tensor channel,
                          torch::Tensor value, int64_t Cin) {
  const int64_t B = grad_y.size(0), Cout = grad_y.size(1), H = grad_y.size(2), W = grad_y.size(3);
  auto g = grad_y.contiguous(at::MemoryFormat::ChannelsLast);
  auto partial = torch::empty({WEIGHT_GRAD_BLOCKS, 3, 3, Cin, Cout}, grad_y.options());
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("nonzeros", &nonzeros, "nonzeros of a channels_last tensor, per pixel (CSR)");
  m.def("forward", &forward, "3x3 convolution, padding 1, from the input's nonzeros");
  m.def("weight_grad", &weight_grad, "its weight gradient from the input's nonzeros");
}
"""


def load():
    """The compiled kernel module, or None when it cannot be built here."""
    return extensions.build("snnflow_sparse_conv", _SOURCE, "dense convolution")


def applies(conv: nn.Conv2d, x):
    """Whether `conv_spikes` can compute conv(x) from x's nonzeros."""
    return (not x.is_cuda and x.dtype == torch.float32 and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.bias is None
            and conv.padding_mode == "zeros" and conv.out_channels in OUTPUT_CHANNELS
            and conv.weight.dtype == torch.float32 and load() is not None)


def conv_spikes(conv: nn.Conv2d, x):
    """conv(x) for a mostly-zero x (N, C, H, W), from its nonzeros where that applies."""
    if not applies(conv, x):
        return conv(x)
    return _sparse_conv(x, conv.weight)[0]


@torch.library.custom_op("snnflow::sparse_conv3x3", mutates_args=())
def _sparse_conv(x: torch.Tensor, weight: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, nonzeros as CSR: counts, channel, value); dense when x is not sparse enough
    (then the CSR is empty)."""
    kernels = load()
    counts, channel, value = kernels.nonzeros(x)
    if value.numel() > SPARSE_ENOUGH * x.numel():
        empty = counts.new_empty(0)
        y = nn.functional.conv2d(x, weight, padding=1)
        return y, empty, empty.int(), empty.float()
    B, _, H, W = x.shape
    return kernels.forward(counts, channel, value, weight, B, H, W), counts, channel, value


@_sparse_conv.register_fake
def _(x, weight):
    B, _, H, W = x.shape
    y = x.new_empty((B, weight.shape[0], H, W)).contiguous(memory_format=torch.channels_last)
    n = torch.library.get_ctx().new_dynamic_size()
    return (y, x.new_empty((B * H * W + 1,), dtype=torch.int64),
            x.new_empty((n,), dtype=torch.int32), x.new_empty((n,)))


def _setup_context(ctx, inputs, output):
    x, weight = inputs
    _, counts, channel, value = output
    ctx.mark_non_differentiable(counts, channel, value)
    ctx.save_for_backward(x, weight, counts, channel, value)


def _backward(ctx, grad_y, *_):
    x, weight, counts, channel, value = ctx.saved_tensors
    grad_y = grad_y.contiguous(memory_format=torch.channels_last)
    sparse = counts.numel() > 0
    grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
        grad_y, x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
        [ctx.needs_input_grad[0], ctx.needs_input_grad[1] and not sparse, False])
    if sparse and ctx.needs_input_grad[1]:
        grad_w = load().weight_grad(grad_y, counts, channel, value, x.shape[1])
    return grad_x, grad_w


_sparse_conv.register_autograd(_backward, setup_context=_setup_context)
