// The model family: shapes, the readout formulas, which parameters exist, and
// that every variant the paper uses trains.

#include "models/network.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "job/error.h"
#include "models/bn_elu_kernels.h"
#include "models/error.h"
#include "models/readout_kernels.h"
#include "tests/support/tiny_data.h"

namespace daenr::models {
namespace {

ModelConfig tiny(AutoencoderKind ae, ReadoutKind ro, int layer, int neurons = 6) {
  ModelConfig c;
  c.autoencoder = ae;
  c.readout = ro;
  c.layer = layer;
  c.width = 4;
  c.latent = 16;
  c.codebook_size = 8;
  c.neurons = neurons;
  return c;
}


TEST(Network, EncoderExposesThePaperShapesAtWidth32) {
  torch::manual_seed(0);
  Encoder enc(32, 4);
  auto h = enc->forward(torch::randn({2, 1, 32, 32}), 4);
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0].sizes(), torch::IntArrayRef({2, 32, 16, 16}));
  EXPECT_EQ(h[1].sizes(), torch::IntArrayRef({2, 64, 8, 8}));
  EXPECT_EQ(h[2].sizes(), torch::IntArrayRef({2, 128, 4, 4}));
  EXPECT_EQ(h[3].sizes(), torch::IntArrayRef({2, 256, 2, 2}));
}

TEST(Network, DecoderMirrorsTheEncoderAndEndsInTanh) {
  torch::manual_seed(0);
  Decoder dec(32);
  auto y = dec->forward(torch::randn({3, 256, 2, 2}) * 50);
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({3, 1, 32, 32}));
  EXPECT_LE(y.abs().max().item<float>(), 1.0f);
}

TEST(Network, ReadoutOnlyModelHasNoDecoderAndStopsAtItsLayer) {
  auto mean = torch::full({6}, 0.5);
  DaeNr m(tiny(AutoencoderKind::kNone, ReadoutKind::kFr, 2), mean);
  for (const auto& p : m->named_parameters()) {
    EXPECT_EQ(p.key().find("decoder"), std::string::npos) << p.key();
    EXPECT_EQ(p.key().find("encoder.h3"), std::string::npos) << p.key();
  }
  auto out = m->forward(torch::randn({4, 1, 32, 32}));
  EXPECT_FALSE(out.reconstruction.defined());
  EXPECT_EQ(out.prediction.sizes(), torch::IntArrayRef({4, 6}));
}

TEST(Network, AutoencoderOnlyModelHasNoReadout) {
  DaeNr m(tiny(AutoencoderKind::kCae, ReadoutKind::kNone, 1), torch::full({6}, 0.5));
  for (const auto& p : m->named_parameters()) EXPECT_EQ(p.key().find("readout"), std::string::npos);
  auto out = m->forward(torch::randn({2, 1, 32, 32}));
  EXPECT_FALSE(out.prediction.defined());
  EXPECT_EQ(out.reconstruction.sizes(), torch::IntArrayRef({2, 1, 32, 32}));
}

TEST(Network, FactorisedReadoutMatchesItsFormula) {
  // s_hat[b, n] = softplus(sum_c |w_f[n, c]| sum_p |w_s[n, p]| h[b, c, p] + b_n), by loops.
  auto cfg = tiny(AutoencoderKind::kNone, ReadoutKind::kFr, 1, 3);
  Readout ro(ReadoutKind::kFr, 2, 2, cfg, torch::tensor({0.5, 1.0, 2.0}), torch::Tensor());
  torch::manual_seed(3);
  auto params = ro->named_parameters();
  {
    torch::NoGradGuard g;
    params["spatial"].copy_(torch::randn({3, 4}));
    params["features"].copy_(torch::randn({3, 2}));
  }
  auto h = torch::randn({5, 2, 2, 2});
  auto got = ro->forward(h);
  auto ws = params["spatial"].abs(), wf = params["features"].abs(), b = params["bias"];
  for (int bi = 0; bi < 5; ++bi) {
    for (int n = 0; n < 3; ++n) {
      double acc = b[n].item<double>();
      for (int c = 0; c < 2; ++c) {
        for (int p = 0; p < 4; ++p) {
          acc += wf[n][c].item<double>() * ws[n][p].item<double>() *
                 h[bi][c][p / 2][p % 2].item<double>();
        }
      }
      EXPECT_NEAR(got[bi][n].item<double>(), std::log1p(std::exp(acc)), 1e-5);
    }
  }
}

