"""The fused LIF time loop as C++ CPU kernels, compiled on first use.

One pass over memory per direction: each element's whole T-step recurrence runs in
registers (threads split the elements). A second pair of kernels also does the 2x2
max-pooling that follows every convolutional LIF layer, so the full-size spike
tensor, the pooling indices and their gradients never exist. The forward repeats the reference's float32
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

// One backward step of one neuron: from dL/dS (from downstream) and dL/dV (from the
// next step), store dL/dX and return dL/dV of the previous step.
static inline float backward_step(float h, float grad_spike, float grad_v, float* __restrict__ grad_x,
                                  float tau, float v_th, float v_reset, float alpha) {
  // sigmoid(z) and sigmoid(-z) share exp(-|z|); s(1-s) is symmetric in z
  const float e = exp_nonpositive(-std::fabs(alpha * (h - v_th)));
  const float sig = 1.0f / (1.0f + e);
  const float g_s = grad_spike + grad_v * (v_reset - h);  // through the reset, too
  const float g_h = g_s * (alpha * sig * (e * sig)) + (h >= v_th ? 0.0f : grad_v);
  const float g_x = g_h / tau;
  *grad_x = g_x;
  return g_h - g_x;
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
          gv[i] = backward_step(ht[i], gt[i], gv[i], gxt + i, ftau, fth, fr, fa);
        }
      }
    }
  });
  return grad_x;
}


// ---- LIF followed by 2x2 max-pooling (stride 2, floor), fused ----------------------
// For channels_last activations viewed as (T, N, C, H, W): C is innermost in memory.
// A pooled spike is 1 when any of the window's four neurons fires. Backward sends the
// pooled gradient to the neuron nn.MaxPool2d picks: the first maximum in row-major
// window order, i.e. the first neuron that fired, else the top-left one. Neurons
// outside every window (odd H or W) reach nothing downstream: zero gradient.

static bool pool_fusable(const torch::Tensor& x) {
  if (x.scalar_type() != torch::kFloat32 || x.dim() != 5) return false;
  const int64_t N = x.size(1), C = x.size(2), H = x.size(3), W = x.size(4);
  return x.stride(0) == N * C * H * W && x.stride(1) == H * W * C && x.stride(2) == 1 &&
         x.stride(3) == W * C && x.stride(4) == C;
}

std::vector<torch::Tensor> lif_pool_forward(torch::Tensor x, double tau, double v_th,
                                            double v_reset) {
  TORCH_CHECK(pool_fusable(x), "fused LIF+pool (CPU): float32 channels_last (T, N, C, H, W)");
  const int64_t T = x.size(0), N = x.size(1), C = x.size(2), H = x.size(3), W = x.size(4);
  const int64_t OH = H / 2, OW = W / 2, positions = N * OH * OW;
  const int64_t M = N * C * H * W, MO = N * C * OH * OW;
  const int64_t tile = std::max<int64_t>(1, 1024 / C);
  auto pooled = torch::empty({T * N, C, OH, OW}, x.options())
                    .contiguous(at::MemoryFormat::ChannelsLast).view({T, N, C, OH, OW});
  auto h_seq = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  float* hp = h_seq.data_ptr<float>();
  float* pp = pooled.data_ptr<float>();
  const float ftau = (float)tau, fth = (float)v_th, fr = (float)v_reset;
  at::parallel_for(0, (positions + tile - 1) / tile, 1, [=](int64_t first, int64_t last) {
    std::vector<float> state(tile * 4 * C);
    for (int64_t k = first; k < last; ++k) {
      const int64_t p0 = k * tile, np = std::min(tile, positions - p0);
      std::fill(state.begin(), state.begin() + np * 4 * C, fr);
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t j = 0; j < np; ++j) {
          const int64_t p = p0 + j, n = p / (OH * OW), r = p % (OH * OW);
          const int64_t base = t * M + ((n * H + 2 * (r / OW)) * W + 2 * (r % OW)) * C;
          float* __restrict__ out = pp + t * MO + p * C;
          for (int64_t c = 0; c < C; ++c) out[c] = 0.0f;
          for (int e = 0; e < 4; ++e) {
            const int64_t at = base + ((e >> 1) * W + (e & 1)) * C;
            const float* __restrict__ xe = xp + at;
            float* __restrict__ he = hp + at;
            float* __restrict__ ve = state.data() + (j * 4 + e) * C;
            for (int64_t c = 0; c < C; ++c) {
              const float h = ve[c] + (xe[c] - (ve[c] - fr)) / ftau;
              const bool fired = h >= fth;
              he[c] = h;
              ve[c] = fired ? fr : h;
              out[c] = fired ? 1.0f : out[c];
            }
          }
        }
      }
    }
  });
  return {pooled, h_seq};
}

torch::Tensor lif_pool_backward(torch::Tensor grad_pooled, torch::Tensor h_seq, double tau,
                                double v_th, double v_reset, double alpha) {
  TORCH_CHECK(pool_fusable(h_seq), "fused LIF+pool (CPU): float32 channels_last (T, N, C, H, W)");
  const int64_t T = h_seq.size(0), N = h_seq.size(1), C = h_seq.size(2);
  const int64_t H = h_seq.size(3), W = h_seq.size(4), OH = H / 2, OW = W / 2;
  const int64_t positions = N * OH * OW, M = N * C * H * W, MO = N * C * OH * OW;
  const int64_t tile = std::max<int64_t>(1, 1024 / C);
  // the forward wrote the pooled spikes channels_last; read their gradient likewise
  auto gc = grad_pooled.flatten(0, 1).contiguous(at::MemoryFormat::ChannelsLast);
  auto grad_x = (H % 2 || W % 2) ? torch::zeros_like(h_seq) : torch::empty_like(h_seq);
  const float* gp = gc.data_ptr<float>();
  const float* hp = h_seq.data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  const float ftau = (float)tau, fth = (float)v_th, fr = (float)v_reset, fa = (float)alpha;
  at::parallel_for(0, (positions + tile - 1) / tile, 1, [=](int64_t first, int64_t last) {
    std::vector<float> state(tile * 4 * C), later(C), before(C), zeros(C, 0.0f);
    for (int64_t k = first; k < last; ++k) {
      const int64_t p0 = k * tile, np = std::min(tile, positions - p0);
      std::fill(state.begin(), state.begin() + np * 4 * C, 0.0f);
      for (int64_t t = T - 1; t >= 0; --t) {
        for (int64_t j = 0; j < np; ++j) {
          const int64_t p = p0 + j, n = p / (OH * OW), r = p % (OH * OW);
          const int64_t base = t * M + ((n * H + 2 * (r / OW)) * W + 2 * (r % OW)) * C;
          const float* __restrict__ gout = gp + t * MO + p * C;
          float* __restrict__ none_later = later.data();    // corners 1-3 did not fire
          float* __restrict__ none_before = before.data();  // no earlier corner fired
          for (int64_t c = 0; c < C; ++c) {
            none_later[c] = 1.0f;
            none_before[c] = 1.0f;
          }
          for (int e = 1; e < 4; ++e) {
            const float* __restrict__ he = hp + base + ((e >> 1) * W + (e & 1)) * C;
            for (int64_t c = 0; c < C; ++c) none_later[c] = he[c] >= fth ? 0.0f : none_later[c];
          }
          for (int e = 0; e < 4; ++e) {
            const int64_t at = base + ((e >> 1) * W + (e & 1)) * C;
            const float* __restrict__ he = hp + at;
            float* __restrict__ gxe = gxp + at;
            float* __restrict__ gve = state.data() + (j * 4 + e) * C;
            // corner 0 wins if it fired or corners 1-3 did not; a later corner wins if
            // it fired and no earlier one did
            const float* __restrict__ if_silent = e == 0 ? none_later : zeros.data();
            for (int64_t c = 0; c < C; ++c) {
              const bool fired = he[c] >= fth;
              const float share = fired ? none_before[c] : if_silent[c];
              gve[c] = backward_step(he[c], gout[c] * share, gve[c], gxe + c, ftau, fth, fr, fa);
              none_before[c] = fired ? 0.0f : none_before[c];
            }
          }
        }
      }
    }
  });
  return grad_x;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &lif_forward, "fused LIF forward: (spikes, H)");
  m.def("backward", &lif_backward, "fused LIF backward: grad of the input");
  m.def("pool_forward", &lif_pool_forward, "fused LIF + 2x2 max-pool forward: (pooled, H)");
  m.def("pool_backward", &lif_pool_backward, "fused LIF + 2x2 max-pool backward");
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
