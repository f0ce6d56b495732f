#pragma once
// One job of a sweep, on whichever rank trains it, and its outcome as it
// travels back to the process that owns the database (the same process in
// the embedded default; rank 0 over MPI). Only `record_outcome` writes to the
// database, so that a worker rank never touches it.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "storage/store.h"
#include "sweeps/expand.h"

namespace daenr::worker {
class GradientReducer;
struct TrainingProgress;
}

namespace daenr::orchestrator {

struct Outcome {
  enum class Kind { kDone, kFailed, kPreempted };
  Kind kind = Kind::kFailed;
  std::string job_id;
  storage::ResultRecord record;  ///< kDone
  std::string error;             ///< kFailed: one line
  std::string artifact;          ///< kDone: the reconstructions file, if the model has a decoder
};

struct JobPaths {
  std::filesystem::path checkpoint_dir, artifact_dir;
};

/// Trains and evaluates `job` on `neurons` (empty: all), resuming from and
/// writing its checkpoint in `paths.checkpoint_dir`. A job's own failure (bad
/// data, divergence, a device that does not exist) becomes a kFailed outcome;
/// an exception from `should_stop` (the database heartbeat in process)
/// propagates. With a data-parallel `reducer`, only its rank 0 writes files. `on_progress`
/// is told of every validation point (worker::RunOptions::on_progress).
Outcome execute_job(const sweeps::JobSpec& job, const std::vector<int64_t>& neurons, const JobPaths& paths,
                    const std::function<bool(int)>& should_stop, worker::GradientReducer* reducer = nullptr);
Outcome execute_job(const sweeps::JobSpec& job, const std::vector<int64_t>& neurons, const JobPaths& paths,
                    const std::function<bool(int)>& should_stop,
                    const std::function<void(const worker::TrainingProgress&)>& on_progress,
                    worker::GradientReducer* reducer = nullptr);

/// The neurons a significant / insignificant job fits, from the per-neuron
/// results of the job it depends on (done before it: the queue orders them).
/// Throws models::DataError when that job found none of them.
std::vector<int64_t> neuron_subset(storage::Queries& db, const sweeps::JobSpec& job);

/// Lossless (doubles round-trip) wire form of an outcome, for MPI messages.
nlohmann::json to_json(const Outcome& outcome);
Outcome outcome_from_json(const nlohmann::json& json);

struct RunSummary;
/// Writes an outcome as the lease holder `owner` and counts it in `summary`.
void record_outcome(storage::Store& store, const std::string& owner, const Outcome& outcome,
                    RunSummary& summary);

/// A done job's checkpoint is spent: remove it once its result is committed.
void remove_spent_checkpoint(const JobPaths& paths, const Outcome& outcome);

}  // namespace daenr::orchestrator
