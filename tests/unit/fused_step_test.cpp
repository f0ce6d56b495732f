// The readout-only CNN's training step without autograd (models::fused_training_step): the
// same bits as autograd's forward, compute_loss and backward, step after step under Adam,
// and nothing done where it does not apply.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "models/adam.h"
#include "models/blocked_conv.h"
#include "models/error.h"
#include "models/network.h"

namespace daenr::models {
namespace {

ModelConfig cnn(ReadoutKind readout, int layer) {
  ModelConfig c;
  c.autoencoder = AutoencoderKind::kNone;
  c.readout = readout;
  c.layer = layer;
  c.width = 16;  // the blocked path needs every layer's channels in whole blocks of 16
  c.neurons = 7;
  return c;
}

DaeNr make(const ModelConfig& config) {
  torch::manual_seed(5);
  const auto side = layer_side(config.layer);
  auto positions = torch::arange(config.neurons, torch::kLong).remainder(side * side);
  return DaeNr(config, torch::rand({config.neurons}) + 0.5, positions);
}

// Everything a step leaves behind, by name: parameters, their gradients and the buffers.
std::map<std::string, torch::Tensor> state(const DaeNr& model) {
  std::map<std::string, torch::Tensor> s;
  for (const auto& p : model->named_parameters()) {
    s[p.key()] = p.value().detach().clone();
    if (p.value().grad().defined()) s[p.key() + ".grad"] = p.value().grad().clone();
  }
  for (const auto& b : model->named_buffers()) s[b.key()] = b.value().clone();
  return s;
}

void expect_same_bits(const std::map<std::string, torch::Tensor>& got,
                      const std::map<std::string, torch::Tensor>& want, const std::string& where) {
  ASSERT_EQ(got.size(), want.size()) << where;
  for (const auto& [name, w] : want) {
    ASSERT_TRUE(got.count(name)) << where << ": " << name << " missing";
    EXPECT_TRUE(torch::equal(got.at(name), w)) << where << ": " << name << " differs";
  }
}

TEST(FusedStep, GivesAutogradsBitsStepAfterStepUnderAdam) {
  if (!blocked_conv_available()) GTEST_SKIP() << "this build has no oneDNN headers";
  LossWeights weights;
  weights.alpha = 0.0;
  weights.beta = 0.7;
  for (const auto readout : {ReadoutKind::kFr, ReadoutKind::kFm})
    for (int layer = 1; layer <= 4; ++layer)
      for (int threads : {1, 2}) {
        torch::set_num_threads(threads);
        const auto config = cnn(readout, layer);
        const auto where =
            fmt::format("{} h{} on {} thread(s)", to_string(readout), layer, threads);
        auto fused = make(config), graph = make(config);
        fused->train();
        graph->train();
        torch::optim::Adam fused_adam(fused->parameters(), torch::optim::AdamOptions(1e-2));
        torch::optim::Adam graph_adam(graph->parameters(), torch::optim::AdamOptions(1e-2));
        torch::manual_seed(9);
        for (int step = 0; step < 3; ++step) {
          // Batches of 12 and then 5: a last partial batch takes its own primitives.
          const int64_t b = step < 2 ? 12 : 5;
          auto images = torch::randn({b, 1, 32, 32}) * 0.8;
          auto responses = torch::poisson(torch::rand({b, config.neurons}) * 3);
          for (auto* m : {&fused, &graph}) {
            for (const auto& p : (*m)->parameters()) p.mutable_grad().reset();
          }
          auto got = fused_training_step(fused, images, responses, weights);
          ASSERT_TRUE(got.has_value()) << where;
          auto want = compute_loss(graph, graph->forward(images), images, responses, weights);
          want.total.backward();
          EXPECT_TRUE(torch::equal(got->total, want.total.detach())) << where << " step " << step;
          EXPECT_TRUE(torch::equal(got->poisson, want.poisson.detach())) << where;
          EXPECT_FALSE(got->reconstruction.defined());
          EXPECT_GT(got->total.item<double>(), 0.0) << where;
          // Gradients and running statistics before the update, then the update itself.
          expect_same_bits(state(fused), state(graph), where + " before Adam");
          adam_step(fused_adam);
          adam_step(graph_adam);
          expect_same_bits(state(fused), state(graph), where + " after Adam");
        }
        // The steps did train: the readout's weights moved.
        EXPECT_FALSE(
            torch::equal(fused->readout()->features(), make(config)->readout()->features()))
            << where;
      }
  torch::set_num_threads(1);
}

TEST(FusedStep, DeclinesWhatItDoesNotTakeAndChangesNothing) {
  if (!blocked_conv_available()) GTEST_SKIP() << "this build has no oneDNN headers";
  LossWeights weights;
  torch::manual_seed(3);
  auto images = torch::randn({6, 1, 32, 32});
  auto responses = torch::rand({6, 7});
  const auto declines = [&](DaeNr& model, const torch::Tensor& x, const std::string& why) {
    const auto before = state(model);
    EXPECT_FALSE(fused_training_step(model, x, responses, weights).has_value()) << why;
    expect_same_bits(state(model), before, why);
  };
  {
    auto model = make(cnn(ReadoutKind::kFr, 2));
    model->eval();
    declines(model, images, "evaluation mode");
  }
  {
    auto config = cnn(ReadoutKind::kFc, 2);
    auto model = make(config);
    declines(model, images, "an FC readout");
  }
  {
    auto config = cnn(ReadoutKind::kFr, 2);
    config.autoencoder = AutoencoderKind::kCae;
    config.latent = 8;
    auto model = make(config);
    declines(model, images, "an autoencoder");
  }
  {
    auto model = make(cnn(ReadoutKind::kFr, 2));
    use_blocked_layout(*model, false);
    declines(model, images, "LibTorch's layout");
  }
  {
    auto model = make(cnn(ReadoutKind::kFr, 2));
    set_batchnorm_group(*model, [](torch::Tensor&) {});
    declines(model, images, "a data-parallel group");
  }
  {
    auto model = make(cnn(ReadoutKind::kFr, 2));
    model->readout()->features().set_requires_grad(false);
    declines(model, images, "a frozen parameter");
  }
  {
    auto model = make(cnn(ReadoutKind::kFr, 2));
    model->readout()->bias().mutable_grad() = torch::ones({7});
    declines(model, images, "a gradient already there");
  }
  {
    auto model = make(cnn(ReadoutKind::kFr, 2));
    torch::NoGradGuard no_grad;
    declines(model, images, "no gradients wanted");
  }
  {
    // 64x64 images make a 16x16 h2 where the readout reads 8x8: autograd's path reports it.
    auto model = make(cnn(ReadoutKind::kFr, 2));
    auto large = torch::randn({6, 1, 64, 64});
    declines(model, large, "a map of the wrong size");
    EXPECT_THROW(model->forward(large), ModelError);
  }
  {
    auto model = make(cnn(ReadoutKind::kFr, 2));
    declines(model, images.to(torch::kDouble), "double images");
  }
}

}  // namespace
}  // namespace daenr::models
