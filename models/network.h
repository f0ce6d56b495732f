#pragma once
// The DAE-NR model family: a convolutional encoder exposing h1..h4, an optional
// autoencoder head (CAE, VAE, VQ-VAE) with its decoder, and an optional readout
// (FR, FC, FM) on one h_i that predicts the neurons' responses. Sizes follow
// shared/design/MODELS.md with the channel count of h1 as a parameter ("width",
// 32 in the paper's setting) so that tests and benchmarks can use tiny models.
//
// A model holds only what its job trains: with autoencoder "none" there is no
// decoder (the paper's CNN-FR_i / CNN-FC_i / CNN-FM_i baselines, and the
// encoder stops at h_i); with readout "none" there is no readout (the DAE
// baselines).

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <torch/torch.h>

#include "job/model_config.h"

namespace daenr::models {

// The model's description is the job contract's (job/model_config.h, no LibTorch); models/
// re-exports it so that code building networks names everything under models::.
using job::AutoencoderKind;
using job::LossWeights;
using job::ModelConfig;
using job::parse_autoencoder;
using job::parse_readout;
using job::parse_reduction;
using job::ReadoutKind;
using job::Reduction;
using job::to_string;

/// Channels and spatial side of h_i for a 32x32 input.
int layer_channels(const ModelConfig& config, int layer);
int layer_side(int layer);

/// What a forward pass produced. Tensors that the pass did not compute are
/// undefined (check with .defined()).
struct ModelOutput {
  torch::Tensor reconstruction;  ///< (B, 1, 32, 32) in (-1, 1)
  torch::Tensor prediction;      ///< (B, N) predicted responses, > 0
  torch::Tensor drive;           ///< (B, N) the readout's drive: prediction = softplus(drive)
  torch::Tensor kl;              ///< VAE: scalar KL divergence (mean over batch)
  torch::Tensor vq_loss;         ///< VQ-VAE: codebook + commitment * commitment loss
  torch::Tensor perplexity;      ///< VQ-VAE: codebook perplexity of this batch
};

/// Sums a tensor in place over the processes of a data-parallel group. models/ knows no MPI:
/// the worker makes one from its GradientReducer. Every process of the group must call it
/// in the same order with tensors of the same shape.
using GroupSum = std::function<void(torch::Tensor&)>;

/// BatchNorm2d (affine, with running statistics) whose training statistics can span a
/// data-parallel group (synchronised batch normalisation). Without a group, and in eval mode,
/// it computes what torch::nn::BatchNorm2d computes, with the same native kernel. With a
/// group, training batches are normalised by the mean and variance of the whole group's
/// batch: each process sums x and x^2 per channel (in float64) and the sums are added over the
/// group by a differentiable all-reduce, whose backward all-reduces the sums' gradients. R
/// processes with a share each thus compute the forward and backward pass of one process with
/// the whole batch. Parameters and buffers are BatchNorm2d's, under its names and in its order
/// (weight, bias; running_mean, running_var, num_batches_tracked), so checkpoints do not
/// depend on which of the two wrote them. (It does not derive from BatchNorm2dImpl: LibTorch
/// does not export all of that class's members.)
class SyncBatchNorm2dImpl : public torch::nn::Cloneable<SyncBatchNorm2dImpl> {
 public:
  explicit SyncBatchNorm2dImpl(int64_t features);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);
  /// elu(forward(x)) with ELU's alpha = 1, the blocks' BatchNorm -> ELU. In training
  /// without a group, on a contiguous float32 CPU tensor, both run as one fused kernel
  /// (models/bn_elu_kernels.h) that keeps each channel in cache across its passes: the
  /// separate native kernels took about 30% of a CAE training step. Everywhere else it is
  /// the two modules' own forward.
  torch::Tensor forward_elu(const torch::Tensor& x);
  /// Folds a training batch's statistics (float mean and biased variance per channel, over
  /// `per_channel` values each) into the running averages and counts the batch, as
  /// BatchNorm2d does: what forward_elu's fused path does after its kernel.
  void track_batch(const torch::Tensor& mean, const torch::Tensor& var, int64_t per_channel);
  /// Null: no group (the native path).
  void set_group(std::shared_ptr<const GroupSum> sum) { group_sum_ = std::move(sum); }
  bool has_group() const { return group_sum_ != nullptr; }

  torch::nn::BatchNorm2dOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  torch::Tensor forward_group(const torch::Tensor& x);
  std::shared_ptr<const GroupSum> group_sum_;
};
TORCH_MODULE(SyncBatchNorm2d);

/// Gives every SyncBatchNorm2d inside `model` the group `sum` (empty: none, the native path).
/// Returns how many there were. Set it between steps, never between a forward and its backward.
int set_batchnorm_group(torch::nn::Module& model, const GroupSum& sum);

