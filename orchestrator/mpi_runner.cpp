// The MPI sweep: rank 0 orchestrates, worker groups pull jobs.
//
// Message protocol (MPI_COMM_WORLD; payloads are short JSON texts):
//  1. Every rank parses the spec once and checks the group size; the workers
//     expand it, and rank 0 alone opens the database, takes the run lock,
//     inserts the sweep and requeues stale leases (the in-process runner's
//     steps 1-3). Every rank's {"ok", "error"} is gathered at rank 0, which
//     broadcasts the first failure or {"ok", "checkpoint_dir", "artifact_dir"};
//     on a failure every rank stops with it.
//  2. The workers split into groups of ranks_per_job (MPI_Comm_split by
//     (rank - 1) / ranks_per_job); a group's rank 0 is its leader, and only
//     leaders talk to rank 0.
//  3. An idle leader sends kRequest ("" or "stopping": a signal reached it);
//     after its first job, the outcome of step 6 is its request.
//  4. Rank 0 leases the next runnable jobs to that group (lease owner
//     "<host:pid>/g<group>") and answers kAssign {"jobs": [{"id", "inputs"}]}:
//     one job, or more for a one-rank group whose jobs take under 20 ms each
//     (doubling up to 64 while they stay that short); or
//     {"wait": true} when nothing is runnable yet but jobs are in flight (a
//     neuron-subset job waits for its all-neurons job); or {"exit": true} when
//     nothing is left or the run is stopping.
//  5. The leader broadcasts the assignment over its group, which trains the
//     job data-parallel. At validation points the leader sends kHeartbeat (at
//     most every heartbeat_s; rank 0 extends the group's lease and its own run
//     lock) and looks for kStop from rank 0.
//  6. The leader sends kOutcome {"outcomes": [done with all metrics / failed
//     with its message / preempted], "stopping"}; rank 0 records them and, as
//     for a request, answers with step 4. Messages that arrive together are
//     handled in one database transaction.
//  7. A stop (SIGTERM, SIGINT, SIGUSR1 or SIGUSR2, which mpirun forwards to
//     every rank, as it does SIGALRM, the third grace signal Slurm may be
//     asked to send; or a leader that says "stopping"): rank 0 sends kStop to every
//     busy leader, answers every request with exit, and records the
//     preempted outcomes as they come (their checkpoints are written).
//  8. When every leader has been told to exit, rank 0 broadcasts the summary
//     so that every rank exits with the same code.
// While it waits, every rank polls with a growing sleep (mpi::wait_politely)
// instead of Open MPI's busy-polling blocking calls.

#include "orchestrator/mpi_runner.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "job/text.h"
#include "models/error.h"
#include "mpi/comm.h"
#include "sweeps/expand.h"
#include "sweeps/spec.h"
#include "worker/gpu_share.h"
#include "worker/gradient_reducer.h"
#include "job/config.h"

namespace daenr::orchestrator {

namespace fs = std::filesystem;

namespace {

enum Tag : int { kRequest = 1, kAssign = 2, kHeartbeat = 3, kOutcome = 4, kStop = 5 };
const MPI_Comm kWorldComm = MPI_COMM_WORLD;


double cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

nlohmann::json summary_json(const RunSummary& s) {
  return {{"total", s.total},         {"ran", s.ran},         {"done", s.done},
          {"failed", s.failed},       {"preempted", s.preempted}, {"stopped", s.stopped},
          {"setup_s", s.setup_s},     {"loop_s", s.loop_s},       {"cpu_s", s.orchestrator_cpu_s}};
}

RunSummary summary_from_json(const nlohmann::json& j) {
  RunSummary s;
  s.total = j.at("total");
  s.ran = j.at("ran");
  s.done = j.at("done");
  s.failed = j.at("failed");
  s.preempted = j.at("preempted");
  s.stopped = j.at("stopped");
  s.setup_s = j.at("setup_s");
  s.loop_s = j.at("loop_s");
  s.orchestrator_cpu_s = j.at("cpu_s");
  return s;
}

// Rank 0: steps 3, 4, 6, 7 of the protocol, one named step per method.
class Orchestrator {
 public:
  Orchestrator(PreparedSweep& sweep, const RunnerOptions& options, int groups, int ranks_per_job)
      : sweep_(sweep),
        store_(sweep.store),
        options_(options),
        ranks_per_job_(ranks_per_job),
        live_(groups),
        // A line per finished job on rank 0's stderr (the workers' in-job progress stays with them).
        progress_(options.progress,
                  options.progress == ProgressMode::kOff ? 0 : sweep.jobs_left(options.max_attempts)) {
    summary_.total = static_cast<int64_t>(sweep.jobs.size());
  }

