// Decoding: the ridge fit against a known map and against an independent direct solve of the
// normal equations, and image identification against hand-worked cases and chance.

#include "tests/support/error_of.h"
#include "models/decode.h"

#include <cmath>
#include <functional>
#include <gtest/gtest.h>
#include <string>
#include <vector>

#include "models/error.h"

namespace daenr::models {
namespace {

using daenr::testing::error_of;

torch::Tensor randn(std::vector<int64_t> shape, at::Generator& gen) {
  return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kDouble));
}

// Validation MSE per grid value computed the textbook way, independently of the SVD: centre
// with the training means, W = (Xc^T Xc + n lambda I)^-1 Xc^T Yc with lambda = r * trace(C) / P
// (C = Xc^T Xc / n), predict the centred validation inputs and add the mean back.
struct DirectFit {
  std::vector<double> mse;
  std::vector<torch::Tensor> weights;
  std::vector<double> lambda;
};
DirectFit direct_fit(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& xv,
                     const torch::Tensor& yv, const std::vector<double>& grid) {
  const int64_t n = x.size(0), p = x.size(1);
  const auto xm = x.mean(0), ym = y.mean(0);
  const auto xc = x - xm, yc = y - ym;
  const auto gram = xc.t().matmul(xc);
  const double mean_eig = gram.trace().item<double>() / static_cast<double>(n * p);
  DirectFit out;
  for (double r : grid) {
    const double lambda = r * mean_eig;
    const auto a = gram + static_cast<double>(n) * lambda * torch::eye(p, torch::kDouble);
    const auto w = torch::linalg::solve(a, xc.t().matmul(yc), /*left=*/true);
    out.mse.push_back(((xv - xm).matmul(w) + ym - yv).square().mean().item<double>());
    out.weights.push_back(w);
    out.lambda.push_back(lambda);
  }
  return out;
}

TEST(DecodeRidge, RecoversAKnownLinearMapAndItsIntercept) {
  auto gen = at::detail::createCPUGenerator(11);
  const int64_t n = 500, p = 8, q = 3;
  const auto w = randn({p, q}, gen);
  const auto b = torch::tensor({1.0, -2.0, 0.5}, torch::kDouble);
  // Inputs far from zero mean: a fit without the intercept's centring would be biased.
  auto make = [&](int64_t rows) {
    auto x = randn({rows, p}, gen) * 2.0 + 3.0;
    auto y = x.matmul(w) + b + 0.05 * randn({rows, q}, gen);
    return std::pair{x, y};
  };
  const auto [x, y] = make(n);
  const auto [xv, yv] = make(200);
  const auto fit = fit_ridge(x, y, xv, yv, {1e-6, 1e-4, 1e-2, 1});
  ASSERT_EQ(fit.weights.sizes(), torch::IntArrayRef({p, q}));
  EXPECT_EQ(fit.weights.scalar_type(), torch::kDouble);
  // Noise sd 0.05 over 500 rows: each weight is known to ~0.05 / (2 sqrt(500)) = 0.001, so the
  // relative error of the whole map is about 0.001 sqrt(24) / |W| ~ 1e-3.
  EXPECT_LT((fit.weights - w).norm().item<double>() / w.norm().item<double>(), 0.01);
  const auto at_zero = predict(fit, torch::zeros({1, p}, torch::kDouble)).squeeze(0);
  EXPECT_TRUE(torch::allclose(at_zero, b, 0, 0.05)) << at_zero;
  EXPECT_LE(fit.relative_ridge, 1e-2);  // no noise to speak of: the small ridges win
  EXPECT_EQ(fit.val_mse.size(), 4u);
}

