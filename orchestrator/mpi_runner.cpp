// The MPI sweep: rank 0 orchestrates, worker groups pull jobs.
//
// Message protocol (MPI_COMM_WORLD; payloads are short JSON texts):
//  1. Every rank loads and expands the spec; rank 0 alone opens the database,
//     takes the run lock, inserts the sweep and requeues stale leases (the
//     in-process runner's steps 1-3). Rank 0 then broadcasts
//     {"ok", "error", "checkpoint_dir", "artifact_dir"}; on an error every rank
//     stops with it.
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
#include <thread>

#include <nlohmann/json.hpp>

#include "job/text.h"
#include "models/error.h"
#include "sweeps/expand.h"
#include "sweeps/spec.h"
#include "worker/gpu_share.h"
#include "worker/gradient_reducer.h"
#include "job/config.h"

namespace daenr::orchestrator {

namespace fs = std::filesystem;

namespace {

enum Tag : int { kRequest = 1, kAssign = 2, kHeartbeat = 3, kOutcome = 4, kStop = 5 };


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

// Rank 0: steps 3, 4, 6, 7 of the protocol.
RunSummary orchestrate(PreparedSweep& sweep, const RunnerOptions& options, int groups, int ranks_per_job) {
  auto& store = sweep.store;
  const MPI_Comm world = MPI_COMM_WORLD;
  auto stop_requested = [&] { return options.stop && options.stop->load(); };
  auto owner_of = [&](int leader) { return fmt::format("{}/g{}", sweep.owner, (leader - 1) / ranks_per_job); };

  RunSummary summary;
  summary.total = static_cast<int64_t>(sweep.jobs.size());
  std::map<int, std::vector<std::string>> busy;  // leader rank -> the jobs it holds
  // Jobs per assignment, per group: 1 for real training (the best balance),
  // growing while a group's jobs take under kShortJob each (no-op or failing
  // jobs), so that messages and commits are shared by many of them. Only for
  // groups of one rank: a group trains its jobs in lockstep, one at a time.
  struct Pace {
    int batch = 1;
    std::chrono::steady_clock::time_point assigned;
  };
  std::map<int, Pace> pace;
  // A line per finished job on rank 0's stderr (the workers' in-job progress stays with them).
  ProgressReporter progress(options.progress,
                            options.progress == ProgressMode::kOff ? 0 : sweep.jobs_left(options.max_attempts));
  constexpr auto kShortJob = std::chrono::milliseconds(20);
  constexpr int kMaxBatch = 64;
  int live = groups;
  bool stopping = false;
  auto last_refresh = std::chrono::steady_clock::now();
  int idle_polls = 0, sleep_us = 5;

  auto begin_stop = [&] {
    if (stopping) return;
    stopping = true;
    for (const auto& [leader, ids] : busy) mpi::send_text("", leader, kStop, world);
  };
  const nlohmann::json exit_msg{{"exit", true}}, wait_msg{{"wait", true}};

  // Step 4: the next jobs for the group led by `source`, or wait, or exit.
  auto assign = [&](int source, bool source_stopping) {
    if (source_stopping) begin_stop();
    if (stopping) {
      mpi::send_text(exit_msg.dump(), source, kAssign, world);
      --live;
      return;
    }
    const std::size_t want = ranks_per_job == 1 ? static_cast<std::size_t>(pace[source].batch) : 1;
    nlohmann::json jobs = nlohmann::json::array();
    while (jobs.size() < want) {
      const auto leased =
          store.lease_next(sweep.sweep_id, owner_of(source), unix_now(), options.lease_s, options.max_attempts);
      if (!leased) break;
      const auto& job = sweep.job(leased->id);
      ++summary.ran;
      JobInputs inputs;
      try {
        inputs = job_inputs(store, job, [&](const std::string& id) -> const sweeps::JobSpec& { return sweep.job(id); });
      } catch (const models::DataError& e) {
        Outcome failed;
        failed.job_id = job.id;
        failed.error = job::first_line(e.what());
        record_outcome(store, owner_of(source), failed, summary);
        progress.job_finished(job, failed, 0.0);
        continue;  // lease the next one for this group
      }
      jobs.push_back({{"id", job.id}, {"inputs", to_json(inputs)}});
      busy[source].push_back(job.id);
    }
    if (jobs.empty()) {
      if (busy.empty()) {
        mpi::send_text(exit_msg.dump(), source, kAssign, world);
        --live;
      } else {
        mpi::send_text(wait_msg.dump(), source, kAssign, world);
      }
      return;
    }
    pace[source].assigned = std::chrono::steady_clock::now();
    mpi::send_text(nlohmann::json{{"jobs", jobs}}.dump(), source, kAssign, world);
  };

  // One message of steps 3, 5 and 6; outcomes recorded go to `recorded`.
  auto handle = [&](const MPI_Status& status, std::vector<Outcome>& recorded) {
    const int source = status.MPI_SOURCE;
    const std::string text = mpi::recv_text(status, world);
    switch (status.MPI_TAG) {
      case kRequest:
        assign(source, text == "stopping");
        return;
      case kHeartbeat: {
        const double now = unix_now();
        store.heartbeat(owner_of(source), now, options.lease_s);
        store.refresh_run_lock(sweep.owner, now);
        last_refresh = std::chrono::steady_clock::now();
        return;
      }
      case kOutcome: {
        // Outcomes are also the group's request for its next jobs (step 3).
        const auto message = nlohmann::json::parse(text);
        const auto& outcomes = message.at("outcomes");
        auto& p = pace[source];
        const auto per_job = (std::chrono::steady_clock::now() - p.assigned) / std::max<std::size_t>(outcomes.size(), 1);
        for (const auto& o : outcomes) {
          auto outcome = outcome_from_json(o);
          record_outcome(store, owner_of(source), outcome, summary);
          // Rank 0 saw the batch assigned, not each job start: each gets the batch's mean.
          progress.job_finished(sweep.job(outcome.job_id), outcome,
                                std::chrono::duration<double>(per_job).count());
          recorded.push_back(std::move(outcome));
        }
        busy.erase(source);
        p.batch = per_job < kShortJob ? std::min(p.batch * 2, kMaxBatch) : 1;
        assign(source, message.at("stopping").get<bool>());
        return;
      }
      default:
        throw mpi::MpiError(fmt::format("rank 0: unexpected message tag {} from rank {}", status.MPI_TAG, source));
    }
  };

  while (live > 0) {
    if (stop_requested()) begin_stop();
    const auto now_steady = std::chrono::steady_clock::now();
    if (now_steady - last_refresh > std::chrono::seconds(10)) {
      store.refresh_run_lock(sweep.owner, unix_now());
      last_refresh = now_steady;
    }
    auto status = mpi::poll(world);
    if (!status) {
      // Nothing to do: yield the core to the workers (see mpi.h).
      if (++idle_polls > 64) {
        std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
        sleep_us = std::min(sleep_us * 2, 1000);
      }
      continue;
    }
    idle_polls = 0;
    sleep_us = 5;
    // Every message already waiting is handled in one transaction: with short
    // jobs and many workers, a commit per lease and per result would cap the
    // rate at the disk's sync rate. A single message is one commit as before.
    std::vector<Outcome> recorded;
    auto batch = store.transaction();
    for (int handled = 0; status && handled < 256 && live > 0; ++handled, status = mpi::poll(world)) {
      handle(*status, recorded);
    }
    batch.commit();
    for (const auto& o : recorded) remove_spent_checkpoint(sweep.paths, o);
  }
  // A stop that came after the last job is no reason to run again.
  if (stop_requested() && sweep.work_left(options.max_attempts)) summary.stopped = true;
  sweep.finish(summary);
  return summary;
}

// Worker ranks: steps 3, 5 and 6 (the leader) or 5 alone (the others).
void work(const std::vector<sweeps::JobSpec>& jobs, const JobPaths& paths, const mpi::Comm& group,
          const RunnerOptions& options, const MpiOptions& mpi_options, int jobs_per_gpu) {
  std::map<std::string, const sweeps::JobSpec*> by_id;
  for (const auto& j : jobs) by_id[j.id] = &j;
  const MPI_Comm world = MPI_COMM_WORLD;
  const bool leader = group.rank() == 0;
  auto local_stop = [&] { return options.stop && options.stop->load(); };
  bool remote_stop = false;
  auto last_heartbeat = std::chrono::steady_clock::now();

  // The first request is kRequest; later ones ride on kOutcome (step 6).
  nlohmann::json pending_outcomes;  // null: none
  for (;;) {
    std::string assignment;
    if (leader) {
      for (;;) {
        if (mpi::poll(world, kStop)) {  // a stop that came after our last job ended
          mpi::recv_text_politely(0, kStop, world);
          remote_stop = true;
        }
        const bool stopping = local_stop() || remote_stop;
        if (!pending_outcomes.is_null()) {
          mpi::send_text(nlohmann::json{{"outcomes", pending_outcomes}, {"stopping", stopping}}.dump(), 0, kOutcome,
                         world);
          pending_outcomes = nullptr;
        } else {
          mpi::send_text(stopping ? "stopping" : "", 0, kRequest, world);
        }
        const auto reply = nlohmann::json::parse(mpi::recv_text_politely(0, kAssign, world));
        if (reply.contains("wait")) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          continue;
        }
        if (!reply.contains("exit")) assignment = reply.dump();
        break;
      }
    }
    mpi::broadcast_text(assignment, 0, group.get());
    if (assignment.empty()) return;  // exit
    nlohmann::json outcomes = nlohmann::json::array();
    const auto batch = nlohmann::json::parse(assignment);  // named: the loop below refers into it
    for (const auto& a : batch.at("jobs")) {
      const auto id = a.at("id").get<std::string>();
      const auto found = by_id.find(id);
      if (leader && !remote_stop && mpi::poll(world, kStop)) {
        mpi::recv_text_politely(0, kStop, world);
        remote_stop = true;
      }
      Outcome outcome;
      outcome.job_id = id;
      if (found == by_id.end()) {
        outcome.error = "this worker's expansion of the spec lacks the job";
      } else if (group.size() == 1 && (local_stop() || remote_stop)) {
        // The rest of a batch after a stop: back to the queue, never started.
        outcome.status = Outcome::Status::kPreempted;
      } else if (mpi_options.execute_override) {
        outcome = mpi_options.execute_override(*found->second);
      } else {
        auto should_stop = [&](int) {
          if (!leader) return local_stop();
          const auto now = std::chrono::steady_clock::now();
          if (now - last_heartbeat > std::chrono::duration<double>(mpi_options.heartbeat_s)) {
            mpi::send_text(found->first, 0, kHeartbeat, world);
            last_heartbeat = now;
          }
          if (!remote_stop && mpi::poll(world, kStop)) {
            mpi::recv_text_politely(0, kStop, world);
            remote_stop = true;
          }
          return local_stop() || remote_stop;
        };
        // A group of several ranks trains the job data-parallel; the reducer is
        // collective over the group and lives for this job only. The trainer
        // maps "cuda" to this rank's own GPU (its local rank) itself.
        std::unique_ptr<worker::GradientReducer> reducer;
        std::string setup_error;
        try {
          const torch::Device device(worker::device_for_local_rank(found->second->config.train.device));
          // Before the job's first tensor reaches the GPU: a rank that shares it is held to its
          // share of its memory from the start (a no-op for one job per GPU or the CPU).
          worker::share_gpu(device, jobs_per_gpu);
          if (group.size() > 1) reducer = worker::make_reducer(group.get(), device);
        } catch (const std::exception& e) {
          // A rank alone records it as the job's failure, as the trainer's own checks are; in a
          // group the others would wait for this rank, so the run ends (below, MPI_Abort).
          if (group.size() > 1) throw;
          setup_error = worker::failure_message(e);
        }
        if (setup_error.empty()) {
          outcome = execute_job(*found->second, inputs_from_json(a.at("inputs")), paths, should_stop,
                                reducer.get());
        } else {
          outcome.error = setup_error;
        }
      }
      if (leader) outcomes.push_back(to_json(outcome));
    }
    if (leader) pending_outcomes = std::move(outcomes);
  }
}

}  // namespace