TEST(Network, FactorisedReadoutGradientsMatchThePoolThenWeightForm) {
  // The CPU readout pools with its own products and kernels over chunks of the batch
  // (FactorisedReadoutFunction); the same readout written as pooling then channel weights, in
  // double, gives the same values and gradients, including a zero weight's (abs has gradient
  // 0 at 0) and none for the fixed FM mask. The last shape spans three chunks of 8, 8 and 7
  // images (128 KB of pooled maps a chunk: 60 neurons x 64 channels x 8 images x 4 bytes).
  torch::manual_seed(8);
  struct Shape {
    int n, c, batch, layer;
  };
  for (auto kind : {ReadoutKind::kFr, ReadoutKind::kFm}) {
    for (const Shape shape :
         {Shape{7, 5, 6, 1}, Shape{7, 5, 6, 2}, Shape{7, 5, 6, 4}, Shape{60, 64, 23, 2}}) {
      const int n = shape.n, c = shape.c, batch = shape.batch, layer = shape.layer,
                side = layer_side(layer);
      auto cfg = tiny(AutoencoderKind::kNone, kind, layer, n);
      auto positions = torch::randint(0, side * side, {n}, torch::kLong);
      Readout ro(kind, c, side, cfg, torch::rand({n}) + 0.5, positions);
      auto features = ro->named_parameters()["features"];
      {
        torch::NoGradGuard g;
        features.copy_(torch::randn({n, c}));
        features[2][3] = 0.0f;
        if (kind == ReadoutKind::kFr)
          ro->named_parameters()["spatial"].copy_(torch::randn({n, side * side}));
      }
      auto h = torch::randn({batch, c, side, side}, torch::requires_grad());
      auto weights = torch::randn({batch, n});
      auto got = ro->forward(h);
      (got * weights).sum().backward();

      auto params = ro->named_parameters();
      auto sd = ro->spatial_masks().detach().to(torch::kDouble);
      auto fd = features.detach().to(torch::kDouble).requires_grad_();
      auto spd = (kind == ReadoutKind::kFr ? params["spatial"] : ro->named_buffers()["spatial"])
                     .detach()
                     .to(torch::kDouble)
                     .requires_grad_(kind == ReadoutKind::kFr);
      auto bd = params["bias"].detach().to(torch::kDouble).requires_grad_();
      auto hd = h.detach().to(torch::kDouble).requires_grad_();
      auto pooled = torch::matmul(hd.reshape({batch, c, -1}), spd.abs().t());
      auto want = torch::softplus((pooled * fd.abs().t().unsqueeze(0)).sum(1) + bd);
      (want * weights.to(torch::kDouble)).sum().backward();
      ASSERT_TRUE(torch::allclose(sd, spd.detach().abs()));

      const auto what = fmt::format("{} h{} n{} c{} batch {}", to_string(kind), layer, n, c, batch);
      // Float against double: 1e-5 relative, and 1e-5 of the largest value absolute (the large
      // shape's sums reach ~30, where float's rounding is ~3e-5).
      const auto close = [](const torch::Tensor& got, const torch::Tensor& want) {
        const double scale = std::max(1.0, want.abs().max().item<double>());
        return torch::allclose(got.to(torch::kDouble), want, 1e-5, 1e-5 * scale);
      };
      EXPECT_TRUE(close(got, want)) << what;
      EXPECT_TRUE(close(h.grad(), hd.grad())) << what;
      EXPECT_TRUE(close(features.grad(), fd.grad())) << what;
      EXPECT_EQ(features.grad()[2][3].item<float>(), 0.0f) << what;
      EXPECT_TRUE(close(params["bias"].grad(), bd.grad())) << what;
      if (kind == ReadoutKind::kFr) {
        EXPECT_TRUE(close(params["spatial"].grad(), spd.grad())) << what;
      } else {
        EXPECT_FALSE(ro->named_buffers()["spatial"].grad().defined()) << what;
      }
    }
  }
}