TEST(DecodeRidge, ChoosesTheGridsValidationMinimumOfADirectSolve) {
  auto gen = at::detail::createCPUGenerator(5);
  const int64_t n = 40, p = 20, q = 4;
  const auto w = randn({p, q}, gen);
  // Few rows for many inputs and loud noise: neither end of the grid is best.
  auto make = [&](int64_t rows) {
    auto x = randn({rows, p}, gen) + 1.0;
    auto y = x.matmul(w) + 4.0 * randn({rows, q}, gen);
    return std::pair{x, y};
  };
  const auto [x, y] = make(n);
  const auto [xv, yv] = make(100);
  const std::vector<double> grid = {1e-3, 1e-2, 1e-1, 1, 10, 100, 1000};
  const auto fit = fit_ridge(x, y, xv, yv, grid);
  const auto direct = direct_fit(x, y, xv, yv, grid);
  ASSERT_EQ(fit.val_mse.size(), grid.size());
  size_t best = 0;
  for (size_t i = 0; i < grid.size(); ++i) {
    EXPECT_NEAR(fit.val_mse[i], direct.mse[i], 1e-9 * direct.mse[i]) << "grid value " << grid[i];
    if (direct.mse[i] < direct.mse[best]) best = i;
  }
  EXPECT_GT(best, 0u);  // the data above make the choice an interior one
  EXPECT_LT(best, grid.size() - 1);
  EXPECT_EQ(fit.relative_ridge, grid[best]);
  EXPECT_NEAR(fit.ridge, direct.lambda[best], 1e-12 * direct.lambda[best]);
  EXPECT_TRUE(torch::allclose(fit.weights, direct.weights[best], 1e-9, 1e-10));
}

TEST(DecodeRidge, HeavyNoiseMakesALargeRidgeWin) {
  auto gen = at::detail::createCPUGenerator(7);
  const int64_t n = 50, p = 30, q = 3;
  const auto w = randn({p, q}, gen);
  const std::vector<double> grid = {1e-3, 1e-2, 1e-1, 1, 10, 100, 1000};
  // The same inputs and map with quiet and with loud targets: 50 rows for 30 inputs leave a
  // loud fit nothing to trust but the mean, while a quiet one wants almost no ridge.
  const auto x = randn({n, p}, gen), xv = randn({2000, p}, gen);
  const auto noise = randn({n, q}, gen), noise_v = randn({2000, q}, gen);
  const auto quiet =
      fit_ridge(x, x.matmul(w) + 0.01 * noise, xv, xv.matmul(w) + 0.01 * noise_v, grid);
  const auto loud =
      fit_ridge(x, 0.1 * x.matmul(w) + 10.0 * noise, xv, 0.1 * xv.matmul(w) + 10.0 * noise_v, grid);
  EXPECT_LE(quiet.relative_ridge, 1e-2);
  EXPECT_GE(loud.relative_ridge, 100);
  EXPECT_LT(loud.val_mse.back(), loud.val_mse.front());
}

TEST(DecodeRidge, TiesGoToTheLargerRidge) {
  auto gen = at::detail::createCPUGenerator(3);
  // Constant targets: every ridge predicts the same mean, so every validation MSE is equal, and
  // the grid is out of order so that "the last" is not "the largest".
  const auto x = randn({16, 4}, gen), xv = randn({8, 4}, gen);
  const auto y = torch::full({16, 2}, 3.0, torch::kDouble), yv = randn({8, 2}, gen);
  const auto fit = fit_ridge(x, y, xv, yv, {10, 1000, 0.1});
  EXPECT_EQ(fit.val_mse[0], fit.val_mse[1]);
  EXPECT_EQ(fit.val_mse[0], fit.val_mse[2]);
  EXPECT_EQ(fit.relative_ridge, 1000);
}

