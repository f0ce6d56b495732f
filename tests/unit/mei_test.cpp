// Most exciting inputs: gradient ascent through toy neurons whose best image is known (a
// rectified linear filter's is the filter), the image constraints, determinism, batch
// independence with one target per model call (also through a real DaeNr) and targets grouped
// into model calls, and the
// ground-truth helpers against prepare() and hand-made filters.

#include "tests/support/error_of.h"
#include "models/mei.h"

#include <cmath>
#include <functional>
#include <gtest/gtest.h>
#include <iostream>
#include <numbers>
#include <string>
#include <vector>

#include "models/data.h"
#include "models/error.h"
#include "models/network.h"
#include "models/synth.h"

namespace daenr::models {
namespace {

using daenr::testing::error_of;

// A zero-mean, unit-norm Gabor on a side x side grid, row-major, float64.
torch::Tensor gabor(int side, double cy, double cx, double sigma, double wavelength, double theta,
                    double phase) {
  auto g = torch::empty({side * side}, torch::kDouble);
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      const double xr = (x - cx) * std::cos(theta) + (y - cy) * std::sin(theta);
      const double yr = -(x - cx) * std::sin(theta) + (y - cy) * std::cos(theta);
      g[y * side + x] = std::exp(-(xr * xr + yr * yr) / (2 * sigma * sigma)) *
                        std::cos(2 * std::numbers::pi * xr / wavelength + phase);
    }
  }
  g = g - g.mean();
  return g / g.norm();
}

double pearson(const torch::Tensor& a, const torch::Tensor& b) {
  const auto x = a.to(torch::kDouble).reshape({-1}), y = b.to(torch::kDouble).reshape({-1});
  const auto xc = x - x.mean(), yc = y - y.mean();
  return ((xc * yc).sum() / (xc.norm() * yc.norm())).item<double>();
}

// Four rectified linear neurons on the 32x32 grid, each with its own Gabor: rate_n =
// relu(<f_n, x>). Its stretch MEI at a fixed contrast is the filter itself (Cauchy-Schwarz).
struct ToyNeurons {
  torch::Tensor filters;  // (4, 1024) float32
  ToyNeurons() {
    filters =
        torch::stack({gabor(32, 12, 12, 3.0, 10, 0.3, 0.0), gabor(32, 20, 18, 3.5, 12, 1.7, 1.0),
                      gabor(32, 16, 22, 2.5, 9, 2.6, 2.0), gabor(32, 22, 9, 4.0, 13, 0.9, 0.5)})
            .to(torch::kFloat);
  }
  torch::Tensor operator()(const torch::Tensor& x) const {
    return torch::relu(x.reshape({x.size(0), -1}).matmul(filters.t()));
  }
};

// Contrast 0.1: a unit-norm Gabor of sigma 3 px scaled to an RMS of 0.3 over the whole image
// would peak near 2.6 and be clipped hard at 1; at 0.1 it fits in [-1, 1], so the image can be
// the filter itself.
MeiOptions toy_options() {
  MeiOptions o;
  o.settings.steps = 100;
  o.settings.starts = 3;
  o.settings.seed = 9;
  o.mean_level = 0.05;
  o.contrast = 0.1;
  return o;
}

