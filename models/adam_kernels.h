#pragma once
// Adam's update of one parameter in one pass over its four arrays: the elementwise half of
// models/adam.h. No LibTorch here: compiled with -O3 and per-ISA clones, like
// bn_elu_kernels.cpp.

#include <cstdint>

namespace daenr::models::kernels {

/// The scalars of one Adam step, in float as LibTorch's CPU kernels use them.
struct AdamScalars {
  float beta1, one_minus_beta1;  // m = m * beta1 + (1 - beta1) * g
  float beta2, one_minus_beta2;  // v = v * beta2 + (1 - beta2) * g * g
  float sqrt_bias_correction2;   // denominator = sqrt(v) / sqrt(1 - beta2^t) + eps
  float eps;
  float minus_step_size;  // p = p + (-lr / (1 - beta1^t)) * m / denominator
};

/// Elements [i0, i1) of p, m (exp_avg) and v (exp_avg_sq) updated from g, in LibTorch's
/// Adam::step order of operations: each element on its own, so any split gives the same result.
void adam_update(float* p, const float* g, float* m, float* v, const AdamScalars& s, int64_t i0,
                 int64_t i1);

}  // namespace daenr::models::kernels