TEST(DecodeRidge, RejectsBadInputWithOneLine) {
  const auto x = torch::zeros({5, 3}), y = torch::zeros({5, 2});
  const std::vector<double> grid = {1.0};
  EXPECT_EQ(error_of<DataError>([&] {
              fit_ridge(x, torch::zeros({4, 2}), x, y, grid);
            }),
            "fit_ridge: x_train has 5 rows but y_train has 4");
  EXPECT_EQ(error_of<DataError>([&] { fit_ridge(x.slice(0, 0, 1), y.slice(0, 0, 1), x, y, grid); }),
            "fit_ridge: 1 training row; a centred fit needs at least 2");
  EXPECT_EQ(error_of<DataError>([&] {
              fit_ridge(x, y, torch::zeros({5, 4}), y, grid);
            }),
            "fit_ridge: x_val has 4 columns but x_train has 3");
  EXPECT_EQ(error_of<DataError>([&] {
              fit_ridge(x, y, x, torch::zeros({5, 1}), grid);
            }),
            "fit_ridge: y_val has 1 columns but y_train has 2");
  EXPECT_EQ(error_of<DataError>([&] { fit_ridge(x, y, x, y.slice(0, 0, 2), grid); }),
            "fit_ridge: x_val has 5 rows but y_val has 2");
  EXPECT_EQ(error_of<DataError>([&] { fit_ridge(x, y, x, y, {}); }), "fit_ridge: the ridge grid is empty");
  EXPECT_EQ(error_of<DataError>([&] {
              fit_ridge(x, y, x, y, {1, -0.5});
            }),
            "fit_ridge: ridge -0.5 in the grid is not a finite value >= 0");
  EXPECT_EQ(error_of<DataError>([&] { fit_ridge(torch::zeros({5}), y, x, y, grid); }),
            "fit_ridge: x_train must be a 2-D (rows, columns) tensor, found shape (5)");
  auto nan = x.clone();
  nan[2][1] = NAN;
  EXPECT_EQ(error_of<DataError>([&] { fit_ridge(nan, y, x, y, grid); }),
            "fit_ridge: x_train contains NaN or infinite values");
  const auto fit = fit_ridge(x, y, x, y, grid);
  EXPECT_EQ(error_of<DataError>([&] {
              predict(fit, torch::zeros({2, 4}));
            }),
            "predict: x has 4 columns but the fit has 3 inputs");
}