TEST(Network, TheReadoutOnTwoThreadsMatchesItsFormulaAndRepeatsItsBits) {
  // Two threads take the readout's chunks (8, 8 and 7 images here) and sum their parts of the
  // masks' and weights' gradients in thread order: right, and the same bits every time. The
  // library must be built with OpenMP for the threads to be used at all.
  const int before = torch::get_num_threads();
  torch::set_num_threads(2);
  EXPECT_EQ(parallel_for_threads(2), 2)
      << "models/ built without OpenMP: its kernels run on one thread";
  torch::manual_seed(9);
  const int n = 60, c = 64, batch = 23, side = layer_side(2);
  auto cfg = tiny(AutoencoderKind::kNone, ReadoutKind::kFr, 2, n);
  Readout ro(ReadoutKind::kFr, c, side, cfg, torch::rand({n}) + 0.5,
             torch::randint(0, side * side, {n}, torch::kLong));
  {
    torch::NoGradGuard g;
    ro->named_parameters()["features"].copy_(torch::randn({n, c}));
    ro->named_parameters()["spatial"].copy_(torch::randn({n, side * side}));
  }
  const auto h0 = torch::randn({batch, c, side, side});
  const auto weights = torch::randn({batch, n});
  auto run = [&] {
    ro->zero_grad();
    auto h = h0.clone().requires_grad_();
    auto out = ro->forward(h);
    (out * weights).sum().backward();
    return std::vector<torch::Tensor>{out.detach(), h.grad(),
                                      ro->named_parameters()["features"].grad().clone(),
                                      ro->named_parameters()["spatial"].grad().clone()};
  };
  const auto first = run(), second = run();
  torch::set_num_threads(1);
  const auto one = run();
  torch::set_num_threads(before);
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_TRUE(torch::equal(first[i], second[i])) << "tensor " << i;
    const double scale = std::max(1.0, one[i].abs().max().item<double>());
    EXPECT_TRUE(torch::allclose(first[i], one[i], 1e-5, 1e-5 * scale)) << "tensor " << i;
  }
}

TEST(Network, ReadoutBiasStartsAtTheMeanRate) {
  // With weights near zero the initial prediction is softplus(b) = mean rate.
  auto rates = torch::tensor({0.2, 0.6, 1.5, 3.0});
  for (auto kind : {ReadoutKind::kFr, ReadoutKind::kFm, ReadoutKind::kFc}) {
    auto cfg = tiny(AutoencoderKind::kNone, kind, 3, 4);
    torch::manual_seed(1);
    DaeNr m(cfg, rates, daenr::testing::planted_positions(4, 3));
    m->eval();
    auto pred = m->forward(torch::zeros({1, 1, 32, 32})).prediction[0];
    for (int n = 0; n < 4; ++n) {
      EXPECT_NEAR(pred[n].item<double>(), rates[n].item<double>(), 0.15 * rates[n].item<double>())
          << to_string(kind) << " neuron " << n;
    }
  }
}

TEST(Network, FixedMaskIsABufferAndOneHotAtTheGivenPositions) {
  auto cfg = tiny(AutoencoderKind::kNone, ReadoutKind::kFm, 2, 3);
  auto positions = torch::tensor({0, 9, 63}, torch::kLong);
  DaeNr m(cfg, torch::ones({3}), positions);
  EXPECT_EQ(m->named_parameters().find("readout.spatial"), nullptr);
  auto mask = m->readout()->spatial_masks();
  EXPECT_EQ(mask.sizes(), torch::IntArrayRef({3, 64}));
  EXPECT_EQ(mask.sum().item<float>(), 3.0f);
  EXPECT_EQ(mask[1][9].item<float>(), 1.0f);
  EXPECT_EQ(mask[2][63].item<float>(), 1.0f);
  EXPECT_THROW(DaeNr(cfg, torch::ones({3})), ModelError);  // FM without positions
}

TEST(Network, RfCentresMapToTheLayerGrid) {
  // Pixel 15 of 31 is centred at 15.5 * 32/31 = 16 on the 32 grid: cell 8 of 16
  // at h1 (stride 2), cell 1 of 2 at h4 (stride 16). Pixel 0 -> cell 0.
  auto centres = torch::tensor({15.0, 15.0, 0.0, 30.0}).reshape({2, 2});
  auto h1 = rf_centres_to_positions(centres, 1);
  EXPECT_EQ(h1[0].item<int64_t>(), 8 * 16 + 8);
  EXPECT_EQ(h1[1].item<int64_t>(), 0 * 16 + 15);
  auto h4 = rf_centres_to_positions(centres, 4);
  EXPECT_EQ(h4[0].item<int64_t>(), 1 * 2 + 1);
  EXPECT_EQ(h4[1].item<int64_t>(), 0 * 2 + 1);
}

TEST(Network, PoissonLossMatchesHandValue) {
  // Batch of 2, 2 neurons: mean over batch of sum over neurons of s_hat - s log(s_hat + 1e-5).
  auto pred = torch::tensor({1.0, 2.0, 0.5, 4.0}).reshape({2, 2});
  auto s = torch::tensor({0.0, 1.0, 2.0, 3.0}).reshape({2, 2});
  const double row0 = 1.0 + 2.0 - std::log(2.0 + 1e-5);
  const double row1 = 0.5 - 2 * std::log(0.5 + 1e-5) + 4.0 - 3 * std::log(4.0 + 1e-5);
  EXPECT_NEAR(poisson_loss(pred, s).item<double>(), (row0 + row1) / 2, 1e-5);
}

