#include "models/network.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <fmt/format.h>

#include "models/blocked_conv.h"
#include "models/bn_elu_kernels.h"
#include "models/error.h"
#include "models/gemm.h"
#include "models/passes.h"
#include "models/readout_kernels.h"

namespace daenr::models {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

int layer_channels(const ModelConfig& config, int layer) { return config.width << (layer - 1); }
int layer_side(int layer) { return 32 >> layer; }

using passes::cpu_float;

namespace {

// A block holds its convolution (index 0) and BatchNorm (index 1); the ELU that follows has no
// parameters and is applied by SyncBatchNorm2dImpl::forward_elu, which fuses the two.
nn::Sequential conv_block(int in, int out) {
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(2).padding(1)),
                        SyncBatchNorm2d(out));
}

// Upsamples by 2: ConvTranspose k3 s2 p1 output_padding 1 -> BN (-> ELU, as above).
nn::Sequential deconv_block(int in, int out) {
  return nn::Sequential(UpConv(in, out), SyncBatchNorm2d(out));
}

// softplus^-1(r) = log(exp(r) - 1), so that the readout starts at each neuron's
// mean rate. Rates are floored: a silent neuron would otherwise get -inf.
torch::Tensor inverse_softplus(const torch::Tensor& rates) {
  auto r = rates.to(torch::kFloat).clamp_min(1e-3);
  return torch::log(torch::expm1(r));
}

}  // namespace

namespace {

// The sum over a data-parallel group as an autograd function. Every process's loss depends on
// the group's sum, so the gradient reaching one process's summand is the sum of the gradients
// that all processes' losses send to the result: its backward is the same all-reduce.
struct GroupSumFunction : public torch::autograd::Function<GroupSumFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& local,
                               const GroupSum* sum) {
    // saved_data holds IValues only; the module keeps the function alive until the backward
    // pass (set_batchnorm_group is not called between a forward and its backward).
    ctx->saved_data["sum"] = reinterpret_cast<int64_t>(sum);
    auto total = local.clone();
    (*sum)(total);
    return total;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto* sum = reinterpret_cast<const GroupSum*>(ctx->saved_data["sum"].toInt());
    auto g = grads[0].contiguous().clone();
    (*sum)(g);
    return {g, torch::Tensor()};
  }
};

}  // namespace

SyncBatchNorm2dImpl::SyncBatchNorm2dImpl(int64_t features) : options(features) {
  reset();
}

