#pragma once
// The CPU passes behind the encoder's and the factorised readout's autograd functions, without
// autograd: each forward returns what its backward needs, and each backward takes it back.
// The autograd functions (models/network.cpp, models/blocked_conv.cpp) are thin wrappers over
// these, and models/fused_step.cpp chains them into a whole training step of the readout-only
// CNN. One implementation of each pass serves both, so the two paths give the same bits.
//
// Inputs are float32 CPU tensors as the wrappers check them; none of these checks again.

#include <torch/torch.h>

namespace daenr::models::passes {

/// Whether t is a float32 tensor on the CPU: what the passes and daenr's kernels take.
inline bool cpu_float(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat;
}

/// Training-mode BatchNorm2d + ELU(1) on a contiguous NCHW or blocked map
/// (models/bn_elu_kernels.h). `mean` and `var` (C) receive the batch statistics.
torch::Tensor bn_elu_forward(const torch::Tensor& x, const torch::Tensor& gamma,
                             const torch::Tensor& beta, double eps, const torch::Tensor& mean,
                             const torch::Tensor& var);

struct BnEluGrads {
  torch::Tensor x, gamma, beta;
};
/// bn_elu_forward's gradient from the output gradient g, its input x and its output y.
BnEluGrads bn_elu_backward(const torch::Tensor& g, const torch::Tensor& x, const torch::Tensor& y,
                           const torch::Tensor& gamma, const torch::Tensor& beta,
                           const torch::Tensor& mean, const torch::Tensor& var, double eps);

/// The factorised readout's forward pass: the drive (B, N) and what its backward reads.
struct ReadoutForward {
  torch::Tensor drive;  ///< (B, N), bias included
  torch::Tensor t;      ///< the pooled maps, (N, B C) in chunks (network.cpp)
  torch::Tensor s_abs, f_abs;
};
/// h is (B, C, H, W) or any contiguous tensor of B C P values per image; spatial (N, P),
/// features (N, C), bias (N).
ReadoutForward readout_forward(const torch::Tensor& h, const torch::Tensor& spatial,
                               const torch::Tensor& features, const torch::Tensor& bias);

struct ReadoutGrads {
  torch::Tensor h, spatial, features, bias;  ///< undefined where not wanted
};
/// The gradients that `want_*` ask for (h, spatial, features, bias), from the drive's gradient
/// g (B, N).
ReadoutGrads readout_backward(const torch::Tensor& g, const torch::Tensor& h,
                              const torch::Tensor& spatial, const torch::Tensor& features,
                              const ReadoutForward& forward, bool want_h, bool want_spatial,
                              bool want_features, bool want_bias);

/// The Poisson loss of softplus(drive) against target (B, N), averaged over the batch, as a
/// 0-dim float tensor, and its gradient with respect to the drive.
struct PoissonForward {
  torch::Tensor loss, grad;
};
PoissonForward poisson_softplus(const torch::Tensor& drive, const torch::Tensor& target);

/// The readout's regulariser l1 sum_n |s_n|_1 |f_n|_1 (0-dim) and the row norms its gradient
/// reads.
struct L1Forward {
  torch::Tensor value, s_norm, f_norm;
};
L1Forward l1_product_forward(const torch::Tensor& spatial, const torch::Tensor& features,
                             double l1);
/// Its gradients for an upstream gradient `grad` (a CPU scalar), into ds / df where wanted.
void l1_product_backward(const torch::Tensor& spatial, const torch::Tensor& features,
                         const L1Forward& forward, double l1, double grad, torch::Tensor* ds,
                         torch::Tensor* df);

/// conv3x3s2_blocked's passes (models/blocked_conv.h); its checks are the caller's.
torch::Tensor conv3x3s2_forward(const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias);
struct ConvGrads {
  torch::Tensor x, weight, bias;  ///< undefined where not wanted
};
ConvGrads conv3x3s2_backward(const torch::Tensor& x, const torch::Tensor& weight,
                             const torch::Tensor& g, bool want_x, bool want_params);

/// A blocked map (B, C / 16, H, W, 16) as NCHW, and an NCHW map (C a multiple of 16) as a
/// blocked one: the same copies as from_blocked's forward and backward.
torch::Tensor blocked_to_nchw(const torch::Tensor& x);
torch::Tensor nchw_to_blocked(const torch::Tensor& x);

}  // namespace daenr::models::passes
