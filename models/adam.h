#pragma once
// torch::optim::Adam's step with each parameter updated in one pass.
//
// Why: LibTorch's Adam::step runs eight operators per parameter (two for each moment, the
// square root, the division, the epsilon, the update), each a dispatch, an allocation or a
// pass over the parameter. For the small models of a DAE-NR sweep that is 4-7% of a training
// step on the CPU (bench/README.md). Here one loop per parameter does it all.
//
// It works on the optimizer's own state (AdamParamState's step, exp_avg and exp_avg_sq,
// created as Adam::step creates them), so a checkpoint written after either step loads and
// continues under the other. The arithmetic is LibTorch's, in its order; the compiler may fuse
// a multiply and an add where LibTorch's vector kernels do not, so results agree to float
// rounding, not bit for bit. For a fixed thread count the result is the same on every run.

#include <torch/torch.h>

namespace daenr::models {

/// One Adam step over every parameter with a gradient, as optimizer.step() would take it.
/// Fused where every such parameter is a contiguous float32 CPU tensor with a dense contiguous
/// gradient of the same shape and the options have neither weight decay nor AMSGrad; otherwise
/// (a GPU, another dtype, those options) it calls optimizer.step() itself.
void adam_step(torch::optim::Adam& optimizer);

/// Whether adam_step() would fuse this optimizer's next step (for tests and benchmarks).
bool adam_step_is_fused(const torch::optim::Adam& optimizer);

}  // namespace daenr::models
