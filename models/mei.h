#pragma once
// Most exciting inputs (MEIs): images that drive chosen neurons of a trained model, found by
// gradient ascent on the model's predicted responses, and the ground truth to judge them by
// for simulated neurons (how well an MEI matches the neuron's true filter, and where it lies).
//
// Images are the model's: (B, 1, 32, 32) on its [-1, 1] scale. Every image is held at a fixed
// mean and RMS contrast (the pixel standard deviation) so that neurons are compared at equal
// "energy": without that bound, gradient ascent would only raise the contrast.

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "job/kind.h"

namespace daenr::models {

struct MeiOptions {
  job::MeiSettings settings;
  double mean_level = 0;   ///< the mean pixel value every image is held at (the test images' mean)
  double contrast = 0.3;   ///< the RMS contrast (pixel std) every image is held at
  double lo = -1, hi = 1;  ///< the pixel range every image is clamped to
  /// How many targets `responses` sees in one call, with all their starts (0: every target in
  /// one call). A target's images depend on its call's batch at float rounding: LibTorch's CPU
  /// convolutions and matrix products round an image's result differently with the batch's
  /// size and the image's place in it. So a run reproduces another bit for bit only with the
  /// same targets grouped the same way: a chunked job must chunk the same way on resume (it
  /// does: the chunk is a job setting), and targets_per_call = 1 makes every target's bits
  /// independent of what else is optimised. Throughput (bench/README.md): a GPU wants every
  /// image in one call; a CPU core wants batches that keep a call's activations in its cache.
  int64_t targets_per_call = 0;
};

struct MeiResult {
  torch::Tensor images;            ///< (K, 1, 32, 32) float32: the best start per target
  torch::Tensor objective;         ///< (K) float64: its objective, without jitter
  torch::Tensor start_objectives;  ///< (K, S) float64: every start's final objective
};

/// Maps images (B, 1, 32, 32) to predicted responses (B, N), differentiably. A DaeNr must be in
/// eval mode (so that an image's responses do not depend on the others in its batch):
///   model->eval();
///   auto responses = [&](const torch::Tensor& x) { return model->forward(x, false,
///   true).prediction; };
using ResponseFunction = std::function<torch::Tensor(const torch::Tensor&)>;

/// Gradient ascent from options.settings.starts seeded noise images per target, all targets
/// and starts in one step (one backward pass per step; one forward call per
/// options.targets_per_call targets, every start of them together). Each step: every image is
/// shifted circularly by a random integer (dy, dx) in [-jitter, jitter]; the objective is the
/// target's response (kStretch) or its softmax share of the population's responses (kOneHot);
/// the gradient (taken through the shift, so it is shifted back) is blurred by a Gaussian whose
/// sigma goes geometrically from blur_start to blur_end over the steps (both 0: no blur),
/// divided by its RMS per image and added times step_size * contrast (a step's RMS is
/// step_size times the image's contrast, as MeiSettings::step_size reads); then the
/// image is projected back onto the mean level, RMS contrast and range. After the last step
/// every start is evaluated without jitter and the best (the first on ties) is kept.
///
/// Every random draw (a start's noise, its shifts) is a function of (settings.seed, target,
/// start, step) alone and the per-image arithmetic outside `responses` is plain per-image
/// loops, so a target's images depend on the other targets only through the model calls it
/// shares with them: with targets_per_call = 1, a run chunked over targets reproduces an
/// unchunked one bit for bit, and with any grouping to float rounding (both checked for DaeNr
/// in tests/unit/mei_test.cpp). Bits may differ between CPU types and thread counts (the
/// model's kernels).
///
/// Throws ModelError for no targets, a negative target or one >= N, options out of range
/// (starts < 1, steps < 0, targets_per_call < 0, step_size <= 0, negative blur or jitter, only one of the blurs 0,
/// contrast <= 0, lo >= hi, mean_level outside (lo, hi)) and responses of the wrong shape.
MeiResult synthesise(const ResponseFunction& responses, const std::vector<int64_t>& targets,
                     const MeiOptions& options);

/// (B, K) float64: the objective of every image (row of `responses`, (B, N)) for every target:
/// the target's response (kStretch) or its softmax share softmax(row)[target] (kOneHot).
/// Throws ModelError for a target outside [0, N) or responses that are not 2-D.
torch::Tensor objective_values(const torch::Tensor& responses, const std::vector<int64_t>& targets,
                               job::MeiObjective objective);

/// The model's images (n, 1, 32, 32) on [-1, 1] in the data files' units, (n, 961) float64 on
/// the 31x31 grid: the inverse of prepare()'s map. The 32 -> 31 resize is the least-squares
/// inverse of prepare's bilinear 31 -> 32 resize (the pseudo-inverse of its separable matrix),
/// so an image that came from the data returns to its file values up to float32 rounding (and
/// any other to the 31x31 image whose resize is nearest it; pixel-alternating detail mid-image,
/// which the resize damps to a quarter per axis, comes back amplified as much); then
/// [-1, 1] goes back to [pixel_min, pixel_max]. Throws ModelError for other shapes or
/// pixel_max <= pixel_min.
torch::Tensor to_file_units(const torch::Tensor& images32, double pixel_min, double pixel_max);

/// Pearson r between an image (1, 32, 32) or (1, 1, 32, 32) of the model's, taken to the 31x31
/// grid as in to_file_units (r does not depend on the units), and a neuron's filter pair (2, 961)
/// (VirtualNeurons::filters()[m]): r with the even filter for a simple cell, sqrt(r_even^2 +
/// r_odd^2) for a complex cell (its response does not depend on the phase). 0 for a constant
/// image. Throws ModelError for other shapes.
double rf_correlation(const torch::Tensor& image32, const torch::Tensor& filters,
                      bool complex_cell);

/// Where on the 31x31 grid (row, col) an image's contrast lies: the image taken to the 31x31 grid,
/// its squared deviation from its mean smoothed by a Gaussian (sigma 1 px), less that map's
/// median (so that a uniform floor of weak texture does not pull the centre towards the middle),
/// clipped at 0; the centroid of what is left. The centre error of a simulated neuron's MEI is
/// the Euclidean distance from this to VirtualNeurons::centres()[m]. Throws ModelError for a
/// constant image or other shapes.
std::array<double, 2> image_centre(const torch::Tensor& image32);

}  // namespace daenr::models
