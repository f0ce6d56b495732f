#pragma once
// What a decode or mei job starts from: its parent training job's data, rebuilt exactly as the
// parent saw it (same source, seed, split and neurons), and the parent's kept model.

#include <torch/torch.h>

#include <functional>

#include "models/data.h"
#include "models/network.h"
#include "worker/job_kind.h"

namespace daenr::worker {

struct LoadedParent {
  models::RawRegion raw;  ///< the region, restricted to the parent's neurons
  models::Dataset data;
  torch::Device device = torch::kCPU;
  models::DaeNr model{nullptr};  ///< evaluation mode, on `device`
};

/// Loads the parent of `ctx` (configures the threads first). Throws CheckpointError when its
/// model file is missing or unreadable, DataError for the data.
LoadedParent load_parent(const KindContext& ctx);

/// `f` applied to `rows` (moved to `device`) in slices of 256 rows, its results concatenated on
/// the CPU: evaluating a parent's model on a whole region keeps its memory flat.
torch::Tensor in_batches(const torch::Tensor& rows, const torch::Device& device,
                         const std::function<torch::Tensor(const torch::Tensor&)>& f);

}  // namespace daenr::worker
