"""The fused LIF time loop as a C++ CPU kernel, compiled on first use.

One pass over memory per direction: each element's whole T-step recurrence runs in
registers (threads split the elements). The forward repeats the reference's float32
operations exactly, so spikes are bit-identical; the backward computes the
surrogate with a vectorisable polynomial `exp`, within 1e-6 of the reference.

Building needs a C++ compiler; torch caches the build (TORCH_EXTENSIONS_DIR), so
only the first process on a machine pays for it. When the build fails, `load()`
returns None and the caller falls back to the pure PyTorch loop.
"""

import logging
import os

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

static const int64_t TILE = 512;  // elements whose state stays in L1 over all T

// The kernels walk memory in storage order, so any layout whose time slices are dense
// blocks one after the other works (contiguous, or channels_last seen as (T, N, C, H, W)).
static bool time_major_dense(const torch::Tensor& x) {
  return x.is_non_overlapping_and_dense() && x.stride(0) == x.numel() / x.size(0);
}

// `x` in the same memory layout as `like` (a copy only when they differ).
static torch::Tensor same_layout(const torch::Tensor& x, const torch::Tensor& like) {
  if (x.strides() == like.strides()) return x;
  return torch::empty_like(like).copy_(x);
}

std::vector<torch::Tensor> lif_forward(torch::Tensor x, double tau, double v_th, double v_reset) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat32, "fused LIF (CPU): float32 only");
  auto xc = time_major_dense(x) ? x : x.contiguous();
  const int64_t T = xc.size(0), M = xc.numel() / T;
  auto spikes = torch::empty_like(xc), h_seq = torch::empty_like(xc);
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
          const float h = v[i] + (xt[i] - (v[i] - fr)) / ftau;
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

// exp(x) for x <= 0 to about 2 ulp, in plain arithmetic so the compiler vectorises it
// (a call to std::exp keeps the backward loop scalar and makes it 5x slower).
static inline float exp_nonpositive(float x) {
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

torch::Tensor lif_backward(torch::Tensor grad_spikes, torch::Tensor h_seq, double tau,
                           double v_th, double v_reset, double alpha) {
  auto gc = same_layout(grad_spikes, h_seq);
  const int64_t T = h_seq.size(0), M = h_seq.numel() / T;
  auto grad_x = torch::empty_like(h_seq);
  const float* gp = gc.data_ptr<float>();
  const float* hp = h_seq.data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  const float ftau = (float)tau, fth = (float)v_th, fr = (float)v_reset, fa = (float)alpha;
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
          const float h = ht[i];
          // sigmoid(z) and sigmoid(-z) share exp(-|z|); s(1-s) is symmetric in z
          const float e = exp_nonpositive(-std::fabs(fa * (h - fth)));
          const float sig = 1.0f / (1.0f + e);
          const float g_s = gt[i] + gv[i] * (fr - h);
          const float g_h = g_s * (fa * sig * (e * sig)) + (h >= fth ? 0.0f : gv[i]);
          const float g_x = g_h / ftau;
          gxt[i] = g_x;
          gv[i] = g_h - g_x;
        }
      }
    }
  });
  return grad_x;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &lif_forward, "fused LIF forward: (spikes, H)");
  m.def("backward", &lif_backward, "fused LIF backward: grad of the input");
}
"""

_module = None
_tried = False


def load():
    """The compiled kernel module, or None when it cannot be built here."""
    global _module, _tried
    if _tried:
        return _module
    _tried = True
    if os.environ.get("SNNFLOW_DISABLE_CPP") == "1":
        return None
    try:
        from torch.utils.cpp_extension import load_inline

        _module = load_inline(
            name="snnflow_lif_cpu", cpp_sources=[_SOURCE], functions=None,
            extra_cflags=["-O3", "-fopenmp", "-march=native"], extra_ldflags=["-fopenmp"],
            verbose=False)
    except Exception as err:  # no compiler, no headers, a failed build: fall back
        logging.getLogger(__name__).warning(
            "fused LIF C++ kernel unavailable (%s); using the PyTorch loop",
            str(err).splitlines()[0] if str(err) else type(err).__name__)
        _module = None
    return _module