TEST(Network, TheReconstructionSumsOverPixelsAsInEquation7) {
  // The paper's ||x - x_hat||^2 per image (mean over the batch) is 1024 times the per-pixel
  // MSE for 32x32 images; the KL and VQ terms are scaled with it, the Poisson term is not.
  auto data = daenr::testing::tiny_dataset(4, 2, 2, 6);
  auto x = data.train_images, s = data.train_responses;
  for (auto ae : {AutoencoderKind::kCae, AutoencoderKind::kVae, AutoencoderKind::kVqVae}) {
    torch::manual_seed(0);
    DaeNr m(tiny(ae, ReadoutKind::kFr, 2), s.mean(0));
    m->eval();
    torch::NoGradGuard g;
    const auto out = m->forward(x);
    LossWeights sum, mean;
    sum.alpha = mean.alpha = 0.5;
    sum.beta = mean.beta = 2.0;
    mean.reconstruction = Reduction::kMean;
    const auto ts = compute_loss(m, out, x, s, sum), tm = compute_loss(m, out, x, s, mean);
    // By hand: the squared error summed over each image's pixels, averaged over the batch.
    const double sse = (out.reconstruction - x).pow(2).sum({1, 2, 3}).mean().item<double>();
    double ae_extra = 0;  // KL and VQ, per pixel as in the mean form
    if (out.kl.defined()) ae_extra += sum.kl_weight * out.kl.item<double>();
    if (out.vq_loss.defined()) ae_extra += out.vq_loss.item<double>();
    const double readout = poisson_loss(out.prediction, s).item<double>() + m->readout_regulariser().item<double>();
    EXPECT_NEAR(ts.total.item<double>(), 0.5 * (sse + 1024 * ae_extra) + 2.0 * readout, 1e-3) << to_string(ae);
    EXPECT_NEAR(tm.total.item<double>(), 0.5 * (sse / 1024 + ae_extra) + 2.0 * readout, 1e-5) << to_string(ae);
    // Both report the per-pixel MSE as the reconstruction metric.
    EXPECT_NEAR(ts.reconstruction.item<double>(), sse / 1024, 1e-6);
  }
  EXPECT_EQ(parse_reduction("sum"), Reduction::kSum);
  EXPECT_THROW(parse_reduction("median"), job::ConfigError);
}

TEST(Network, ReadoutGradientReachesTheEncoderButNotTheDecoder) {
  for (auto ro : {ReadoutKind::kFr, ReadoutKind::kFc, ReadoutKind::kFm}) {
    for (int layer = 1; layer <= 4; ++layer) {
      torch::manual_seed(0);
      DaeNr m(tiny(AutoencoderKind::kCae, ro, layer), torch::full({6}, 0.5),
              daenr::testing::planted_positions(6, layer));
      auto x = torch::randn({8, 1, 32, 32});
      auto s = torch::rand({8, 6}) * 2;
      poisson_loss(m->forward(x).prediction, s).backward();
      const auto params = m->named_parameters();
      auto g = params["encoder.h1.0.weight"].grad();
      ASSERT_TRUE(g.defined()) << to_string(ro) << layer;
      EXPECT_GT(g.abs().sum().item<double>(), 0) << to_string(ro) << " h" << layer;
      auto dg = params["decoder.out.weight"].grad();
      EXPECT_TRUE(!dg.defined() || dg.abs().sum().item<double>() == 0);
    }
  }
}

TEST(Network, VqVaeStraightThroughPassesReconstructionGradientToEncoder) {
  torch::manual_seed(0);
  DaeNr m(tiny(AutoencoderKind::kVqVae, ReadoutKind::kNone, 1), torch::ones({6}));
  auto x = torch::randn({8, 1, 32, 32}).clamp(-1, 1);
  auto out = m->forward(x);
  ASSERT_TRUE(out.vq_loss.defined());
  const double perplexity = out.perplexity.item<double>();
  EXPECT_GE(perplexity, 1.0 - 1e-6);
  EXPECT_LE(perplexity, 8.0 + 1e-6);
  torch::nn::functional::mse_loss(out.reconstruction, x).backward();
  auto params = m->named_parameters();
  EXPECT_GT(params["encoder.h4.0.weight"].grad().abs().sum().item<double>(), 0);
  // The reconstruction alone does not move the codebook; the VQ term does.
  auto cb = params["codebook"].grad();
  EXPECT_TRUE(!cb.defined() || cb.abs().sum().item<double>() == 0);
  m->zero_grad();
  m->forward(x).vq_loss.backward();
  EXPECT_GT(params["codebook"].grad().abs().sum().item<double>(), 0);
}

