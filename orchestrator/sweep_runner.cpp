#include "orchestrator/sweep_runner.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "job/text.h"
#include "models/error.h"
#include "models/npy.h"
#include "sweeps/expand.h"
#include "sweeps/spec.h"
#include "orchestrator/job_runner.h"

namespace daenr::orchestrator {

namespace fs = std::filesystem;

std::string process_owner() {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  const SlurmContext slurm = slurm_context();
  if (slurm.job_id.empty()) return fmt::format("{}:{}", host, ::getpid());
  return fmt::format("{}:{} (slurm job {})", host, ::getpid(), slurm.job_id);
}

SlurmContext slurm_context() {
  SlurmContext c;
  if (const char* id = std::getenv("SLURM_JOB_ID")) c.job_id = id;
  if (const char* restart = std::getenv("SLURM_RESTART_COUNT")) c.restart = std::atoi(restart);
  return c;
}

OwnerName parse_owner(const std::string& owner) {
  OwnerName out;
  const auto colon = owner.find(':');
  if (colon == std::string::npos) return out;
  out.host = owner.substr(0, colon);
  std::size_t pos = colon + 1;
  while (pos < owner.size() && std::isdigit(static_cast<unsigned char>(owner[pos]))) {
    out.pid = out.pid * 10 + (owner[pos] - '0');
    ++pos;
  }
  static constexpr std::string_view kSlurm = " (slurm job ";
  if (owner.compare(pos, kSlurm.size(), kSlurm) == 0 && owner.back() == ')') {
    out.slurm_job = owner.substr(pos + kSlurm.size(), owner.size() - 1 - pos - kSlurm.size());
  } else if (pos != owner.size()) {
    out.pid = 0;  // not a name this build writes
  }
  return out;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

nlohmann::ordered_json labels_json(const sweeps::Labels& l) {
  return {{"region", l.region},
          {"layer", l.layer},
          {"autoencoder", job::to_string(l.autoencoder)},
          {"readout", job::to_string(l.readout)},
          {"alpha", l.alpha},
          {"beta", l.beta},
          {"seed", l.seed},
          {"neurons", sweeps::to_string(l.neurons)}};
}

nlohmann::ordered_json labels_json(const sweeps::JobSpec& job) {
  auto labels = labels_json(job.labels);
  // A training job's labels stay as they were (no kind key): old databases read alike.
  if (job.kind == job::JobKind::kTrain) return labels;
  labels["kind"] = job::to_string(job.kind);
  labels["parent"] = job.depends_on;
  if (job.kind == job::JobKind::kMei) labels["objective"] = job::to_string(job.mei.objective);
  return labels;
}

std::string register_sweep(storage::Store& store, const fs::path& spec_path, const sweeps::SweepSpec& spec,
                           const std::vector<sweeps::JobSpec>& jobs) {
  // The model-code version is part of the sweep's identity too: after a
  // change that alters results, the same spec is a new sweep with new ids.
  const std::string sweep_id = store.insert_sweep(
      spec.name, fmt::format("{}\n# model code {}\n", read_text(spec_path), sweeps::kModelCodeVersion), unix_now());
  std::vector<storage::NewJob> rows;
  rows.reserve(jobs.size());
  for (const auto& j : jobs) {
    // A decode / mei job stores its own settings beside its parent's configuration.
    std::string config = sweeps::canonical_json(j.config);
    if (j.kind == job::JobKind::kDecode) {
      config = nlohmann::ordered_json{{"decode", job::to_json(j.decode)}, {"parent", j.depends_on}}.dump();
    } else if (j.kind == job::JobKind::kMei) {
      config = nlohmann::ordered_json{{"mei", job::to_json(j.mei)}, {"parent", j.depends_on}}.dump();
    }
    rows.push_back({j.id, config, labels_json(j).dump(), j.depends_on, job::to_string(j.kind)});
  }
  store.insert_jobs(sweep_id, rows, unix_now());
  return sweep_id;
}

namespace {

// A lock held by a process of this host that no longer exists (killed, or
// crashed) is stale at once, and so is one held by an earlier incarnation of
// this very Slurm job (Slurm runs one at a time: a requeued allocation starts
// only after the previous one ended, perhaps by SIGKILL). Any other holder is
// judged by its heartbeat alone.
bool holder_is_gone(storage::Store& store) {
  const auto lock = store.run_lock();
  if (!lock) return false;
  const OwnerName holder = parse_owner(lock->owner);
  const OwnerName me = parse_owner(process_owner());
  if (!me.slurm_job.empty() && holder.slurm_job == me.slurm_job) return true;
  if (holder.host != me.host || holder.pid <= 0) return false;
  return ::kill(static_cast<pid_t>(holder.pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

PreparedSweep::PreparedSweep(const fs::path& spec_path, const fs::path& db, const RunnerOptions& options)
    : PreparedSweep(spec_path, sweeps::load_sweep_spec(spec_path), db, options) {}

PreparedSweep::PreparedSweep(const fs::path& spec_path, sweeps::SweepSpec parsed, const fs::path& db,
                             const RunnerOptions& options)
    : db_path(db),
      spec(std::move(parsed)),
      jobs(sweeps::expand(spec)),
      store(db),
      owner(process_owner()) {
  for (const auto& j : jobs) by_id[j.id] = &j;
  store.acquire_run_lock(owner, unix_now(), holder_is_gone(store) ? 0.0 : options.lock_stale_s);
  try {
    const SlurmContext slurm = slurm_context();
    run_id_ = store.begin_run(owner, slurm.job_id, slurm.restart, unix_now());
    sweep_id = register_sweep(store, spec_path, spec, jobs);
    // We hold the lock: anything still leased belongs to a run that died.
    store.reconcile_stale(std::numeric_limits<double>::infinity());
    paths.checkpoint_dir =
        options.checkpoint_dir.empty() ? fs::path(db_path.string() + ".checkpoints") : options.checkpoint_dir;
    fs::create_directories(paths.checkpoint_dir);
    paths.artifact_dir = fs::path(db_path.string() + ".artifacts");
    fs::create_directories(paths.artifact_dir);
  } catch (...) {
    release();
    throw;
  }
}

PreparedSweep::~PreparedSweep() { release(); }

int64_t PreparedSweep::jobs_left(int max_attempts) {
  return store.work_left(sweep_id, max_attempts);
}

void PreparedSweep::finish(const RunSummary& summary) {
  outcome_ = summary.stopped ? "stopped" : summary.failed > 0 ? "failed jobs" : "complete";
}

void PreparedSweep::release() noexcept {
  if (released_) return;
  released_ = true;
  try {
    // No outcome: an exception ended the run (a database error, a lost lock).
    if (run_id_ > 0) store.end_run(run_id_, outcome_.empty() ? "error" : outcome_, unix_now());
  } catch (...) {
  }
  try {
    store.release_run_lock(owner);
  } catch (...) {
    // The lock goes stale on its own; nothing else to do in a destructor.
  }
}

const sweeps::JobSpec& PreparedSweep::job(const std::string& id) const {
  const auto found = by_id.find(id);
  if (found == by_id.end()) {
    throw storage::StorageError(
        fmt::format("{}: job {} of this sweep is not in its expansion", db_path.string(), id));
  }
  return *found->second;
}

RunSummary run_sweep(const fs::path& spec_path, const fs::path& db_path, const RunnerOptions& options) {
  PreparedSweep sweep(spec_path, db_path, options);
  auto& store = sweep.store;
  const auto& owner = sweep.owner;

  RunSummary summary;
  summary.total = static_cast<int64_t>(sweep.jobs.size());
  auto stop_requested = [&] { return options.stop && options.stop->load(); };
  ProgressReporter progress(options.progress,
                            options.progress == ProgressMode::kOff ? 0 : sweep.jobs_left(options.max_attempts));

  while (!stop_requested()) {
    const auto leased =
        store.lease_next(sweep.sweep_id, owner, unix_now(), options.lease_s, options.max_attempts);
    if (!leased) break;
    const sweeps::JobSpec& job = sweep.job(leased->id);
    ++summary.ran;
    progress.job_started(job);
    auto should_stop = [&](int) {
      const double now = unix_now();
      store.refresh_run_lock(owner, now);
      store.heartbeat(owner, now, options.lease_s);
      return stop_requested();
    };
    Outcome outcome;
    try {
      const auto inputs = job_inputs(store, job, [&](const std::string& id) -> const sweeps::JobSpec& {
        return sweep.job(id);
      });
      outcome = execute_job(job, inputs, sweep.paths, should_stop,
                            [&](const worker::TrainingProgress& p) { progress.training(p); });
    } catch (const models::DataError& e) {
      outcome.job_id = job.id;
      outcome.status = Outcome::Status::kFailed;
      outcome.error = job::first_line(e.what());
    }
    record_outcome(store, owner, outcome, summary);
    progress.job_finished(job, outcome);
    remove_spent_checkpoint(sweep.paths, outcome);
    if (outcome.status == Outcome::Status::kPreempted) break;
  }
  progress.clear();
  // A stop that came after the last job is no reason to run again.
  if (stop_requested() && sweep.work_left(options.max_attempts)) summary.stopped = true;
  sweep.finish(summary);
  return summary;
}

Plan plan_sweep(const fs::path& spec_path, const fs::path& db_path) {
  return plan_jobs(sweeps::expand(sweeps::load_sweep_spec(spec_path)), db_path);
}

Plan plan_jobs(const std::vector<sweeps::JobSpec>& jobs, const fs::path& db_path) {
  Plan plan;
  plan.total = static_cast<int64_t>(jobs.size());
  for (const auto kind : job::all_job_kinds()) {
    const auto n = std::count_if(jobs.begin(), jobs.end(), [&](const sweeps::JobSpec& j) { return j.kind == kind; });
    if (n > 0) plan.kinds.emplace_back(job::to_string(kind), n);
  }
  std::optional<storage::Reader> reader;
  if (fs::exists(db_path)) reader.emplace(db_path);
  for (const auto& j : jobs) {
    const auto state = reader ? reader->job_state(j.id) : std::nullopt;
    if (!state) {
      ++plan.fresh;
      plan.fresh_ids.push_back(j.id);
    } else if (*state == storage::JobState::kDone) {
      ++plan.done;
    } else if (*state == storage::JobState::kFailed) {
      ++plan.failed;
    } else if (*state == storage::JobState::kLeased) {
      ++plan.stale;
    } else {
      ++plan.pending;
    }
  }
  return plan;
}

std::string status_report(const fs::path& db_path, double now) {
  storage::Reader reader(db_path);
  const auto c = reader.counts();
  std::string out = fmt::format("{}: {} jobs: {} done, {} pending, {} running, {} failed, {} preempted\n",
                                db_path.string(), c.total, c.done, c.pending, c.leased, c.failed, c.preempted);
  if (auto lock = reader.run_lock()) {
    out += fmt::format("run: {} (started {:.0f} s ago, last heartbeat {:.0f} s ago)\n", lock->owner,
                       now - lock->acquired_at, now - lock->heartbeat_at);
  } else {
    out += "run: none\n";
  }
  const auto models = reader.artifacts("model");
  if (!models.empty()) {
    // Where the kept models live: the jobs on them (decode, mei) fail without them.
    out += fmt::format("models: {} trained models kept in {}\n", models.size(),
                       fs::path(models.front().second).parent_path().string());
  }
  for (const auto& running : reader.running_jobs()) {
    out += fmt::format("running: {} {} for {:.0f} s\n", running.id, running.labels,
                       now - running.started_at);
  }
  for (const auto& [id, error] : reader.last_errors(5)) out += fmt::format("error: {}: {}\n", id, error);
  return out;
}

}  // namespace daenr::orchestrator