  RunSummary run() {
    mpi::Backoff backoff;
    while (live_ > 0) {
      if (stop_requested()) begin_stop();
      refresh_lock_if_due();
      auto status = mpi::poll(kWorldComm);
      if (!status) {
        backoff.pause();  // nothing to do: yield the core to the workers (mpi/comm.h)
        continue;
      }
      backoff.reset();
      handle_waiting_messages(*status);
    }
    // A stop that came after the last job is no reason to run again.
    if (stop_requested() && sweep_.work_left(options_.max_attempts)) summary_.stopped = true;
    sweep_.finish(summary_);
    return summary_;
  }

 private:
  // Jobs per assignment, per group: 1 for real training (the best balance),
  // growing while a group's jobs take under kShortJob each (no-op or failing
  // jobs), so that messages and commits are shared by many of them. Only for
  // groups of one rank: a group trains its jobs in lockstep, one at a time.
  static constexpr auto kShortJob = std::chrono::milliseconds(20);
  static constexpr int kMaxBatch = 64;
  struct Pace {
    int batch = 1;
    std::chrono::steady_clock::time_point assigned;
  };

  bool stop_requested() const { return options_.stop && options_.stop->load(); }
  std::string owner_of(int leader) const {
    return fmt::format("{}/g{}", sweep_.owner, (leader - 1) / ranks_per_job_);
  }

  // Without heartbeats (every group between validation points) the lock still shows rank 0 alive.
  void refresh_lock_if_due() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_refresh_ > std::chrono::seconds(10)) {
      store_.refresh_run_lock(sweep_.owner, unix_now());
      last_refresh_ = now;
    }
  }

  // Every message already waiting is handled in one transaction: with short
  // jobs and many workers, a commit per lease and per result would cap the
  // rate at the disk's sync rate. A single message is one commit as before.
  void handle_waiting_messages(MPI_Status first) {
    std::vector<Outcome> recorded;
    auto batch = store_.transaction();
    std::optional<MPI_Status> status = first;
    for (int handled = 0; status && handled < 256 && live_ > 0; ++handled, status = mpi::poll(kWorldComm)) {
      handle(*status, recorded);
    }
    batch.commit();
    for (const auto& o : recorded) remove_spent_checkpoint(sweep_.paths, o);
  }

  // One message of steps 3, 5 and 6; outcomes recorded go to `recorded`.
  void handle(const MPI_Status& status, std::vector<Outcome>& recorded) {
    const int source = status.MPI_SOURCE;
    const std::string text = mpi::recv_text(status, kWorldComm);
    switch (status.MPI_TAG) {
      case kRequest:
        assign(source, text == "stopping");
        return;
      case kHeartbeat: {
        const double now = unix_now();
        store_.heartbeat(owner_of(source), now, options_.lease_s);
        store_.refresh_run_lock(sweep_.owner, now);
        last_refresh_ = std::chrono::steady_clock::now();
        return;
      }
      case kOutcome:
        record_outcomes(source, nlohmann::json::parse(text), recorded);
        return;
      default:
        throw mpi::MpiError(fmt::format("rank 0: unexpected message tag {} from rank {}", status.MPI_TAG, source));
    }
  }

