#include "orchestrator/job_runner.h"

#include <fmt/format.h>

#include "models/error.h"
#include "models/npy.h"
#include "orchestrator/sweep_runner.h"
#include "worker/gpu_share.h"
#include "worker/gradient_reducer.h"
#include "worker/trainer.h"

namespace daenr::orchestrator {

namespace fs = std::filesystem;

namespace {

storage::ResultRecord to_record(const std::string& id, const worker::JobResult& r,
                                const job::JobConfig& config) {
  storage::ResultRecord rec;
  rec.job_id = id;
  auto metrics = worker::to_json(r, false);
  // The receptive-field centres, true and recovered, for the report's figure (small: 4 numbers
  // a neuron); the rest of the per-neuron results go to neuron_results.
  if (!r.rf_recovered.empty()) {
    metrics["rf_recovered"] = r.rf_recovered;
    metrics["rf_true"] = r.rf_true;
  }
  metrics["config"] = job::resolved_json(config);
  rec.metrics = metrics.dump();
  rec.mse = r.mse;
  rec.psnr = r.psnr;
  rec.ssim = r.ssim;
  rec.mean_r = r.mean_r;
  if (r.n_significant) rec.n_significant = *r.n_significant;
  rec.neurons = r.neurons;
  rec.steps = r.steps;
  rec.r = r.r;
  rec.p = r.p;
  for (const auto& c : r.curve) {
    rec.curve.push_back({c.step, c.phase, c.learning_rate, c.train_loss, c.val_loss});
  }
  return rec;
}

const char* kind_name(Outcome::Kind k) {
  switch (k) {
    case Outcome::Kind::kDone: return "done";
    case Outcome::Kind::kFailed: return "failed";
    case Outcome::Kind::kPreempted: return "preempted";
  }
  return "failed";
}

nlohmann::json optional_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }
std::optional<double> optional_double(const nlohmann::json& v) {
  return v.is_null() ? std::nullopt : std::optional<double>(v.get<double>());
}

}  // namespace

std::vector<int64_t> neuron_subset(storage::Queries& db, const sweeps::JobSpec& job) {
  if (job.labels.neurons == sweeps::Neurons::kAll) return {};
  const auto results = db.neuron_results(job.depends_on);
  std::vector<int64_t> out;
  for (const auto& n : results) {
    if (job::is_significant(n.r, n.p) == (job.labels.neurons == sweeps::Neurons::kSignificant)) {
      out.push_back(n.neuron);
    }
  }
  if (results.empty()) {
    throw models::DataError(fmt::format("job {} needs the per-neuron results of job {}, which has none",
                                        job.id, job.depends_on));
  }
  if (out.empty()) {
    throw models::DataError(fmt::format("job {}: job {} found no {} neurons", job.id, job.depends_on,
                                        sweeps::to_string(job.labels.neurons)));
  }
  return out;
}

Outcome execute_job(const sweeps::JobSpec& job, const std::vector<int64_t>& neurons, const JobPaths& paths,
                    const std::function<bool(int)>& should_stop, worker::GradientReducer* reducer) {
  return execute_job(job, neurons, paths, should_stop, {}, reducer);
}

Outcome execute_job(const sweeps::JobSpec& job, const std::vector<int64_t>& neurons, const JobPaths& paths,
                    const std::function<bool(int)>& should_stop,
                    const std::function<void(const worker::TrainingProgress&)>& on_progress,
                    worker::GradientReducer* reducer) {
  Outcome out;
  out.job_id = job.id;
  worker::RunOptions run;
  run.checkpoint = paths.checkpoint_dir / (job.id + ".ckpt");
  run.should_stop = should_stop;
  run.on_progress = on_progress;
  run.neurons = neurons;
  run.reducer = reducer;
  const bool writer = reducer == nullptr || reducer->rank() == 0;
  try {
    const auto result = worker::run_job(job.config, run);
    if (result.status == worker::JobResult::Status::kStopped) {
      out.kind = Outcome::Kind::kPreempted;
      return out;
    }
    out.kind = Outcome::Kind::kDone;
    out.record = to_record(job.id, result, job.config);
    if (writer && result.reconstructions.defined()) {
      // A few test images and their reconstructions, for the report's figures.
      const auto file = paths.artifact_dir / (job.id + "-reconstructions.npy");
      models::write_npy(file, torch::stack({result.test_images, result.reconstructions}).to(torch::kFloat));
      out.artifact = fs::absolute(file).string();
    }
  } catch (const storage::StorageError&) {
    throw;  // the database itself is in trouble: the run stops
  } catch (const std::exception& e) {
    // A job's own failure (divergence, bad data, bad checkpoint, its share of
    // the GPU's memory exhausted) is recorded and the sweep goes on.
    out.kind = Outcome::Kind::kFailed;
    out.error = worker::failure_message(e);
  }
  return out;
}