void SyncBatchNorm2dImpl::reset() {
  // BatchNorm2d's registrations, in its order (the optimizer's state follows parameter order).
  const int64_t c = options.num_features();
  weight = register_parameter("weight", torch::ones({c}));
  bias = register_parameter("bias", torch::zeros({c}));
  running_mean = register_buffer("running_mean", torch::zeros({c}));
  running_var = register_buffer("running_var", torch::ones({c}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::tensor(0, torch::kLong));
}

void SyncBatchNorm2dImpl::pretty_print(std::ostream& stream) const {
  stream << "daenr::models::SyncBatchNorm2d(" << options.num_features() << ", eps=" << options.eps()
         << ", momentum=";
  if (options.momentum()) {
    stream << *options.momentum();
  } else {
    stream << "None";
  }
  stream << (group_sum_ ? ", group)" : ")");
}

torch::Tensor SyncBatchNorm2dImpl::forward(const torch::Tensor& x) {
  if (x.dim() != 4) {
    throw ModelError(fmt::format("SyncBatchNorm2d: expected a 4-D input, got {}-D", x.dim()));
  }
  if (is_training() && group_sum_) return forward_group(x);
  // BatchNorm2d's forward (LibTorch 1.13 and 2.x alike), on the same ATen kernel.
  double factor = options.momentum().value_or(0.0);
  if (is_training()) {
    if (x.numel() / x.size(1) < 2) {
      throw ModelError(
          fmt::format("SyncBatchNorm2d: {} value(s) per channel; at least 2 are needed",
                      x.numel() / x.size(1)));
    }
    num_batches_tracked += 1;
    if (!options.momentum()) factor = 1.0 / num_batches_tracked.item<double>();
  }
  return torch::batch_norm(x, weight, bias, running_mean, running_var, is_training(), factor,
                           options.eps(), at::globalContext().userEnabledCuDNN());
}

namespace {

// The kernels' view of a contiguous NCHW map or a blocked one (models/blocked_conv.h).
kernels::NchwShape kernel_shape(const torch::Tensor& x) {
  if (x.dim() == 5) return {x.size(0), x.size(1) * kChannelBlock, x.size(2) * x.size(3), true};
  return {x.size(0), x.size(1), x.size(2) * x.size(3), false};
}

// Runs fn(c0, c1) over the channels, split between LibTorch's threads in whole blocks where
// the map is blocked. Channels are independent and each is summed in a fixed order: the result
// does not depend on the split.
template <typename Fn>
void for_channel_ranges(const kernels::NchwShape& shape, const Fn& fn) {
  const int64_t unit = shape.blocked ? kChannelBlock : 1;
  at::parallel_for(0, shape.channels / unit, 1,
                   [&](int64_t u0, int64_t u1) { fn(u0 * unit, u1 * unit); });
}

}  // namespace

torch::Tensor passes::bn_elu_forward(const torch::Tensor& x, const torch::Tensor& gamma,
                                     const torch::Tensor& beta, double eps,
                                     const torch::Tensor& mean, const torch::Tensor& var) {
  const auto shape = kernel_shape(x);
  auto y = torch::empty_like(x);
  for_channel_ranges(shape, [&](int64_t c0, int64_t c1) {
    kernels::bn_elu_forward(x.data_ptr<float>(), gamma.data_ptr<float>(), beta.data_ptr<float>(),
                            eps, shape, c0, c1, y.data_ptr<float>(), mean.data_ptr<float>(),
                            var.data_ptr<float>());
  });
  return y;
}

passes::BnEluGrads passes::bn_elu_backward(const torch::Tensor& grad, const torch::Tensor& x,
                                           const torch::Tensor& y, const torch::Tensor& gamma,
                                           const torch::Tensor& beta, const torch::Tensor& mean,
                                           const torch::Tensor& var, double eps) {
  auto g = grad.contiguous();
  const auto shape = kernel_shape(x);
  BnEluGrads d{torch::empty_like(x), torch::empty_like(gamma), torch::empty_like(gamma)};
  for_channel_ranges(shape, [&](int64_t c0, int64_t c1) {
    kernels::bn_elu_backward(
        g.data_ptr<float>(), x.data_ptr<float>(), y.data_ptr<float>(), gamma.data_ptr<float>(),
        beta.data_ptr<float>(), mean.data_ptr<float>(), var.data_ptr<float>(), eps, shape, c0, c1,
        d.x.data_ptr<float>(), d.gamma.data_ptr<float>(), d.beta.data_ptr<float>());
  });
  return d;
}

namespace {

// Training-mode BatchNorm2d + ELU(1) on the fused kernels. `mean` and `var` are outputs (the
// batch statistics, for the running averages), not differentiated.
struct BnEluFunction : public torch::autograd::Function<BnEluFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, double eps,
                               torch::Tensor mean, torch::Tensor var) {
    auto gamma = weight.contiguous(), beta = bias.contiguous();
    auto y = passes::bn_elu_forward(x, gamma, beta, eps, mean, var);
    ctx->save_for_backward({x, y, gamma, beta, mean, var});
    ctx->saved_data["eps"] = eps;
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto d = passes::bn_elu_backward(grads[0], saved[0], saved[1], saved[2], saved[3], saved[4],
                                     saved[5], ctx->saved_data["eps"].toDouble());
    return {d.x, d.gamma, d.beta, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor SyncBatchNorm2dImpl::forward_elu(const torch::Tensor& x) {
  // What daenr's kernels take: a contiguous float NCHW or blocked map on the CPU.
  const bool blocked = is_blocked(x);
  const bool kernel_input = (blocked || (x.dim() == 4 && x.is_contiguous())) &&
                            x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
                            weight.scalar_type() == torch::kFloat;
  const auto shape = kernel_input ? kernel_shape(x) : kernels::NchwShape{};
  const int64_t per_channel = kernel_input ? x.numel() / shape.channels : 0;
  const bool fused = kernel_input && is_training() && !group_sum_ && per_channel >= 2;
  if (!fused) {
    // Evaluation without gradients (validation, test metrics, decoding): the running
    // statistics as one scale and shift per channel, on the same vectorised ELU.
    const bool inference = kernel_input && !is_training() && !torch::GradMode::is_enabled();
    if (!inference) {
      // The encoder makes blocked maps only where one of the two kernels will take them.
      if (blocked) throw ModelError("SyncBatchNorm2d: a blocked map outside the fused kernels");
      return torch::elu(forward(x));
    }
    // As LibTorch's CPU batch_norm folds them: in the statistics' precision, then float.
    auto invstd = torch::rsqrt(running_var + options.eps());
    auto scale = (weight.to(invstd.scalar_type()) * invstd).to(torch::kFloat).contiguous();
    auto shift = (bias.to(invstd.scalar_type()) - running_mean * scale.to(invstd.scalar_type()))
                     .to(torch::kFloat)
                     .contiguous();
    auto y = torch::empty_like(x);
    for_channel_ranges(shape, [&](int64_t c0, int64_t c1) {
      kernels::affine_elu(x.data_ptr<float>(), scale.data_ptr<float>(), shift.data_ptr<float>(),
                          shape, c0, c1, y.data_ptr<float>());
    });
    return y;
  }
  auto mean = torch::empty({shape.channels}, x.options());
  auto var = torch::empty({shape.channels}, x.options());
  auto y = BnEluFunction::apply(x, weight, bias, options.eps(), mean, var);
  track_batch(mean, var, per_channel);
  return y;
}

void SyncBatchNorm2dImpl::track_batch(const torch::Tensor& mean, const torch::Tensor& var,
                                      int64_t per_channel) {
  // The running averages as BatchNorm2d keeps them: momentum, or a cumulative average
  // without one, of the batch mean and the unbiased batch variance.
  torch::NoGradGuard no_grad;
  const double n = static_cast<double>(per_channel);
  const bool plain =
      num_batches_tracked.device().is_cpu() && num_batches_tracked.scalar_type() == torch::kLong &&
      running_mean.scalar_type() == torch::kFloat && running_var.scalar_type() == torch::kFloat &&
      running_mean.is_contiguous() && running_var.is_contiguous() &&
      mean.scalar_type() == torch::kFloat && var.scalar_type() == torch::kFloat &&
      mean.is_contiguous() && var.is_contiguous() && mean.device().is_cpu();
  if (!plain) {
    num_batches_tracked += 1;
    const double f =
        options.momentum() ? *options.momentum() : 1.0 / num_batches_tracked.item<double>();
    running_mean.mul_(1 - f).add_(mean.to(running_mean.scalar_type()), f);
    running_var.mul_(1 - f).add_((var * (n / (n - 1))).to(running_var.scalar_type()), f);
    return;
  }
  // The same in one loop: the operators above (eleven calls for 64 floats) cost more than
  // the arithmetic. Rounded as they round: each product to float, the add as one fused
  // multiply-add (ATen's vectorised add with alpha), so the bits match.
  const int64_t tracked = ++num_batches_tracked.data_ptr<int64_t>()[0];
  const double f = options.momentum() ? *options.momentum() : 1.0 / static_cast<double>(tracked);
  const float keep = static_cast<float>(1 - f), take = static_cast<float>(f);
  const float unbias = static_cast<float>(n / (n - 1));
  float* rm = running_mean.data_ptr<float>();
  float* rv = running_var.data_ptr<float>();
  const float* m = mean.data_ptr<float>();
  const float* v = var.data_ptr<float>();
  for (int64_t c = 0; c < mean.numel(); ++c) {
    rm[c] = std::fma(m[c], take, rm[c] * keep);
    rv[c] = std::fma(v[c] * unbias, take, rv[c] * keep);
  }
}

torch::Tensor SyncBatchNorm2dImpl::forward_group(const torch::Tensor& x) {
  const int64_t c = x.size(1);
  const std::vector<int64_t> dims = {0, 2, 3};
  // Sums in float64, like LibTorch's CPU kernel accumulates: the variance is taken as
  // E[x^2] - E[x]^2, which float32 would round badly where the mean dominates.
  auto xd = x.to(torch::kDouble);
  const int64_t local_count = x.numel() / c;
  auto count = torch::full({1}, static_cast<double>(local_count), xd.options());
  auto local = torch::cat({xd.sum(dims), xd.square().sum(dims), count});
  auto total = GroupSumFunction::apply(local, group_sum_.get());
  // The group's count stays on the device (no host synchronisation on a GPU); it is read
  // only where this share alone could leave it under 2, and then on every rank alike.
  auto n = total.slice(0, 2 * c, 2 * c + 1).detach();
  if (local_count < 2) {
    const double all = n.item<double>();
    if (all < 2) {
      throw ModelError(fmt::format(
          "SyncBatchNorm2d: {} value(s) per channel over the group; at least 2 are needed", all));
    }
  }
  auto mean = total.slice(0, 0, c) / n;
  auto var = (total.slice(0, c, 2 * c) / n - mean.square()).clamp_min(0);
  auto scale = weight * torch::rsqrt(var + options.eps()).to(x.scalar_type());
  auto shift = bias - mean.to(x.scalar_type()) * scale;
  auto y = torch::addcmul(shift.view({1, c, 1, 1}), x, scale.view({1, c, 1, 1}));

  // As BatchNorm2d: an exponential average (or a cumulative one without momentum) of the
  // batch mean and the unbiased batch variance, here of the group's batch.
  torch::NoGradGuard no_grad;
  num_batches_tracked += 1;
  const double f =
      options.momentum() ? *options.momentum() : 1.0 / num_batches_tracked.item<double>();
  running_mean.mul_(1 - f).add_(mean.detach().to(running_mean.scalar_type()), f);
  running_var.mul_(1 - f).add_((var.detach() * n / (n - 1)).to(running_var.scalar_type()), f);
  return y;
}

void use_blocked_layout(torch::nn::Module& model, bool on) {
  if (auto* self = dynamic_cast<EncoderImpl*>(&model)) self->use_blocked_layout(on);
  for (const auto& m : model.modules(/*include_self=*/false)) {
    if (auto encoder = std::dynamic_pointer_cast<EncoderImpl>(m)) encoder->use_blocked_layout(on);
  }
}

int set_batchnorm_group(torch::nn::Module& model, const GroupSum& sum) {
  auto shared = sum ? std::make_shared<const GroupSum>(sum) : nullptr;
  int n = 0;
  if (auto* self = dynamic_cast<SyncBatchNorm2dImpl*>(&model)) {
    self->set_group(shared);
    ++n;
  }
  for (const auto& m : model.modules(/*include_self=*/false)) {
    if (auto bn = std::dynamic_pointer_cast<SyncBatchNorm2dImpl>(m)) {
      bn->set_group(shared);
      ++n;
    }
  }
  return n;
}

UpConvImpl::UpConvImpl(int in, int out) {
  // Take ConvTranspose2d's own initialisation, so that the model is the same
  // as one built from ConvTranspose2d with the same seed.
  nn::ConvTranspose2d reference(
      nn::ConvTranspose2dOptions(in, out, 3).stride(2).padding(1).output_padding(1));
  weight = register_parameter("weight", reference->weight.detach().clone());
  bias = register_parameter("bias", reference->bias.detach().clone());
}

namespace {

// The parameters of the stride-2 3x3 convolution (padding 1) whose transpose UpConv is.
constexpr std::array<int64_t, 2> kStride2 = {2, 2};
constexpr std::array<int64_t, 2> kPad1 = {1, 1};
constexpr std::array<int64_t, 2> kDilation1 = {1, 1};
constexpr std::array<int64_t, 2> kNoOutputPadding = {0, 0};

// A transposed convolution is the input gradient of the convolution it transposes, and its
// own gradients are that convolution's forward (for the input) and its weight gradient (for
// the weight). Written that way, all three run on oneDNN's direct convolution kernels, the
// same ones the encoder uses: no zero taps, no pixel shuffle, no im2col.
struct TransposedConvFunction : public torch::autograd::Function<TransposedConvFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias) {
    // Only the shape of the convolution's input is read.
    auto shape = torch::empty({x.size(0), weight.size(1), 2 * x.size(2), 2 * x.size(3)},
                              x.options());
    auto y = std::get<0>(at::convolution_backward(x, shape, weight, c10::nullopt, kStride2, kPad1,
                                                  kDilation1, false, kNoOutputPadding, 1,
                                                  {true, false, false}));
    y.add_(bias.view({1, -1, 1, 1}));
    ctx->save_for_backward({x, weight});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    auto g = grads[0].contiguous();
    torch::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) {
      gx = F::conv2d(g, weight, F::Conv2dFuncOptions().stride(2).padding(1));
    }
    if (ctx->needs_input_grad(1)) {
      gw = std::get<1>(at::convolution_backward(x, g, weight, c10::nullopt, kStride2, kPad1,
                                                kDilation1, false, kNoOutputPadding, 1,
                                                {false, true, false}));
    }
    auto gb = ctx->needs_input_grad(2) ? g.sum({0, 2, 3}) : torch::Tensor();
    return {gx, gw, gb};
  }
};

// A stride-1 3x3 convolution (padding 1) with few output channels, the decoder's last layer
// (width -> 1). oneDNN pads its output channels to a block of 16, so 1 channel costs 16 and
// its gradients cost more: that layer took a fifth of a CAE step at batch 64. Here every
// tap is one matrix product over the input channels, Z = W_taps (9 co x C) X (C x HW), and
// the output sums the 9 tap planes shifted into place; the gradients are the same two
// products backwards.
//
// Image by image, on raw pointers: each image's products (models/gemm.h) and shifted sums run
// back to back on one thread's buffer, in its cache. The batched form (bmm, then a slice, a
// select and an add per tap) made about 900 LibTorch calls a CAE step at batch 32, bmm's own
// per-image selects most of them, and ran on OpenBLAS, which takes AVX2 kernels on CPUs it
// does not know (models/gemm.h).
struct TapsConvFunction : public torch::autograd::Function<TapsConvFunction> {
  // Output rows [out0, out1) take tap plane rows [out0 + d, out1 + d): d = k - 1 for tap k.
  struct Window {
    int64_t out0, out1, d;
  };
  static Window window(int k, int64_t size) {
    const int64_t d = k - 1;
    return {std::max<int64_t>(0, -d), size - std::max<int64_t>(0, d), d};
  }

  // For each tap k = 3 ky + kx, output channel o and output row i inside the tap's window,
  // calls fn(plane, o, at, from, len): `len` elements of output channel o's (h, w) plane from
  // offset `at` pair with those of Z's tap plane `plane` (= k co + o) from offset `from`,
  // out[i][j] with z[i + dy][j + dx].
  template <typename Fn>
  static void for_each_window(int64_t co, int64_t h, int64_t w, const Fn& fn) {
    for (int ky = 0; ky < 3; ++ky) {
      const auto r = window(ky, h);
      for (int kx = 0; kx < 3; ++kx) {
        const auto q = window(kx, w);
        for (int64_t o = 0; o < co; ++o) {
          for (int64_t i = r.out0; i < r.out1; ++i) {
            fn((3 * ky + kx) * co + o, o, i * w + q.out0, (i + r.d) * w + q.out0 + q.d,
               q.out1 - q.out0);
          }
        }
      }
    }
  }

  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias) {
    const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), hw = h * w;
    const int64_t co = weight.size(0);
    // Row k * co + o of the tap matrix is output channel o's weights at tap k = 3 ky + kx.
    auto taps = weight.permute({2, 3, 0, 1}).reshape({9 * co, c}).contiguous();
    auto bias_c = bias.contiguous();
    auto y = torch::empty({b, co, h, w}, x.options());
    auto z_buffers = torch::empty({at::get_num_threads(), 9 * co * hw}, x.options());
    const float* xp = x.data_ptr<float>();
    const float* bp = bias_c.data_ptr<float>();
    const Matrix taps_m{taps.data_ptr<float>(), 9 * co, c};
    float* yp = y.data_ptr<float>();
    float* zp = z_buffers.data_ptr<float>();
    at::parallel_for(0, b, 1, [&](int64_t i0, int64_t i1) {
      float* z = zp + at::get_thread_num() * 9 * co * hw;
      for (int64_t n = i0; n < i1; ++n) {
        sgemm(taps_m, false, Matrix{xp + n * c * hw, c, hw}, false, OutMatrix{z, 9 * co, hw});
        float* out = yp + n * co * hw;
        for (int64_t o = 0; o < co; ++o) std::fill_n(out + o * hw, hw, bp[o]);
        // The bias, then the taps in order 0..8, as the batched form added them.
        for_each_window(co, h, w, [&](int64_t k, int64_t o, int64_t at, int64_t from, int64_t len) {
          float* dst = out + o * hw + at;
          const float* src = z + k * hw + from;
          for (int64_t j = 0; j < len; ++j) dst[j] += src[j];
        });
      }
    });
    ctx->save_for_backward({x, taps});
    ctx->saved_data["co"] = co;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& taps = saved[1];
    const int64_t co = ctx->saved_data["co"].toInt();
    const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), hw = h * w;
    auto g = grads[0].contiguous();
    const bool want_x = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1);
    torch::Tensor gx, gw;
    if (want_x || want_w) {
      if (want_x) gx = torch::empty(x.sizes(), x.options());
      // Each image's weight gradient (9 co x C), summed over the batch below in a fixed order.
      auto gw_images = want_w ? torch::empty({b, 9 * co, c}, x.options()) : torch::Tensor();
      auto gz_buffers = torch::empty({at::get_num_threads(), 9 * co * hw}, x.options());
      const float* xp = x.data_ptr<float>();
      const float* gp = g.data_ptr<float>();
      const Matrix taps_m{taps.data_ptr<float>(), 9 * co, c};
      float* gxp = want_x ? gx.data_ptr<float>() : nullptr;
      float* gwp = want_w ? gw_images.data_ptr<float>() : nullptr;
      float* gzp = gz_buffers.data_ptr<float>();
      at::parallel_for(0, b, 1, [&](int64_t i0, int64_t i1) {
        float* gz = gzp + at::get_thread_num() * 9 * co * hw;
        for (int64_t n = i0; n < i1; ++n) {
          // The forward's shifts run backwards: each tap plane's gradient is the output
          // gradient shifted the other way, zero where the tap fell outside the image.
          std::fill_n(gz, 9 * co * hw, 0.0f);
          const float* gn = gp + n * co * hw;
          for_each_window(co, h, w,
                          [&](int64_t k, int64_t o, int64_t at, int64_t from, int64_t len) {
                            std::copy_n(gn + o * hw + at, len, gz + k * hw + from);
                          });
          const Matrix gz_m{gz, 9 * co, hw};
          if (want_x) sgemm(taps_m, true, gz_m, false, OutMatrix{gxp + n * c * hw, c, hw});
          if (want_w) {
            sgemm(gz_m, false, Matrix{xp + n * c * hw, c, hw}, true,
                  OutMatrix{gwp + n * 9 * co * c, 9 * co, c});
          }
        }
      });
      if (want_w) {
        gw = gw_images.sum(0).view({3, 3, co, c}).permute({2, 3, 0, 1}).contiguous();
      }
    }
    auto gb = ctx->needs_input_grad(2) ? g.sum({0, 2, 3}) : torch::Tensor();
    return {gx, gw, gb};
  }
};

}  // namespace