TEST(Mei, TheMeiOfARectifiedLinearNeuronIsItsFilter) {
  const ToyNeurons toy;
  auto o = toy_options();
  o.settings.steps = 200;  // and the defaults: blur 2 -> 0.5, step 0.5
  // With jitter the ascent maximises the response averaged over shifts, whose optimum is the
  // filter averaged over them: shifts of +-2 px move a 9-13 px wavelength by up to 80 degrees
  // of phase. Jitter 1 keeps that small; jitter 2 (the default) is checked with a looser bound.
  o.settings.jitter = 1;
  const auto result = synthesise(toy, {0, 1, 2, 3}, o);
  ASSERT_EQ(result.images.sizes(), torch::IntArrayRef({4, 1, 32, 32}));
  EXPECT_EQ(result.images.scalar_type(), torch::kFloat);
  o.settings.jitter = 2;
  const auto jittered = synthesise(toy, {0, 1, 2, 3}, o);
  // Measured: r = 0.970-0.995 (jitter 1) and 0.931-0.984 (jitter 2) for the four neurons.
  for (int k = 0; k < 4; ++k) {
    const double r = pearson(result.images[k], toy.filters[k]);
    const double r2 = pearson(jittered.images[k], toy.filters[k]);
    EXPECT_GT(r, 0.95) << "neuron " << k;
    EXPECT_GT(r2, 0.9) << "neuron " << k;
    std::cout << "neuron " << k << ": r(MEI, filter) = " << r << " (jitter 1), " << r2
              << " (jitter 2)\n";
  }
}

TEST(Mei, EveryImageHasTheRequestedMeanAndContrastInsideTheRange) {
  const ToyNeurons toy;
  auto o = toy_options();
  o.mean_level = 0.1;
  o.contrast = 0.35;
  o.lo = -0.6;
  o.hi = 0.8;  // tight enough that the filters' peaks clip
  for (int steps : {0, 60}) {
    o.settings.steps = steps;
    const auto result = synthesise(toy, {0, 1, 2, 3}, o);
    const auto images = result.images.to(torch::kDouble).reshape({4, -1});
    const auto mean = images.mean(1), sd = (images - mean.unsqueeze(1)).square().mean(1).sqrt();
    // The projection repeats centre-scale-clamp until the clamped image has the mean and
    // contrast, so only float32 storage (about 1e-7) stands between an image and them.
    EXPECT_TRUE(torch::allclose(mean, torch::full({4}, 0.1, torch::kDouble), 0, 1e-5)) << mean;
    EXPECT_TRUE(torch::allclose(sd, torch::full({4}, 0.35, torch::kDouble), 0, 1e-5)) << sd;
    EXPECT_GE(result.images.min().item<float>(), static_cast<float>(o.lo));
    EXPECT_LE(result.images.max().item<float>(), static_cast<float>(o.hi));
    if (steps > 0) {
      EXPECT_EQ(result.images.max().item<float>(), static_cast<float>(o.hi));
    }
  }
}

TEST(Mei, SameSettingsGiveBitIdenticalImagesAndAnotherSeedOthers) {
  const ToyNeurons toy;
  const auto o = toy_options();
  const auto a = synthesise(toy, {1, 3}, o), b = synthesise(toy, {1, 3}, o);
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.start_objectives, b.start_objectives));
  auto other = o;
  other.settings.seed = 10;
  EXPECT_FALSE(torch::equal(a.images, synthesise(toy, {1, 3}, other).images));
}

// A small CAE-FR_2 with 6 neurons, randomly initialised (seed 3), in evaluation mode.
DaeNr tiny_cae_fr() {
  torch::manual_seed(3);
  ModelConfig c;
  c.autoencoder = AutoencoderKind::kCae;
  c.readout = ReadoutKind::kFr;
  c.layer = 2;
  c.width = 4;
  c.latent = 16;
  c.neurons = 6;
  DaeNr model(c, torch::full({6}, 0.5));
  model->eval();
  return model;
}

TEST(Mei, ATargetsImagesDoNotDependOnItsBatch) {
  const ToyNeurons toy;
  auto o = toy_options();
  o.targets_per_call = 1;
  const auto together = synthesise(toy, {0, 1, 2, 3}, o);
  // As a chunked job would run them: two chunks, and one target alone.
  const auto first = synthesise(toy, {0, 1}, o), second = synthesise(toy, {2, 3}, o);
  const auto alone = synthesise(toy, {2}, o);
  EXPECT_TRUE(torch::equal(torch::cat({first.images, second.images}), together.images));
  EXPECT_TRUE(torch::equal(torch::cat({first.start_objectives, second.start_objectives}),
                           together.start_objectives));
  EXPECT_TRUE(torch::equal(alone.images[0], together.images[2]));
}

