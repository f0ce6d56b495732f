#include "models/readout_kernels.h"

#include <cmath>

#include "models/simd_clones.h"
#include "models/vec_math.h"

namespace daenr::models::kernels {

namespace {

// As in bn_elu_kernels.cpp: a dot product in kReadoutLanes independent lanes, added in lane
// order, vectorises without reassociating anything, so every ISA gives the same sum.
constexpr int kReadoutLanes = 16;

// sum_i term(i) for i < n in those lanes.
template <class Term>
[[gnu::always_inline]] inline float lane_sum(int64_t n, const Term& term) {
  float lane[kReadoutLanes] = {};
  int64_t i = 0;
  for (; i + kReadoutLanes <= n; i += kReadoutLanes) {
    for (int j = 0; j < kReadoutLanes; ++j) lane[j] += term(i + j);
  }
  float total = 0.0f;
  for (int j = 0; j < kReadoutLanes; ++j) total += lane[j];
  for (; i < n; ++i) total += term(i);
  return total;
}

[[gnu::always_inline]] inline float dot(const float* a, const float* b, int64_t n) {
  return lane_sum(
      n, [&](int64_t i) __attribute__((always_inline)) { return a[i] * b[i]; });
}

[[gnu::always_inline]] inline float sgn(float x) {
  return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
}

// softplus(d) as LibTorch's (beta 1, threshold 20), written as max(d, 0) + log1p(exp(-|d|)) so
// that the exponential never overflows, and its derivative, the logistic function.
[[gnu::always_inline]] inline float poisson_term(float d, float r, float& grad) {
  const float u = exp_nonpositive_inline(-std::fabs(d));
  const float s = d > 20.0f ? d : std::max(d, 0.0f) + log1p_unit_inline(u);
  const float logistic = d > 20.0f ? 1.0f : (d >= 0.0f ? 1.0f : u) / (1.0f + u);
  const float shifted = s + 1e-5f;
  grad = (1.0f - r / shifted) * logistic;
  return s - r * log_positive_inline(shifted);
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
                                   int64_t batch, int64_t channels, int64_t neurons, int64_t n0,
                                   int64_t n1, float* dt, float* df) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* fn = f_abs + n * channels;
    const float* tn = t + n * batch * channels;
    float* dtn = dt + n * batch * channels;
    float* dfn = df != nullptr ? df + n * channels : nullptr;
    for (int64_t b = 0; b < batch; ++b) {
      const float gb = g[b * neurons + n];
      const float* tb = tn + b * channels;
      float* dtb = dtn + b * channels;
      for (int64_t c = 0; c < channels; ++c) dtb[c] = gb * fn[c];
      if (dfn != nullptr) {
        for (int64_t c = 0; c < channels; ++c) dfn[c] += gb * tb[c];
      }
    }
  }
}

DAENR_CLONES void multiply_by_sign(const float* sign_of, int64_t n, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] *= sgn(sign_of[i]);
}

DAENR_CLONES double poisson_softplus(const float* drive, const float* target, int64_t rows,
                                     int64_t cols, float grad_scale, float* grad) {
  double total = 0.0;
  for (int64_t row = 0; row < rows; ++row) {
    const float* d = drive + row * cols;
    const float* r = target + row * cols;
    float* gr = grad + row * cols;
    const float sum = lane_sum(
        cols, [&](int64_t i) __attribute__((always_inline)) {
          float g;
          const float term = poisson_term(d[i], r[i], g);
          gr[i] = grad_scale * g;
          return term;
        });
    total += sum;
  }
  return total;
}

DAENR_CLONES float log_positive(float x) {
  return log_positive_inline(x);
}

DAENR_CLONES float log1p_unit(float u) {
  return log1p_unit_inline(u);
}

DAENR_CLONES void abs_row_sums(const float* x, int64_t rows, int64_t cols, float* sums) {
  for (int64_t row = 0; row < rows; ++row) {
    const float* xr = x + row * cols;
    const float sum = lane_sum(
        cols, [&](int64_t i) __attribute__((always_inline)) { return std::fabs(xr[i]); });
    sums[row] = sum;
  }
}

DAENR_CLONES void l1_product_grads(const float* s, const float* f, const float* s_norm,
                                   const float* f_norm, int64_t neurons, int64_t positions,
                                   int64_t channels, float scale, float* ds, float* df) {
  for (int64_t n = 0; n < neurons; ++n) {
    if (ds != nullptr) {
      const float k = scale * f_norm[n];
      for (int64_t p = 0; p < positions; ++p) {
        ds[n * positions + p] = k * sgn(s[n * positions + p]);
      }
    }
    if (df != nullptr) {
      const float k = scale * s_norm[n];
      for (int64_t c = 0; c < channels; ++c) df[n * channels + c] = k * sgn(f[n * channels + c]);
    }
  }
}

}  // namespace daenr::models::kernels