/// Conv k3 s2 p1 -> BatchNorm -> ELU, four times. forward(x, depth, wanted) returns
/// h1..h_depth as NCHW maps; h_i with bit i - 1 of `wanted` clear may be undefined.
///
/// On the CPU, where every layer's channels are a multiple of 16 (width 16, 32, ...) and the
/// BatchNorms run on daenr's fused kernels (training without a data-parallel group, or
/// evaluation without autograd), the maps between the layers stay in oneDNN's blocked layout
/// (models/blocked_conv.h) and only the wanted h_i are converted: the same results, to
/// rounding, without LibTorch converting every convolution's input and output.
class EncoderImpl : public torch::nn::Module {
 public:
  EncoderImpl(int width, int depth);
  std::vector<torch::Tensor> forward(torch::Tensor x, int depth, unsigned wanted = ~0u);
  int depth() const { return static_cast<int>(blocks_.size()); }
  /// Off: always LibTorch's NCHW convolutions (for comparisons in tests and benchmarks).
  void use_blocked_layout(bool on) { blocked_layout_ = on; }
  /// Whether forward(x, depth) takes the blocked path.
  bool takes_blocked_path(const torch::Tensor& x, int depth) const;
  /// Block i's (0-based) convolution and BatchNorm, for models/fused_step.cpp.
  torch::nn::Conv2dImpl& conv(int i) const;
  SyncBatchNorm2dImpl& batchnorm(int i) const;

 private:
  std::vector<torch::nn::Sequential> blocks_;
  bool blocked_layout_ = true;
};
TORCH_MODULE(Encoder);

/// Turns the blocked layout of every Encoder inside `model` on or off (EncoderImpl).
void use_blocked_layout(torch::nn::Module& model, bool on);

/// ConvTranspose2d(in, out, k3, s2, p1, output_padding 1), the same parameters
/// and initialisation. On the CPU (float32) it is computed as the input gradient
/// of the stride-2 convolution it transposes, so that it and its own gradients run
/// on oneDNN's direct convolutions: LibTorch 1.13's transposed convolution is
/// im2col + BLAS there, about half of a CAE training step, and an earlier form
/// (a 2x2 convolution per output phase + pixel shuffle) took 2x what this takes.
class UpConvImpl : public torch::nn::Module {
 public:
  UpConvImpl(int in, int out);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;  ///< as ConvTranspose2d: (in, out, 3, 3) and (out)
};
TORCH_MODULE(UpConv);

/// A stride-1 3x3 convolution with padding 1 (the decoder's last layer, width -> 1 channel),
/// computed on the CPU as one matrix product per tap over the input channels and a shifted sum
/// of the tap planes: oneDNN pads a single output channel to a block of 16. Same result and
/// gradients as conv2d(x, weight, bias, padding 1), to rounding; x is (B, C, H, W) float.
torch::Tensor conv3x3_by_taps(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias);

/// Mirrors the encoder from a (8 width, 2, 2) map to a 1x32x32 image in (-1, 1).
class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(int width);
  torch::Tensor forward(torch::Tensor h4);

 private:
  std::vector<torch::nn::Sequential> blocks_;
  torch::nn::Conv2d out_{nullptr};
};
TORCH_MODULE(Decoder);

/// A readout from one feature map (B, C, S, S) to N responses.
class ReadoutImpl : public torch::nn::Module {
 public:
  /// `mean_rates` (N): mean training response per neuron, for the bias init.
  /// `fm_positions` (N) int64: flat index of each neuron's RF centre on the
  /// S x S grid; required for FM, ignored otherwise.
  ReadoutImpl(ReadoutKind kind, int channels, int side, const ModelConfig& config,
              const torch::Tensor& mean_rates, const torch::Tensor& fm_positions);
  /// softplus(drive(h)): the predicted responses (B, N).
  torch::Tensor forward(const torch::Tensor& h);
  /// The responses before the softplus (B, N).
  torch::Tensor drive(const torch::Tensor& h);
  /// The readout's own penalty, already weighted (FR/FM sparsity, FC L2).
  torch::Tensor regulariser() const;
  ReadoutKind kind() const { return kind_; }
  /// FR/FM: the non-negative spatial masks (N, S*S).
  torch::Tensor spatial_masks() const;
  /// FR/FM, as stored: the spatial masks (N, S*S; a parameter for FR, FM's fixed buffer),
  /// the feature weights (N, C), the bias (N) and the regulariser's weight.
  const torch::Tensor& spatial() const { return spatial_; }
  const torch::Tensor& features() const { return features_; }
  const torch::Tensor& bias() const { return bias_; }
  double l1() const { return l1_; }

 private:
  ReadoutKind kind_;
  double l1_, l2_;
  torch::Tensor spatial_;   // FR: (N, P) parameter; FM: (N, P) one-hot buffer
  torch::Tensor features_;  // FR/FM: (N, C)
  torch::Tensor bias_;      // FR/FM: (N)
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear linear_{nullptr};  // FC
};
TORCH_MODULE(Readout);

