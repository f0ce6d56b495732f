#pragma once
// The factorised readout's (FR, FM) elementwise half, on raw float32 arrays: the part of
// FactorisedReadoutFunction (models/network.cpp) that is not a matrix product (those run on
// models/gemm.h). No LibTorch here: compiled with -O3 and per-ISA clones, like
// bn_elu_kernels.cpp.
//
// The readout is drive[b, n] = bias[n] + sum_c |f[n, c]| t[n, b, c], where
// t[n, b, c] = sum_p |s[n, p]| h[b, c, p] pools each channel of the feature map h with the
// neuron's spatial mask s (one matrix product, (N, P) x (P, B C)); f are the feature weights.
// t is kept neuron-major so that every loop here runs over the channels, contiguous. Every sum
// runs in a fixed order, whatever the ISA and however the neurons are split between threads,
// so results are the same for the same inputs.

#include <cstdint>

namespace daenr::models::kernels {

/// out[i] = |x[i]| for i < n.
void absolute(const float* x, int64_t n, float* out);

/// For neurons [n0, n1): drive[b, n] = bias[n] + sum_c f_abs[n, c] t[n, b, c]. t is
/// (N, B, C), f_abs (N, C), drive (B, N).
void readout_drive(const float* t, const float* f_abs, const float* bias, int64_t batch,
                   int64_t channels, int64_t neurons, int64_t n0, int64_t n1, float* drive);

/// The backward pass's elementwise half for neurons [n0, n1), from the drive's gradient g
/// (B, N): dt[n, b, c] = g[b, n] f_abs[n, c] (the pooled maps' gradient, (N, B, C)), and,
/// where df is not null, df[n, c] += sum_b g[b, n] t[n, b, c], the images added in order: the
/// gradient of |f| (N, C), which the caller accumulates over the batch's chunks and turns
/// into f's with multiply_by_sign.
void readout_backward(const float* g, const float* t, const float* f_abs, int64_t batch,
                      int64_t channels, int64_t neurons, int64_t n0, int64_t n1, float* dt,
                      float* df);

/// x[i] *= sgn(sign_of[i]) for i < n (sgn(0) = 0): |s|'s gradient into s's.
void multiply_by_sign(const float* sign_of, int64_t n, float* x);

/// The Poisson loss of softplus(drive) and its gradient in one pass over (rows, cols):
/// returns sum over rows of sum over cols of (s - target log(s + 1e-5)), s = softplus(drive)
/// as LibTorch computes it (beta 1, threshold 20: s = drive above 20), each row summed in
/// float in a fixed order and the rows added in double; and writes grad = grad_scale *
/// (1 - target / (s + 1e-5)) * softplus'(drive).
double poisson_softplus(const float* drive, const float* target, int64_t rows, int64_t cols,
                        float grad_scale, float* grad);

/// log(x) for a positive normal x, and log(1 + u) for u in [0, 1], as the kernels compute
/// them (models/vec_math.h): exposed for their tests.
float log_positive(float x);
float log1p_unit(float u);

/// sums[r] = sum_c |x[r, c]| for a (rows, cols) array, in a fixed order.
void abs_row_sums(const float* x, int64_t rows, int64_t cols, float* sums);

/// The gradient of scale * sum_n s_norm[n] f_norm[n] (s_norm, f_norm: abs_row_sums of s
/// (N, P) and f (N, C)): ds[n, p] = scale sgn(s[n, p]) f_norm[n], df[n, c] = scale sgn(f[n,
/// c]) s_norm[n]. ds or df may be null: not wanted.
void l1_product_grads(const float* s, const float* f, const float* s_norm, const float* f_norm,
                      int64_t neurons, int64_t positions, int64_t channels, float scale, float* ds,
                      float* df);

}  // namespace daenr::models::kernels
