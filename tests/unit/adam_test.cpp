// models/adam.h: torch::optim::Adam's step fused per parameter, on the optimizer's own state.

#include "models/adam.h"

#include <gtest/gtest.h>
#include <limits>
#include <sstream>

namespace daenr::models {
namespace {

// Parameters of several shapes, one of them larger than a thread's share (1 << 14), and one
// that gets no gradient.
std::vector<torch::Tensor> make_params() {
  torch::manual_seed(3);
  return {torch::randn({16, 1, 3, 3}).requires_grad_(), torch::randn({7}).requires_grad_(),
          torch::randn({130, 257}).requires_grad_(), torch::randn({5, 5}).requires_grad_()};
}

std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

// Gradients of a varied size and sign at step t (the last parameter gets none).
void set_grads(std::vector<torch::Tensor>& params, int t) {
  for (size_t i = 0; i + 1 < params.size(); ++i) {
    torch::manual_seed(100 * t + static_cast<int>(i));
    params[i].mutable_grad() =
        torch::randn_like(params[i]) * (1.0 + t) + 0.1 * static_cast<double>(i);
  }
  params.back().mutable_grad() = torch::Tensor();
}

// |a - b| within 4 float epsilons of b's largest entry: a few roundings apart.
bool within_float_rounding(const torch::Tensor& a, const torch::Tensor& b) {
  const double scale = b.abs().max().item<double>();
  return (a - b).abs().max().item<double>() <= 4 * std::numeric_limits<float>::epsilon() * scale;
}

const torch::optim::AdamParamState& state_of(torch::optim::Adam& opt, const torch::Tensor& p) {
  return static_cast<const torch::optim::AdamParamState&>(
      *opt.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())));
}

TEST(Adam, FusedStepsFollowLibTorchsAdamWithItsState) {
  auto fused_params = make_params();
  auto reference_params = copies(fused_params);
  const auto options = torch::optim::AdamOptions(3e-3).betas({0.8, 0.95}).eps(1e-6);
  torch::optim::Adam fused(fused_params, options), reference(reference_params, options);
  ASSERT_TRUE(adam_step_is_fused(fused));
  const auto version = fused_params[0]._version();
  for (int t = 0; t < 12; ++t) {
    set_grads(fused_params, t);
    set_grads(reference_params, t);
    adam_step(fused);
    reference.step();
  }
  for (size_t i = 0; i < fused_params.size(); ++i) {
    // Float rounding apart (a fused multiply-add where LibTorch rounds twice), the same values.
    EXPECT_TRUE(torch::allclose(fused_params[i], reference_params[i], 1e-6, 1e-7)) << i;
  }
  // Each step is an in-place write to the autograd version counter, as LibTorch's is.
  EXPECT_EQ(fused_params[0]._version(), version + 12);
  // The parameter without a gradient: untouched, no state, as in LibTorch's step.
  EXPECT_TRUE(torch::equal(fused_params.back(), make_params().back()));
  EXPECT_EQ(fused.state().size(), 3u);
  for (size_t i = 0; i + 1 < fused_params.size(); ++i) {
    const auto& a = state_of(fused, fused_params[i]);
    const auto& b = state_of(reference, reference_params[i]);
    EXPECT_EQ(a.step(), 12);
    EXPECT_EQ(a.step(), b.step());
    // exp_avg changes sign, so its small entries carry the rounding of its large ones.
    EXPECT_TRUE(within_float_rounding(a.exp_avg(), b.exp_avg())) << i;
    EXPECT_TRUE(within_float_rounding(a.exp_avg_sq(), b.exp_avg_sq())) << i;
  }
  // The parameters moved: a step that did nothing would fail the comparison above only if
  // LibTorch's did nothing too.
  EXPECT_FALSE(torch::allclose(fused_params[0], make_params()[0], 1e-3, 1e-3));
}

// A new Adam over `params` with `from`'s state, through the archive a checkpoint holds.
std::unique_ptr<torch::optim::Adam> reload(torch::optim::Adam& from,
                                           std::vector<torch::Tensor> params,
                                           const torch::optim::AdamOptions& options) {
  std::stringstream buffer;
  torch::serialize::OutputArchive out;
  from.save(out);
  out.save_to(buffer);
  torch::serialize::InputArchive in;
  in.load_from(buffer);
  auto opt = std::make_unique<torch::optim::Adam>(std::move(params), options);
  opt->load(in);
  return opt;
}

TEST(Adam, ACheckpointFromEitherStepContinuesUnderTheOther) {
  const auto options = torch::optim::AdamOptions(1e-2);
  for (const bool fused_first : {true, false}) {
    auto params = make_params();
    torch::optim::Adam first(params, options);
    for (int t = 0; t < 5; ++t) {
      set_grads(params, t);
      fused_first ? adam_step(first) : (void)first.step();
    }
    // Continue the original with the step that wrote it, and a reloaded copy with the other.
    auto copy = copies(params);
    auto second = reload(first, copy, options);
    ASSERT_TRUE(adam_step_is_fused(*second));
    set_grads(params, 5);
    set_grads(copy, 5);
    fused_first ? adam_step(first) : (void)first.step();
    fused_first ? (void)second->step() : adam_step(*second);
    EXPECT_EQ(state_of(*second, copy[0]).step(), 6) << fused_first;
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(torch::allclose(copy[i], params[i], 1e-6, 1e-7)) << fused_first << " " << i;
    }
    // Both moved at step 6: the comparison is not between two parameters left alone.
    EXPECT_FALSE(torch::allclose(copy[0], make_params()[0], 1e-3, 1e-3)) << fused_first;
  }
}

TEST(Adam, OptionsItDoesNotFuseTakeLibTorchsStep) {
  for (const auto& options : {torch::optim::AdamOptions(1e-2).weight_decay(0.1),
                              torch::optim::AdamOptions(1e-2).amsgrad(true)}) {
    auto params = make_params();
    auto twin = copies(params);
    torch::optim::Adam a(params, options), b(twin, options);
    EXPECT_FALSE(adam_step_is_fused(a));
    for (int t = 0; t < 3; ++t) {
      set_grads(params, t);
      set_grads(twin, t);
      adam_step(a);
      b.step();
    }
    for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], twin[i])) << i;
  }
  // A double parameter: not fused, LibTorch's step.
  auto p = torch::randn({4}, torch::kDouble).requires_grad_();
  torch::optim::Adam d({p}, torch::optim::AdamOptions(1e-2));
  p.mutable_grad() = torch::ones_like(p);
  EXPECT_FALSE(adam_step_is_fused(d));
  const auto before = p.detach().clone();
  adam_step(d);
  EXPECT_TRUE(torch::allclose(p, before - 1e-2, 1e-6, 1e-9));  // Adam's first step is -lr sign(g)
}

TEST(Adam, TwoThreadsGiveTheSameBitsAsOne) {
  auto one = make_params();
  auto two = copies(one);
  const auto options = torch::optim::AdamOptions(1e-3);
  torch::optim::Adam a(one, options), b(two, options);
  const int threads = at::get_num_threads();
  for (int t = 0; t < 4; ++t) {
    set_grads(one, t);
    set_grads(two, t);
    at::set_num_threads(1);
    adam_step(a);
    at::set_num_threads(2);
    adam_step(b);
  }
  at::set_num_threads(threads);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], two[i])) << i;
}

}  // namespace
}  // namespace daenr::models