TEST(Network, VaeSamplesWhileTrainingAndUsesTheMeanInEval) {
  torch::manual_seed(0);
  DaeNr m(tiny(AutoencoderKind::kVae, ReadoutKind::kNone, 1), torch::ones({6}));
  auto x = torch::randn({4, 1, 32, 32}).clamp(-1, 1);
  m->eval();
  auto a = m->forward(x).reconstruction, b = m->forward(x).reconstruction;
  EXPECT_TRUE(torch::equal(a, b));
  auto out = m->forward(x);
  ASSERT_TRUE(out.kl.defined());
  EXPECT_GE(out.kl.item<double>(), 0);
  m->train();
  EXPECT_FALSE(torch::equal(m->forward(x).reconstruction, m->forward(x).reconstruction));
}

struct Variant {
  AutoencoderKind ae;
  ReadoutKind ro;
  int layer;
};

// Every combination the paper uses: the nine DAE-NR variants on h1..h4, the
// readout-only CNN baselines on h1..h4, and the three autoencoders alone.
std::vector<Variant> paper_variants() {
  std::vector<Variant> v;
  const AutoencoderKind aes[] = {AutoencoderKind::kCae, AutoencoderKind::kVae, AutoencoderKind::kVqVae};
  const ReadoutKind ros[] = {ReadoutKind::kFr, ReadoutKind::kFc, ReadoutKind::kFm};
  for (int layer = 1; layer <= 4; ++layer) {
    for (auto ae : aes) for (auto ro : ros) v.push_back({ae, ro, layer});
    for (auto ro : ros) v.push_back({AutoencoderKind::kNone, ro, layer});
  }
  for (auto ae : aes) v.push_back({ae, ReadoutKind::kNone, 1});
  return v;
}

TEST(Network, EveryPaperVariantTrainsAndItsLossFalls) {
  auto data = daenr::testing::tiny_dataset(32, 8, 8, 6);
  auto x = data.train_images, s = data.train_responses;
  const auto variants = paper_variants();
  EXPECT_EQ(variants.size(), 51u);
  for (const auto& v : variants) {
    const std::string name =
        fmt::format("{}-{}_{}", to_string(v.ae), to_string(v.ro), v.layer);
    torch::manual_seed(0);
    auto cfg = tiny(v.ae, v.ro, v.layer);
    DaeNr m(cfg, s.mean(0), daenr::testing::planted_positions(6, v.layer));
    LossWeights w;
    w.alpha = v.ae == AutoencoderKind::kNone ? 0 : 1;
    w.beta = v.ro == ReadoutKind::kNone ? 0 : 1;
    auto loss_now = [&] {
      torch::NoGradGuard g;
      torch::manual_seed(42);  // the same dropout mask / VAE noise each time
      return compute_loss(m, m->forward(x), x, s, w).total.item<double>();
    };
    const double before = loss_now();
    torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(5e-3));
    for (int step = 0; step < 30; ++step) {
      opt.zero_grad();
      compute_loss(m, m->forward(x), x, s, w).total.backward();
      opt.step();
    }
    const double after = loss_now();
    EXPECT_TRUE(std::isfinite(after)) << name;
    EXPECT_LT(after, before * 0.98) << name << ": " << before << " -> " << after;
  }
}

TEST(Network, RejectsImpossibleModels) {
  EXPECT_THROW(DaeNr(tiny(AutoencoderKind::kNone, ReadoutKind::kNone, 1), torch::ones({6})),
               ModelError);
  EXPECT_THROW(DaeNr(tiny(AutoencoderKind::kCae, ReadoutKind::kFr, 5), torch::ones({6})),
               ModelError);
  EXPECT_THROW(DaeNr(tiny(AutoencoderKind::kCae, ReadoutKind::kFr, 1), torch::ones({5})),
               ModelError);
  EXPECT_THROW(parse_autoencoder("vq-vae"), job::ConfigError);
  EXPECT_THROW(parse_readout("fully"), job::ConfigError);
}

}  // namespace
}  // namespace daenr::models