  // Step 6: outcomes are also the group's request for its next jobs (step 3).
  void record_outcomes(int source, const nlohmann::json& message, std::vector<Outcome>& recorded) {
    const auto& outcomes = message.at("outcomes");
    auto& p = pace_[source];
    const auto per_job = (std::chrono::steady_clock::now() - p.assigned) / std::max<std::size_t>(outcomes.size(), 1);
    for (const auto& o : outcomes) {
      auto outcome = outcome_from_json(o);
      record_outcome(store_, owner_of(source), outcome, summary_);
      // Rank 0 saw the batch assigned, not each job start: each gets the batch's mean.
      if (progress_.on()) {
        progress_.job_finished(sweep_.job(outcome.job_id), outcome, std::chrono::duration<double>(per_job).count());
      }
      recorded.push_back(std::move(outcome));
    }
    busy_.erase(source);
    p.batch = per_job < kShortJob ? std::min(p.batch * 2, kMaxBatch) : 1;
    assign(source, message.at("stopping").get<bool>());
  }

  void begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    for (const auto& [leader, ids] : busy_) mpi::send_text("", leader, kStop, kWorldComm);
  }

  void send_exit(int source) {
    mpi::send_text(nlohmann::json{{"exit", true}}.dump(), source, kAssign, kWorldComm);
    --live_;
  }

  // Step 4: the next jobs for the group led by `source`, or wait, or exit.
  void assign(int source, bool source_stopping) {
    if (source_stopping) begin_stop();
    if (stopping_) return send_exit(source);
    const nlohmann::json jobs = lease_jobs(source);
    if (jobs.empty()) {
      if (busy_.empty()) return send_exit(source);
      mpi::send_text(nlohmann::json{{"wait", true}}.dump(), source, kAssign, kWorldComm);
      return;
    }
    pace_[source].assigned = std::chrono::steady_clock::now();
    mpi::send_text(nlohmann::json{{"jobs", jobs}}.dump(), source, kAssign, kWorldComm);
  }

  // Leases up to the group's pace of runnable jobs, each with its inputs from the database. A
  // job whose inputs cannot be gathered (its parent's model is gone) fails here, in place.
  nlohmann::json lease_jobs(int source) {
    const std::size_t want = ranks_per_job_ == 1 ? static_cast<std::size_t>(pace_[source].batch) : 1;
    nlohmann::json jobs = nlohmann::json::array();
    while (jobs.size() < want) {
      const auto leased =
          store_.lease_next(sweep_.sweep_id, owner_of(source), unix_now(), options_.lease_s, options_.max_attempts);
      if (!leased) break;
      const auto& job = sweep_.job(leased->id);
      ++summary_.ran;
      JobInputs inputs;
      try {
        inputs = job_inputs(store_, job, [&](const std::string& id) -> const sweeps::JobSpec& { return sweep_.job(id); });
      } catch (const models::DataError& e) {
        Outcome failed;
        failed.job_id = job.id;
        failed.error = job::first_line(e.what());
        record_outcome(store_, owner_of(source), failed, summary_);
        progress_.job_finished(job, failed, 0.0);
        continue;  // lease the next one for this group
      }
      nlohmann::json assignment{{"id", job.id}};
      if (auto in = to_json(inputs); !in.empty()) assignment["inputs"] = std::move(in);
      jobs.push_back(std::move(assignment));
      busy_[source].push_back(job.id);
    }
    return jobs;
  }

  PreparedSweep& sweep_;
  storage::Store& store_;
  const RunnerOptions& options_;
  const int ranks_per_job_;
  int live_;  // groups not yet told to exit
  ProgressReporter progress_;
  RunSummary summary_;
  std::map<int, std::vector<std::string>> busy_;  // leader rank -> the jobs it holds
  std::map<int, Pace> pace_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point last_refresh_ = std::chrono::steady_clock::now();
};

