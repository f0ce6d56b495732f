// The encoder's blocked layout (models/blocked_conv.h): oneDNN's convolutions called on
// nChw16c maps, the fused BatchNorm + ELU on the same maps, and a whole model on that path
// against LibTorch's own NCHW convolutions.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "models/blocked_conv.h"
#include "models/error.h"
#include "models/network.h"

namespace daenr::models {
namespace {

namespace F = torch::nn::functional;

#define DAENR_NEEDS_BLOCKED()                                                          \
  if (!blocked_conv_available()) {                                                     \
    GTEST_SKIP() << "this build has no oneDNN headers (libdnnl-dev): no blocked path"; \
  }

TEST(Blocked, ToAndFromBlockedAreInverseAndPutChannelsInLanes) {
  auto x = torch::arange(2 * 32 * 3 * 5, torch::kFloat).view({2, 32, 3, 5});
  auto b = to_blocked(x);
  EXPECT_EQ(b.sizes(), torch::IntArrayRef({2, 2, 3, 5, 16}));
  // Channel 17 of pixel (1, 4) of image 1 is lane 1 of block 1.
  EXPECT_EQ(b[1][1][1][4][1].item<float>(), x[1][17][1][4].item<float>());
  EXPECT_TRUE(torch::equal(from_blocked(b), x));
  EXPECT_THROW(to_blocked(torch::ones({1, 12, 2, 2})), ModelError);
  EXPECT_THROW(from_blocked(torch::ones({1, 12, 2, 2})), ModelError);
}

// from_blocked runs on oneDNN's reorder where the build has it: the same copy as LibTorch's
// permute, bit for bit, both ways, for odd planes and a gradient that is not contiguous.
TEST(Blocked, FromBlockedCopiesExactlyAndItsGradientIsToBlocked) {
  torch::manual_seed(11);
  for (const auto& shape : {std::vector<int64_t>{3, 48, 7, 5}, std::vector<int64_t>{1, 16, 2, 3}}) {
    auto x = torch::randn(shape);
    auto b = to_blocked(x).requires_grad_(true);
    auto y = from_blocked(b);
    EXPECT_TRUE(torch::equal(y, x));
    // A transposed gradient: contiguous() first, then the layout change.
    auto g = torch::randn({shape[0], shape[1], shape[3], shape[2]}).transpose(2, 3);
    ASSERT_FALSE(g.is_contiguous());
    y.backward(g);
    EXPECT_TRUE(torch::equal(b.grad(), to_blocked(g.contiguous())));
    // A permuted view (the old from_blocked) gives the same gradient.
    auto b2 = b.detach().clone().requires_grad_(true);
    b2.permute({0, 1, 4, 2, 3}).reshape(y.sizes()).backward(g);
    EXPECT_TRUE(torch::equal(b.grad(), b2.grad()));
  }
}

TEST(Blocked, ConvolutionComputesConv2dAndItsGradients) {
  DAENR_NEEDS_BLOCKED();
  torch::manual_seed(4);
  // The image (one channel, NCHW) and a blocked map of 32 channels; 16 and 32 outputs.
  for (const auto& [ic, oc, side] :
       {std::tuple<int64_t, int64_t, int64_t>{1, 16, 32}, {1, 32, 32}, {32, 64, 16}, {16, 16, 7}}) {
    auto x = torch::randn({3, ic, side, side}, torch::requires_grad());
    auto w = (torch::randn({oc, ic, 3, 3}) * 0.2).requires_grad_();
    auto b = torch::randn({oc}, torch::requires_grad());
    auto input = ic == 1 ? x : to_blocked(x);
    auto got = from_blocked(conv3x3s2_blocked(input, w, b));
    auto x2 = x.detach().clone().requires_grad_(), w2 = w.detach().clone().requires_grad_(),
         b2 = b.detach().clone().requires_grad_();
    auto want = F::conv2d(x2, w2, F::Conv2dFuncOptions().bias(b2).stride(2).padding(1));
    const auto what = fmt::format("{} -> {} channels, side {}", ic, oc, side);
    ASSERT_EQ(got.sizes(), want.sizes()) << what;
    EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4)) << what;
    auto g = torch::randn_like(got);
    (got * g).sum().backward();
    (want * g).sum().backward();
    if (ic > 1) {
      EXPECT_TRUE(torch::allclose(x.grad(), x2.grad(), 1e-4, 1e-4)) << what;
    }
    EXPECT_TRUE(torch::allclose(w.grad(), w2.grad(), 1e-3, 1e-3)) << what;
    EXPECT_TRUE(torch::allclose(b.grad(), b2.grad(), 1e-3, 1e-3)) << what;
  }
  // Outputs that are not whole blocks, a 5-D map that is not blocked, doubles.
  EXPECT_THROW(
      conv3x3s2_blocked(torch::ones({1, 1, 8, 8}), torch::ones({12, 1, 3, 3}), torch::ones({12})),
      ModelError);
  EXPECT_THROW(conv3x3s2_blocked(torch::ones({1, 1, 8, 8, 8}), torch::ones({16, 8, 3, 3}),
                                 torch::ones({16})),
               ModelError);
  EXPECT_THROW(conv3x3s2_blocked(torch::ones({1, 1, 8, 8}, torch::kDouble),
                                 torch::ones({16, 1, 3, 3}), torch::ones({16})),
               ModelError);
}

