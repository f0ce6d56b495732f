#pragma once
// The sweep database: its schema and migrations, the one writer (Store) used
// only by the process that runs a sweep, and a read-only view (Reader) for
// status and reports. docs/schema.md describes every table for users who
// query results with sqlite3 or pandas.
//
// Job states: pending -> leased -> done | failed | preempted. A failed job is
// leased again while its attempts are below the limit; a preempted one (a
// graceful stop) always is, and does not count as an attempt. Times are Unix
// seconds passed in by the caller, so that leases and staleness are testable.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "job/error.h"
#include "job/outcome.h"
#include "storage/sqlite.h"

namespace daenr::storage {

/// Another run holds the sweep database. what() names the holder.
class LockHeld : public job::InputError {
 public:
  using job::InputError::InputError;
};

enum class JobState { kPending, kLeased, kDone, kFailed, kPreempted };
std::string to_string(JobState state);
JobState parse_job_state(const std::string& text);

struct NewJob {
  std::string id;          ///< content hash: what determines the result
  std::string config;      ///< canonical configuration (JSON)
  std::string labels;      ///< axis values for reports (JSON object)
  std::string depends_on;  ///< id of a job that must be done first, or empty
  std::string kind = "train";  ///< job::JobKind's name (schema version 3)
};

struct LeasedJob {
  std::string id;
  std::string config;
  std::string depends_on;
  int attempts = 0;  ///< including this one
};

/// One validation point of a training curve, and a job's outcome: the job contract's types
/// (job/outcome.h), which the database stores as they are.
using CurveRow = job::CurveRow;
using ResultRecord = job::Outcome;

/// A Slurm allocation submitted to drive the database (`daenr slurm submit`).
struct SlurmJobRecord {
  std::string slurm_job_id, sweep_name, spec_path, script_path;
  double submitted_at = 0;
};

/// One run of a sweep (a process, or rank 0 of an MPI world) that held the
/// run lock; inside Slurm, the allocation and how often it was requeued.
struct RunRecord {
  int64_t id = 0;
  std::string owner, slurm_job_id;  ///< slurm_job_id empty outside Slurm
  int slurm_restart = 0;
  double started_at = 0;
  std::optional<double> ended_at;
  std::string outcome;  ///< "complete", "stopped", "failed jobs"; empty while running or if it died
};

/// The one run that drives a database (docs/schema.md, `run_lock`), and the one rule by which
/// it is still alive: `sweep run` takes over a lock that is not fresh, `slurm submit` refuses to
/// queue an allocation while one is.
struct RunLock {
  /// A lock without a heartbeat for this long belongs to a run that is gone (runs refresh it
  /// every few seconds, and at least every 10 s under MPI).
  static constexpr double kStaleAfterSeconds = 120;

  std::string owner;
  double acquired_at = 0, heartbeat_at = 0;

  bool fresh(double now, double stale_s = kStaleAfterSeconds) const { return now - heartbeat_at < stale_s; }
  /// "another run is using this database: <owner> (last heartbeat N s ago<more>)", for LockHeld.
  std::string held_by(double now, const std::string& more = "") const;
};

struct StateCounts {
  int64_t total = 0, pending = 0, leased = 0, done = 0, failed = 0, preempted = 0;
};

/// One neuron's test correlation and its p-value (docs/metrics.md).
struct NeuronResult {
  int64_t neuron = 0;
  double r = 0, p = 1;
};

/// A job being run now: its id, labels (JSON) and when its lease began.
struct RunningJob {
  std::string id, labels;
  double started_at = 0;
};

struct SweepRef {
  std::string id, name;
};

/// A job with its results row where it has one (a report's input).
struct JobRow {
  std::string id;
  std::string kind = "train";  ///< job::JobKind's name
  std::string labels;  ///< JSON object
  JobState state = JobState::kPending;
  std::string last_error;
  std::optional<double> mse, psnr, ssim, mean_r;
  std::optional<int64_t> n_significant, neurons;
  std::string metrics;  ///< the results' JSON, empty without results
};

/// Per job: neurons with per-neuron results, and how many of them are significant.
struct NeuronCounts {
  int64_t neurons = 0, significant = 0;
};

/// The read operations, shared by the writer (Store) and the read-only view (Reader): every
/// query the orchestrator, the reports and Slurm make, typed, so that no SQL is written
/// outside storage/.
class Queries {
 public:
  /// Jobs by state, of one sweep or (empty id) of all.
  StateCounts counts(const std::string& sweep_id = "");
  /// (job id, error) of the most recent failures.
  std::vector<std::pair<std::string, std::string>> last_errors(int limit);
  /// The run lock, if held (fresh or not: RunLock::fresh says).
  std::optional<RunLock> run_lock();
  /// Submitted allocations, oldest first (none in a version-1 database).
  std::vector<SlurmJobRecord> slurm_jobs();
  /// The most recent runs, newest first.
  std::vector<RunRecord> runs(int limit);
  /// A job's state; nullopt for a job the database does not hold.
  std::optional<JobState> job_state(const std::string& job_id);
  /// Leased jobs, longest running first.
  std::vector<RunningJob> running_jobs();
  /// Jobs of the sweep that a run would still lease: pending, leased, preempted, and failed
  /// ones with attempts below max_attempts.
  int64_t work_left(const std::string& sweep_id, int max_attempts);
  /// A job's per-neuron results in neuron order (empty without them).
  std::vector<NeuronResult> neuron_results(const std::string& job_id);
  /// Sweeps whose id or name is `name_or_id`, oldest first.
  std::vector<SweepRef> find_sweeps(const std::string& name_or_id);
  /// Jobs with their results, of one sweep or (empty id) of all, in no particular order.
  std::vector<JobRow> jobs(const std::string& sweep_id = "");
  /// Per job with per-neuron results: counts by the significance rule (job::is_significant).
  std::map<std::string, NeuronCounts> neuron_counts();
  /// Every training curve row as (job id, row), by job and step.
  std::vector<std::pair<std::string, CurveRow>> curves();
  /// (job id, path) of the artifacts of one kind, each path as resolve_artifact finds it.
  std::vector<std::pair<std::string, std::string>> artifacts(const std::string& kind);
  /// One job's artifact of one kind (one indexed row), resolved; nullopt when none is recorded.
  std::optional<std::string> artifact(const std::string& job_id, const std::string& kind);
  /// Where a recorded artifact is now. Paths are recorded absolute; a database moved or copied
  /// with its `<db>.artifacts/` folder finds its files there: the recorded path if it exists,
  /// else `<this db>.artifacts/<its file name>` if that exists, else the recorded path (whose
  /// reader then names the missing file).
  std::string resolve_artifact(const std::string& recorded) const;

