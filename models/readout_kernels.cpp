#include "models/readout_kernels.h"

#include <cmath>

#include "models/simd_clones.h"

namespace daenr::models::kernels {

namespace {

// As in bn_elu_kernels.cpp: a dot product in kReadoutLanes independent lanes, added in lane
// order, vectorises without reassociating anything, so every ISA gives the same sum.
constexpr int kReadoutLanes = 16;

[[gnu::always_inline]] inline float dot(const float* a, const float* b, int64_t n) {
  float lane[kReadoutLanes] = {};
  int64_t i = 0;
  for (; i + kReadoutLanes <= n; i += kReadoutLanes) {
    for (int j = 0; j < kReadoutLanes; ++j) lane[j] += a[i + j] * b[i + j];
  }
  float total = 0.0f;
  for (int j = 0; j < kReadoutLanes; ++j) total += lane[j];
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

[[gnu::always_inline]] inline float sgn(float x) {
  return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
}

}  // namespace

DAENR_CLONES void absolute(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::fabs(x[i]);
}

DAENR_CLONES void readout_drive(const float* t, const float* f_abs, const float* bias,
                                int64_t batch, int64_t channels, int64_t neurons, int64_t n0,
                                int64_t n1, float* drive) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* fn = f_abs + n * channels;
    const float* tn = t + n * batch * channels;
    for (int64_t b = 0; b < batch; ++b) {
      drive[b * neurons + n] = dot(tn + b * channels, fn, channels) + bias[n];
    }
  }
}

DAENR_CLONES void readout_backward(const float* g, const float* t, const float* f_abs,
                                   const float* f, int64_t batch, int64_t channels,
                                   int64_t neurons, int64_t n0, int64_t n1, float* dt,
                                   float* df) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* fn = f_abs + n * channels;
    const float* tn = t + n * batch * channels;
    float* dtn = dt + n * batch * channels;
    float* dfn = df != nullptr ? df + n * channels : nullptr;
    if (dfn != nullptr) {
      for (int64_t c = 0; c < channels; ++c) dfn[c] = 0.0f;
    }
    for (int64_t b = 0; b < batch; ++b) {
      const float gb = g[b * neurons + n];
      const float* tb = tn + b * channels;
      float* dtb = dtn + b * channels;
      for (int64_t c = 0; c < channels; ++c) dtb[c] = gb * fn[c];
      if (dfn != nullptr) {
        for (int64_t c = 0; c < channels; ++c) dfn[c] += gb * tb[c];
      }
    }
    if (dfn != nullptr) {
      for (int64_t c = 0; c < channels; ++c) dfn[c] *= sgn(f[n * channels + c]);
    }
  }
}

DAENR_CLONES void multiply_by_sign(const float* sign_of, int64_t n, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] *= sgn(sign_of[i]);
}

}  // namespace daenr::models::kernels