torch::Tensor conv3x3_by_taps(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias) {
  if (!cpu_float(x) || !cpu_float(weight) || !cpu_float(bias)) {
    return F::conv2d(x, weight, F::Conv2dFuncOptions().bias(bias).padding(1));
  }
  return TapsConvFunction::apply(x.contiguous(), weight, bias);
}

torch::Tensor UpConvImpl::forward(const torch::Tensor& x) {
  // On a GPU, cuDNN's transposed convolution is the fast path already.
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat) {
    return F::conv_transpose2d(
        x, weight, F::ConvTranspose2dFuncOptions().bias(bias).stride(2).padding(1).output_padding(1));
  }
  return TransposedConvFunction::apply(x.contiguous(), weight, bias);
}

EncoderImpl::EncoderImpl(int width, int depth) {
  int in = 1;
  for (int i = 0; i < depth; ++i) {
    const int out = width << i;
    blocks_.push_back(register_module(fmt::format("h{}", i + 1), conv_block(in, out)));
    in = out;
  }
}

bool EncoderImpl::takes_blocked_path(const torch::Tensor& x, int depth) const {
  // The image: a CPU float NCHW batch with fewer channels than a block, and no gradient of its
  // own (an MEI's image takes LibTorch's path, whose input gradient is tested against it).
  if (!blocked_layout_ || !blocked_conv_available() || !x.device().is_cpu() ||
      x.scalar_type() != torch::kFloat || x.dim() != 4 || !x.is_contiguous() ||
      x.size(1) >= kChannelBlock || x.requires_grad()) {
    return false;
  }
  for (int i = 0; i < depth; ++i) {
    const auto& conv = blocks_[i]->ptr<nn::Conv2dImpl>(0);
    const auto& bn = blocks_[i]->ptr<SyncBatchNorm2dImpl>(1);
    if (conv->weight.scalar_type() != torch::kFloat || conv->weight.size(0) % kChannelBlock != 0 ||
        bn->weight.scalar_type() != torch::kFloat) {
      return false;
    }
    // Where SyncBatchNorm2dImpl::forward_elu runs daenr's kernels, which take blocked maps.
    if (bn->is_training() ? bn->has_group() : torch::GradMode::is_enabled()) return false;
  }
  return true;
}

