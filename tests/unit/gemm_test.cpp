// models/gemm.h: the one matrix product daenr's own autograd functions use.

#include "models/gemm.h"

#include <gtest/gtest.h>
#include <limits>
#include <string>

#include "models/error.h"

namespace daenr::models {
namespace {

TEST(Gemm, MatchesMatmulForEveryTranspositionAndBeta) {
  torch::manual_seed(5);
  const int64_t m = 7, n = 13, k = 33;
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      auto a = ta ? torch::randn({k, m}) : torch::randn({m, k});
      auto b = tb ? torch::randn({n, k}) : torch::randn({k, n});
      const auto want = torch::matmul(ta ? a.t() : a, tb ? b.t() : b);
      // beta 0 ignores what c held, even NaN (as BLAS does).
      auto c = torch::full({m, n}, std::numeric_limits<float>::quiet_NaN());
      sgemm(a, ta, b, tb, c);
      EXPECT_TRUE(torch::allclose(c, want, 1e-5, 1e-5)) << ta << tb;
      // alpha and beta: c = 2 op(a) op(b) + 0.5 c.
      auto c0 = torch::randn({m, n});
      auto c2 = c0.clone();
      sgemm(a, ta, b, tb, c2, 2.0f, 0.5f);
      EXPECT_TRUE(torch::allclose(c2, 2 * want + 0.5 * c0, 1e-5, 1e-5)) << ta << tb;
    }
  }
  // An empty inner dimension: c = beta c.
  auto c = torch::full({2, 3}, 4.0f);
  sgemm(torch::empty({2, 0}), false, torch::empty({0, 3}), false, c, 1.0f, 0.5f);
  EXPECT_TRUE(torch::equal(c, torch::full({2, 3}, 2.0f)));
  EXPECT_FALSE(std::string(sgemm_backend()).empty());
}

TEST(Gemm, TheSameInputsGiveTheSameBits) {
  torch::manual_seed(6);
  auto a = torch::randn({64, 4096}), b = torch::randn({102, 4096});
  auto c1 = torch::empty({64, 102}), c2 = torch::empty({64, 102});
  sgemm(a, false, b, true, c1);
  sgemm(a, false, b, true, c2);
  EXPECT_TRUE(torch::equal(c1, c2));
}

TEST(Gemm, RejectsWhatItCannotMultiply) {
  auto c = torch::empty({2, 2});
  // Shapes that do not chain, a non-contiguous operand, another type, another rank.
  EXPECT_THROW(sgemm(torch::ones({2, 3}), false, torch::ones({4, 2}), false, c), ModelError);
  EXPECT_THROW(sgemm(torch::ones({3, 2}).t(), false, torch::ones({3, 2}), false, c), ModelError);
  EXPECT_THROW(sgemm(torch::ones({2, 3}, torch::kDouble), false, torch::ones({3, 2}), false, c),
               ModelError);
  EXPECT_THROW(sgemm(torch::ones({2, 3, 1}), false, torch::ones({3, 2}), false, c), ModelError);
  auto wrong = torch::empty({2, 3});
  EXPECT_THROW(sgemm(torch::ones({2, 3}), false, torch::ones({3, 2}), false, wrong), ModelError);
}

// The raw form on pieces of larger buffers, as the readout's chunks use it: each piece's
// product lands in its own rows of c, and nothing outside them is written.
TEST(Gemm, RawMatricesMultiplyPiecesOfABuffer) {
  torch::manual_seed(7);
  const int64_t n = 5, p = 9, rows = 12, piece = 4;
  auto s = torch::randn({n, p}), h = torch::randn({rows, p});
  auto t = torch::full({rows * n + 1}, -7.0f);  // one guard value past the end
  for (int64_t r0 = 0; r0 < rows; r0 += piece) {
    sgemm(Matrix{s.data_ptr<float>(), n, p}, false, Matrix{h.data_ptr<float>() + r0 * p, piece, p},
          true, OutMatrix{t.data_ptr<float>() + r0 * n, n, piece});
    const auto want = torch::matmul(s, h.slice(0, r0, r0 + piece).t());
    EXPECT_TRUE(
        torch::allclose(t.slice(0, r0 * n, (r0 + piece) * n).view({n, piece}), want, 1e-5, 1e-5))
        << r0;
  }
  EXPECT_EQ(t[rows * n].item<float>(), -7.0f);
  EXPECT_THROW(sgemm(Matrix{s.data_ptr<float>(), n, p}, false, Matrix{h.data_ptr<float>(), p, 3},
                     true, OutMatrix{t.data_ptr<float>(), n, p}),
               ModelError);
}

}  // namespace
}  // namespace daenr::models
