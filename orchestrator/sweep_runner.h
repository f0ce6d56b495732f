#pragma once
// Runs a sweep in this process (the embedded default: world size 1, no MPI):
// expand the spec, insert what is new, then lease, train and record job after
// job until nothing runnable is left.
//
// Protocol with the database, one process at a time:
//  1. Take the run lock (a second run refuses, naming the holder; a lock whose
//     heartbeat is older than `lock_stale_s` is taken over).
//  2. Insert the sweep and its jobs (idempotent: ids are content hashes).
//  3. Requeue every job still leased: with the lock held, its runner is dead.
//  4. Lease the next job; train it with a checkpoint in `checkpoint_dir`
//     (resuming one left by an interrupted run); at every validation point
//     refresh the lock and the lease and ask whether to stop.
//  5. Record the result (done), the failure (failed, retried while attempts <
//     `max_attempts`), or the stop (preempted, not an attempt); go to 4.
//  6. Release the lock.
// A SIGKILL at any moment leaves the database consistent (every write is one
// transaction) and the checkpoint whole (atomic rename); the next run resumes.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <map>

#include <nlohmann/json.hpp>

#include "orchestrator/job_runner.h"
#include "orchestrator/progress.h"
#include "storage/store.h"
#include "sweeps/spec.h"

namespace daenr::orchestrator {

struct RunnerOptions {
  int max_attempts = 2;
  double lock_stale_s = storage::RunLock::kStaleAfterSeconds;
  double lease_s = 600;
  std::filesystem::path checkpoint_dir;  ///< default: <db>.checkpoints
  /// Progress on stderr (progress.h): off, a line per finished job, or also an updating line.
  ProgressMode progress = ProgressMode::kOff;
  /// Set (e.g. by a signal handler) to stop gracefully at the next validation point.
  const std::atomic<bool>* stop = nullptr;
};

struct RunSummary {
  int64_t total = 0, ran = 0, done = 0, failed = 0, preempted = 0;
  bool stopped = false;  ///< a graceful stop was requested and honoured
  /// Wall time of the setup (expand, insert, lock) and of the job loop, in s.
  double setup_s = 0, loop_s = 0;
  /// CPU seconds rank 0 spent in the job loop (MPI runs): waiting politely
  /// instead of busy-polling keeps it a small share of loop_s.
  double orchestrator_cpu_s = 0;
};

/// Runs what is not done. Throws sweeps::SpecError for a bad spec,
/// storage::StorageError / LockHeld for the database.
RunSummary run_sweep(const std::filesystem::path& spec, const std::filesystem::path& db,
                     const RunnerOptions& options);

struct Plan {
  int64_t total = 0, fresh = 0, done = 0, failed = 0, pending = 0, stale = 0;
  std::vector<std::string> fresh_ids;
  /// Jobs per kind ("train", "decode", "mei"), in job::all_job_kinds order; kinds with none left out.
  std::vector<std::pair<std::string, int64_t>> kinds;
};

/// Steps 1-3 of the protocol, shared by the in-process and the MPI runner
/// (where only rank 0 builds one): the spec expanded, the database opened and
/// locked, the sweep inserted, stale leases requeued, the folders made. The
/// destructor releases the run lock.
class PreparedSweep {
 public:
  PreparedSweep(const std::filesystem::path& spec, const std::filesystem::path& db, const RunnerOptions& options);
  /// The same with the spec already parsed from `spec_path` (the MPI runner parses it once per rank).
  PreparedSweep(const std::filesystem::path& spec_path, sweeps::SweepSpec spec, const std::filesystem::path& db,
                const RunnerOptions& options);
  ~PreparedSweep();
  PreparedSweep(const PreparedSweep&) = delete;
  PreparedSweep& operator=(const PreparedSweep&) = delete;

  /// Whether any job of the sweep is still to run: pending, leased,
  /// preempted, or failed with attempts left.
  bool work_left(int max_attempts) { return jobs_left(max_attempts) > 0; }
  /// How many: the progress display's number of jobs to run.
  int64_t jobs_left(int max_attempts);
  /// Records the run's outcome in the runs table (written on release).
  void finish(const RunSummary& summary);

  /// The expanded job of a leased id; a StorageError if the database holds an
  /// id this spec does not produce.
  const sweeps::JobSpec& job(const std::string& id) const;

  std::filesystem::path db_path;
  sweeps::SweepSpec spec;
  std::vector<sweeps::JobSpec> jobs;
  storage::Store store;
  std::string owner, sweep_id;
  JobPaths paths;

 private:
  void release() noexcept;
  std::map<std::string, const sweeps::JobSpec*> by_id;
  bool released_ = false;
  int64_t run_id_ = 0;
  std::string outcome_;
};

/// Step 2 alone: inserts the sweep and its jobs (idempotent); returns the
/// sweep's id. `daenr slurm submit` uses it so that status counts the jobs
/// before the first allocation starts.
std::string register_sweep(storage::Store& store, const std::filesystem::path& spec_path,
                           const sweeps::SweepSpec& spec, const std::vector<sweeps::JobSpec>& jobs);

/// The axis values of a job as stored in jobs.labels; a decode / mei job's are its parent's
/// with its kind, its parent's id and (mei) its objective.
nlohmann::ordered_json labels_json(const sweeps::Labels& labels);
nlohmann::ordered_json labels_json(const sweeps::JobSpec& job);

/// What `run_sweep` would do, without writing anything.
Plan plan_sweep(const std::filesystem::path& spec, const std::filesystem::path& db);
/// The same for jobs already expanded.
Plan plan_jobs(const std::vector<sweeps::JobSpec>& jobs, const std::filesystem::path& db);

/// Human-readable status of a database: counts per state, running jobs and
/// their age, the run lock, the last errors.
std::string status_report(const std::filesystem::path& db, double now);

/// The Slurm allocation this process runs in, if any (SLURM_JOB_ID and
/// SLURM_RESTART_COUNT, which counts requeues).
struct SlurmContext {
  std::string job_id;  ///< empty outside Slurm
  int restart = 0;
};
SlurmContext slurm_context();

/// "host:pid" of this process, or "host:pid (slurm job N)" inside Slurm: the
/// owner name in leases, the run lock and the runs table.
std::string process_owner();

/// The parts of an owner name; pid 0 for a name this build does not write.
struct OwnerName {
  std::string host, slurm_job;
  long pid = 0;
};
OwnerName parse_owner(const std::string& owner);

/// Unix time in seconds.
double unix_now();

}  // namespace daenr::orchestrator
