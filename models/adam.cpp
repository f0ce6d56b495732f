#include "models/adam.h"

#include <cmath>

#include "models/adam_kernels.h"

namespace daenr::models {

namespace {

// LibTorch keys an optimizer's per-parameter state by the address of the tensor's
// implementation, written as text (torch/optim/adam.cpp).
std::string state_key(const torch::Tensor& p) {
  return c10::guts::to_string(p.unsafeGetTensorImpl());
}

bool fusable(const torch::Tensor& p) {
  const auto& g = p.grad();
  return p.device().is_cpu() && p.scalar_type() == torch::kFloat && p.is_contiguous() &&
         !g.is_sparse() && g.device().is_cpu() && g.scalar_type() == torch::kFloat &&
         g.is_contiguous() && g.sizes() == p.sizes();
}

}  // namespace

bool adam_step_is_fused(const torch::optim::Adam& optimizer) {
  for (const auto& group : optimizer.param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    if (options.weight_decay() != 0 || options.amsgrad()) return false;
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (!fusable(p)) return false;
      // A state loaded from elsewhere in another layout or type: LibTorch's step takes it.
      const auto found = optimizer.state().find(state_key(p));
      if (found == optimizer.state().end()) continue;
      const auto& state = static_cast<const torch::optim::AdamParamState&>(*found->second);
      for (const auto& t : {state.exp_avg(), state.exp_avg_sq()}) {
        if (!t.defined() || !t.is_contiguous() || t.scalar_type() != torch::kFloat ||
            !t.device().is_cpu() || t.sizes() != p.sizes()) {
          return false;
        }
      }
    }
  }
  return true;
}

void adam_step(torch::optim::Adam& optimizer) {
  if (!adam_step_is_fused(optimizer)) {
    optimizer.step();
    return;
  }
  torch::NoGradGuard no_grad;
  auto& states = optimizer.state();
  for (auto& group : optimizer.param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto key = state_key(p);
      auto found = states.find(key);
      if (found == states.end()) {
        // As Adam::step's first step for a parameter.
        auto state = std::make_unique<torch::optim::AdamParamState>();
        state->step(0);
        state->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        state->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        found = states.emplace(key, std::move(state)).first;
      }
      auto& state = static_cast<torch::optim::AdamParamState&>(*found->second);
      state.step(state.step() + 1);
      const double bias_correction1 = 1 - std::pow(beta1, state.step());
      const double bias_correction2 = 1 - std::pow(beta2, state.step());
      // Each scalar rounded to float from the double LibTorch computes it in.
      const kernels::AdamScalars s{static_cast<float>(beta1),
                                   static_cast<float>(1 - beta1),
                                   static_cast<float>(beta2),
                                   static_cast<float>(1 - beta2),
                                   static_cast<float>(std::sqrt(bias_correction2)),
                                   static_cast<float>(options.eps()),
                                   static_cast<float>(-(options.lr() / bias_correction1))};
      float* pp = p.data_ptr<float>();
      const float* gp = p.grad().data_ptr<float>();
      float* mp = state.exp_avg().data_ptr<float>();
      float* vp = state.exp_avg_sq().data_ptr<float>();
      at::parallel_for(0, p.numel(), 1 << 14, [&](int64_t i0, int64_t i1) {
        kernels::adam_update(pp, gp, mp, vp, s, i0, i1);
      });
      // Written in place as LibTorch's in-place operators write them: an autograd graph that
      // saved one of them before this step now refuses to use it, as after Adam::step.
      for (auto* t : {&p, &state.exp_avg(), &state.exp_avg_sq()}) {
        t->unsafeGetTensorImpl()->bump_version();
      }
    }
  }
}

}  // namespace daenr::models
