#pragma once
// Training-mode BatchNorm2d followed by ELU(alpha = 1) on raw float32 NCHW or blocked maps: the
// kernels behind SyncBatchNorm2dImpl::forward_elu (models/network.cpp). No LibTorch here:
// this file is compiled with -O3 and per-ISA clones, apart from the precompiled header.

#include <cstdint>

namespace daenr::models::kernels {

/// A contiguous (batch, channels, plane) float32 tensor; plane = H * W. With blocked, its
/// memory is (batch, channels / 16, plane, 16) instead, oneDNN's nChw16c (models/blocked_conv.h),
/// and the channel ranges [c0, c1) below are whole blocks.
struct NchwShape {
  int64_t batch = 0, channels = 0, plane = 0;
  bool blocked = false;
};

/// Channels per block of a blocked map.
constexpr int64_t kBlockLanes = 16;

/// For channels [c0, c1): the batch mean and biased variance over (batch, plane),
/// summed in double in a fixed order, and
/// y = elu(gamma * (x - mean) / sqrt(var + eps) + beta).
void bn_elu_forward(const float* x, const float* gamma, const float* beta, double eps,
                    NchwShape shape, int64_t c0, int64_t c1, float* y, float* mean, float* var);

/// The gradient of bn_elu_forward for channels [c0, c1), from the output gradient g, the
/// input x, the output y (elu'(z) is 1 where y > 0 and y + 1 elsewhere), the affine
/// parameters and the forward's mean and variance: dx, and the sums that are dgamma and
/// dbeta. On large blocked maps elu'(z) is recomputed from x instead (exp(z) for z <= 0;
/// kRecomputeAboveBytes in the .cpp), which reads y in neither pass.
void bn_elu_backward(const float* g, const float* x, const float* y, const float* gamma,
                     const float* beta, const float* mean, const float* var, double eps,
                     NchwShape shape, int64_t c0, int64_t c1, float* dx, float* dgamma,
                     float* dbeta);

/// Evaluation-mode BatchNorm2d followed by ELU for channels [c0, c1), with the running
/// statistics folded into a per-channel scale and shift: y = elu(x * scale + shift).
/// LibTorch's own ELU is not vectorised in Debian's build (about 10 ns a value here), which
/// made a validation pass cost as much as four training steps.
void affine_elu(const float* x, const float* scale, const float* shift, NchwShape shape, int64_t c0,
                int64_t c1, float* y);

/// exp(z) for z <= 0 (z below -87 gives exp(-87)), within 2 ulp of std::exp: exposed for
/// its test.
float exp_nonpositive(float z);

}  // namespace daenr::models::kernels
