#pragma once
// The extension point for kinds of job (job/kind.h): what a kind needs, how it runs on the
// worker group a job is leased to, and the outcome it records. The orchestrator leases, sends,
// records and resumes every kind alike; only `run` differs. Training is the first kind; decode
// and mei jobs (the talk's half) work on a finished training job's kept model.
//
// Adding a kind (CONTRIBUTING.md, "Adding a job kind"): its settings and spec table in
// job/kind.{h,cpp}, one file here that implements JobKindRunner, one line in the registry
// (job_kind.cpp), its expansion rule in sweeps/expand.cpp and its report section in reports/.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "job/config.h"
#include "job/kind.h"
#include "job/outcome.h"

namespace daenr::worker {

class GradientReducer;
struct TrainingProgress;

/// Everything a job needs on the rank that runs it: sent by the process that owns the database
/// (rank 0 over MPI), since workers never read it.
struct JobInputs {
  /// The neurons the (parent) model is fitted to, as columns of the data; empty: all.
  std::vector<int64_t> neurons;
  /// Decode / mei: the parent's kept model (an artifact path) and its test r per neuron.
  std::string parent_model;
  std::vector<double> parent_r;
};

/// One job as a kind runs it.
struct KindContext {
  std::string job_id;
  job::JobKind kind = job::JobKind::kTrain;
  job::JobConfig config;  ///< the training configuration (decode / mei: the parent's)
  job::DecodeSettings decode;
  job::MeiSettings mei;
  std::string parent_id;
  JobInputs inputs;
  std::filesystem::path checkpoint;    ///< the job's own checkpoint file; resumed from if present
  std::filesystem::path artifact_dir;  ///< where its artifacts go (`<db>.artifacts`)
  /// Asked between units of work (validation points, chunks of neurons); true: checkpoint and
  /// return a kPreempted outcome.
  std::function<bool(int)> should_stop;
  std::function<void(const TrainingProgress&)> on_progress;
  GradientReducer* reducer = nullptr;  ///< the data-parallel group, or null
  /// Whether this rank writes files (the group's rank 0).
  bool writer() const;
};

class JobKindRunner {
 public:
  virtual ~JobKindRunner() = default;
  virtual job::JobKind kind() const = 0;
  /// Runs the job and returns its outcome: kDone with its result and artifacts, or kPreempted
  /// after a stop. The job's own failures throw (the caller records them as kFailed); every
  /// rank of a group calls it with the same context.
  virtual job::Outcome run(const KindContext& context) const = 0;
};

/// The registered runner of a kind.
const JobKindRunner& runner_for(job::JobKind kind);

/// The registered kinds' runners (one file each: train_job.cpp, decode_job.cpp, mei_job.cpp).
const JobKindRunner& train_runner();
const JobKindRunner& decode_runner();
const JobKindRunner& mei_runner();

/// Writes `write(tmp)` to a temporary beside `path`, then renames it over `path`: a crash
/// leaves the old file or the new one, never half of one.
void write_atomically(const std::filesystem::path& path,
                      const std::function<void(const std::filesystem::path& tmp)>& write);

}  // namespace daenr::worker
