// What the fused time loops of the neurons share (lif.cpp: the LIF's; neuron.cpp: the IF's
// and PLIF's, a file of their own so that the LIF's compiled code stays as it was).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>

namespace snnflow {

static const int64_t TILE = 512;  // elements whose state stays in L1 over all T

// The kernels walk memory in storage order, so any layout whose time slices are dense
// blocks one after the other works (contiguous, or channels_last seen as (T, N, C, H, W)).
static bool time_major_dense(const at::Tensor& x) {
  return x.is_non_overlapping_and_dense() && x.stride(0) == x.numel() / x.size(0);
}

// `x` in the same memory layout as `like` (a copy only when they differ).
static at::Tensor same_layout(const at::Tensor& x, const at::Tensor& like) {
  if (x.strides() == like.strides()) return x;
  return at::empty_like(like).copy_(x);
}

}  // namespace snnflow