nn::Conv2dImpl& EncoderImpl::conv(int i) const {
  return *blocks_.at(i)->ptr<nn::Conv2dImpl>(0);
}

SyncBatchNorm2dImpl& EncoderImpl::batchnorm(int i) const {
  return *blocks_.at(i)->ptr<SyncBatchNorm2dImpl>(1);
}

std::vector<torch::Tensor> EncoderImpl::forward(torch::Tensor x, int depth, unsigned wanted) {
  std::vector<torch::Tensor> h;
  h.reserve(depth);
  if (takes_blocked_path(x, depth)) {
    for (int i = 0; i < depth; ++i) {
      auto& block = blocks_[i];
      auto conv = block->ptr<nn::Conv2dImpl>(0);
      x = conv3x3s2_blocked(x, conv->weight, conv->bias);
      x = block->ptr<SyncBatchNorm2dImpl>(1)->forward_elu(x);
      h.push_back(x);
    }
    for (int i = 0; i < depth; ++i) {
      h[i] = ((wanted >> i) & 1u) != 0 ? from_blocked(h[i]) : torch::Tensor();
    }
    return h;
  }
  for (int i = 0; i < depth; ++i) {
    auto& block = blocks_[i];
    // oneDNN's convolution for the image's one channel too: with OpenBLAS on one thread and
    // the AVX-512 kernels oneDNN picks, it took 0.9x the time of im2col + BLAS at batch 16 and
    // 256 and the whole CNN-FR_2 step 1.07-1.13x less at batch 32 and 64 (bench/README.md).
    x = block->ptr<nn::Conv2dImpl>(0)->forward(x);
    x = block->ptr<SyncBatchNorm2dImpl>(1)->forward_elu(x);
    h.push_back(x);
  }
  return h;
}