namespace daenr::models {
namespace {

TEST(Network, UpConvComputesTheTransposedConvolution) {
  torch::manual_seed(5);
  UpConv up(3, 5);
  auto x = torch::randn({2, 3, 4, 6}, torch::requires_grad());
  auto got = up->forward(x);
  namespace F = torch::nn::functional;
  auto w = up->weight.detach().clone().requires_grad_(), b = up->bias.detach().clone().requires_grad_();
  auto x2 = x.detach().clone().requires_grad_();
  auto want = F::conv_transpose2d(
      x2, w, F::ConvTranspose2dFuncOptions().bias(b).stride(2).padding(1).output_padding(1));
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5));
  auto g = torch::randn_like(got);
  (got * g).sum().backward();
  (want * g).sum().backward();
  EXPECT_TRUE(torch::allclose(up->weight.grad(), w.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(up->bias.grad(), b.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(x.grad(), x2.grad(), 1e-4, 1e-5));
  // The same initialisation as ConvTranspose2d built from the same seed.
  torch::manual_seed(9);
  UpConv a(4, 2);
  torch::manual_seed(9);
  torch::nn::ConvTranspose2d ref(torch::nn::ConvTranspose2dOptions(4, 2, 3).stride(2).padding(1).output_padding(1));
  EXPECT_TRUE(torch::equal(a->weight, ref->weight));
  EXPECT_TRUE(torch::equal(a->bias, ref->bias));
}

}  // namespace
}  // namespace daenr::models

namespace daenr::models {
namespace {

namespace F = torch::nn::functional;

TEST(Network, TheTapsConvolutionComputesConv2dAndItsGradients) {
  torch::manual_seed(3);
  for (const auto& shape : {std::vector<int64_t>{2, 5, 7, 9}, std::vector<int64_t>{3, 32, 32, 32}}) {
    for (const int64_t out : {1, 3}) {
      auto x = torch::randn(shape, torch::requires_grad());
      auto w = torch::randn({out, shape[1], 3, 3}, torch::requires_grad());
      auto b = torch::randn({out}, torch::requires_grad());
      auto got = conv3x3_by_taps(x, w, b);
      auto x2 = x.detach().clone().requires_grad_(), w2 = w.detach().clone().requires_grad_(),
           b2 = b.detach().clone().requires_grad_();
      auto want = F::conv2d(x2, w2, F::Conv2dFuncOptions().bias(b2).padding(1));
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4));
      auto g = torch::randn_like(got);
      (got * g).sum().backward();
      (want * g).sum().backward();
      EXPECT_TRUE(torch::allclose(x.grad(), x2.grad(), 1e-4, 1e-4));
      EXPECT_TRUE(torch::allclose(w.grad(), w2.grad(), 1e-3, 1e-3));
      EXPECT_TRUE(torch::allclose(b.grad(), b2.grad(), 1e-3, 1e-3));
    }
  }
  // Anything but float32 on the CPU is conv2d itself.
  auto x = torch::randn({2, 4, 5, 6}, torch::kDouble);
  auto w = torch::randn({1, 4, 3, 3}, torch::kDouble);
  auto b = torch::randn({1}, torch::kDouble);
  EXPECT_TRUE(torch::equal(conv3x3_by_taps(x, w, b),
                           F::conv2d(x, w, F::Conv2dFuncOptions().bias(b).padding(1))));
}

TEST(Network, ExpOfNonPositiveValuesIsWithinTwoUlpOfStdExp) {
  double worst = 0;
  for (int i = 0; i <= 870000; ++i) {
    const float z = -static_cast<float>(i) * 1e-4f;
    const double want = std::exp(static_cast<double>(z));
    const double got = kernels::exp_nonpositive(z);
    worst = std::max(worst, std::abs(got - want) / want);
  }
  EXPECT_LT(worst, 2.5e-7);  // 2 ulp of float near 1 is 2.4e-7
  EXPECT_FLOAT_EQ(kernels::exp_nonpositive(0.0f), 1.0f);
  EXPECT_GT(kernels::exp_nonpositive(-200.0f), 0.0f);  // clamped, not a wrapped exponent
}

TEST(Network, VectorisedLogsAreWithinAFewUlpOfTheLibrarys) {
  // log over 1e-5 .. 1e6 (the Poisson loss takes log(softplus + 1e-5)), stepping through
  // every binade, and log1p over [0, 1], down to values where 1 + u rounds to 1.
  double worst = 0;
  for (float x = 1e-5f; x < 1e6f; x *= 1.0001f) {
    const double want = std::log(static_cast<double>(x));
    // Near x = 1 the result is near 0: compare against the size of one ulp of x there.
    const double scale = std::max(std::abs(want), 1e-7);
    worst = std::max(worst, std::abs(kernels::log_positive(x) - want) / scale);
  }
  EXPECT_LT(worst, 2.5e-7);
  EXPECT_EQ(kernels::log_positive(1.0f), 0.0f);
  double worst1p = 0;
  for (float u = 1e-12f; u <= 1.0f; u *= 1.0001f) {
    const double want = std::log1p(static_cast<double>(u));
    worst1p = std::max(worst1p, std::abs(kernels::log1p_unit(u) - want) / want);
  }
  EXPECT_LT(worst1p, 3.6e-7);  // three roundings on top of log's: within 3 ulp
  EXPECT_EQ(kernels::log1p_unit(0.0f), 0.0f);
}

