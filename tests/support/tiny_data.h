#pragma once
// A tiny in-memory dataset with planted structure, for unit tests of models/
// and worker/ that must not depend on the simulated regions: each neuron's
// response is a rectified, noisy function of the mean intensity in a small
// window at a known place.

#include <torch/torch.h>

#include "models/data.h"

namespace daenr::testing {

inline torch::Tensor smooth_images(int64_t n, torch::Generator& gen) {
  // Random 8x8 noise upsampled to 32x32: smooth enough for a small CNN to fit.
  auto coarse = torch::rand({n, 1, 8, 8}, gen) * 2 - 1;
  namespace F = torch::nn::functional;
  return F::interpolate(coarse, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{32, 32})
                                    .mode(torch::kBilinear)
                                    .align_corners(false))
      .clamp(-1, 1);
}

inline torch::Tensor planted_responses(const torch::Tensor& images, int neurons,
                                       torch::Generator& gen) {
  const int64_t n = images.size(0);
  auto out = torch::empty({n, neurons});
  for (int k = 0; k < neurons; ++k) {
    const int64_t r = 6 + (k * 7) % 18, c = 6 + (k * 11) % 18;
    auto patch = images.index({torch::indexing::Slice(), 0, torch::indexing::Slice(r, r + 4),
                               torch::indexing::Slice(c, c + 4)});
    auto drive = patch.mean({1, 2}) * (k % 2 == 0 ? 3.0 : -3.0);
    out.select(1, k).copy_(torch::relu(drive + 0.3 * torch::randn({n}, gen)));
  }
  return out;
}

/// n_train / n_val / n_test images of 32x32 and `neurons` responses.
inline models::Dataset tiny_dataset(int64_t n_train = 96, int64_t n_val = 32, int64_t n_test = 24,
                                    int neurons = 6, uint64_t seed = 7) {
  auto gen = at::detail::createCPUGenerator(seed);
  models::Dataset d;
  d.train_images = smooth_images(n_train, gen);
  d.val_images = smooth_images(n_val, gen);
  d.test_images = smooth_images(n_test, gen);
  d.train_responses = planted_responses(d.train_images, neurons, gen);
  d.val_responses = planted_responses(d.val_images, neurons, gen);
  d.test_responses = planted_responses(d.test_images, neurons, gen);
  // Three noisy "trials" around the test responses, as a region with repeats.
  auto noise = 0.2 * torch::randn({3, n_test, neurons}, gen);
  d.test_raw = torch::relu(d.test_responses.unsqueeze(0) + noise);
  d.test_responses = d.test_raw.mean(0);
  namespace F = torch::nn::functional;
  d.train_images31 = F::interpolate(d.train_images, F::InterpolateFuncOptions()
                                                        .size(std::vector<int64_t>{31, 31})
                                                        .mode(torch::kBilinear)
                                                        .align_corners(false))
                         .squeeze(1);
  d.pixel_min = 0;
  d.pixel_max = 1;
  return d;
}

}  // namespace daenr::testing

namespace daenr::testing {

/// The planted neurons' RF centres as flat positions on h_layer's grid.
inline torch::Tensor planted_positions(int neurons, int layer) {
  const int side = 32 >> layer;
  auto out = torch::empty({neurons}, torch::kLong);
  for (int k = 0; k < neurons; ++k) {
    const int r = 6 + (k * 7) % 18, c = 6 + (k * 11) % 18;  // as in planted_responses
    out[k] = ((r + 2) >> layer) * side + ((c + 2) >> layer);
  }
  return out;
}

}  // namespace daenr::testing