DecoderImpl::DecoderImpl(int width) {
  // (8w, 2, 2) -> (4w, 4, 4) -> (2w, 8, 8) -> (w, 16, 16) -> (w, 32, 32) -> 1 x 32 x 32.
  const int channels[] = {8 * width, 4 * width, 2 * width, width, width};
  for (int i = 0; i < 4; ++i) {
    blocks_.push_back(
        register_module(fmt::format("up{}", i + 1), deconv_block(channels[i], channels[i + 1])));
  }
  out_ = register_module("out", nn::Conv2d(nn::Conv2dOptions(width, 1, 3).padding(1)));
}

torch::Tensor DecoderImpl::forward(torch::Tensor h4) {
  for (auto& block : blocks_) {
    h4 = block->ptr<SyncBatchNorm2dImpl>(1)->forward_elu(block->ptr<UpConvImpl>(0)->forward(h4));
  }
  if (!h4.device().is_cpu()) return torch::tanh(out_->forward(h4));
  return torch::tanh(conv3x3_by_taps(h4, out_->weight, out_->bias));
}

ReadoutImpl::ReadoutImpl(ReadoutKind kind, int channels, int side, const ModelConfig& config,
                         const torch::Tensor& mean_rates, const torch::Tensor& fm_positions)
    : kind_(kind), l1_(config.readout_l1), l2_(config.fc_l2) {
  const int64_t n = config.neurons;
  const int64_t p = static_cast<int64_t>(side) * side;
  if (mean_rates.numel() != n) {
    throw ModelError(fmt::format("readout: {} mean rates for {} neurons", mean_rates.numel(), n));
  }
  const auto bias = inverse_softplus(mean_rates.reshape({n}));
  switch (kind) {
    case ReadoutKind::kFr:
      spatial_ = register_parameter("spatial", torch::randn({n, p}) * 0.01);
      [[fallthrough]];
    case ReadoutKind::kFm:
      if (kind == ReadoutKind::kFm) {
        if (!fm_positions.defined() || fm_positions.numel() != n) {
          throw ModelError("FM readout needs one receptive-field position per neuron");
        }
        // The mask is fixed: a buffer travels with the model (device moves,
        // checkpoints) but is never trained.
        auto mask = torch::zeros({n, p});
        mask.scatter_(1, fm_positions.reshape({n, 1}).to(torch::kLong).clamp(0, p - 1), 1.0);
        spatial_ = register_buffer("spatial", mask);
      }
      features_ = register_parameter("features", torch::randn({n, channels}) * 0.01);
      bias_ = register_parameter("bias", bias.clone());
      break;
    case ReadoutKind::kFc:
      dropout_ = register_module("dropout", nn::Dropout(config.fc_dropout));
      linear_ = register_module("linear", nn::Linear(channels * p, n));
      {
        torch::NoGradGuard no_grad;
        linear_->bias.copy_(bias);
      }
      break;
    case ReadoutKind::kNone:
      throw ModelError("a readout of kind 'none' cannot be built");
  }
}

torch::Tensor ReadoutImpl::spatial_masks() const {
  if (kind_ == ReadoutKind::kFc) throw ModelError("an FC readout has no spatial mask");
  return spatial_.abs();
}

namespace {

// The FR / FM readout's drive on the CPU, bias included, for a feature map h (B, C, P) made
// flat (B, C * P): pool each channel with each neuron's mask, t = |s| (N, P) x h^T (P, B C),
// one product, then weight the channels, drive[b, n] = bias[n] + sum_c |f[n, c]| t[n, b, c]
// (models/readout_kernels.h). The backward pass is one elementwise pass over (N, B, C) and
// two more products of the same size (h's gradient dt^T |s|, and s's, dt h).
// An earlier form built the full weight map W[n, (c, p)] = |f[n, c]| |s[n, p]| and ran
// h W^T: the same multiply-adds, but its forward product (a long inner dimension C P and
// few rows and columns) ran at half the speed of these on oneDNN's sgemm, and building W and
// folding its gradient back passed over N C P floats (1.7 MB for 102 neurons at h2) twice a
// step (bench/README.md, "The readout as pooling").
//
// Both passes run over the batch in chunks whose pooled maps t (N x chunk x C floats) stay
// within kReadoutChunkBytes, so that a chunk's product and the elementwise pass after it meet
// in the core's cache, and t's gradient is one chunk's buffer, instead of (N, B, C) arrays
// (1.7 MB for 102 neurons at h2, batch 64) passing through memory. In the readout-only CNN's
// step at batch 64 the readout's perf samples fell 12-15% with 96-128 KB chunks; 64 KB and
// 256 KB gained less, 512 KB and more nothing (bench/README.md, "The readout in chunks"). A
// fixed size, not the machine's cache: the sums' order, and so the results, are the same on
// every machine.
constexpr int64_t kReadoutChunkBytes = 128 * 1024;

// Images per chunk.
int64_t readout_chunk(int64_t neurons, int64_t channels) {
  return std::max<int64_t>(
      1, kReadoutChunkBytes / (neurons * channels * static_cast<int64_t>(sizeof(float))));
}

}  // namespace

passes::ReadoutForward passes::readout_forward(const torch::Tensor& h, const torch::Tensor& spatial,
                                               const torch::Tensor& features,
                                               const torch::Tensor& bias) {
  const int64_t b = h.size(0), n = spatial.size(0), p = spatial.size(1), c = features.size(1);
  auto s = spatial.contiguous();
  auto f = features.contiguous();
  auto bias_c = bias.contiguous();
  ReadoutForward out;
  out.s_abs = torch::empty({n, p}, h.options());
  out.f_abs = torch::empty({n, c}, h.options());
  kernels::absolute(s.data_ptr<float>(), n * p, out.s_abs.data_ptr<float>());
  kernels::absolute(f.data_ptr<float>(), n * c, out.f_abs.data_ptr<float>());
  // h's rows (B C of them, P long), t and the drive as raw matrices: a tensor per chunk
  // (narrow, view) cost more operator calls than the chunk's product (models/gemm.h).
  const auto hc = h.contiguous();
  const float* h_rows = hc.data_ptr<float>();
  out.t = torch::empty({b * c * n}, h.options());
  out.drive = torch::empty({b, n}, h.options());
  float* t_data = out.t.data_ptr<float>();
  float* drive_data = out.drive.data_ptr<float>();
  const Matrix s_mat{out.s_abs.data_ptr<float>(), n, p};
  const float* f_abs_data = out.f_abs.data_ptr<float>();
  const float* bias_data = bias_c.data_ptr<float>();
  const int64_t chunk = readout_chunk(n, c);
  // Threads take whole chunks, each on its own core's cache, with single-threaded products
  // (oneDNN runs one thread inside a parallel region).
  at::parallel_for(0, (b + chunk - 1) / chunk, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t b0 = k0 * chunk; b0 < std::min(b, k1 * chunk); b0 += chunk) {
      const int64_t bc = std::min(chunk, b - b0);
      float* t_chunk = t_data + b0 * c * n;  // (N, bc C)
      sgemm(s_mat, false, Matrix{h_rows + b0 * c * p, bc * c, p}, true,
            OutMatrix{t_chunk, n, bc * c});
      kernels::readout_drive(t_chunk, f_abs_data, bias_data, bc, c, n, 0, n, drive_data + b0 * n);
    }
  });
  return out;
}

