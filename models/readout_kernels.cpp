#include "models/readout_kernels.h"

#include <cmath>

#include "models/simd_clones.h"

namespace daenr::models::kernels {

namespace {

// As in bn_elu_kernels.cpp: a dot product in kReadoutLanes independent lanes, added in lane
// order, vectorises without reassociating anything, so every ISA gives the same sum.
constexpr int kReadoutLanes = 16;

[[gnu::always_inline]] inline float dot_abs(const float* g, const float* s, int64_t n) {
  float lane[kReadoutLanes] = {};
  int64_t i = 0;
  for (; i + kReadoutLanes <= n; i += kReadoutLanes) {
    for (int j = 0; j < kReadoutLanes; ++j) lane[j] += g[i + j] * std::fabs(s[i + j]);
  }
  float total = 0.0f;
  for (int j = 0; j < kReadoutLanes; ++j) total += lane[j];
  for (; i < n; ++i) total += g[i] * std::fabs(s[i]);
  return total;
}

[[gnu::always_inline]] inline float sgn(float x) {
  return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
}

}  // namespace

DAENR_CLONES void factorised_weights(const float* u, const float* v, int64_t rows, int64_t cols,
                                     int64_t n0, int64_t n1, float* w) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* vn = v + n * cols;
    for (int64_t i = 0; i < rows; ++i) {
      const float a = std::fabs(u[n * rows + i]);
      float* wi = w + (n * rows + i) * cols;
      for (int64_t j = 0; j < cols; ++j) wi[j] = a * std::fabs(vn[j]);
    }
  }
}

DAENR_CLONES void factorised_weight_grads(const float* gw, const float* u, const float* v,
                                          int64_t rows, int64_t cols, int64_t n0, int64_t n1,
                                          float* du, float* dv) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* vn = v + n * cols;
    const float* un = u + n * rows;
    float* dvn = dv ? dv + n * cols : nullptr;
    if (dvn) {
      for (int64_t j = 0; j < cols; ++j) dvn[j] = 0.0f;
    }
    for (int64_t i = 0; i < rows; ++i) {
      const float* g = gw + (n * rows + i) * cols;
      if (du) du[n * rows + i] = sgn(un[i]) * dot_abs(g, vn, cols);
      if (dvn) {
        const float a = std::fabs(un[i]);
        for (int64_t j = 0; j < cols; ++j) dvn[j] += g[j] * a;
      }
    }
    if (dvn) {
      for (int64_t j = 0; j < cols; ++j) dvn[j] *= sgn(vn[j]);
    }
  }
}

}  // namespace daenr::models::kernels