// Both of the blocked backward kernel's ways: elu' from y on small maps, and recomputed from x
// on a map whose blocks pass kRecomputeAboveBytes (12 x 16 x 16 positions x 16 lanes x 3 maps
// = 590 KB), each against the NCHW kernel, which always reads y.
TEST(Blocked, FusedBatchNormEluOnBlockedMapsMatchesNchw) {
  for (const auto& shape :
       {std::vector<int64_t>{6, 32, 5, 5}, std::vector<int64_t>{12, 32, 16, 16}}) {
    SCOPED_TRACE(::testing::Message() << shape);
    torch::manual_seed(13);
    auto x = torch::randn(shape) * 2 + 0.5;
    auto run = [&](bool blocked) {
      torch::manual_seed(1);
      SyncBatchNorm2d bn(32);
      {
        torch::NoGradGuard g;
        bn->weight.uniform_(0.5, 1.5);
        bn->bias.uniform_(-0.5, 0.5);
      }
      auto xi = x.clone().requires_grad_();
      auto y = bn->forward_elu(blocked ? to_blocked(xi) : xi);
      if (blocked) y = from_blocked(y);
      (y * torch::linspace(-1, 1, y.numel()).view_as(y)).sum().backward();
      bn->eval();
      torch::Tensor inference;
      {
        torch::NoGradGuard g;
        inference = bn->forward_elu(blocked ? to_blocked(x) : x);
        if (blocked) inference = from_blocked(inference);
      }
      return std::vector<torch::Tensor>{y.detach(),      xi.grad(),        bn->weight.grad(),
                                        bn->bias.grad(), bn->running_mean, bn->running_var,
                                        inference};
    };
    const auto nchw = run(false), blocked = run(true);
    const char* names[] = {"y", "dx", "dgamma", "dbeta", "running mean", "running var", "eval y"};
    for (size_t i = 0; i < nchw.size(); ++i) {
      EXPECT_TRUE(torch::allclose(blocked[i], nchw[i], 1e-5, 1e-5)) << names[i];
    }
  }
}

ModelConfig width16(AutoencoderKind ae, int layer) {
  ModelConfig c;
  c.autoencoder = ae;
  c.readout = ReadoutKind::kFr;
  c.layer = layer;
  c.width = 16;
  c.latent = 16;
  c.codebook_size = 8;
  c.neurons = 9;
  return c;
}

TEST(Blocked, AModelOnTheBlockedPathMatchesLibTorchsConvolutions) {
  DAENR_NEEDS_BLOCKED();
  for (const auto& [ae, layer] :
       {std::pair{AutoencoderKind::kNone, 2}, std::pair{AutoencoderKind::kNone, 1},
        std::pair{AutoencoderKind::kCae, 3}}) {
    const auto cfg = width16(ae, layer);
    torch::manual_seed(21);
    auto x = torch::rand({8, 1, 32, 32}) * 2 - 1;
    auto s = torch::rand({8, 9}) * 3;
    auto run = [&](bool blocked) {
      torch::manual_seed(5);
      DaeNr model(cfg, torch::ones({9}));
      use_blocked_layout(*model, blocked);
      auto out = model->forward(x);
      auto loss = compute_loss(model, out, x, s, LossWeights{}).total;
      loss.backward();
      std::vector<torch::Tensor> got = {out.prediction.detach()};
      if (out.reconstruction.defined()) got.push_back(out.reconstruction.detach());
      for (const auto& p : model->parameters()) got.push_back(p.grad());
      for (const auto& b : model->buffers()) got.push_back(b.clone());
      model->eval();
      torch::NoGradGuard no_grad;
      got.push_back(model->forward(x).prediction);
      return got;
    };
    const auto what = fmt::format("{} h{}", to_string(ae), layer);
    const auto native = run(false), blocked = run(true), again = run(true);
    ASSERT_EQ(native.size(), blocked.size());
    for (size_t i = 0; i < native.size(); ++i) {
      EXPECT_TRUE(torch::allclose(blocked[i], native[i], 1e-4, 1e-4)) << what << " tensor " << i;
      EXPECT_TRUE(torch::equal(again[i], blocked[i]))
          << what << " tensor " << i << " differs between runs";
    }
  }
}

