#include "orchestrator/job_runner.h"

#include <fmt/format.h>

#include "models/error.h"
#include "orchestrator/sweep_runner.h"
#include "worker/gpu_share.h"
#include "worker/gradient_reducer.h"
#include "worker/trainer.h"

namespace daenr::orchestrator {

namespace fs = std::filesystem;

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

JobInputs job_inputs(storage::Queries& db, const sweeps::JobSpec& job,
                     const std::function<const sweeps::JobSpec&(const std::string&)>& parent_of) {
  JobInputs in;
  if (job.kind == job::JobKind::kTrain) {
    in.neurons = neuron_subset(db, job);
    return in;
  }
  const auto& parent = parent_of(job.depends_on);
  in.neurons = neuron_subset(db, parent);
  in.parent_model = db.artifact(parent.id, "model").value_or("");
  if (in.parent_model.empty()) {
    throw models::DataError(fmt::format("job {} needs the trained model of job {}, which kept none (trained by "
                                        "an older daenr: delete its result to train it again)",
                                        job.id, parent.id));
  }
  for (const auto& n : db.neuron_results(parent.id)) in.parent_r.push_back(n.r);
  return in;
}

// Empty fields are left out, as in job::to_json(Outcome): a training job on all neurons has no
// inputs at all, and its assignment is its id alone.
nlohmann::json to_json(const JobInputs& in) {
  nlohmann::json j = nlohmann::json::object();
  if (!in.neurons.empty()) j["neurons"] = in.neurons;
  if (!in.parent_model.empty()) j["parent_model"] = in.parent_model;
  if (!in.parent_r.empty()) j["parent_r"] = in.parent_r;
  return j;
}

JobInputs inputs_from_json(const nlohmann::json& j) {
  JobInputs in;
  in.neurons = j.value("neurons", std::vector<int64_t>{});
  in.parent_model = j.value("parent_model", std::string());
  in.parent_r = j.value("parent_r", std::vector<double>{});
  return in;
}

Outcome execute_job(const sweeps::JobSpec& job, const JobInputs& inputs, const JobPaths& paths,
                    const std::function<bool(int)>& should_stop, worker::GradientReducer* reducer) {
  return execute_job(job, inputs, paths, should_stop, {}, reducer);
}

Outcome execute_job(const sweeps::JobSpec& job, const JobInputs& inputs, const JobPaths& paths,
                    const std::function<bool(int)>& should_stop,
                    const std::function<void(const worker::TrainingProgress&)>& on_progress,
                    worker::GradientReducer* reducer) {
  worker::KindContext ctx;
  ctx.job_id = job.id;
  ctx.kind = job.kind;
  ctx.config = job.config;
  ctx.decode = job.decode;
  ctx.mei = job.mei;
  ctx.parent_id = job.kind == job::JobKind::kTrain ? "" : job.depends_on;
  ctx.inputs = inputs;
  if (!paths.checkpoint_dir.empty()) ctx.checkpoint = paths.checkpoint_dir / (job.id + ".ckpt");
  ctx.artifact_dir = paths.artifact_dir;
  ctx.should_stop = should_stop;
  ctx.on_progress = on_progress;
  ctx.reducer = reducer;
  Outcome out;
  out.job_id = job.id;
  try {
    out = worker::runner_for(job.kind).run(ctx);
  } catch (const storage::StorageError&) {
    throw;  // the database itself is in trouble: the run stops
  } catch (const std::exception& e) {
    // A job's own failure (divergence, bad data, bad checkpoint, a missing parent model, its
    // share of the GPU's memory exhausted) is recorded and the sweep goes on.
    out.status = Outcome::Status::kFailed;
    out.error = worker::failure_message(e);
  }
  return out;
}

void remove_spent_checkpoint(const JobPaths& paths, const Outcome& outcome) {
  if (outcome.status != Outcome::Status::kDone) return;
  std::error_code ec;
  fs::remove(paths.checkpoint_dir / (outcome.job_id + ".ckpt"), ec);
}

void record_outcome(storage::Store& store, const std::string& owner, const Outcome& o, RunSummary& summary) {
  const double now = unix_now();
  switch (o.status) {
    case Outcome::Status::kDone:
      store.record_result(o, owner, now);
      ++summary.done;
      break;
    case Outcome::Status::kPreempted:
      store.record_preempted(o.job_id, owner, now);
      ++summary.preempted;
      summary.stopped = true;
      break;
    case Outcome::Status::kFailed:
      store.record_failure(o.job_id, owner, o.error, now);
      ++summary.failed;
      break;
  }
}

}  // namespace daenr::orchestrator