TEST(Mei, ATargetsImagesDoNotDependOnItsBatchThroughADaeNr) {
  DaeNr model = tiny_cae_fr();
  const ResponseFunction responses = [&](const torch::Tensor& x) {
    return model->forward(x, false, true).prediction;
  };
  auto o = toy_options();
  o.settings.steps = 8;
  o.settings.starts = 2;
  o.targets_per_call = 1;
  const auto together = synthesise(responses, {0, 3, 5}, o);
  const auto alone = synthesise(responses, {3}, o);
  const auto pair = synthesise(responses, {5, 0}, o);
  EXPECT_TRUE(torch::equal(alone.images[0], together.images[1]));
  EXPECT_TRUE(torch::equal(pair.images[0], together.images[2]));
  EXPECT_TRUE(torch::equal(pair.images[1], together.images[0]));
  EXPECT_TRUE(torch::equal(alone.objective[0], together.objective[1]));
}

// Targets grouped into model calls: each step calls the model once per group with every start
// of the group's targets (the batch sizes say so), and the images are those of one call per
// target up to float rounding, deterministically.
TEST(Mei, GroupedModelCallsBatchTargetsAndStartsAndMatchOneCallPerTarget) {
  DaeNr model = tiny_cae_fr();
  std::vector<int64_t> batch_sizes;
  const ResponseFunction responses = [&](const torch::Tensor& x) {
    batch_sizes.push_back(x.size(0));
    return model->forward(x, false, true).prediction;
  };
  auto o = toy_options();
  o.settings.steps = 6;
  o.settings.starts = 3;
  const std::vector<int64_t> targets{0, 1, 3, 4, 5};
  o.targets_per_call = 1;
  const auto single = synthesise(responses, targets, o);
  for (int64_t per_call : {2, 0}) {
    o.targets_per_call = per_call;
    batch_sizes.clear();
    const auto grouped = synthesise(responses, targets, o);
    // 6 steps and the final evaluation, each with the same calls.
    const std::vector<int64_t> per_step =
        per_call == 2 ? std::vector<int64_t>{6, 6, 3} : std::vector<int64_t>{15};
    std::vector<int64_t> expected;
    for (int step = 0; step < 7; ++step) expected.insert(expected.end(), per_step.begin(), per_step.end());
    EXPECT_EQ(batch_sizes, expected) << "targets_per_call " << per_call;
    EXPECT_LT((grouped.images - single.images).abs().max().item<double>(), 1e-3)
        << "targets_per_call " << per_call;
    EXPECT_TRUE(torch::allclose(grouped.objective, single.objective, 1e-4, 1e-5));
    EXPECT_TRUE(torch::equal(grouped.images, synthesise(responses, targets, o).images));
  }
}

TEST(Mei, OneHotRaisesTheTargetsShareAboveItsShareForRandomImages) {
  const ToyNeurons toy;
  auto o = toy_options();
  o.settings.objective = job::MeiObjective::kOneHot;
  const std::vector<int64_t> targets = {0, 2};
  const auto result = synthesise(toy, targets, o);
  // Random images at the same mean and contrast: their share is about a quarter.
  auto gen = at::detail::createCPUGenerator(1);
  auto noise = torch::randn({200, 1024}, gen);
  noise = noise - noise.mean(1, true);
  noise = noise / noise.square().mean(1, true).sqrt() * o.contrast + o.mean_level;
  const auto random_share =
      objective_values(toy(noise), targets, job::MeiObjective::kOneHot).mean(0);
  const auto mei_share = objective_values(toy(result.images), targets, job::MeiObjective::kOneHot);
  // At contrast 0.1 no response exceeds |x - mean| = 0.1 x 32 = 3.2 (unit-norm, zero-mean
  // filters), so no share can exceed e^3.2 / (e^3.2 + 3) = 0.891, reached only if the other
  // three responses are 0. Measured: 0.870 and 0.853, against 0.25-0.3 for random images.
  for (int k = 0; k < 2; ++k) {
    EXPECT_LT(random_share[k].item<double>(), 0.35);
    EXPECT_GT(mei_share[k][k].item<double>(), 0.8) << "target " << targets[k];
    EXPECT_NEAR(result.objective[k].item<double>(), mei_share[k][k].item<double>(), 1e-6);
  }
}