/// The whole model of one job.
class DaeNrImpl : public torch::nn::Module {
 public:
  DaeNrImpl(const ModelConfig& config, const torch::Tensor& mean_rates,
            const torch::Tensor& fm_positions = {});
  /// `need_reconstruction` / `need_prediction` let evaluation skip a head
  /// whose metrics are not wanted; both default to what the model has.
  ModelOutput forward(const torch::Tensor& x, bool need_reconstruction = true,
                      bool need_prediction = true);
  torch::Tensor readout_regulariser() const;
  /// The autoencoder's code of images x (B, 1, 32, 32), flat (B, D): the CAE's latent z, the
  /// VAE's mean, the VQ-VAE's encoder output before quantisation. What a decode job maps
  /// neural responses to. Models without a decoder have no code (ModelError).
  torch::Tensor code(const torch::Tensor& x);
  /// Images (B, 1, 32, 32) from codes (B, D) as `code` returns them, through the trained
  /// decoder (the VQ-VAE quantises first, as in training): code then decode_code is the
  /// evaluation-mode reconstruction.
  torch::Tensor decode_code(const torch::Tensor& z);
  const ModelConfig& config() const { return config_; }
  bool has_decoder() const { return config_.autoencoder != AutoencoderKind::kNone; }
  bool has_readout() const { return config_.readout != ReadoutKind::kNone; }
  Readout& readout() { return readout_; }
  Encoder& encoder() { return encoder_; }

 private:
  torch::Tensor quantise(const torch::Tensor& z_e, ModelOutput& out);

  ModelConfig config_;
  Encoder encoder_{nullptr};
  Decoder decoder_{nullptr};
  torch::nn::Linear to_latent_{nullptr};   // CAE: h4 -> z; VAE: h4 -> mu
  torch::nn::Linear to_logvar_{nullptr};   // VAE
  torch::nn::Linear from_latent_{nullptr}; // CAE / VAE: z -> h4-shaped map
  torch::Tensor codebook_;                 // VQ-VAE: (K, D)
  Readout readout_{nullptr};
};
TORCH_MODULE(DaeNr);

/// Map each neuron's RF centre (row, col) on the 31x31 image grid to a flat
/// position on h_i's S x S grid: scale to the 32x32 resized image, divide by
/// the layer's stride 2^i, clamp.
torch::Tensor rf_centres_to_positions(const torch::Tensor& centres31, int layer);

/// Mean over the batch of sum over neurons of (s_hat - s log(s_hat + 1e-5)).
torch::Tensor poisson_loss(const torch::Tensor& prediction, const torch::Tensor& target);

/// poisson_loss(softplus(drive), target), on the CPU as one kernel (float32, 2-D): the same
/// value to rounding, and its gradient.
torch::Tensor poisson_loss_of_drive(const torch::Tensor& drive, const torch::Tensor& target);

/// The factor that turns the per-pixel mean squared error of (B, 1, H, W) images into the
/// configured reduction: H * W for kSum, 1 for kMean. The whole autoencoder term (MSE, KL,
/// VQ) is multiplied by it, so the ratios inside that term do not depend on the reduction.
double reconstruction_scale(const LossWeights& weights, const torch::Tensor& images);

struct LossTerms {
  torch::Tensor total;           ///< what is minimised
  torch::Tensor reconstruction;  ///< MSE, undefined without a decoder
  torch::Tensor poisson;         ///< undefined without a readout
};

/// total = alpha * scale * (MSE + kl_weight * KL + vq_loss) + beta * (Poisson + readout
/// regulariser), scale = reconstruction_scale (the pixels per image for the paper's sum).
/// The autoencoder's own terms scale with alpha and the readout's with beta, so that a weight
/// of 0 switches a whole head off. LossTerms::reconstruction stays the per-pixel MSE.
LossTerms compute_loss(DaeNr& model, const ModelOutput& out, const torch::Tensor& images,
                       const torch::Tensor& responses, const LossWeights& weights);

/// One training step of the readout-only CNN (autoencoder "none", an FR or FM readout) on the
/// CPU without autograd: the passes that forward, compute_loss and backward run
/// (models/passes.h), called in a chain. It sets every parameter's gradient, updates the
/// BatchNorms' running averages and returns the loss terms, all with the same bits as
/// `compute_loss(model, model->forward(images), ...).total.backward()` from dropped gradients.
/// A step of that path at batch 32 made 179 LibTorch calls and autograd records, each a few
/// microseconds of dispatch and bookkeeping; this one makes 108, and the step is 1.08x faster
/// on one thread (bench/README.md, "The fused training step"). Returns nullopt, having changed
/// nothing, where the model, the batch or the mode is not one it takes (models/fused_step.cpp);
/// then use that path.
std::optional<LossTerms> fused_training_step(DaeNr& model, const torch::Tensor& images,
                                             const torch::Tensor& responses,
                                             const LossWeights& weights);

/// Turns fused_training_step off (it then always returns nullopt) or back on, for the whole
/// process; on by default. For comparisons in tests and benchmarks
/// (`daenr_bench_train --no-fused-step`): both paths give the same bits.
void use_fused_training_step(bool on);

/// How many threads at::parallel_for gives this library's kernels for `tasks` tasks at the
/// current intra-op thread count: for tests. ATen's header runs the loop on the calling thread
/// alone in a file compiled without OpenMP (CMakeLists.txt), so a wrong build says 1.
int parallel_for_threads(int64_t tasks);

}  // namespace daenr::models
