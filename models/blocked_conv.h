#pragma once
// The encoder's convolutions (3x3, stride 2, padding 1) on oneDNN's blocked layout, called
// directly. LibTorch 1.13 calls the same oneDNN kernels, but on NCHW tensors: it converts
// each convolution's input to the 16-channel blocks the kernels read, and the output back,
// in the forward pass and again in the backward pass. For the readout-only CNN at batch 64
// those conversions of h1 took about 1 ms of a 6 ms step, as long as the second convolution's
// forward pass. Here the maps stay blocked between the convolutions and the fused BatchNorm +
// ELU (models/bn_elu_kernels.h), and only the h_i that a head reads become NCHW.
//
// A blocked map is a contiguous float32 tensor (B, C / 16, H, W, 16): channel c of pixel
// (y, x) at [b, c / 16, y, x, c % 16], oneDNN's nChw16c.

#include <torch/torch.h>

#include "models/bn_elu_kernels.h"

namespace daenr::models {

/// Channels per block of a blocked map (the fused BatchNorm + ELU kernels' lanes).
constexpr int64_t kChannelBlock = kernels::kBlockLanes;

/// Whether this build calls oneDNN directly (DAENR_HAVE_DNNL). Without it the encoder keeps
/// LibTorch's convolutions.
bool blocked_conv_available();

/// conv2d(x, weight, bias, stride 2, padding 1) with a blocked result (B, OC / 16, H / 2,
/// W / 2, 16). x is a blocked map, or an NCHW float tensor with fewer than 16 channels (the
/// image). weight (OC, IC, 3, 3) and bias (OC) as Conv2d's, OC a multiple of 16. Differentiable
/// in all three (x only when it is a blocked map). Throws ModelError on other input or when
/// blocked_conv_available() is false.
torch::Tensor conv3x3s2_blocked(const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias);

/// A blocked map as the NCHW tensor (B, C, H, W) it stands for, and back (C a multiple of 16):
/// differentiable copies.
torch::Tensor from_blocked(const torch::Tensor& x);
torch::Tensor to_blocked(const torch::Tensor& x);

/// Whether x is a blocked map (5-D, last dimension 16, contiguous).
bool is_blocked(const torch::Tensor& x);

/// How many convolution and layout-change primitives this process has made (each shape,
/// direction and intra-op thread count gets its own, made on first use): for tests.
std::size_t blocked_primitives_made();

}  // namespace daenr::models