TEST(Mei, TheKeptImageIsTheBestStart) {
  const ToyNeurons toy;
  auto o = toy_options();
  o.settings.steps = 3;  // too few steps for the starts to agree
  o.settings.starts = 5;
  const auto result = synthesise(toy, {0, 1, 2, 3}, o);
  ASSERT_EQ(result.start_objectives.sizes(), torch::IntArrayRef({4, 5}));
  const auto best = std::get<0>(result.start_objectives.max(1));
  EXPECT_TRUE(torch::equal(result.objective, best));
  const auto spread =
      std::get<0>(result.start_objectives.max(1)) - std::get<0>(result.start_objectives.min(1));
  EXPECT_GT(spread.min().item<double>(), 0);
  // The objective is the kept image's, evaluated again here without jitter.
  const auto again =
      objective_values(toy(result.images), {0, 1, 2, 3}, job::MeiObjective::kStretch);
  EXPECT_TRUE(torch::allclose(result.objective, again.diagonal(), 1e-6, 1e-6));
}

TEST(Mei, ObjectiveValuesByHandOnTwoImagesAndThreeNeurons) {
  // Row 0 exponentiates to (1, 2, 3): shares 1/6, 1/3, 1/2; row 1 to (4, 2, 2): 1/2, 1/4, 1/4.
  const auto a = torch::tensor({0.0, std::log(2.0), std::log(3.0), std::log(4.0), std::log(2.0),
                                std::log(2.0)})
                     .reshape({2, 3});
  const std::vector<int64_t> targets = {2, 0, 2};
  const auto stretch = objective_values(a, targets, job::MeiObjective::kStretch);
  const auto expected_stretch = torch::tensor({std::log(3.0), 0.0, std::log(3.0), std::log(2.0),
                                               std::log(4.0), std::log(2.0)},
                                              torch::kDouble)
                                    .reshape({2, 3});
  EXPECT_TRUE(torch::allclose(stretch, expected_stretch, 0, 1e-6));
  const auto share = objective_values(a, targets, job::MeiObjective::kOneHot);
  const auto expected_share =
      torch::tensor({0.5, 1.0 / 6, 0.5, 0.25, 0.5, 0.25}, torch::kDouble).reshape({2, 3});
  EXPECT_TRUE(torch::allclose(share, expected_share, 0, 1e-6)) << share;
  EXPECT_EQ(error_of<ModelError>([&] { objective_values(a, {3}, job::MeiObjective::kStretch); }),
            "objective_values: target neuron 3 does not exist (the responses have 3)");
}

TEST(Mei, SynthesiseRejectsBadInputWithOneLine) {
  const ToyNeurons toy;
  auto o = toy_options();
  EXPECT_EQ(error_of<ModelError>([&] { synthesise(toy, {}, o); }), "synthesise: no target neurons");
  EXPECT_EQ(error_of<ModelError>([&] {
              synthesise(toy, {1, 7}, o);
            }),
            "synthesise: target neuron 7 does not exist (the responses have 4)");
  EXPECT_EQ(error_of<ModelError>([&] { synthesise(toy, {-1}, o); }),
            "synthesise: target neuron -1 is negative");
  auto bad = o;
  bad.settings.blur_end = 0;
  EXPECT_EQ(error_of<ModelError>([&] { synthesise(toy, {0}, bad); }),
            "synthesise: mei.blur_start = 2, mei.blur_end = 0; both 0 (no blur) or both > 0 (a "
            "geometric decay cannot reach or leave 0)");
  bad = o;
  bad.mean_level = 1.5;
  EXPECT_EQ(error_of<ModelError>([&] { synthesise(toy, {0}, bad); }),
            "synthesise: mean_level = 1.5 is outside the range (-1, 1)");
  bad = o;
  bad.settings.starts = 0;
  EXPECT_EQ(error_of<ModelError>([&] { synthesise(toy, {0}, bad); }),
            "synthesise: mei.starts = 0; expected >= 1");
  bad = o;
  bad.targets_per_call = -1;
  EXPECT_EQ(error_of<ModelError>([&] { synthesise(toy, {0}, bad); }),
            "synthesise: targets_per_call = -1; expected >= 0 (0: all)");
  const ResponseFunction detached = [&](const torch::Tensor& x) { return toy(x).detach(); };
  EXPECT_EQ(error_of<ModelError>([&] { synthesise(detached, {0}, o); }),
            "synthesise: the responses do not depend differentiably on the images (computed "
            "under NoGradGuard, or detached?)");
}

