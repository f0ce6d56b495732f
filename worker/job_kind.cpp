#include "worker/job_kind.h"

#include <fmt/format.h>
#include <unistd.h>

#include "job/error.h"
#include "worker/gradient_reducer.h"
#include "worker/parent.h"
#include "worker/trainer.h"

namespace daenr::worker {

bool KindContext::writer() const { return reducer == nullptr || reducer->rank() == 0; }

const JobKindRunner& runner_for(job::JobKind kind) {
  // The registry: one line per kind.
  switch (kind) {
    case job::JobKind::kTrain: return train_runner();
    case job::JobKind::kDecode: return decode_runner();
    case job::JobKind::kMei: return mei_runner();
  }
  throw job::ConfigError(fmt::format("no runner for job kind {}", static_cast<int>(kind)));
}

LoadedParent load_parent(const KindContext& ctx) {
  const auto& config = ctx.config;
  configure_threads(config.train.threads);
  LoadedParent p;
  p.raw = models::load_source(config.data, config.data_seed);
  if (!ctx.inputs.neurons.empty()) p.raw = models::select_neurons(p.raw, ctx.inputs.neurons);
  p.data = models::prepare(p.raw, config.seed, config.val_fraction);
  p.device = torch::Device(device_for_local_rank(config.train.device));
  p.model = load_model(config, p.data, ctx.inputs.parent_model, p.device);
  return p;
}

torch::Tensor in_batches(const torch::Tensor& rows, const torch::Device& device,
                         const std::function<torch::Tensor(const torch::Tensor&)>& f) {
  constexpr int64_t kRows = 256;
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < rows.size(0); i += kRows) parts.push_back(f(rows.slice(0, i, i + kRows).to(device)).to(torch::kCPU));
  return torch::cat(parts);
}

void write_atomically(const std::filesystem::path& path,
                      const std::function<void(const std::filesystem::path& tmp)>& write) {
  auto tmp = path;
  tmp += fmt::format(".tmp.{}", ::getpid());
  std::filesystem::create_directories(path.parent_path().empty() ? "." : path.parent_path());
  write(tmp);
  std::filesystem::rename(tmp, path);
}

}  // namespace daenr::worker
