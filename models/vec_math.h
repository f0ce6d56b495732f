#pragma once
// Elementary functions written so that GCC vectorises loops that call them: straight-line
// float arithmetic and bit operations, no calls, no branches, no tables. For daenr's kernel
// files (bn_elu_kernels.cpp, readout_kernels.cpp), which are compiled with -O3 and per-ISA
// clones (simd_clones.h); glibc's expf and logf are calls, which keep a loop scalar.
// exp and log are within 2 ulp of the C library's over their domains, log1p within 3
// (tests/unit/network_test.cpp).

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace daenr::models::kernels {

/// exp(z) for z <= 0 (z below -87 gives exp(-87)).
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

/// log(x) for a positive normal float x (no zeros, subnormals, infinities or NaNs).
[[gnu::always_inline]] inline float log_positive_inline(float x) {
  // x = m 2^e with m in [sqrt(1/2), sqrt(2)), so that log(m) is small and exact enough.
  const int32_t bits = std::bit_cast<int32_t>(x);
  int32_t e = ((bits >> 23) & 0xff) - 127;
  float m = std::bit_cast<float>((bits & 0x007fffff) | 0x3f800000);  // [1, 2)
  const bool high = m > 1.41421356f;
  m = high ? m * 0.5f : m;
  e = high ? e + 1 : e;
  // log(m) = 2 atanh(t), t = (m - 1) / (m + 1), |t| <= 0.172: the odd series to t^11 leaves
  // t^13 / 13 < 1e-11, below float's epsilon.
  const float t = (m - 1.0f) / (m + 1.0f);
  const float t2 = t * t;
  float p = 1.0f / 11.0f;
  p = p * t2 + 1.0f / 9.0f;
  p = p * t2 + 1.0f / 7.0f;
  p = p * t2 + 1.0f / 5.0f;
  p = p * t2 + 1.0f / 3.0f;
  p = p * t2 + 1.0f;
  const float log_m = 2.0f * t * p;
  // e ln2 with ln2 split in two, as in exp_nonpositive_inline.
  const float n = static_cast<float>(e);
  return (n * 0.693359375f + log_m) + n * -2.12194440e-4f;
}

/// log(1 + u) for u in [0, 1], exact to rounding for small u too: log(w) u / (w - 1) with
/// w = 1 + u corrects for the rounding of w (Goldberg, 1991).
[[gnu::always_inline]] inline float log1p_unit_inline(float u) {
  const float w = 1.0f + u;
  const float d = w - 1.0f;
  const float safe_d = d == 0.0f ? 1.0f : d;
  return d == 0.0f ? u : log_positive_inline(w) * (u / safe_d);
}

}  // namespace daenr::models::kernels