passes::ReadoutGrads passes::readout_backward(const torch::Tensor& grad, const torch::Tensor& h,
                                              const torch::Tensor& spatial,
                                              const torch::Tensor& features,
                                              const ReadoutForward& fwd, bool want_h, bool want_s,
                                              bool want_f, bool want_bias) {
  const auto& s = spatial;
  const auto& f = features;
  const int64_t b = h.size(0), n = s.size(0), p = s.size(1), c = f.size(1);
  auto g = grad.contiguous();
  ReadoutGrads d;
  if (want_h || want_s || want_f) {
    const int64_t chunk = readout_chunk(n, c), chunks = (b + chunk - 1) / chunk;
    // As in the forward pass, threads take whole chunks. Each thread sums its chunks' parts
    // of s's and f's gradients in its own buffers, added below in thread order: the same
    // order on every run with the same thread count.
    const int64_t parts = std::min<int64_t>(at::get_num_threads(), chunks);
    const int64_t dt_size = std::min(chunk, b) * c * n;
    auto dt_buffers = torch::empty({parts, dt_size}, h.options());
    auto df_parts = want_f ? torch::zeros({parts, n, c}, h.options()) : torch::Tensor();
    auto ds_parts = want_s ? torch::zeros({parts, n, p}, h.options()) : torch::Tensor();
    if (want_h) d.h = torch::empty(h.sizes(), h.options());
    const auto hc = h.contiguous();
    const float* h_rows = hc.data_ptr<float>();
    const float* g_data = g.data_ptr<float>();
    const float* t_data = fwd.t.data_ptr<float>();
    const float* f_abs_data = fwd.f_abs.data_ptr<float>();
    const Matrix s_mat{fwd.s_abs.data_ptr<float>(), n, p};
    float* dt_data = dt_buffers.data_ptr<float>();
    float* df_data = want_f ? df_parts.data_ptr<float>() : nullptr;
    float* ds_data = want_s ? ds_parts.data_ptr<float>() : nullptr;
    float* gh_data = want_h ? d.h.data_ptr<float>() : nullptr;
    at::parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
      const int64_t part = at::get_thread_num();
      float* dt = dt_data + part * dt_size;
      for (int64_t b0 = k0 * chunk; b0 < std::min(b, k1 * chunk); b0 += chunk) {
        const int64_t bc = std::min(chunk, b - b0);
        kernels::readout_backward(g_data + b0 * n, t_data + b0 * c * n, f_abs_data, bc, c, n, 0, n,
                                  dt, want_f ? df_data + part * n * c : nullptr);
        const Matrix dt_mat{dt, n, bc * c};
        if (want_h) sgemm(dt_mat, true, s_mat, false, OutMatrix{gh_data + b0 * c * p, bc * c, p});
        if (want_s) {
          sgemm(dt_mat, false, Matrix{h_rows + b0 * c * p, bc * c, p}, false,
                OutMatrix{ds_data + part * n * p, n, p}, 1.0f, 1.0f);
        }
      }
    });
    if (want_f) d.features = parts == 1 ? df_parts[0] : df_parts.sum(0);
    if (want_s) d.spatial = parts == 1 ? ds_parts[0] : ds_parts.sum(0);
    if (want_f) {
      kernels::multiply_by_sign(f.contiguous().data_ptr<float>(), n * c,
                                d.features.data_ptr<float>());
    }
    if (want_s) {
      kernels::multiply_by_sign(s.contiguous().data_ptr<float>(), n * p,
                                d.spatial.data_ptr<float>());
    }
  }
  if (want_bias) d.bias = g.sum(0);
  return d;
}

namespace {

struct FactorisedReadoutFunction : public torch::autograd::Function<FactorisedReadoutFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& h,
                               const torch::Tensor& spatial, const torch::Tensor& features,
                               const torch::Tensor& bias) {
    const int64_t b = h.size(0), p = spatial.size(1), c = features.size(1);
    if (h.numel() != b * c * p) {
      throw ModelError(
          fmt::format("readout: a map of {} values per image, where {} channels of {} "
                      "positions were expected",
                      h.numel() / std::max<int64_t>(b, 1), c, p));
    }
    auto out = passes::readout_forward(h, spatial, features, bias);
    ctx->save_for_backward(
        {h, out.t, spatial.contiguous(), features.contiguous(), out.s_abs, out.f_abs});
    return out.drive;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    passes::ReadoutForward fwd{torch::Tensor(), saved[1], saved[4], saved[5]};
    auto d = passes::readout_backward(grads[0], saved[0], saved[2], saved[3], fwd,
                                      ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                      ctx->needs_input_grad(2), ctx->needs_input_grad(3));
    return {d.h, d.spatial, d.features, d.bias};
  }
};

// On the CPU the readout's loss terms each run as one function and one kernel
// (models/readout_kernels.h) instead of LibTorch's chains of small operators: the Poisson loss
// of softplus(drive) (softplus, add, log, mul, sub, sum, mean and their backward, about 14
// operator calls) and the regulariser l1 sum_n |s_n|_1 |f_n|_1 (abs, sum, abs, sum, mul, sum,
// mul). Together they took 0.09 ms of a readout-only CNN step of 3 ms at batch 32
// (bench/README.md, "The readout's loss terms fused").
}  // namespace

passes::PoissonForward passes::poisson_softplus(const torch::Tensor& drive,
                                                const torch::Tensor& target) {
  auto d = drive.contiguous();
  auto r = target.contiguous();
  const int64_t rows = d.size(0), cols = d.size(1);
  PoissonForward out;
  out.grad = torch::empty_like(d);
  const double total =
      kernels::poisson_softplus(d.data_ptr<float>(), r.data_ptr<float>(), rows, cols,
                                1.0f / static_cast<float>(rows), out.grad.data_ptr<float>());
  out.loss = torch::full({}, total / static_cast<double>(rows), d.options());
  return out;
}

passes::L1Forward passes::l1_product_forward(const torch::Tensor& spatial,
                                             const torch::Tensor& features, double l1) {
  auto s = spatial.contiguous();
  auto f = features.contiguous();
  const int64_t n = s.size(0);
  L1Forward out{torch::Tensor(), torch::empty({n}, s.options()), torch::empty({n}, s.options())};
  kernels::abs_row_sums(s.data_ptr<float>(), n, s.size(1), out.s_norm.data_ptr<float>());
  kernels::abs_row_sums(f.data_ptr<float>(), n, f.size(1), out.f_norm.data_ptr<float>());
  double total = 0.0;
  const float* a = out.s_norm.data_ptr<float>();
  const float* b = out.f_norm.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) total += static_cast<double>(a[i] * b[i]);
  out.value = torch::full({}, l1 * total, s.options());
  return out;
}

