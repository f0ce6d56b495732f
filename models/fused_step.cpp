// The readout-only CNN's training step without autograd (models/network.h,
// fused_training_step). Autograd's path for this model is a chain of daenr's own functions
// (BlockedConvFunction, BnEluFunction, FromBlockedFunction, FactorisedReadoutFunction, and the
// loss's PoissonSoftplusFunction and L1ProductFunction, joined by an add and a multiply), and
// each of them is a thin wrapper over a pass in models/passes.h. Here the same passes run in
// the same order with the same inputs, and the scalar glue is the same ATen calls, so every
// gradient and loss has the bits autograd's path gives. What goes is autograd's own work:
// the graph's nodes, saved variables, the engine's queue, AccumulateGrad and the detaches.
#include <atomic>
#include <optional>
#include <vector>

#include "models/blocked_conv.h"
#include "models/network.h"
#include "models/passes.h"

namespace daenr::models {

namespace {

std::atomic<bool> fused_step_on{true};

// Where the step takes the model and batch: what the autograd path would run on daenr's
// passes end to end (EncoderImpl::takes_blocked_path, SyncBatchNorm2dImpl::forward_elu's fused
// branch, ReadoutImpl::drive's and compute_loss's CPU functions), with every parameter
// trained. Anything else (an autoencoder, an FC readout, a data-parallel group, evaluation, a
// frozen parameter, a GPU) goes through autograd.
bool applies(DaeNr& model, const torch::Tensor& images, const torch::Tensor& responses) {
  const auto& config = model->config();
  if (!model->is_training() || model->has_decoder() || !model->has_readout() ||
      !torch::GradMode::is_enabled()) {
    return false;
  }
  const auto kind = model->readout()->kind();
  if (kind != ReadoutKind::kFr && kind != ReadoutKind::kFm) return false;
  auto& encoder = *model->encoder();
  const int depth = config.layer;
  if (images.dim() != 4 || images.size(0) < 1 || !encoder.takes_blocked_path(images, depth)) {
    return false;
  }
  const auto& readout = *model->readout();
  if (!passes::cpu_float(readout.spatial()) || !passes::cpu_float(readout.features()) ||
      !passes::cpu_float(readout.bias()) || !passes::cpu_float(responses) || responses.dim() != 2 ||
      responses.size(0) != images.size(0) || responses.size(1) != readout.bias().numel()) {
    return false;
  }
  if (!readout.features().requires_grad() || !readout.bias().requires_grad() ||
      (kind == ReadoutKind::kFr && !readout.spatial().requires_grad())) {
    return false;
  }
  // h_depth's size must be the readout's: otherwise the autograd path's readout reports it.
  int64_t side_h = images.size(2), side_w = images.size(3);
  for (int i = 0; i < depth; ++i) {
    const auto& conv = encoder.conv(i);
    const auto& bn = encoder.batchnorm(i);
    if (!conv.weight.requires_grad() || !conv.bias.defined() || !conv.bias.requires_grad() ||
        !bn.weight.requires_grad() || !bn.bias.requires_grad()) {
      return false;
    }
    side_h = (side_h + 1) / 2;
    side_w = (side_w + 1) / 2;
    // BatchNorm needs two values per channel (forward_elu's fused branch otherwise declines).
    if (images.size(0) * side_h * side_w < 2) return false;
  }
  if (side_h * side_w != readout.spatial().size(1) ||
      encoder.conv(depth - 1).weight.size(0) != readout.features().size(1)) {
    return false;
  }
  // The step sets the gradients; autograd would add to any that are already there.
  for (const auto& p : model->parameters()) {
    if (p.grad().defined()) return false;
  }
  return true;
}

// One encoder layer's forward values, kept for its backward pass.
struct Layer {
  torch::Tensor input, conv_out, output, gamma, beta, mean, var;
};

}  // namespace

void use_fused_training_step(bool on) {
  fused_step_on = on;
}

std::optional<LossTerms> fused_training_step(DaeNr& model, const torch::Tensor& images,
                                             const torch::Tensor& responses,
                                             const LossWeights& weights) {
  if (!fused_step_on || !applies(model, images, responses)) return std::nullopt;
  const int depth = model->config().layer;
  auto& encoder = *model->encoder();
  auto& readout = *model->readout();
  const bool train_spatial = readout.kind() == ReadoutKind::kFr;
  // No call below is for autograd to record; the guard spares LibTorch's per-call checks.
  torch::NoGradGuard no_grad;

  // Forward, as EncoderImpl::forward's blocked path and forward_elu's fused branch.
  std::vector<Layer> layers(depth);
  torch::Tensor x = images;
  for (int i = 0; i < depth; ++i) {
    auto& conv = encoder.conv(i);
    auto& bn = encoder.batchnorm(i);
    Layer& l = layers[i];
    l.input = x;
    l.conv_out = passes::conv3x3s2_forward(x, conv.weight.contiguous(), conv.bias.contiguous());
    const auto shape_channels = l.conv_out.size(1) * kChannelBlock;
    l.mean = torch::empty({shape_channels}, l.conv_out.options());
    l.var = torch::empty({shape_channels}, l.conv_out.options());
    l.gamma = bn.weight.contiguous();
    l.beta = bn.bias.contiguous();
    l.output = passes::bn_elu_forward(l.conv_out, l.gamma, l.beta, bn.options.eps(), l.mean, l.var);
    bn.track_batch(l.mean, l.var, l.conv_out.numel() / shape_channels);
    x = l.output;
  }
  const auto h = passes::blocked_to_nchw(x);
  const auto& spatial = readout.spatial();
  const auto& features = readout.features();
  const auto drive = passes::readout_forward(h, spatial, features, readout.bias());

  // The loss, as compute_loss: beta * (Poisson + regulariser), the same ATen calls on the
  // same 0-dim values.
  const auto poisson = passes::poisson_softplus(drive.drive, responses);
  const auto l1 = passes::l1_product_forward(spatial, features, readout.l1());
  LossTerms terms;
  terms.poisson = poisson.loss;
  terms.total = weights.beta * (poisson.loss + l1.value);

  // Backward. The total's gradient is 1; the multiply's backward (MulBackward1) scales it by
  // beta, and the add's passes it to both terms unchanged.
  const auto g_terms = torch::ones_like(terms.total) * weights.beta;
  const auto g_drive = poisson.grad * g_terms;
  auto r = passes::readout_backward(g_drive, h, spatial, features, drive, true, train_spatial, true,
                                    true);
  torch::Tensor ds_l1, df_l1;
  passes::l1_product_backward(spatial, features, l1, readout.l1(), g_terms.item<double>(),
                              train_spatial ? &ds_l1 : nullptr, &df_l1);
  // AccumulateGrad adds a parameter's two gradients (the readout's and the penalty's) as one
  // add, which does not depend on their order.
  r.features.add_(df_l1);
  if (train_spatial) r.spatial.add_(ds_l1);
  auto g = passes::nchw_to_blocked(r.h);
  for (int i = depth - 1; i >= 0; --i) {
    auto& conv = encoder.conv(i);
    auto& bn = encoder.batchnorm(i);
    const Layer& l = layers[i];
    auto b = passes::bn_elu_backward(g, l.conv_out, l.output, l.gamma, l.beta, l.mean, l.var,
                                     bn.options.eps());
    auto c = passes::conv3x3s2_backward(l.input, conv.weight.contiguous(), b.x, i > 0, true);
    conv.weight.mutable_grad() = c.weight;
    conv.bias.mutable_grad() = c.bias;
    bn.weight.mutable_grad() = b.gamma;
    bn.bias.mutable_grad() = b.beta;
    g = c.x;
  }
  if (train_spatial) readout.spatial().mutable_grad() = r.spatial;
  readout.features().mutable_grad() = r.features;
  readout.bias().mutable_grad() = r.bias;
  return terms;
}

}  // namespace daenr::models