TEST(DecodePixelCorrelation, IsPearsonPerImageAndZeroForAConstantImage) {
  // Image 0 by hand: deviations (-1.5, -0.5, 0.5, 1.5) and (-1.75, 0.25, -0.75, 2.25), products
  // summing to 5.5, squares to 5 and 8.75. Image 1 is an affine copy (r = 1), image 2 a
  // reversed one (r = -1), image 3 constant.
  const auto a = torch::tensor({1., 2., 3., 4., 1., 2., 3., 4., 1., 2., 3., 4., 7., 7., 7., 7.})
                     .reshape({4, 2, 2});
  const auto b = torch::tensor({1., 3., 2., 5., 5., 7., 9., 11., 4., 3., 2., 1., 1., 2., 3., 4.})
                     .reshape({4, 2, 2});
  const auto r = pixel_correlation(a, b);
  ASSERT_EQ(r.sizes(), torch::IntArrayRef({4}));
  EXPECT_NEAR(r[0].item<double>(), 5.5 / std::sqrt(5 * 8.75), 1e-12);
  EXPECT_NEAR(r[1].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(r[2].item<double>(), -1.0, 1e-12);
  EXPECT_EQ(r[3].item<double>(), 0.0);
  EXPECT_EQ(error_of<DataError>([&] {
              pixel_correlation(a, b.reshape({4, 4}));
            }),
            "pixel_correlation: a has shape (4, 2, 2) but b has (4, 4)");
}

TEST(DecodeIdentify, HandWorkedThreeImages) {
  // Four-pixel images. Truth t0 = (1,-1,0,0), t1 = (0,0,1,-1), t2 = (1,1,-1,-1), all zero-mean.
  // d0 = 3 + 5 (1,-1,1,-1) correlates 2/(2 sqrt 2) = 0.7071 with t0 and with t1 (a tie: no
  // hit) and 0 with t2; d1 = 10 (1,1,-1,-1) - 1 correlates 0 with its t1 and with t0, 1 with
  // t2: rank 2, no hit; d2 = t2: its own is the only 1, a hit. top1 = 1/3; with 3 images every
  // image is a top-5 hit.
  const auto truth =
      torch::tensor({1., -1., 0., 0., 0., 0., 1., -1., 1., 1., -1., -1.}).reshape({3, 1, 2, 2});
  const auto decoded =
      torch::tensor({8., -2., 8., -2., 9., 9., -11., -11., 1., 1., -1., -1.}).reshape({3, 1, 2, 2});
  const auto r = correlation_matrix(decoded, truth);
  const double s = 1 / std::sqrt(2.0);
  const auto expected =
      torch::tensor({s, s, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0}, torch::kDouble).reshape({3, 3});
  EXPECT_TRUE(torch::allclose(r, expected, 0, 1e-12)) << r;
  const auto id = identify(decoded, truth);
  EXPECT_DOUBLE_EQ(id.top1, 1.0 / 3);
  EXPECT_DOUBLE_EQ(id.top5, 1.0);
}

TEST(DecodeIdentify, TiesCountAgainstAHitAtRankFive) {
  // Eight truth images with disjoint two-pixel supports (t_j = +1 at pixel 2j, -1 at 2j+1):
  // the correlation of decoded_i = sum_j c_ij t_j with t_j is c_ij / |c_i|, so the matrix of
  // coefficients is the ranking. Row 0: 4 others above its own (rank 4, a top-5 hit); row 1:
  // 5 others above (a miss); row 2: 4 above and one equal (a tie counts against: a miss);
  // rows 3..7: their own is the only best (hits).
  const int n = 8;
  auto c = torch::full({n, n}, 0.25, torch::kDouble);
  for (int i = 0; i < n; ++i) c[i][i] = 1.0;
  for (int i = 0; i < 3; ++i) {
    c[i][i] = 0.5;
    for (int k = 1; k <= 4; ++k) c[i][(i + k) % n] = 0.75;
  }
  c[1][6] = 0.75;
  c[2][7] = 0.5;
  auto basis = torch::zeros({n, 2 * n}, torch::kDouble);
  for (int j = 0; j < n; ++j) {
    basis[j][2 * j] = 1.0;
    basis[j][2 * j + 1] = -1.0;
  }
  const auto id = identify(c.matmul(basis), basis);
  EXPECT_DOUBLE_EQ(id.top1, 5.0 / 8);
  EXPECT_DOUBLE_EQ(id.top5, 6.0 / 8);
}

TEST(DecodeIdentify, PerfectDecodingIdentifiesEveryImage) {
  auto gen = at::detail::createCPUGenerator(1);
  const auto truth = randn({12, 1, 8, 8}, gen);
  auto id = identify(truth, truth);
  EXPECT_EQ(id.top1, 1.0);
  EXPECT_EQ(id.top5, 1.0);
  id = identify(2.0 * truth + 1.0, truth);  // Pearson r ignores gain and offset
  EXPECT_EQ(id.top1, 1.0);
}

TEST(DecodeIdentify, ADerangementIdentifiesNoImage) {
  auto gen = at::detail::createCPUGenerator(2);
  const auto truth = randn({12, 1, 8, 8}, gen);
  // Every decoded image is another image's truth, which it matches perfectly: no own image is
  // ever the best.
  const auto id = identify(truth.roll(1, 0), truth);
  EXPECT_EQ(id.top1, 0.0);
}

TEST(DecodeIdentify, RandomDecodingScoresChance) {
  auto gen = at::detail::createCPUGenerator(4);
  const int n = 10, trials = 300;
  double top1 = 0, top5 = 0;
  for (int t = 0; t < trials; ++t) {
    const auto id = identify(randn({n, 1, 6, 6}, gen), randn({n, 1, 6, 6}, gen));
    top1 += id.top1 / trials;
    top5 += id.top5 / trials;
  }
  // Chance is 1/n = 0.1 and 5/n = 0.5. Over 3000 ranked images the standard errors are about
  // sqrt(0.1 * 0.9 / 3000) = 0.0055 and sqrt(0.25 / 3000) = 0.009: tolerances of ~4.5 of them.
  EXPECT_NEAR(top1, 0.1, 0.025);
  EXPECT_NEAR(top5, 0.5, 0.04);
}

TEST(DecodeIdentify, RejectsMismatchedShapesAndASingleImage) {
  EXPECT_EQ(error_of<DataError>([] {
              identify(torch::zeros({3, 4}), torch::zeros({2, 4}));
            }),
            "identify: decoded has shape (3, 4) but truth has (2, 4)");
  EXPECT_EQ(error_of<DataError>([] {
              identify(torch::zeros({1, 4}), torch::zeros({1, 4}));
            }),
            "identify: 1 image; identification needs at least 2");
  EXPECT_EQ(error_of<DataError>([] {
              correlation_matrix(torch::zeros({3, 4}), torch::zeros({3, 5}));
            }),
            "correlation_matrix: images of a (3, 4) and b (3, 5) differ in pixels");
}

}  // namespace
}  // namespace daenr::models