TEST(Mei, ToFileUnitsInvertsPrepare) {
  // White-noise file images, the hardest case for a 32 -> 31 resize: a plain bilinear
  // downsampling would miss them by tens of percent of their range.
  auto gen = at::detail::createCPUGenerator(2);
  RawRegion raw;
  auto draw = [&](int64_t n) {
    return 0.002 + 0.01 * torch::rand({n, 961}, gen, torch::TensorOptions().dtype(torch::kDouble));
  };
  raw.train_inputs = draw(10);
  raw.train_responses = torch::ones({10, 2}, torch::kDouble);
  raw.test_inputs = draw(4);
  raw.test_responses = torch::ones({4, 2}, torch::kDouble);
  const auto d = prepare(raw, 0);
  const auto back = to_file_units(d.test_images, d.pixel_min, d.pixel_max);
  ASSERT_EQ(back.sizes(), torch::IntArrayRef({4, 961}));
  // float32 images: about 1e-7 of the range (0.01), a little more through the inverse.
  EXPECT_LT((back - raw.test_inputs).abs().max().item<double>(), 1e-8);
  EXPECT_EQ(error_of<ModelError>([&] { to_file_units(d.test_images, 1, 1); }),
            "to_file_units: pixel_max = 1 is not above pixel_min = 1");
  EXPECT_EQ(error_of<ModelError>([&] {
              to_file_units(torch::zeros({2, 32, 32}), 0, 1);
            }),
            "to_file_units: expected images (n, 1, 32, 32), found shape (2, 32, 32)");
}

// A 31x31 filter as the model sees it: on the 32x32 grid through prepare's resize.
torch::Tensor as_image32(const torch::Tensor& filter31) {
  return resize_31_to_32(filter31.reshape({1, 961}) * 2.0).reshape({1, 1, 32, 32});
}

TEST(Mei, RfCorrelationMatchesTheEvenFilterAndIgnoresPhaseForComplexCells) {
  const auto even = gabor(31, 14, 16, 3.0, 9, 0.8, 0.0),
             odd = gabor(31, 14, 16, 3.0, 9, 0.8, std::numbers::pi / 2);
  const auto pair = torch::stack({even, odd});
  EXPECT_GT(rf_correlation(as_image32(even), pair, false), 0.999);
  EXPECT_LT(rf_correlation(as_image32(-even), pair, false), -0.999);
  // The quadrature partner: invisible to the simple cell, as good as the even filter to the
  // complex one.
  EXPECT_LT(std::abs(rf_correlation(as_image32(odd), pair, false)), 0.05);
  EXPECT_GT(rf_correlation(as_image32(odd), pair, true), 0.999);
  EXPECT_GT(rf_correlation(as_image32(-even), pair, true), 0.999);
  EXPECT_EQ(rf_correlation(torch::full({1, 32, 32}, 0.3), pair, false), 0.0);
  EXPECT_EQ(error_of<ModelError>([&] { rf_correlation(as_image32(even), even, false); }),
            "rf_correlation: expected a filter pair (2, 961), found shape (961)");
}

