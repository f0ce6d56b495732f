// The evaluation metrics against closed forms, hand-worked examples and
// independent plain-loop computations (docs/metrics.md).

#include "models/metrics.h"
#include "models/npy.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "models/error.h"

namespace daenr::models {
namespace {

torch::Tensor column(std::vector<double> v) {
  return torch::tensor(v, torch::kDouble).reshape({-1, 1});
}

// SSIM of two single-channel images on [-1, 1], written out with plain loops:
// every VALID 11x11 window, Gaussian weights from std::exp, population moments.
double hand_ssim(const torch::Tensor& x, const torch::Tensor& y) {
  const int64_t h = x.size(0), w = x.size(1);
  auto xa = x.to(torch::kDouble).contiguous();
  auto ya = y.to(torch::kDouble).contiguous();
  const double* px = xa.data_ptr<double>();
  const double* py = ya.data_ptr<double>();
  double weight[11][11];
  double total = 0;
  for (int i = 0; i < 11; ++i) {
    for (int j = 0; j < 11; ++j) {
      weight[i][j] = std::exp(-((i - 5) * (i - 5) + (j - 5) * (j - 5)) / (2 * 1.5 * 1.5));
      total += weight[i][j];
    }
  }
  const double c1 = 1e-4, c2 = 9e-4;
  double sum = 0;
  int64_t count = 0;
  for (int64_t r = 0; r + 11 <= h; ++r) {
    for (int64_t c = 0; c + 11 <= w; ++c) {
      double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
      for (int i = 0; i < 11; ++i) {
        for (int j = 0; j < 11; ++j) {
          const double a = (px[(r + i) * w + c + j] + 1) / 2;
          const double b = (py[(r + i) * w + c + j] + 1) / 2;
          const double k = weight[i][j] / total;
          mx += k * a;
          my += k * b;
        }
      }
      for (int i = 0; i < 11; ++i) {
        for (int j = 0; j < 11; ++j) {
          const double a = (px[(r + i) * w + c + j] + 1) / 2 - mx;
          const double b = (py[(r + i) * w + c + j] + 1) / 2 - my;
          const double k = weight[i][j] / total;
          sxx += k * a * a;
          syy += k * b * b;
          sxy += k * a * b;
        }
      }
      sum += (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sxx + syy + c2));
      ++count;
    }
  }
  return sum / static_cast<double>(count);
}

TEST(Metrics, MseOfKnownTensors) {
  auto x = torch::tensor({0.0, 1.0, -1.0, 0.5}).reshape({1, 1, 2, 2});
  auto y = torch::zeros({1, 1, 2, 2});
  EXPECT_DOUBLE_EQ(mse(x, y), (0 + 1 + 1 + 0.25) / 4.0);
  EXPECT_DOUBLE_EQ(mse(x, x), 0.0);
  // float32 inputs are compared in float64: 0.1 - 0.3 squared.
  auto a = torch::full({3}, 0.1f), b = torch::full({3}, 0.3f);
  EXPECT_NEAR(mse(a, b), 0.04, 1e-8);
  EXPECT_THROW(mse(x, torch::zeros({4})), ModelError);
}

TEST(Metrics, PsnrUsesRangeTwoAndIsInfiniteForIdenticalImages) {
  EXPECT_NEAR(psnr(0.01), 10 * std::log10(400.0), 1e-12);
  EXPECT_NEAR(psnr(0.01), 26.0206, 1e-4);
  EXPECT_NEAR(psnr(0.01, 1.0), 20.0, 1e-12);
  // R = 1 on [-1, 1] reads 20 log10(2) = 6.02 dB low.
  EXPECT_NEAR(psnr(0.2) - psnr(0.2, 1.0), 6.0206, 1e-4);
  EXPECT_EQ(psnr(0.0), std::numeric_limits<double>::infinity());
  EXPECT_THROW(psnr(-1e-3), ModelError);
  EXPECT_THROW(psnr(0.1, 0.0), ModelError);
}

TEST(Metrics, SsimOfIdenticalImagesIsOne) {
  torch::manual_seed(1);
  auto x = torch::rand({3, 1, 32, 32}) * 2 - 1;
  auto per = ssim_per_image(x, x);
  ASSERT_EQ(per.sizes(), torch::IntArrayRef({3}));
  EXPECT_EQ(per.scalar_type(), torch::kDouble);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(per[i].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(ssim(x, x), 1.0, 1e-12);
}

TEST(Metrics, SsimOfAnImageAndItsNegationIsNegative) {
  torch::manual_seed(2);
  auto x = torch::rand({2, 1, 32, 32}) * 2 - 1;
  EXPECT_LT(ssim(x, -x), -0.5);
}

TEST(Metrics, SsimOfConstantImagesMatchesTheClosedForm) {
  // Constant images -1 + 2 m: all variances vanish, so the structure term is
  // C2 / C2 and SSIM is the luminance term with m on the [0, 1] scale.
  const double m1 = 0.4, m2 = 0.8, c1 = 1e-4;
  auto x = torch::full({1, 1, 32, 32}, -1 + 2 * m1, torch::kDouble);
  auto y = torch::full({1, 1, 32, 32}, -1 + 2 * m2, torch::kDouble);
  const double expected = (2 * m1 * m2 + c1) / (m1 * m1 + m2 * m2 + c1);
  EXPECT_NEAR(ssim(x, y), expected, 1e-12);
}

TEST(Metrics, SsimOfASingleWindowMatchesAHandLoop) {
  // At 11x11 exactly one valid window exists: the map is 1x1.
  torch::manual_seed(3);
  auto x = torch::rand({2, 1, 11, 11}, torch::kDouble) * 2 - 1;
  auto y = (x + 0.3 * torch::randn({2, 1, 11, 11}, torch::kDouble)).clamp(-1, 1);
  auto per = ssim_per_image(x, y);
  for (int i = 0; i < 2; ++i) {
    const double expected = hand_ssim(x[i][0], y[i][0]);
    EXPECT_NEAR(per[i].item<double>(), expected, 1e-12);
    EXPECT_GT(expected, 0.0);
    EXPECT_LT(expected, 1.0);
  }
}

TEST(Metrics, SsimAveragesOnlyTheValidWindows) {
  // 13x12 gives a 3x2 map; a padded definition would average 13x12 positions
  // and disagree with the loop over valid windows.
  torch::manual_seed(4);
  auto x = torch::rand({1, 1, 13, 12}, torch::kDouble) * 2 - 1;
  auto y = (0.5 * x + 0.5 * torch::rand({1, 1, 13, 12}, torch::kDouble) - 0.2).clamp(-1, 1);
  EXPECT_NEAR(ssim(x, y), hand_ssim(x[0][0], y[0][0]), 1e-12);
}

TEST(Metrics, SsimIsSymmetricAndAveragesImages) {
  torch::manual_seed(5);
  auto x = torch::rand({4, 1, 32, 32}) * 2 - 1;
  auto y = torch::tanh(x + 0.4 * torch::randn({4, 1, 32, 32}));
  auto xy = ssim_per_image(x, y), yx = ssim_per_image(y, x);
  EXPECT_TRUE(torch::allclose(xy, yx, 0, 1e-14));
  EXPECT_NEAR(ssim(x, y), xy.mean().item<double>(), 1e-15);
  EXPECT_NEAR(xy[1].item<double>(), hand_ssim(x[1][0], y[1][0]), 1e-12);
}

TEST(Metrics, SsimRejectsBadShapes) {
  EXPECT_THROW(ssim(torch::zeros({1, 1, 32, 32}), torch::zeros({1, 1, 32, 31})), ModelError);
  EXPECT_THROW(ssim(torch::zeros({1, 1, 10, 32}), torch::zeros({1, 1, 10, 32})), ModelError);
  EXPECT_THROW(ssim(torch::zeros({1, 32, 32}), torch::zeros({1, 32, 32})), ModelError);
  EXPECT_THROW(ssim(torch::zeros({1, 3, 32, 32}), torch::zeros({1, 3, 32, 32})), ModelError);
}

TEST(Metrics, PearsonOfLinearRelationsIsPlusOrMinusOne) {
  auto x = torch::linspace(-2, 3, 20, torch::kDouble).reshape({20, 1});
  auto pred = torch::cat({x, x, x}, 1);
  auto target = torch::cat({3 * x + 1, -0.5 * x + 4, x * x}, 1);
  auto r = pearson_per_neuron(pred, target);
  ASSERT_EQ(r.sizes(), torch::IntArrayRef({3}));
  EXPECT_NEAR(r[0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(r[1].item<double>(), -1.0, 1e-12);
  EXPECT_LT(r[2].item<double>(), 0.9);
}

TEST(Metrics, PearsonOfAHandWorkedExample) {
  // x = 1 2 3 4, y = 2 1 4 3: deviations (-1.5 -.5 .5 1.5) and (-.5 -1.5 1.5 .5),
  // sum of products 3, sums of squares 5 and 5: r = 0.6.
  auto r = pearson_per_neuron(column({1, 2, 3, 4}), column({2, 1, 4, 3}));
  EXPECT_NEAR(r[0].item<double>(), 0.6, 1e-12);
  // Scale and shift do not change r, and float32 inputs work.
  auto r2 = pearson_per_neuron(column({1, 2, 3, 4}).to(torch::kFloat) * 7 - 3,
                               column({2, 1, 4, 3}).to(torch::kFloat) * 0.1);
  EXPECT_NEAR(r2[0].item<double>(), 0.6, 1e-6);
}

TEST(Metrics, PearsonOfAConstantColumnIsZero) {
  auto pred = torch::cat({column({1, 2, 3, 4}), column({5, 5, 5, 5}),
                          column({1, 1 + 1e-7, 1 - 1e-7, 1}), column({1, 2, 3, 4})},
                         1);
  auto target = torch::cat(
      {column({2, 2, 2, 2}), column({1, 3, 2, 4}), column({1, 3, 2, 4}), column({1, 3, 2, 4})}, 1);
  auto r = pearson_per_neuron(pred, target);
  EXPECT_EQ(r[0].item<double>(), 0.0);  // constant target
  EXPECT_EQ(r[1].item<double>(), 0.0);  // constant prediction
  EXPECT_EQ(r[2].item<double>(), 0.0);  // std about 7e-8 < 1e-5
  EXPECT_NEAR(r[3].item<double>(), 0.8, 1e-12);
  EXPECT_FALSE(torch::isnan(r).any().item<bool>());
  EXPECT_THROW(pearson_per_neuron(column({1, 2}), column({1, 2, 3})), ModelError);
}

// Two-sided p of Pearson r for even degrees of freedom nu, from the finite series
// of the t distribution: P(|T| < t) = sin(theta) * sum_k c_k cos^(2k)(theta),
// c_0 = 1, c_k = c_(k-1) (2k-1)/(2k), k < nu/2, with sin(theta) = |r| and
// cos^2(theta) = 1 - r^2.
double series_p(double r, int nu) {
  double term = 1, sum = 0;
  for (int k = 0; k < nu / 2; ++k) {
    if (k > 0) term *= (1 - r * r) * (2.0 * k - 1) / (2.0 * k);
    sum += term;
  }
  return 1 - std::abs(r) * sum;
}

TEST(Metrics, PValuesMatchKnownValuesAndClosedForms) {
  auto p50 = pearson_p_values(torch::tensor({0.2787, 0.0, -0.2787}, torch::kDouble), 50);
  EXPECT_NEAR(p50[0].item<double>(), 0.05, 5e-4);
  EXPECT_NEAR(p50[1].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(p50[2].item<double>(), p50[0].item<double>(), 1e-15);  // two-sided

  // r = 0.5, n = 10: t = 0.5 sqrt(8 / 0.75) = 1.633, 8 df, p = 0.1411.
  auto p10 = pearson_p_values(torch::tensor({0.5, 0.2, 0.9}, torch::kDouble), 10);
  EXPECT_NEAR(p10[0].item<double>(), 0.1411, 1e-4);
  EXPECT_NEAR(p10[0].item<double>(), series_p(0.5, 8), 1e-12);
  EXPECT_NEAR(p10[1].item<double>(), series_p(0.2, 8), 1e-12);
  EXPECT_NEAR(p10[2].item<double>(), series_p(0.9, 8), 1e-12);
  EXPECT_NEAR(p50[0].item<double>(), series_p(0.2787, 48), 1e-12);

  // n = 4 (2 df): p = 1 - |r|. n = 3 (1 df, Cauchy): p = 1 - (2/pi) asin|r|.
  auto r = torch::tensor({0.1, -0.35, 0.8}, torch::kDouble);
  auto p4 = pearson_p_values(r, 4), p3 = pearson_p_values(r, 3);
  for (int i = 0; i < 3; ++i) {
    const double v = std::abs(r[i].item<double>());
    EXPECT_NEAR(p4[i].item<double>(), 1 - v, 1e-12);
    EXPECT_NEAR(p3[i].item<double>(), 1 - 2 / std::numbers::pi * std::asin(v), 1e-12);
  }
}

TEST(Metrics, PValuesAtTheEdges) {
  auto p = pearson_p_values(torch::tensor({1.0, -1.0, std::nan("")}, torch::kDouble), 50);
  EXPECT_EQ(p[0].item<double>(), 0.0);
  EXPECT_EQ(p[1].item<double>(), 0.0);
  EXPECT_TRUE(std::isnan(p[2].item<double>()));
  EXPECT_THROW(pearson_p_values(torch::tensor({0.5}, torch::kDouble), 2), ModelError);
}

TEST(Metrics, CountSignificantNeedsSmallPAndPositiveR) {
  auto r = torch::tensor({0.5, -0.5, 0.1, 0.3, 0.3, 0.0}, torch::kDouble);
  auto p = torch::tensor({0.01, 0.01, 0.5, 0.05, 0.0500001, 0.0}, torch::kDouble);
  EXPECT_EQ(count_significant(r, p), 2);  // 0.5 and 0.3 at p == alpha
  EXPECT_EQ(count_significant(r, p, 0.01), 1);
  EXPECT_EQ(count_significant(r, p, 0.6), 4);
  // With the real p-values at n = 50 the 0.2787 threshold decides.
  auto r50 = torch::tensor({0.29, 0.27, -0.9}, torch::kDouble);
  EXPECT_EQ(count_significant(r50, pearson_p_values(r50, 50)), 1);
}

TEST(Metrics, NoiseCeilingOfIdenticalTrialsIsOne) {
  torch::manual_seed(6);
  auto mean = torch::rand({20, 4}, torch::kDouble);
  auto raw = mean.unsqueeze(0).expand({5, 20, 4}).contiguous();
  auto nc = noise_ceiling(raw);
  ASSERT_EQ(nc.oracle_r.sizes(), torch::IntArrayRef({4}));
  ASSERT_EQ(nc.split_half_r.sizes(), torch::IntArrayRef({4}));
  EXPECT_TRUE(torch::allclose(nc.oracle_r, torch::ones({4}, torch::kDouble), 0, 1e-12));
  EXPECT_TRUE(torch::allclose(nc.split_half_r, torch::ones({4}, torch::kDouble), 0, 1e-12));
  EXPECT_NEAR(nc.mean_oracle_r, 1.0, 1e-12);
  EXPECT_NEAR(nc.mean_split_half_r, 1.0, 1e-12);
}

TEST(Metrics, NoiseCeilingOfIndependentTrialsIsNearZero) {
  auto gen = at::detail::createCPUGenerator(11);
  auto raw = torch::randn({10, 200, 20}, gen, torch::kDouble);
  auto nc = noise_ceiling(raw);
  EXPECT_LT(std::abs(nc.mean_oracle_r), 0.06);
  EXPECT_LT(std::abs(nc.mean_split_half_r), 0.1);
}

TEST(Metrics, NoiseCeilingOfSignalPlusNoiseMatchesTheory) {
  // trial = s + e, var s = var e = 1, R = 4: oracle r = 1 / sqrt(2 (1 + 1/3)) =
  // 0.612; split-half r = 1 / (1 + 2/4) and Spearman-Brown 1 / (1 + 1/4) = 0.8
  // (the reliability of the 4-trial mean; uncorrected it would be 0.667).
  auto gen = at::detail::createCPUGenerator(12);
  auto s = torch::randn({1, 3000, 5}, gen, torch::kDouble);
  auto raw = s + torch::randn({4, 3000, 5}, gen, torch::kDouble);
  auto nc = noise_ceiling(raw);
  EXPECT_NEAR(nc.mean_oracle_r, 1 / std::sqrt(2 * (4.0 / 3)), 0.02);
  EXPECT_NEAR(nc.mean_split_half_r, 0.8, 0.02);
}

TEST(Metrics, NoiseCeilingOfAHandWorkedExample) {
  // R = 3, T = 4, M = 1. Trials a = 1 2 3 4, b = 2 1 4 3, c = 1 3 2 4.
  //  a vs mean(b, c) = 1.5 2 3 3.5: cross 3.5, squares 5 and 2.5 -> 0.7 sqrt(2)
  //  b vs mean(a, c) = 1 2.5 2.5 4: cross 1.5, squares 5 and 4.5 -> 1 / sqrt(10)
  //  c vs mean(a, b) = 1.5 1.5 3.5 3.5: cross 2, squares 5 and 4 -> 1 / sqrt(5)
  // Split half: mean of trials 0 and 2 (a, c) against trial 1 (b): 1 / sqrt(10),
  // Spearman-Brown 2 / (sqrt(10) + 1).
  auto raw = torch::tensor({1, 2, 3, 4, 2, 1, 4, 3, 1, 3, 2, 4}, torch::kDouble).reshape({3, 4, 1});
  auto nc = noise_ceiling(raw);
  const double oracle = (0.7 * std::sqrt(2.0) + 1 / std::sqrt(10.0) + 1 / std::sqrt(5.0)) / 3;
  EXPECT_NEAR(nc.oracle_r[0].item<double>(), oracle, 1e-12);
  EXPECT_NEAR(nc.mean_oracle_r, 0.584464, 1e-6);
  EXPECT_NEAR(nc.split_half_r[0].item<double>(), 2 / (std::sqrt(10.0) + 1), 1e-12);
  EXPECT_NEAR(nc.mean_split_half_r, 0.480506, 1e-6);
}

TEST(Metrics, NoiseCeilingAppliesSpearmanBrownToTwoTrials) {
  // R = 2: both oracle terms are r(trial 0, trial 1) = 0.6 (the Pearson example);
  // split-half is 2 * 0.6 / 1.6 = 0.75.
  auto raw = torch::tensor({1, 2, 3, 4, 2, 1, 4, 3}, torch::kDouble).reshape({2, 4, 1});
  auto nc = noise_ceiling(raw);
  EXPECT_NEAR(nc.mean_oracle_r, 0.6, 1e-12);
  EXPECT_NEAR(nc.mean_split_half_r, 0.75, 1e-12);
}

TEST(Metrics, NoiseCeilingOfAConstantNeuronIsZeroAndOneTrialIsAnError) {
  torch::manual_seed(7);
  auto raw = torch::rand({4, 10, 2}, torch::kDouble);
  raw.select(2, 1).fill_(3.0);
  auto nc = noise_ceiling(raw);
  EXPECT_EQ(nc.oracle_r[1].item<double>(), 0.0);
  EXPECT_EQ(nc.split_half_r[1].item<double>(), 0.0);
  EXPECT_THROW(noise_ceiling(torch::rand({1, 10, 2})), ModelError);
  EXPECT_THROW(noise_ceiling(torch::rand({10, 2})), ModelError);
}

TEST(Metrics, NoiseCeilingMatchesThePublishedStatsOfTheRealData) {
  // STATS.md (numpy, float64): oracle 0.400 / 0.329 / 0.369, split-half 0.711 /
  // 0.576 / 0.701 for regions 1 / 2 / 3.
  const double oracle[] = {0.400, 0.329, 0.369};
  const double split[] = {0.711, 0.576, 0.701};
  const std::filesystem::path dir = DAENR_SHARED_DATA_DIR;
  for (int k = 1; k <= 3; ++k) {
    auto file = dir / ("region" + std::to_string(k)) / "raw_validation_set.npy";
    if (!std::filesystem::exists(file)) GTEST_SKIP() << "no " << file;
    auto nc = noise_ceiling(read_npy(file));
    EXPECT_NEAR(nc.mean_oracle_r, oracle[k - 1], 5e-4) << "region " << k;
    EXPECT_NEAR(nc.mean_split_half_r, split[k - 1], 5e-4) << "region " << k;
  }
}

TEST(Metrics, FeveOfAHandWorkedExample) {
  // R = 2, T = 2: trials (0, 4) and (2, 6). Noise var (divisor R - 1): 2 at
  // both images -> 2. Total var of {0, 4, 2, 6} (divisor 4): 5. Explainable 3.
  auto raw = torch::tensor({0, 4, 2, 6}, torch::kDouble).reshape({2, 2, 1});
  auto at = [&](double a, double b) {
    return feve(torch::tensor({a, b}, torch::kDouble).reshape({2, 1}), raw)[0].item<double>();
  };
  EXPECT_NEAR(at(1, 5), 1 - (1 - 2) / 3.0, 1e-12);  // the trial means: MSE 1
  EXPECT_NEAR(at(2, 4), 1.0, 1e-12);                // MSE 2 == noise var
  EXPECT_NEAR(at(3, 3), 0.0, 1e-12);                // the grand mean: MSE 5
  EXPECT_NEAR(at(0, 0), 1 - (14 - 2) / 3.0, 1e-12);
}

TEST(Metrics, FeveOfThePerfectPredictorIsAboutOneAndOfConstantsAtMostZero) {
  auto gen = at::detail::createCPUGenerator(13);
  auto mu = torch::randn({500, 4}, gen, torch::kDouble);
  auto raw = mu.unsqueeze(0) + torch::randn({10, 500, 4}, gen, torch::kDouble);
  auto f = feve(mu, raw);
  ASSERT_EQ(f.sizes(), torch::IntArrayRef({4}));
  EXPECT_NEAR(f.mean().item<double>(), 1.0, 0.03);
  // Extra prediction noise of variance 0.5 against a signal variance of 1.
  auto noisy = mu + std::sqrt(0.5) * torch::randn({500, 4}, gen, torch::kDouble);
  EXPECT_NEAR(feve(noisy, raw).mean().item<double>(), 0.5, 0.07);
  // The best constant is the grand mean, with FEVE exactly 0; others are below.
  auto grand = raw.mean(std::vector<int64_t>{0, 1}, true).squeeze(0).expand({500, 4});
  EXPECT_TRUE(torch::allclose(feve(grand, raw), torch::zeros({4}, torch::kDouble), 0, 1e-12));
  EXPECT_TRUE((feve(grand + 0.3, raw) < 0).all().item<bool>());
  EXPECT_TRUE((feve(torch::zeros({500, 4}), raw) <= 1e-12).all().item<bool>());
}

TEST(Metrics, FeveRejectsBadShapesAndIsZeroWithoutExplainableVariance) {
  auto raw = torch::ones({3, 5, 2}, torch::kDouble);
  auto f = feve(torch::rand({5, 2}), raw);
  EXPECT_EQ(f[0].item<double>(), 0.0);
  EXPECT_FALSE(torch::isnan(f).any().item<bool>());
  EXPECT_THROW(feve(torch::rand({4, 2}), raw), ModelError);
  EXPECT_THROW(feve(torch::rand({5, 3}), raw), ModelError);
  EXPECT_THROW(feve(torch::rand({5, 2}), torch::rand({1, 5, 2})), ModelError);
}

TEST(Metrics, RfCentresRecoverPlantedPixelsOnThe31Grid) {
  auto gen = at::detail::createCPUGenerator(14);
  const int64_t n = 3000;
  auto images = torch::randn({n, 31, 31}, gen, torch::kDouble);
  // A loud distractor pixel: large mean and variance, unrelated to any response.
  // Without the z-scoring it would dominate every STA.
  images.select(1, 15).select(1, 15).mul_(40).add_(100);
  auto px = [&](int r, int c) { return images.select(1, r).select(1, c); };
  auto noise = [&]() { return 0.5 * torch::randn({n}, gen, torch::kDouble); };
  auto responses = torch::stack({torch::relu(px(4, 6) + noise()),
                                 torch::relu(-px(1, 29) + noise()),  // driven by dark
                                 torch::relu(px(22, 13) + noise())},
                                1)
                       .to(torch::kFloat);
  auto centres = estimate_rf_centres(images.to(torch::kFloat), responses);  // sigma 5
  ASSERT_EQ(centres.sizes(), torch::IntArrayRef({3, 2}));
  ASSERT_EQ(centres.scalar_type(), torch::kLong);
  auto expected = torch::tensor({4, 6, 1, 29, 22, 13}, torch::kLong).reshape({3, 2});
  EXPECT_TRUE(torch::equal(centres, expected)) << centres;
}

TEST(Metrics, RfCentresFindTheMiddleOfABlobOnANonSquareGrid) {
  auto gen = at::detail::createCPUGenerator(15);
  const int64_t n = 2000;
  auto images = torch::rand({n, 18, 25}, gen, torch::kDouble) * 255;
  images.select(1, 0).fill_(7.0);  // a constant row: no NaN from its zero std
  using torch::indexing::Slice;
  auto blob = images.index({Slice(), Slice(8, 11), Slice(19, 22)}).mean(std::vector<int64_t>{1, 2});
  auto responses = torch::relu(blob - 100 + 20 * torch::randn({n}, gen, torch::kDouble));
  auto centres = estimate_rf_centres(images, responses.reshape({n, 1}), 1.5);
  EXPECT_EQ(centres[0][0].item<int64_t>(), 9);
  EXPECT_EQ(centres[0][1].item<int64_t>(), 20);
  EXPECT_THROW(estimate_rf_centres(images, responses.reshape({n, 1}).narrow(0, 0, 10), 1.5),
               ModelError);
  EXPECT_THROW(estimate_rf_centres(images, responses.reshape({n, 1}), 0.0), ModelError);
}

}  // namespace
}  // namespace daenr::models