// The fused Poisson loss of softplus(drive) against LibTorch's chain in double, on drives
// across both of softplus's branches (the threshold at 20) and far into its tails, with zero,
// whole and fractional targets; rows long enough for the kernel's lanes and a tail.
TEST(Network, FusedPoissonLossOfTheDriveMatchesSoftplusThenPoisson) {
  torch::manual_seed(21);
  auto drive = torch::cat({torch::tensor({-40.0f, -20.0f, -5.0f, -1e-3f, 0.0f, 1e-3f, 5.0f, 19.99f,
                                          20.0f, 20.01f, 35.0f}),
                           torch::randn({3 * 19 - 11}) * 4})
                   .view({3, 19})
                   .requires_grad_();
  auto target = torch::cat({torch::zeros({19}), torch::randint(0, 5, {19}).to(torch::kFloat),
                            torch::rand({19}) * 3})
                    .view({3, 19});
  auto got = poisson_loss_of_drive(drive, target);
  (got * 0.7).backward();
  auto dd = drive.detach().to(torch::kDouble).requires_grad_();
  auto want = poisson_loss(torch::softplus(dd), target.to(torch::kDouble));
  (want * 0.7).backward();
  EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-5 * std::abs(want.item<double>()));
  EXPECT_TRUE(torch::allclose(drive.grad().to(torch::kDouble), dd.grad(), 1e-5, 1e-7))
      << drive.grad() - dd.grad();
  // Beside the float chain the trainer used before, to rounding.
  auto before = poisson_loss(torch::softplus(drive.detach()), target);
  EXPECT_NEAR(got.item<float>(), before.item<float>(), 1e-5 * std::abs(before.item<float>()));
}

// The CPU readout reads the map as B C rows of P positions: a map of another size is an
// error that names both sizes, not a read past its end.
TEST(Network, FactorisedReadoutRejectsAMapOfTheWrongSize) {
  const int n = 3, c = 5, side = 4;
  auto cfg = tiny(AutoencoderKind::kNone, ReadoutKind::kFr, 2, n);
  Readout ro(ReadoutKind::kFr, c, side, cfg, torch::rand({n}) + 0.5,
             torch::zeros({n}, torch::kLong));
  EXPECT_EQ(ro->drive(torch::randn({2, c, side, side})).sizes(), (std::vector<int64_t>{2, n}));
  try {
    ro->drive(torch::randn({2, c + 1, side, side}));
    FAIL() << "a map with one channel too many was read";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("96 values per image, where 5 channels of 16"),
              std::string::npos)
        << e.what();
  }
}

// The fused regulariser (one kernel for value and gradients) against LibTorch's operators in
// double, for FR (both factors learnt, a weight at exactly 0 whose gradient is 0) and FM (the
// fixed mask gets none).
TEST(Network, FusedReadoutRegulariserMatchesItsFormula) {
  torch::manual_seed(22);
  for (auto kind : {ReadoutKind::kFr, ReadoutKind::kFm}) {
    const int n = 7, c = 21, side = 4;
    auto cfg = tiny(AutoencoderKind::kNone, kind, 2, n);
    cfg.readout_l1 = 0.03;
    auto positions = torch::randint(0, side * side, {n}, torch::kLong);
    Readout ro(kind, c, side, cfg, torch::rand({n}) + 0.5, positions);
    auto params = ro->named_parameters();
    auto features = params["features"];
    {
      torch::NoGradGuard g;
      features.copy_(torch::randn({n, c}));
      features[1][2] = 0.0f;
      if (kind == ReadoutKind::kFr) params["spatial"].copy_(torch::randn({n, side * side}));
    }
    auto got = ro->regulariser();
    (got * 1.5).backward();
    auto spatial = kind == ReadoutKind::kFr ? params["spatial"] : ro->named_buffers()["spatial"];
    auto sd = spatial.detach().to(torch::kDouble).requires_grad_(kind == ReadoutKind::kFr);
    auto fd = features.detach().to(torch::kDouble).requires_grad_();
    auto want = 0.03 * (sd.abs().sum(1) * fd.abs().sum(1)).sum();
    (want * 1.5).backward();
    const auto what = to_string(kind);
    EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-6 * want.item<double>()) << what;
    EXPECT_TRUE(torch::allclose(features.grad().to(torch::kDouble), fd.grad(), 1e-6, 1e-8)) << what;
    EXPECT_EQ(features.grad()[1][2].item<float>(), 0.0f) << what;
    if (kind == ReadoutKind::kFr) {
      EXPECT_TRUE(torch::allclose(spatial.grad().to(torch::kDouble), sd.grad(), 1e-6, 1e-8))
          << what;
    } else {
      EXPECT_FALSE(spatial.grad().defined()) << what;
    }
  }
}