TEST(Mei, ImageCentreFindsABlobsCentreOnThe31Grid) {
  auto blob = torch::empty({31, 31}, torch::kDouble);
  for (int r = 0; r < 31; ++r) {
    for (int c = 0; c < 31; ++c) {
      blob[r][c] = 0.2 + 0.6 * std::exp(-((r - 10.3) * (r - 10.3) + (c - 20.6) * (c - 20.6)) / 8.0);
    }
  }
  auto centre = image_centre(resize_31_to_32(blob.reshape({1, 961})));
  EXPECT_NEAR(centre[0], 10.3, 0.2);
  EXPECT_NEAR(centre[1], 20.6, 0.2);
  // A floor of weak texture everywhere: the median subtraction keeps it from pulling the
  // centre to the middle (15, 15).
  auto gen = at::detail::createCPUGenerator(8);
  const auto noisy =
      blob + 0.03 * torch::randn({31, 31}, gen, torch::TensorOptions().dtype(torch::kDouble));
  centre = image_centre(resize_31_to_32(noisy.reshape({1, 961})));
  EXPECT_NEAR(centre[0], 10.3, 0.5);
  EXPECT_NEAR(centre[1], 20.6, 0.5);
  EXPECT_EQ(error_of<ModelError>([] {
              image_centre(torch::zeros({1, 1, 32, 32}));
            }),
            "image_centre: the image is constant; it has no centre");
}

TEST(Mei, SimulatedNeuronsMeisRecoverTheirFiltersAndCentres) {
  // Toy versions of virtual region 1's first simple and first complex cells, differentiable
  // and on the model's grid: relu(<e, x>) and <e, x>^2 + <o, x>^2 with the filters resized as
  // prepare resizes images.
  const VirtualNeurons neurons(virtual_region_spec(1), 1);
  const auto filters = neurons.filters();
  const auto complex = neurons.complex_cells();
  int64_t simple_cell = -1, complex_cell = -1;
  for (int64_t m = 0; m < neurons.size() && (simple_cell < 0 || complex_cell < 0); ++m) {
    if (complex[m].item<bool>()) {
      if (complex_cell < 0) complex_cell = m;
    } else if (simple_cell < 0) {
      simple_cell = m;
    }
  }
  ASSERT_GE(simple_cell, 0);
  ASSERT_GE(complex_cell, 0);
  auto on32 = [](const torch::Tensor& f) {
    return resize_31_to_32(f.reshape({1, 961})).reshape({1024});
  };
  const auto w = torch::stack({on32(filters[simple_cell][0]), on32(filters[complex_cell][0]),
                               on32(filters[complex_cell][1])});
  const ResponseFunction toy = [&](const torch::Tensor& x) {
    const auto d = x.reshape({x.size(0), -1}).matmul(w.t());
    return torch::stack(
        {torch::relu(d.select(1, 0)), d.select(1, 1).square() + d.select(1, 2).square()}, 1);
  };
  auto o = toy_options();
  o.settings.steps = 150;
  o.settings.jitter = 1;  // these filters' wavelengths go down to 5 px
  const auto result = synthesise(toy, {0, 1}, o);
  const int64_t cells[2] = {simple_cell, complex_cell};
  for (int k = 0; k < 2; ++k) {
    const double r = rf_correlation(result.images[k], filters[cells[k]], k == 1);
    const auto centre = image_centre(result.images[k]);
    const double error = std::hypot(centre[0] - neurons.centres()[cells[k]][0].item<double>(),
                                    centre[1] - neurons.centres()[cells[k]][1].item<double>());
    std::cout << "cell " << cells[k] << ": r = " << r << ", centre error " << error << " px\n";
    // Measured: r = 0.927 (simple) and 0.997 (complex), centre errors 0.56 and 0.32 px.
    EXPECT_GT(r, 0.9) << "cell " << cells[k];
    EXPECT_LT(error, 1.0) << "cell " << cells[k];
  }
}

}  // namespace
}  // namespace daenr::models