void passes::l1_product_backward(const torch::Tensor& spatial, const torch::Tensor& features,
                                 const L1Forward& fwd, double l1, double grad, torch::Tensor* ds,
                                 torch::Tensor* df) {
  if (ds == nullptr && df == nullptr) return;
  auto s = spatial.contiguous();
  auto f = features.contiguous();
  if (ds != nullptr) *ds = torch::empty_like(s);
  if (df != nullptr) *df = torch::empty_like(f);
  // The l1 weight times the scalar gradient of the penalty.
  const float scale = static_cast<float>(l1 * grad);
  kernels::l1_product_grads(s.data_ptr<float>(), f.data_ptr<float>(), fwd.s_norm.data_ptr<float>(),
                            fwd.f_norm.data_ptr<float>(), s.size(0), s.size(1), f.size(1), scale,
                            ds != nullptr ? ds->data_ptr<float>() : nullptr,
                            df != nullptr ? df->data_ptr<float>() : nullptr);
}

namespace {

struct PoissonSoftplusFunction : public torch::autograd::Function<PoissonSoftplusFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& drive,
                               const torch::Tensor& target) {
    auto out = passes::poisson_softplus(drive, target);
    ctx->save_for_backward({out.grad});
    return out.loss;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    return {ctx->get_saved_variables()[0] * grads[0], torch::Tensor()};
  }
};

