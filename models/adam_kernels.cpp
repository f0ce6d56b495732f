#include "models/adam_kernels.h"

#include <cmath>

#include "models/simd_clones.h"

namespace daenr::models::kernels {

DAENR_CLONES void adam_update(float* p, const float* g, float* m, float* v, const AdamScalars& s,
                              int64_t i0, int64_t i1) {
  // Copied out of the struct so that the compiler knows no store below changes them.
  const float b1 = s.beta1, a1 = s.one_minus_beta1, b2 = s.beta2, a2 = s.one_minus_beta2;
  const float c2 = s.sqrt_bias_correction2, eps = s.eps, step = s.minus_step_size;
  for (int64_t i = i0; i < i1; ++i) {
    const float gi = g[i];
    // As LibTorch's exp_avg.mul_(beta1).add_(grad, 1 - beta1), then
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2).
    const float mi = m[i] * b1 + a1 * gi;
    const float vi = v[i] * b2 + a2 * gi * gi;
    // (exp_avg_sq.sqrt() / sqrt(bias_correction2)).add_(eps), then
    // p.addcdiv_(exp_avg, denom, -step_size).
    const float denom = std::sqrt(vi) / c2 + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] + step * mi / denom;
  }
}

}  // namespace daenr::models::kernels