nlohmann::json to_json(const Outcome& o) {
  nlohmann::json j{{"kind", kind_name(o.kind)}, {"job_id", o.job_id}, {"error", o.error}, {"artifact", o.artifact}};
  if (o.kind == Outcome::Kind::kDone) {
    const auto& r = o.record;
    nlohmann::json curve = nlohmann::json::array();
    for (const auto& c : r.curve) curve.push_back({c.step, c.phase, c.learning_rate, c.train_loss, c.val_loss});
    j["record"] = {{"metrics", r.metrics},
                   {"mse", optional_json(r.mse)},
                   {"psnr", optional_json(r.psnr)},
                   {"ssim", optional_json(r.ssim)},
                   {"mean_r", optional_json(r.mean_r)},
                   {"n_significant", r.n_significant ? nlohmann::json(*r.n_significant) : nlohmann::json()},
                   {"neurons", r.neurons},
                   {"steps", r.steps},
                   {"r", r.r},
                   {"p", r.p},
                   {"curve", curve}};
  }
  return j;
}

Outcome outcome_from_json(const nlohmann::json& j) {
  Outcome o;
  const auto kind = j.at("kind").get<std::string>();
  o.kind = kind == "done" ? Outcome::Kind::kDone
                          : kind == "preempted" ? Outcome::Kind::kPreempted : Outcome::Kind::kFailed;
  o.job_id = j.at("job_id").get<std::string>();
  o.error = j.at("error").get<std::string>();
  o.artifact = j.at("artifact").get<std::string>();
  if (o.kind == Outcome::Kind::kDone) {
    const auto& r = j.at("record");
    auto& rec = o.record;
    rec.job_id = o.job_id;
    rec.metrics = r.at("metrics").get<std::string>();
    rec.mse = optional_double(r.at("mse"));
    rec.psnr = optional_double(r.at("psnr"));
    rec.ssim = optional_double(r.at("ssim"));
    rec.mean_r = optional_double(r.at("mean_r"));
    if (!r.at("n_significant").is_null()) rec.n_significant = r.at("n_significant").get<int64_t>();
    rec.neurons = r.at("neurons").get<int64_t>();
    rec.steps = r.at("steps").get<int64_t>();
    rec.r = r.at("r").get<std::vector<double>>();
    rec.p = r.at("p").get<std::vector<double>>();
    for (const auto& c : r.at("curve")) {
      rec.curve.push_back({c[0].get<int64_t>(), c[1].get<int64_t>(), c[2].get<double>(), c[3].get<double>(),
                           c[4].get<double>()});
    }
  }
  return o;
}

void remove_spent_checkpoint(const JobPaths& paths, const Outcome& outcome) {
  if (outcome.kind != Outcome::Kind::kDone) return;
  std::error_code ec;
  fs::remove(paths.checkpoint_dir / (outcome.job_id + ".ckpt"), ec);
}

void record_outcome(storage::Store& store, const std::string& owner, const Outcome& o, RunSummary& summary) {
  const double now = unix_now();
  switch (o.kind) {
    case Outcome::Kind::kDone:
      store.record_result(o.record, owner, now);
      if (!o.artifact.empty()) store.add_artifact(o.job_id, "reconstructions", o.artifact);
      ++summary.done;
      break;
    case Outcome::Kind::kPreempted:
      store.record_preempted(o.job_id, owner, now);
      ++summary.preempted;
      summary.stopped = true;
      break;
    case Outcome::Kind::kFailed:
      store.record_failure(o.job_id, owner, o.error, now);
      ++summary.failed;
      break;
  }
}

}  // namespace daenr::orchestrator