struct L1ProductFunction : public torch::autograd::Function<L1ProductFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& spatial,
                               const torch::Tensor& features, double l1) {
    auto s = spatial.contiguous();
    auto f = features.contiguous();
    auto out = passes::l1_product_forward(s, f, l1);
    ctx->save_for_backward({s, f, out.s_norm, out.f_norm});
    ctx->saved_data["l1"] = l1;
    return out.value;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    torch::Tensor ds, df;
    // The upstream gradient is a CPU scalar on this path.
    passes::l1_product_backward(
        saved[0], saved[1], passes::L1Forward{torch::Tensor(), saved[2], saved[3]},
        ctx->saved_data["l1"].toDouble(), grads[0].item<double>(),
        ctx->needs_input_grad(0) ? &ds : nullptr, ctx->needs_input_grad(1) ? &df : nullptr);
    return {ds, df, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor ReadoutImpl::forward(const torch::Tensor& h) {
  return F::softplus(drive(h));
}

torch::Tensor ReadoutImpl::drive(const torch::Tensor& h) {
  const auto b = h.size(0);
  if (kind_ == ReadoutKind::kFc) {
    return linear_->forward(dropout_->forward(h.reshape({b, -1})));
  }
  // drive[b, n] = (sum_c |w_f[n, c]| sum_p |w_s[n, p]| h[b, c, p] + b_n).
  const auto c = h.size(1);
  if (cpu_float(h) && cpu_float(spatial_) && cpu_float(features_) && cpu_float(bias_)) {
    // h as it is, (B, C, H, W): the function reads it as B C rows of P, and a reshape here
    // would add an operator and a backward node to every step.
    return FactorisedReadoutFunction::apply(h.contiguous(), spatial_, features_, bias_);
  }
  // Elsewhere (a GPU's libraries batch small products well): pool space first,
  // (B, C, P) x (P, N) -> (B, C, N), then weight the channels.
  auto pooled = torch::matmul(h.reshape({b, c, -1}), spatial_.abs().t());
  return (pooled * features_.abs().t().unsqueeze(0)).sum(1) + bias_;
}

torch::Tensor ReadoutImpl::regulariser() const {
  if (kind_ == ReadoutKind::kFc) return l2_ * linear_->weight.pow(2).sum();
  // The product of the two L1 norms per neuron (Klindt et al. 2017): neither
  // factor can shrink the penalty by growing the other. The fixed FM mask has
  // unit norm, so for FM this is an L1 penalty on the feature weights.
  if (cpu_float(spatial_) && cpu_float(features_)) {
    return L1ProductFunction::apply(spatial_, features_, l1_);
  }
  return l1_ * (spatial_.abs().sum(1) * features_.abs().sum(1)).sum();
}

DaeNrImpl::DaeNrImpl(const ModelConfig& config, const torch::Tensor& mean_rates,
                     const torch::Tensor& fm_positions)
    : config_(config) {
  if (config.layer < 1 || config.layer > 4) {
    throw ModelError(fmt::format("layer must be 1..4, got {}", config.layer));
  }
  if (config.width < 1) throw ModelError(fmt::format("width must be positive, got {}", config.width));
  if (!has_decoder() && !has_readout()) {
    throw ModelError("a model needs an autoencoder, a readout, or both");
  }
  // Without a decoder nothing needs the layers above h_i.
  const int depth = has_decoder() ? 4 : config.layer;
  encoder_ = register_module("encoder", Encoder(config.width, depth));
  const int64_t h4_size = 8 * config.width * 2 * 2;
  switch (config.autoencoder) {
    case AutoencoderKind::kCae:
      to_latent_ = register_module("to_latent", nn::Linear(h4_size, config.latent));
      from_latent_ = register_module("from_latent", nn::Linear(config.latent, h4_size));
      break;
    case AutoencoderKind::kVae:
      to_latent_ = register_module("to_mu", nn::Linear(h4_size, config.latent));
      to_logvar_ = register_module("to_logvar", nn::Linear(h4_size, config.latent));
      from_latent_ = register_module("from_latent", nn::Linear(config.latent, h4_size));
      break;
    case AutoencoderKind::kVqVae: {
      if (config.codebook_size < 1) {
        throw ModelError(fmt::format("codebook_size must be positive, got {}", config.codebook_size));
      }
      const double k = config.codebook_size;
      codebook_ = register_parameter(
          "codebook", torch::empty({config.codebook_size, 8 * config.width}).uniform_(-1 / k, 1 / k));
      break;
    }
    case AutoencoderKind::kNone:
      break;
  }
  if (has_decoder()) decoder_ = register_module("decoder", Decoder(config.width));
  if (has_readout()) {
    readout_ = register_module(
        "readout", Readout(config.readout, layer_channels(config, config.layer),
                           layer_side(config.layer), config, mean_rates, fm_positions));
  }
}

torch::Tensor DaeNrImpl::quantise(const torch::Tensor& z_e, ModelOutput& out) {
  // z_e: (B, D, 2, 2) -> one D-vector per position, nearest code by L2 distance.
  const auto b = z_e.size(0), d = z_e.size(1);
  auto flat = z_e.permute({0, 2, 3, 1}).reshape({-1, d});
  auto dist = flat.pow(2).sum(1, true) - 2 * torch::matmul(flat, codebook_.t()) +
              codebook_.pow(2).sum(1).unsqueeze(0);
  auto codes = dist.argmin(1);
  auto e = codebook_.index_select(0, codes);
  // Codebook term pulls codes to the encoder; commitment keeps the encoder near
  // its codes (van den Oord et al. 2017).
  out.vq_loss = F::mse_loss(e, flat.detach()) + config_.commitment * F::mse_loss(flat, e.detach());
  {
    torch::NoGradGuard no_grad;
    auto counts = torch::bincount(codes, {}, config_.codebook_size).to(torch::kFloat);
    auto p = counts / counts.sum();
    out.perplexity = torch::exp(-(p * torch::log(p + 1e-10)).sum());
  }
  // Straight-through estimator: the decoder sees e, the encoder gets its gradient.
  auto q = flat + (e - flat).detach();
  return q.reshape({b, 2, 2, d}).permute({0, 3, 1, 2});
}

ModelOutput DaeNrImpl::forward(const torch::Tensor& x, bool need_reconstruction,
                               bool need_prediction) {
  ModelOutput out;
  const bool reconstruct = need_reconstruction && has_decoder();
  const bool predict = need_prediction && has_readout();
  const int depth = reconstruct ? 4 : config_.layer;
  const unsigned wanted = (predict ? 1u << (config_.layer - 1) : 0u) | (reconstruct ? 1u << 3 : 0u);
  auto h = encoder_->forward(x, depth, wanted);
  if (predict) {
    out.drive = readout_->drive(h[config_.layer - 1]);
    out.prediction = F::softplus(out.drive);
  }
  if (!reconstruct) return out;

  const auto& h4 = h[3];
  const auto b = h4.size(0);
  torch::Tensor dec_in;
  switch (config_.autoencoder) {
    case AutoencoderKind::kCae:
      dec_in = from_latent_->forward(to_latent_->forward(h4.reshape({b, -1})));
      break;
    case AutoencoderKind::kVae: {
      auto flat = h4.reshape({b, -1});
      auto mu = to_latent_->forward(flat);
      auto logvar = to_logvar_->forward(flat);
      out.kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean();
      // Sample while training; evaluation reconstructs from the mean so that
      // test metrics do not depend on a random draw.
      auto z = is_training() ? mu + torch::randn_like(mu) * torch::exp(0.5 * logvar) : mu;
      dec_in = from_latent_->forward(z);
      break;
    }
    case AutoencoderKind::kVqVae:
      dec_in = quantise(h4, out);
      break;
    case AutoencoderKind::kNone:
      break;
  }
  out.reconstruction = decoder_->forward(dec_in.reshape({b, 8 * config_.width, 2, 2}));
  return out;
}

torch::Tensor DaeNrImpl::code(const torch::Tensor& x) {
  if (!has_decoder()) throw ModelError("a model without an autoencoder has no code to decode");
  auto h4 = encoder_->forward(x, 4, 1u << 3)[3];
  const auto b = h4.size(0);
  switch (config_.autoencoder) {
    case AutoencoderKind::kCae:
    case AutoencoderKind::kVae:  // the mean: the code evaluation reconstructs from
      return to_latent_->forward(h4.reshape({b, -1}));
    default:
      return h4.reshape({b, -1});
  }
}

torch::Tensor DaeNrImpl::decode_code(const torch::Tensor& z) {
  if (!has_decoder()) throw ModelError("a model without an autoencoder has no decoder");
  const auto b = z.size(0);
  torch::Tensor dec_in;
  if (config_.autoencoder == AutoencoderKind::kVqVae) {
    ModelOutput unused;
    dec_in = quantise(z.reshape({b, 8 * config_.width, 2, 2}), unused);
  } else {
    dec_in = from_latent_->forward(z);
  }
  return decoder_->forward(dec_in.reshape({b, 8 * config_.width, 2, 2}));
}

torch::Tensor DaeNrImpl::readout_regulariser() const {
  return has_readout() ? readout_->regulariser() : torch::zeros({});
}

torch::Tensor rf_centres_to_positions(const torch::Tensor& centres31, int layer) {
  const int side = layer_side(layer);
  const double scale = (32.0 / 31.0) / static_cast<double>(1 << layer);
  auto c = centres31.to(torch::kDouble);
  // Pixel centres: pixel k of 31 covers [k, k+1); its centre maps to (k + 0.5) * 32/31.
  auto grid = torch::floor((c + 0.5) * scale).to(torch::kLong).clamp(0, side - 1);
  return grid.select(1, 0) * side + grid.select(1, 1);
}

torch::Tensor poisson_loss(const torch::Tensor& prediction, const torch::Tensor& target) {
  return (prediction - target * torch::log(prediction + 1e-5)).sum(1).mean();
}

namespace {

// Where PoissonSoftplusFunction's kernel takes the pair.
bool fused_poisson_applies(const torch::Tensor& drive, const torch::Tensor& target) {
  return cpu_float(drive) && cpu_float(target) && drive.dim() == 2 &&
         drive.sizes() == target.sizes() && drive.size(0) > 0;
}

}  // namespace

torch::Tensor poisson_loss_of_drive(const torch::Tensor& drive, const torch::Tensor& target) {
  if (fused_poisson_applies(drive, target)) return PoissonSoftplusFunction::apply(drive, target);
  return poisson_loss(F::softplus(drive), target);
}

double reconstruction_scale(const LossWeights& weights, const torch::Tensor& images) {
  if (weights.reconstruction == Reduction::kMean) return 1.0;
  // Pixels of one image: every dimension but the batch's.
  return static_cast<double>(images.numel() / std::max<int64_t>(1, images.size(0)));
}

LossTerms compute_loss(DaeNr& model, const ModelOutput& out, const torch::Tensor& images,
                       const torch::Tensor& responses, const LossWeights& weights) {
  LossTerms terms;
  // The weighted terms, summed as they come: starting from a zero would add an operator and
  // a backward node to every step for an exact no-op.
  torch::Tensor total;
  const auto add = [&total](const torch::Tensor& term) {
    total = total.defined() ? total + term : term;
  };
  if (out.reconstruction.defined()) {
    terms.reconstruction = F::mse_loss(out.reconstruction, images);
    auto ae = terms.reconstruction;
    if (out.kl.defined()) ae = ae + weights.kl_weight * out.kl;
    if (out.vq_loss.defined()) ae = ae + out.vq_loss;
    add(weights.alpha * reconstruction_scale(weights, images) * ae);
  }
  if (out.prediction.defined()) {
    // Elsewhere (a GPU) from the prediction the forward pass already made, not a second
    // softplus.
    terms.poisson = out.drive.defined() && fused_poisson_applies(out.drive, responses)
                        ? PoissonSoftplusFunction::apply(out.drive, responses)
                        : poisson_loss(out.prediction, responses);
    add(weights.beta * (terms.poisson + model->readout_regulariser()));
  }
  terms.total = total.defined() ? total : torch::zeros({}, images.options());
  return terms;
}

int parallel_for_threads(int64_t tasks) {
  std::atomic<int> seen{0};
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
    const int bit = 1 << std::min(at::get_thread_num(), 30);
    seen.fetch_or(bit);
  });
  return __builtin_popcount(static_cast<unsigned>(seen.load()));
}

}  // namespace daenr::models