// The fused training path of BatchNorm + ELU against the native modules it replaces: output,
// all three gradients and the running statistics (an exponential average, and without a
// momentum the cumulative one, over three steps), on planes below, at and above the kernels'
// 16-lane width and with an odd size.
TEST(Network, FusedBatchNormEluMatchesTheNativeModules) {
  torch::manual_seed(11);
  for (const auto& shape : {std::vector<int64_t>{64, 8, 2, 2}, std::vector<int64_t>{5, 3, 3, 7},
                            std::vector<int64_t>{4, 6, 16, 16}, std::vector<int64_t>{3, 2, 32, 32}})
    for (const c10::optional<double> momentum :
         {c10::optional<double>(0.1), c10::optional<double>()}) {
      SyncBatchNorm2d fused(shape[1]);
      torch::nn::BatchNorm2d native(torch::nn::BatchNorm2dOptions(shape[1]).momentum(momentum));
      fused->options.momentum(momentum);
      {
        torch::NoGradGuard no_grad;
        fused->weight.uniform_(0.5, 1.5);
        fused->bias.uniform_(-0.5, 0.5);
        native->weight.copy_(fused->weight);
        native->bias.copy_(fused->bias);
      }
      for (int step = 0; step < 3; ++step) {
        // A shifted, scaled input so that the mean matters and both ELU sides are hit.
        auto x = (torch::randn(shape) * 3 + 1).requires_grad_();
        auto x2 = x.detach().clone().requires_grad_();
        auto got = fused->forward_elu(x);
        auto want = torch::elu(native->forward(x2));
        EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5)) << shape;
        auto g = torch::randn_like(got);
        fused->zero_grad();
        native->zero_grad();
        (got * g).sum().backward();
        (want * g).sum().backward();
        EXPECT_TRUE(torch::allclose(x.grad(), x2.grad(), 1e-4, 1e-5)) << shape;
        EXPECT_TRUE(torch::allclose(fused->weight.grad(), native->weight.grad(), 1e-4, 1e-4))
            << shape;
        EXPECT_TRUE(torch::allclose(fused->bias.grad(), native->bias.grad(), 1e-4, 1e-4)) << shape;
        EXPECT_TRUE(torch::allclose(fused->running_mean, native->running_mean, 1e-5, 1e-6))
            << shape;
        EXPECT_TRUE(torch::allclose(fused->running_var, native->running_var, 1e-5, 1e-6)) << shape;
        EXPECT_EQ(fused->num_batches_tracked.item<int64_t>(), step + 1);
      }
      // Evaluation: the running statistics those steps left, without gradients on the
      // folded kernel, with them (MEI's input gradients) on the native operators.
      fused->eval();
      native->eval();
      auto x = torch::randn(shape) * 3 + 1;
      auto want = torch::elu(native->forward(x)).detach();
      {
        torch::NoGradGuard no_grad;
        auto got = fused->forward_elu(x);
        EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6)) << shape;
        EXPECT_GT((got - want).abs().max().item<float>(),
                  0.0f)  // the folded kernel, not the native one
            << "evaluation without gradients took the native path";
      }
      auto xg = x.clone().requires_grad_();
      auto with_grad = fused->forward_elu(xg);
      EXPECT_TRUE(torch::allclose(with_grad.detach(), want, 1e-5, 1e-6)) << shape;
      with_grad.sum().backward();
      EXPECT_TRUE(xg.grad().defined());
    }
}

TEST(Network, FusedBatchNormEluGivesTheSameBitsOnAnyThreadCount) {
  torch::manual_seed(12);
  auto x = torch::randn({16, 12, 8, 8});
  auto run = [&](int threads) {
    torch::set_num_threads(threads);
    SyncBatchNorm2d bn(12);
    auto xi = x.clone().requires_grad_();
    auto y = bn->forward_elu(xi);
    (y * y).sum().backward();
    return std::make_pair(y.detach(), xi.grad());
  };
  const auto one = run(1), two = run(2);
  torch::set_num_threads(1);
  EXPECT_TRUE(torch::equal(one.first, two.first));
  EXPECT_TRUE(torch::equal(one.second, two.second));
}

}  // namespace
}  // namespace daenr::models