// Worker ranks: steps 3, 5 and 6 (the leader) or 5 alone (the others).
class Worker {
 public:
  Worker(const std::vector<sweeps::JobSpec>& jobs, JobPaths paths, const mpi::Comm& group,
         const RunnerOptions& options, const MpiOptions& mpi_options, int jobs_per_gpu)
      : paths_(std::move(paths)),
        group_(group),
        options_(options),
        mpi_options_(mpi_options),
        jobs_per_gpu_(jobs_per_gpu),
        leader_(group.rank() == 0) {
    for (const auto& j : jobs) by_id_[j.id] = &j;
  }

  void run() {
    for (;;) {
      std::string assignment = leader_ ? next_assignment() : std::string();
      mpi::broadcast_text(assignment, 0, group_.get());
      if (assignment.empty()) return;  // exit
      nlohmann::json outcomes = nlohmann::json::array();
      const auto batch = nlohmann::json::parse(assignment);  // named: the loop below refers into it
      for (const auto& a : batch.at("jobs")) {
        if (leader_) take_stop_message();
        const Outcome outcome = run_one(a);
        if (leader_) outcomes.push_back(to_json(outcome));
      }
      if (leader_) pending_outcomes_ = std::move(outcomes);
    }
  }

 private:

  bool local_stop() const { return options_.stop && options_.stop->load(); }
  bool stopping() const { return local_stop() || remote_stop_; }

  // A kStop from rank 0, if one has come (leaders only).
  void take_stop_message() {
    if (!remote_stop_ && mpi::poll(kWorldComm, kStop)) {
      mpi::recv_text_politely(0, kStop, kWorldComm);
      remote_stop_ = true;
    }
  }

  // The leader's steps 3 and 6: the last outcomes (or a request), then rank 0's answer; "" to
  // exit. The first request is kRequest; later ones ride on kOutcome.
  std::string next_assignment() {
    for (;;) {
      take_stop_message();  // a stop that came after our last job ended
      if (!pending_outcomes_.is_null()) {
        mpi::send_text(nlohmann::json{{"outcomes", pending_outcomes_}, {"stopping", stopping()}}.dump(), 0,
                       kOutcome, kWorldComm);
        pending_outcomes_ = nullptr;
      } else {
        mpi::send_text(stopping() ? "stopping" : "", 0, kRequest, kWorldComm);
      }
      const auto reply = nlohmann::json::parse(mpi::recv_text_politely(0, kAssign, kWorldComm));
      if (reply.contains("wait")) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      return reply.contains("exit") ? std::string() : reply.dump();
    }
  }

  // Step 5: one assigned job on this group.
  Outcome run_one(const nlohmann::json& assigned) {
    Outcome outcome;
    outcome.job_id = assigned.at("id").get<std::string>();
    const auto found = by_id_.find(outcome.job_id);
    if (found == by_id_.end()) {
      outcome.error = "this worker's expansion of the spec lacks the job";
    } else if (group_.size() == 1 && stopping()) {
      // The rest of a batch after a stop: back to the queue, never started.
      outcome.status = Outcome::Status::kPreempted;
    } else if (mpi_options_.execute_override) {
      outcome = mpi_options_.execute_override(*found->second);
    } else {
      outcome = train(*found->second, inputs_from_json(assigned.value("inputs", nlohmann::json::object())));
    }
    return outcome;
  }

  // At validation points: the leader's heartbeat (at most every heartbeat_s) and stop check.
  bool should_stop(const std::string& job_id) {
    if (!leader_) return local_stop();
    const auto now = std::chrono::steady_clock::now();
    if (now - last_heartbeat_ > std::chrono::duration<double>(mpi_options_.heartbeat_s)) {
      mpi::send_text(job_id, 0, kHeartbeat, kWorldComm);
      last_heartbeat_ = now;
    }
    take_stop_message();
    return stopping();
  }

