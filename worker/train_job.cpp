// The training kind: one model trained, evaluated and kept (worker/trainer.h), recorded with
// its curve, its per-neuron results, a few reconstructions for the report's figures and its
// weights for the jobs that work on it (decode, mei).

#include <fmt/format.h>

#include "job/config.h"
#include "models/npy.h"
#include "worker/job_kind.h"
#include "worker/trainer.h"

namespace daenr::worker {

namespace fs = std::filesystem;

namespace {

job::Outcome to_outcome(const std::string& id, const JobResult& r, const JobConfig& config) {
  job::Outcome o;
  o.status = job::Outcome::Status::kDone;
  o.job_id = id;
  auto metrics = to_json(r, false);
  // The receptive-field centres, true and recovered, for the report's figure (small: 4 numbers
  // a neuron); the rest of the per-neuron results go to neuron_results.
  if (!r.rf_recovered.empty()) {
    metrics["rf_recovered"] = r.rf_recovered;
    metrics["rf_true"] = r.rf_true;
  }
  metrics["config"] = job::resolved_json(config);
  o.metrics = metrics.dump();
  o.mse = r.mse;
  o.psnr = r.psnr;
  o.ssim = r.ssim;
  o.mean_r = r.mean_r;
  if (r.n_significant) o.n_significant = *r.n_significant;
  o.neurons = r.neurons;
  o.steps = r.steps;
  o.r = r.r;
  o.p = r.p;
  o.curve = r.curve;
  return o;
}

class TrainRunner final : public JobKindRunner {
 public:
  job::JobKind kind() const override { return job::JobKind::kTrain; }

  job::Outcome run(const KindContext& ctx) const override {
    RunOptions run;
    run.checkpoint = ctx.checkpoint;
    run.should_stop = ctx.should_stop;
    run.on_progress = ctx.on_progress;
    run.neurons = ctx.inputs.neurons;
    run.reducer = ctx.reducer;
    const auto model_file = ctx.artifact_dir / (ctx.job_id + "-model.pt");
    if (!ctx.artifact_dir.empty()) run.save_model = model_file;
    const auto result = run_job(ctx.config, run);
    if (result.status == JobResult::Status::kStopped) {
      job::Outcome stopped;
      stopped.status = job::Outcome::Status::kPreempted;
      stopped.job_id = ctx.job_id;
      return stopped;
    }
    auto out = to_outcome(ctx.job_id, result, ctx.config);
    if (ctx.artifact_dir.empty()) return out;
    out.artifacts.push_back({"model", fs::absolute(model_file).string()});
    if (result.reconstructions.defined()) {
      // A few test images and their reconstructions, for the report's figures.
      const auto file = ctx.artifact_dir / (ctx.job_id + "-reconstructions.npy");
      if (ctx.writer()) {
        models::write_npy(file, torch::stack({result.test_images, result.reconstructions}).to(torch::kFloat));
      }
      out.artifacts.push_back({"reconstructions", fs::absolute(file).string()});
    }
    return out;
  }
};

}  // namespace

const JobKindRunner& train_runner() {
  static const TrainRunner runner;
  return runner;
}

}  // namespace daenr::worker