 protected:
  explicit Queries(Database& db) : db_(db) {}
  ~Queries() = default;
  Queries(const Queries&) = delete;
  Queries& operator=(const Queries&) = delete;

  Database& db_;
};

/// The single writer. Opening creates the file if needed, or migrates an
/// older schema; a newer schema, a file that is not SQLite, or a folder that
/// cannot be written is a StorageError that changes nothing.
class Store : public Queries {
 public:
  static constexpr int kSchemaVersion = 3;

  explicit Store(const std::filesystem::path& path);

  /// Idempotent: the sweep's id is the hash of its spec text.
  std::string insert_sweep(const std::string& name, const std::string& spec_text, double now);
  /// Adds jobs (and links them to the sweep) that are not there yet; returns
  /// how many were new. Existing jobs, and their results, are untouched.
  int64_t insert_jobs(const std::string& sweep_id, const std::vector<NewJob>& jobs, double now);

  /// The next runnable job of the sweep, leased to `owner` until now + lease_s:
  /// preempted jobs first (they resume from checkpoints), then pending, then
  /// failed ones with attempts < max_attempts; never one whose dependency is
  /// not done.
  std::optional<LeasedJob> lease_next(const std::string& sweep_id, const std::string& owner,
                                      double now, double lease_s, int max_attempts);
  /// Extends every lease of `owner`.
  void heartbeat(const std::string& owner, double now, double lease_s);
  /// Records a finished job: result, per-neuron and curve rows, its artifacts and state done,
  /// in one transaction. Only the lease holder may record; a second record of
  /// the same job throws and changes nothing.
  void record_result(const ResultRecord& result, const std::string& owner, double now);
  void record_failure(const std::string& job_id, const std::string& owner, const std::string& error,
                      double now);
  /// A graceful stop: back to the queue without counting the attempt.
  void record_preempted(const std::string& job_id, const std::string& owner, double now);
  /// Jobs whose lease expired (their runner died): back to pending, the attempt
  /// counted. Returns how many.
  int64_t reconcile_stale(double now);

  /// The run lock: one process drives the database at a time. Taken over only
  /// when its heartbeat is older than stale_s. Throws LockHeld naming the holder.
  void acquire_run_lock(const std::string& owner, double now, double stale_s);
  void refresh_run_lock(const std::string& owner, double now);
  void release_run_lock(const std::string& owner);

  void add_artifact(const std::string& job_id, const std::string& kind, const std::string& path);

  /// Records a submitted allocation (idempotent per Slurm job id).
  void record_slurm_job(const SlurmJobRecord& job);
  /// A run starts (after taking the run lock); returns its row id for end_run.
  int64_t begin_run(const std::string& owner, const std::string& slurm_job_id, int slurm_restart,
                    double now);
  void end_run(int64_t run_id, const std::string& outcome, double now);

  /// Several writes in one commit (the MPI driver batches a burst of messages): committed by
  /// Transaction::commit, rolled back if it is destroyed before.
  Transaction transaction() { return Transaction(file_); }
  /// For tests that check the schema itself.
  Database& database() { return file_; }

 private:
  void migrate();
  /// A prepared statement kept for reuse (reset, bindings to be set anew):
  /// preparing costs more than running the small statements of a lease.
  Statement& cached(const std::string& sql);

  Database file_;
  std::map<std::string, std::unique_ptr<Statement>> statements_;
};

/// Read-only access for status and reports; never writes, never migrates.
class Reader : public Queries {
 public:
  explicit Reader(const std::filesystem::path& path);
  /// For tests that check the schema itself.
  Database& database() { return file_; }

 private:
  Database file_;
};

}  // namespace daenr::storage