  Outcome train(const sweeps::JobSpec& job, const JobInputs& inputs) {
    // A group of several ranks trains the job data-parallel; the reducer is
    // collective over the group and lives for this job only. The trainer
    // maps "cuda" to this rank's own GPU (its local rank) itself.
    std::unique_ptr<worker::GradientReducer> reducer;
    try {
      const torch::Device device(worker::device_for_local_rank(job.config.train.device));
      // Before the job's first tensor reaches the GPU: a rank that shares it is held to its
      // share of its memory from the start (a no-op for one job per GPU or the CPU).
      worker::share_gpu(device, jobs_per_gpu_);
      if (group_.size() > 1) reducer = worker::make_reducer(group_.get(), device);
    } catch (const std::exception& e) {
      // A rank alone records it as the job's failure, as the trainer's own checks are; in a
      // group the others would wait for this rank, so the run ends (run_sweep_mpi: AbortWorld).
      if (group_.size() > 1) throw;
      Outcome failed;
      failed.job_id = job.id;
      failed.error = worker::failure_message(e);
      return failed;
    }
    return execute_job(job, inputs, paths_, [&](int) { return should_stop(job.id); }, reducer.get());
  }

  const JobPaths paths_;
  const mpi::Comm& group_;
  const RunnerOptions& options_;
  const MpiOptions& mpi_options_;
  const int jobs_per_gpu_;
  const bool leader_;
  std::map<std::string, const sweeps::JobSpec*> by_id_;
  bool remote_stop_ = false;
  std::chrono::steady_clock::time_point last_heartbeat_ = std::chrono::steady_clock::now();
  nlohmann::json pending_outcomes_;  // null: none
};

// What step 1 gives each rank.
struct Setup {
  int ranks_per_job = 1, jobs_per_gpu = 1;
  std::unique_ptr<PreparedSweep> sweep;  // rank 0
  std::vector<sweeps::JobSpec> jobs;     // workers
  JobPaths paths;                        // workers: rank 0's folders
};

// This rank's part of step 1, which throws on a bad spec, data file or database. Every rank
// parses the spec once; the group size is checked before rank 0 touches the database.
Setup set_up_this_rank(const fs::path& spec_path, const fs::path& db_path, const RunnerOptions& options,
                       const MpiOptions& mpi_options, const mpi::World& world) {
  auto spec = sweeps::load_sweep_spec(spec_path);
  Setup setup;
  const bool from_flag = mpi_options.ranks_per_job > 0;
  setup.ranks_per_job = from_flag ? mpi_options.ranks_per_job : spec.ranks_per_job;
  setup.jobs_per_gpu = mpi_options.jobs_per_gpu > 0 ? mpi_options.jobs_per_gpu : spec.jobs_per_gpu.value_or(1);
  const int rpj = setup.ranks_per_job;
  if (world.size < 2 || rpj < 1 || (world.size - 1) % rpj != 0) {
    throw job::ConfigError(fmt::format(
        "{} {}: the {} worker ranks (world size {}; rank 0 orchestrates) do not form groups of {}",
        from_flag ? "--ranks-per-job" : spec_path.string() + ": ranks_per_job =", rpj, world.size - 1, world.size,
        rpj));
  }
  if (world.rank == 0) {
    setup.sweep = std::make_unique<PreparedSweep>(spec_path, std::move(spec), db_path, options);
  } else {
    // The same file gives every rank the same expansion (deterministic).
    setup.jobs = sweeps::expand(spec);
  }
  return setup;
}