TEST(Blocked, TwoThreadsGiveTheSameBitsEveryTime) {
  // CPU results are reproducible for a fixed thread count: oneDNN's convolutions and sgemm split
  // their work, and the blocked kernels their channel blocks, the same way on every run.
  DAENR_NEEDS_BLOCKED();
  const auto cfg = width16(AutoencoderKind::kNone, 2);
  torch::manual_seed(22);
  auto x = torch::rand({16, 1, 32, 32}) * 2 - 1;
  auto s = torch::rand({16, 9}) * 3;
  auto run = [&] {
    torch::manual_seed(6);
    DaeNr model(cfg, torch::ones({9}));
    auto out = model->forward(x);
    compute_loss(model, out, x, s, LossWeights{}).total.backward();
    std::vector<torch::Tensor> got = {out.prediction.detach()};
    for (const auto& p : model->parameters()) got.push_back(p.grad());
    return got;
  };
  const int before = torch::get_num_threads();
  torch::set_num_threads(2);
  const auto first = run(), second = run();
  torch::set_num_threads(before);
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_TRUE(torch::equal(first[i], second[i])) << "tensor " << i;
  }
}

TEST(Blocked, EachThreadCountGetsItsOwnPrimitives) {
  // oneDNN divides a primitive's work for the thread count it was made with, for good: a
  // convolution made on one thread and reused after set_num_threads(2) ran on one thread and
  // gave one thread's weight gradient, where a fresh two-thread process gives another. So a
  // new thread count must make new primitives, and going back must reuse the old ones (the
  // same bits as before).
  DAENR_NEEDS_BLOCKED();
  torch::manual_seed(23);
  // A batch no other test uses, so that this test sees its primitives made.
  auto x = to_blocked(torch::randn({7, 16, 8, 8}));
  auto w = torch::randn({16, 16, 3, 3}), b = torch::randn({16});
  auto g = torch::randn({7, 1, 4, 4, 16});
  auto run = [&] {
    auto xx = x.clone().requires_grad_(), ww = w.clone().requires_grad_();
    auto y = conv3x3s2_blocked(xx, ww, b);
    (from_blocked(y) * from_blocked(g)).sum().backward();
    return std::vector<torch::Tensor>{y.detach(), xx.grad(), ww.grad()};
  };
  const int before = torch::get_num_threads();
  torch::set_num_threads(1);
  const auto made0 = blocked_primitives_made();
  const auto one = run();
  const auto made1 = blocked_primitives_made();
  EXPECT_EQ(made1 - made0, 3u) << "the convolution and the two layout changes, on one thread";
  torch::set_num_threads(2);
  const auto two = run();
  EXPECT_EQ(blocked_primitives_made() - made1, 3u) << "two threads must not reuse one's";
  torch::set_num_threads(1);
  const auto again = run();
  torch::set_num_threads(before);
  EXPECT_EQ(blocked_primitives_made() - made1, 3u) << "back on one thread: its own, kept";
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_TRUE(torch::equal(one[i], again[i])) << "tensor " << i;
    EXPECT_TRUE(torch::allclose(one[i], two[i], 1e-4, 1e-4)) << "tensor " << i;
  }
}

TEST(Blocked, TheBlockedPathIsTakenOnlyWhereItsKernelsApply) {
  DAENR_NEEDS_BLOCKED();
  auto x = torch::zeros({2, 1, 32, 32});
  Encoder wide(16, 2), narrow(4, 2);
  EXPECT_TRUE(wide->takes_blocked_path(x, 2));
  EXPECT_FALSE(narrow->takes_blocked_path(x, 2));  // 4 channels: not whole blocks
  EXPECT_FALSE(wide->takes_blocked_path(x.clone().requires_grad_(), 2));  // an MEI's image
  EXPECT_FALSE(wide->takes_blocked_path(x.to(torch::kDouble), 2));
  EXPECT_FALSE(wide->takes_blocked_path(x.transpose(2, 3), 2));  // not contiguous
  wide->eval();  // evaluation with autograd on: the native modules
  EXPECT_FALSE(wide->takes_blocked_path(x, 2));
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(wide->takes_blocked_path(x, 2));
  }
  wide->train();
  set_batchnorm_group(*wide, [](torch::Tensor&) {});  // a data-parallel group
  EXPECT_FALSE(wide->takes_blocked_path(x, 2));
  set_batchnorm_group(*wide, {});
  use_blocked_layout(*wide, false);
  EXPECT_FALSE(wide->takes_blocked_path(x, 2));
  // Unwanted maps are not converted; wanted ones are NCHW.
  use_blocked_layout(*wide, true);
  auto h = wide->forward(x, 2, 1u << 1);
  EXPECT_FALSE(h[0].defined());
  EXPECT_EQ(h[1].sizes(), torch::IntArrayRef({2, 32, 8, 8}));
}

}  // namespace
}  // namespace daenr::models