RunSummary run_sweep_mpi(const fs::path& spec_path, const fs::path& db_path, const RunnerOptions& options,
                         const MpiOptions& mpi_options) {
  const MPI_Comm world = MPI_COMM_WORLD;
  int rank = 0, size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &size);
  // Every rank reads the same file: a bad spec fails alike everywhere.
  const bool from_flag = mpi_options.ranks_per_job > 0;
  const auto own_spec = sweeps::load_sweep_spec(spec_path);
  const int rpj = from_flag ? mpi_options.ranks_per_job : own_spec.ranks_per_job;
  const int jobs_per_gpu = mpi_options.jobs_per_gpu > 0 ? mpi_options.jobs_per_gpu : own_spec.jobs_per_gpu.value_or(1);
  if (size < 2 || rpj < 1 || (size - 1) % rpj != 0) {
    throw job::ConfigError(fmt::format(
        "{} {}: the {} worker ranks (world size {}; rank 0 orchestrates) do not form groups of {}",
        from_flag ? "--ranks-per-job" : spec_path.string() + ": ranks_per_job =", rpj, size - 1, size, rpj));
  }
  const int groups = (size - 1) / rpj;

  const auto t0 = std::chrono::steady_clock::now();
  auto since = [](auto t) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count(); };
  // Step 1. Rank 0 prepares; everyone learns whether that worked.
  std::unique_ptr<PreparedSweep> sweep;
  std::vector<sweeps::JobSpec> jobs;
  std::exception_ptr failure;
  nlohmann::json setup{{"ok", true}, {"error", ""}};
  try {
    if (rank == 0) {
      sweep = std::make_unique<PreparedSweep>(spec_path, db_path, options);
      setup["checkpoint_dir"] = sweep->paths.checkpoint_dir.string();
      setup["artifact_dir"] = sweep->paths.artifact_dir.string();
    }
  } catch (const std::exception& e) {
    failure = std::current_exception();
    setup = {{"ok", false}, {"error", job::first_line(e.what())}};
  }
  std::string setup_text = setup.dump();
  mpi::broadcast_text(setup_text, 0, world);
  setup = nlohmann::json::parse(setup_text);
  if (failure) std::rethrow_exception(failure);
  if (!setup.at("ok").get<bool>()) {
    // Rank 0 reports the error; the others only stop with the same outcome.
    throw sweeps::SpecError(setup.at("error").get<std::string>());
  }
  if (rank != 0) {
    // The same file gives every rank the same expansion (deterministic).
    jobs = sweeps::expand(sweeps::load_sweep_spec(spec_path));
  }

  // Step 2.
  const auto group = mpi::Comm::split(world, rank == 0 ? MPI_UNDEFINED : (rank - 1) / rpj, rank);
  MPI_Barrier(world);  // every worker has expanded the spec: the loop starts now
  const double setup_s = since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  RunSummary summary;
  try {
    if (rank == 0) {
      const double cpu0 = cpu_seconds();
      summary = orchestrate(*sweep, options, groups, rpj);
      summary.setup_s = setup_s;
      summary.loop_s = since(t1);
      summary.orchestrator_cpu_s = cpu_seconds() - cpu0;
    } else {
      JobPaths paths{setup.at("checkpoint_dir").get<std::string>(), setup.at("artifact_dir").get<std::string>()};
      work(jobs, paths, group, options, mpi_options, jobs_per_gpu);
    }
  } catch (const std::exception& e) {
    // Past setup, an error on one rank (the database failing under rank 0, a
    // broken message) leaves the others waiting for it: end them all. Jobs in
    // flight keep their checkpoints and the next run requeues them.
    std::fprintf(stderr, "daenr: error: rank %d: %s\n", rank, job::first_line(e.what()).c_str());
    std::fflush(stderr);
    MPI_Abort(world, 1);
  }
  // Step 8.
  std::string text = rank == 0 ? summary_json(summary).dump() : std::string();
  mpi::broadcast_text(text, 0, world);
  return summary_from_json(nlohmann::json::parse(text));
}

}  // namespace daenr::orchestrator