// Step 1, collective: each rank sets itself up, rank 0 gathers how that went and broadcasts the
// first failure (its own, else the lowest rank's) or its folders. On a failure every rank
// throws the same one-line error, so that every rank ends with the same exit code; rank 0
// rethrows its own exception as it is.
Setup set_up(const fs::path& spec_path, const fs::path& db_path, const RunnerOptions& options,
             const MpiOptions& mpi_options, const mpi::World& world) {
  Setup setup;
  std::exception_ptr failure;
  nlohmann::json mine{{"ok", true}};
  try {
    setup = set_up_this_rank(spec_path, db_path, options, mpi_options, world);
  } catch (const std::exception& e) {
    failure = std::current_exception();
    // What main() makes of it: bad input (exit 2) unless it is none of daenr's input errors.
    const bool bad_input = dynamic_cast<const job::InputError*>(&e) != nullptr;
    mine = {{"ok", false}, {"error", job::first_line(e.what())}, {"bad_input", bad_input}};
  }
  const auto reports = mpi::gather_text(mine.dump(), 0, kWorldComm);
  std::string verdict;
  if (world.rank == 0) {
    nlohmann::json v{{"ok", true}};
    for (std::size_t r = 0; r < reports.size(); ++r) {
      const auto report = nlohmann::json::parse(reports[r]);
      if (report.at("ok").get<bool>()) continue;
      v = report;
      // Rank 0 names the rank whose setup failed when it was not itself.
      if (r > 0) v["error"] = fmt::format("rank {}: {}", r, report.at("error").get<std::string>());
      break;
    }
    if (v.at("ok").get<bool>()) {
      v["checkpoint_dir"] = setup.sweep->paths.checkpoint_dir.string();
      v["artifact_dir"] = setup.sweep->paths.artifact_dir.string();
    }
    verdict = v.dump();
  }
  mpi::broadcast_text(verdict, 0, kWorldComm);
  const auto v = nlohmann::json::parse(verdict);
  if (!v.at("ok").get<bool>()) {
    setup.sweep.reset();  // releases the run lock before anyone exits
    if (failure && world.rank == 0) std::rethrow_exception(failure);
    const auto error = v.at("error").get<std::string>();
    if (v.value("bad_input", false)) throw sweeps::SpecError(error);
    throw std::runtime_error(error);
  }
  if (world.rank != 0) setup.paths = {v.at("checkpoint_dir").get<std::string>(), v.at("artifact_dir").get<std::string>()};
  return setup;
}

}  // namespace

RunSummary run_sweep_mpi(const fs::path& spec_path, const fs::path& db_path, const RunnerOptions& options,
                         const MpiOptions& mpi_options) {
  mpi::World world;
  mpi::check(MPI_Comm_rank(kWorldComm, &world.rank), "MPI_Comm_rank");
  mpi::check(MPI_Comm_size(kWorldComm, &world.size), "MPI_Comm_size");
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [](auto t) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count(); };

  // Step 1.
  Setup setup = set_up(spec_path, db_path, options, mpi_options, world);
  const int rpj = setup.ranks_per_job;
  const int groups = (world.size - 1) / rpj;

  // Step 2.
  const auto group = mpi::Comm::split(kWorldComm, world.rank == 0 ? MPI_UNDEFINED : (world.rank - 1) / rpj, world.rank);
  mpi::check(MPI_Barrier(kWorldComm), "MPI_Barrier");  // every worker has expanded the spec: the loop starts now
  const double setup_s = since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  RunSummary summary;
  try {
    if (world.rank == 0) {
      const double cpu0 = cpu_seconds();
      summary = Orchestrator(*setup.sweep, options, groups, rpj).run();
      summary.setup_s = setup_s;
      summary.loop_s = since(t1);
      summary.orchestrator_cpu_s = cpu_seconds() - cpu0;
    } else {
      Worker(setup.jobs, setup.paths, group, options, mpi_options, setup.jobs_per_gpu).run();
    }
  } catch (const std::exception& e) {
    // Past setup, an error on one rank (the database failing under rank 0, a
    // broken message) leaves the others waiting for it: main() ends them all
    // (MPI_Abort). Jobs in flight keep their checkpoints and the next run requeues them.
    throw mpi::AbortWorld(fmt::format("rank {}: {}", world.rank, job::first_line(e.what())));
  }
  // Step 8.
  std::string text = world.rank == 0 ? summary_json(summary).dump() : std::string();
  mpi::broadcast_text(text, 0, kWorldComm);
  return summary_from_json(nlohmann::json::parse(text));
}

}  // namespace daenr::orchestrator
