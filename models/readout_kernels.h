#pragma once
// The factorised readout's (FR, FM) weight map and its gradient, on raw float32 arrays: the
// elementwise half of FactorisedReadoutFunction (models/network.cpp), whose products run on
// models/gemm.h. No LibTorch here: compiled with -O3 and per-ISA clones, like
// bn_elu_kernels.cpp.
//
// The map is an outer product per neuron, w[n, i, j] = |u[n, i]| * |v[n, j]|: for an NCHW
// feature map i is the channel and j the position (u = the feature weights, v = the spatial
// mask).

#include <cstdint>

namespace daenr::models::kernels {

/// For neurons [n0, n1): w[n, i, j] = |u[n, i]| * |v[n, j]|. u is (N, I), v (N, J), w
/// (N, I, J), all contiguous.
void factorised_weights(const float* u, const float* v, int64_t rows, int64_t cols, int64_t n0,
                        int64_t n1, float* w);

/// The gradient of that map's factors from the map's gradient gw (N, I, J), for neurons
/// [n0, n1): du[n, i] = sgn(u[n, i]) * sum_j gw[n, i, j] |v[n, j]| and dv[n, j] = sgn(v[n, j])
/// * sum_i gw[n, i, j] |u[n, i]|, with sgn(0) = 0 as in LibTorch's gradient of abs. Sums run
/// in a fixed order (any ISA, any split of the neurons). du or dv may be null: not wanted.
void factorised_weight_grads(const float* gw, const float* u, const float* v, int64_t rows,
                             int64_t cols, int64_t n0, int64_t n1, float* du, float* dv);

}  // namespace daenr::models::kernels
