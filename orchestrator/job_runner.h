#pragma once
// One job of a sweep, whatever its kind, on whichever rank runs it, and its outcome as it
// travels back to the process that owns the database (the same process in the embedded
// default; rank 0 over MPI). Only `record_outcome` writes to the database, so that a worker
// rank never touches it; what a job needs from the database (its neurons, its parent's model)
// is gathered by `job_inputs` on that process and sent with the job.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "job/outcome.h"
#include "storage/store.h"
#include "sweeps/expand.h"
#include "worker/job_kind.h"

namespace daenr::worker {
class GradientReducer;
struct TrainingProgress;
}

namespace daenr::orchestrator {

/// A job's outcome: the job contract's one shape (job/outcome.h).
using Outcome = job::Outcome;
using worker::JobInputs;
using job::outcome_from_json;

struct JobPaths {
  std::filesystem::path checkpoint_dir, artifact_dir;
};

/// Runs `job` with `inputs` through its kind's runner (worker/job_kind.h), resuming from and
/// writing its checkpoint in `paths.checkpoint_dir`. A job's own failure (bad data,
/// divergence, a missing parent model, a device that does not exist) becomes a kFailed
/// outcome; an exception from `should_stop` (the database heartbeat in process) propagates.
/// With a data-parallel `reducer`, only its rank 0 writes files. `on_progress` is told of
/// every validation point of a training job (worker::RunOptions::on_progress).
Outcome execute_job(const sweeps::JobSpec& job, const JobInputs& inputs, const JobPaths& paths,
                    const std::function<bool(int)>& should_stop, worker::GradientReducer* reducer = nullptr);
Outcome execute_job(const sweeps::JobSpec& job, const JobInputs& inputs, const JobPaths& paths,
                    const std::function<bool(int)>& should_stop,
                    const std::function<void(const worker::TrainingProgress&)>& on_progress,
                    worker::GradientReducer* reducer = nullptr);

/// The neurons a significant / insignificant job fits, from the per-neuron results of the job
/// it depends on (done before it: the queue orders them). Throws models::DataError when that
/// job found none of them.
std::vector<int64_t> neuron_subset(storage::Queries& db, const sweeps::JobSpec& job);

/// What `job` needs from the database, read by the process that owns it: its neurons, and for
/// a decode / mei job its parent's (`parent`, the parent's expansion) with the parent's kept
/// model and test r. Throws models::DataError when something is missing (the parent kept no
/// model: trained by an older daenr).
JobInputs job_inputs(storage::Queries& db, const sweeps::JobSpec& job,
                     const std::function<const sweeps::JobSpec&(const std::string&)>& parent);

/// The wire form of a job's inputs (MPI assignments).
nlohmann::json to_json(const JobInputs& inputs);
JobInputs inputs_from_json(const nlohmann::json& json);

struct RunSummary;
/// Writes an outcome (its result and artifacts in one transaction) as the lease holder
/// `owner` and counts it in `summary`.
void record_outcome(storage::Store& store, const std::string& owner, const Outcome& outcome,
                    RunSummary& summary);

/// A done job's checkpoint is spent: remove it once its result is committed.
void remove_spent_checkpoint(const JobPaths& paths, const Outcome& outcome);

}  // namespace daenr::orchestrator
