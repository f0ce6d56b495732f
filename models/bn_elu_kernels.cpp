#include "models/bn_elu_kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>

// Each function is compiled for AVX-512, AVX2 and baseline x86-64, chosen at load time:
// the loops below are written so that GCC vectorises them (independent lanes, no calls, no
// branches), and the Debian toolchain's default target has only SSE2.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DAENR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DAENR_CLONES
#endif

namespace daenr::models::kernels {

namespace {

// Sums are taken in kLanes independent float lanes per plane, added into double per plane in
// lane order: the lanes vectorise without reassociating anything, so the result is the same
// on every ISA and thread count.
constexpr int kLanes = 16;

[[gnu::always_inline]] inline float exp_nonpositive_inline(float z) {
  z = std::max(z, -87.0f);
  // z = n ln2 + r, |r| <= ln2 / 2, with ln2 split in two so that n ln2 is exact enough. n is
  // round(z / ln2), taken as -trunc(0.5 - z / ln2): truncation vectorises, floor() does not
  // on the baseline ISA.
  const int32_t ni = -static_cast<int32_t>(0.5f - z * 1.44269504088896341f);
  const float n = static_cast<float>(ni);
  const float r = (z - n * 0.693359375f) - n * -2.12194440e-4f;
  // Taylor to r^7: the remainder r^8 / 8! < 6e-9 for |r| <= 0.347, below float's epsilon.
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n as a float's exponent bits; n >= -126 here.
  const float scale = std::bit_cast<float>((ni + 127) << 23);
  return p * scale;
}

// Both sides computed and one selected: a branch would stop the loop from vectorising.
[[gnu::always_inline]] inline float elu(float z) {
  const float negative = exp_nonpositive_inline(std::min(z, 0.0f)) - 1.0f;
  return z > 0.0f ? z : negative;
}

[[gnu::always_inline]] inline double sum_plane(const float* x, int64_t n) {
  float lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lane[j] += x[i + j];
  }
  double s = 0;
  for (int j = 0; j < kLanes; ++j) s += lane[j];
  for (; i < n; ++i) s += x[i];
  return s;
}

[[gnu::always_inline]] inline double squared_deviation_plane(const float* x, int64_t n, float mean) {
  float lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float d = x[i + j] - mean;
      lane[j] += d * d;
    }
  }
  double s = 0;
  for (int j = 0; j < kLanes; ++j) s += lane[j];
  for (; i < n; ++i) {
    const double d = x[i] - mean;
    s += d * d;
  }
  return s;
}

// Sums of dz and dz * xhat over a plane, dz = g * elu'(z).
[[gnu::always_inline]] inline void gradient_sums_plane(const float* g, const float* x, const float* y, int64_t n, float mean,
                         float invstd, double& sum_dz, double& sum_dz_xhat) {
  float a[kLanes] = {}, b[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float yy = y[i + j];
      const float dz = g[i + j] * (yy > 0.0f ? 1.0f : yy + 1.0f);
      a[j] += dz;
      b[j] += dz * ((x[i + j] - mean) * invstd);
    }
  }
  for (int j = 0; j < kLanes; ++j) {
    sum_dz += a[j];
    sum_dz_xhat += b[j];
  }
  for (; i < n; ++i) {
    const float dz = g[i] * (y[i] > 0.0f ? 1.0f : y[i] + 1.0f);
    sum_dz += dz;
    sum_dz_xhat += dz * ((x[i] - mean) * invstd);
  }
}

}  // namespace

DAENR_CLONES float exp_nonpositive(float z) { return exp_nonpositive_inline(z); }

DAENR_CLONES void bn_elu_forward(const float* x, const float* gamma, const float* beta,
                                 double eps, NchwShape s, int64_t c0, int64_t c1, float* y,
                                 float* mean, float* var) {
  const int64_t stride = s.channels * s.plane;
  const double count = static_cast<double>(s.batch * s.plane);
  for (int64_t c = c0; c < c1; ++c) {
    const float* xc = x + c * s.plane;
    float* yc = y + c * s.plane;
    double total = 0;
    for (int64_t b = 0; b < s.batch; ++b) total += sum_plane(xc + b * stride, s.plane);
    const float m = static_cast<float>(total / count);
    double deviation = 0;
    for (int64_t b = 0; b < s.batch; ++b) {
      deviation += squared_deviation_plane(xc + b * stride, s.plane, m);
    }
    const double v = deviation / count;
    mean[c] = m;
    var[c] = static_cast<float>(v);
    const float scale = static_cast<float>(gamma[c] / std::sqrt(v + eps));
    const float shift = beta[c] - m * scale;
    for (int64_t b = 0; b < s.batch; ++b) {
      const float* xp = xc + b * stride;
      float* yp = yc + b * stride;
      for (int64_t i = 0; i < s.plane; ++i) yp[i] = elu(xp[i] * scale + shift);
    }
  }
}

DAENR_CLONES void affine_elu(const float* x, const float* scale, const float* shift, NchwShape s,
                             int64_t c0, int64_t c1, float* y) {
  const int64_t stride = s.channels * s.plane;
  for (int64_t c = c0; c < c1; ++c) {
    const float a = scale[c], k = shift[c];
    for (int64_t b = 0; b < s.batch; ++b) {
      const float* xp = x + c * s.plane + b * stride;
      float* yp = y + c * s.plane + b * stride;
      for (int64_t i = 0; i < s.plane; ++i) yp[i] = elu(xp[i] * a + k);
    }
  }
}

DAENR_CLONES void bn_elu_backward(const float* g, const float* x, const float* y,
                                  const float* gamma, const float* mean, const float* var,
                                  double eps, NchwShape s, int64_t c0, int64_t c1, float* dx,
                                  float* dgamma, float* dbeta) {
  const int64_t stride = s.channels * s.plane;
  const double count = static_cast<double>(s.batch * s.plane);
  for (int64_t c = c0; c < c1; ++c) {
    const int64_t offset = c * s.plane;
    const float m = mean[c];
    const float invstd = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var[c]) + eps));
    double sum_dz = 0, sum_dz_xhat = 0;
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t o = offset + b * stride;
      gradient_sums_plane(g + o, x + o, y + o, s.plane, m, invstd, sum_dz, sum_dz_xhat);
    }
    dgamma[c] = static_cast<float>(sum_dz_xhat);
    dbeta[c] = static_cast<float>(sum_dz);
    // dx = gamma invstd (dz - mean(dz) - xhat mean(dz xhat)).
    const float k = gamma[c] * invstd;
    const float mean_dz = static_cast<float>(sum_dz / count);
    const float mean_dz_xhat = static_cast<float>(sum_dz_xhat / count);
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t o = offset + b * stride;
      const float* gp = g + o;
      const float* xp = x + o;
      const float* yp = y + o;
      float* dp = dx + o;
      for (int64_t i = 0; i < s.plane; ++i) {
        const float yy = yp[i];
        const float dz = gp[i] * (yy > 0.0f ? 1.0f : yy + 1.0f);
        const float xhat = (xp[i] - m) * invstd;
        dp[i] = k * (dz - mean_dz - xhat * mean_dz_xhat);
      }
    }
  }
}

}  // namespace daenr::models::kernels
