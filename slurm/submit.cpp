#include "slurm/submit.h"

#include <fmt/format.h>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "orchestrator/sweep_runner.h"
#include "slurm/command.h"
#include "storage/store.h"
#include "sweeps/expand.h"
#include "sweeps/spec.h"

namespace daenr::slurm {

namespace fs = std::filesystem;

Allocation overlay(const Allocation& over, const Allocation& under) {
  Allocation a;
  auto pick = [](const auto& o, const auto& u) { return o ? o : u; };
  a.nodes = pick(over.nodes, under.nodes);
  a.ntasks_per_node = pick(over.ntasks_per_node, under.ntasks_per_node);
  a.gpus_per_node = pick(over.gpus_per_node, under.gpus_per_node);
  a.cpus_per_task = pick(over.cpus_per_task, under.cpus_per_task);
  a.grace_s = pick(over.grace_s, under.grace_s);
  a.grace_signal = pick(over.grace_signal, under.grace_signal);
  a.jobs_per_gpu = pick(over.jobs_per_gpu, under.jobs_per_gpu);
  a.time = pick(over.time, under.time);
  a.partition = pick(over.partition, under.partition);
  a.account = pick(over.account, under.account);
  a.launcher = pick(over.launcher, under.launcher);
  a.srun_mpi = pick(over.srun_mpi, under.srun_mpi);
  a.daenr = pick(over.daenr, under.daenr);
  a.sbatch = under.sbatch;
  a.sbatch.insert(a.sbatch.end(), over.sbatch.begin(), over.sbatch.end());
  a.setup = under.setup;
  a.setup.insert(a.setup.end(), over.setup.begin(), over.setup.end());
  return a;
}

Allocation defaults() {
  Allocation a;
  a.nodes = 1;
  a.ntasks_per_node = 1;
  a.cpus_per_task = 1;
  // Long enough to finish a validation step and write a checkpoint of the
  // paper's models; Slurm may send the signal up to a minute early anyway.
  a.grace_s = 120;
  // Not USR1: NCCL 2.12 installs a SIGUSR1 handler in every process that uses it (a proxy
  // state dump; NVIDIA/nccl issue 704; later releases made it opt-in), which swallows the
  // warning before daenr sees it. NCCL leaves USR2 alone, and submitit moved to it too.
  a.grace_signal = "USR2";
  a.launcher = "srun";
  a.srun_mpi = "pmix";
  return a;
}

// The accepted signals and why: sweeps::grace_signal_problem(), which the spec's key shares.
std::string parse_grace_signal(const std::string& text, const std::string& what) {
  const std::string name = sweeps::signal_name(text);
  const std::string why = sweeps::grace_signal_problem(name);
  if (why.empty()) return name;
  throw SlurmError(fmt::format("{} '{}': {}; use USR2 (the default), USR1 or ALRM", what, text, why));
}

int grace_signal_number(const std::string& name) {
  const int number = sweeps::grace_signal_number(name);
  if (number < 0)
    throw SlurmError(fmt::format("grace signal '{}': not one of USR2, USR1, ALRM", name));
  return number;
}

fs::path default_profile_file() {
  if (const char* env = std::getenv("DAENR_CLUSTERS"); env != nullptr && *env != '\0') return env;
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
    return fs::path(xdg) / "daenr" / "clusters.toml";
  }
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr ? home : ".") / ".config" / "daenr" / "clusters.toml";
}

namespace {

std::string where(const fs::path& file, const toml::source_region& at) {
  return fmt::format("{}:{}:{}", file.string(), at.begin.line, at.begin.column);
}

int positive_int(const fs::path& file, const std::string& key, const toml::node& node, int min) {
  const auto* v = node.as_integer();
  if (v == nullptr || v->get() < min || v->get() > (1 << 30)) {
    throw SlurmError(fmt::format("{}: {}: expected an integer >= {}", where(file, node.source()), key, min));
  }
  return static_cast<int>(v->get());
}

std::string text(const fs::path& file, const std::string& key, const toml::node& node) {
  const auto* v = node.as_string();
  if (v == nullptr) throw SlurmError(fmt::format("{}: {}: expected a string", where(file, node.source()), key));
  return v->get();
}

std::vector<std::string> texts(const fs::path& file, const std::string& key, const toml::node& node) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    throw SlurmError(fmt::format("{}: {}: expected an array of strings", where(file, node.source()), key));
  }
  std::vector<std::string> out;
  for (const auto& e : *array) out.push_back(text(file, key, e));
  return out;
}

Allocation parse_profile(const fs::path& file, const std::string& name, const toml::table& table) {
  Allocation a;
  for (const auto& [k, node] : table) {
    const std::string key = std::string(k.str());
    const std::string dotted = name + "." + key;
    if (key == "nodes") {
      a.nodes = positive_int(file, dotted, node, 1);
    } else if (key == "ntasks_per_node") {
      a.ntasks_per_node = positive_int(file, dotted, node, 1);
    } else if (key == "gpus_per_node") {
      a.gpus_per_node = positive_int(file, dotted, node, 0);
    } else if (key == "cpus_per_task") {
      a.cpus_per_task = positive_int(file, dotted, node, 1);
    } else if (key == "grace") {
      a.grace_s = positive_int(file, dotted, node, 1);
    } else if (key == "grace_signal") {
      a.grace_signal = parse_grace_signal(text(file, dotted, node), where(file, node.source()) + ": " + dotted);
    } else if (key == "jobs_per_gpu") {
      a.jobs_per_gpu = positive_int(file, dotted, node, 1);
    } else if (key == "time") {
      a.time = text(file, dotted, node);
      parse_slurm_time(*a.time, where(file, node.source()) + ": " + dotted);
    } else if (key == "partition") {
      a.partition = text(file, dotted, node);
    } else if (key == "account") {
      a.account = text(file, dotted, node);
    } else if (key == "launcher") {
      a.launcher = text(file, dotted, node);
      if (*a.launcher != "srun" && *a.launcher != "mpirun") {
        throw SlurmError(fmt::format("{}: {}: expected \"srun\" or \"mpirun\", got \"{}\"",
                                     where(file, node.source()), dotted, *a.launcher));
      }
    } else if (key == "srun_mpi") {
      a.srun_mpi = text(file, dotted, node);
    } else if (key == "daenr") {
      a.daenr = text(file, dotted, node);
    } else if (key == "sbatch") {
      a.sbatch = texts(file, dotted, node);
    } else if (key == "setup") {
      a.setup = texts(file, dotted, node);
    } else {
      throw SlurmError(fmt::format("{}: {}: unknown key (known: nodes, ntasks_per_node, gpus_per_node, "
                                   "cpus_per_task, jobs_per_gpu, time, grace, grace_signal, partition, account, "
                                   "launcher, srun_mpi, daenr, sbatch, setup)",
                                   where(file, k.source()), dotted));
    }
  }
  return a;
}

}  // namespace

Allocation load_profile(const fs::path& file, const std::string& name) {
  if (!fs::exists(file)) {
    if (name.empty()) return {};
    throw SlurmError(fmt::format("--cluster {}: no profile file {} (see docs/slurm.md)", name, file.string()));
  }
  toml::table doc;
  try {
    doc = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw SlurmError(fmt::format("{}: {}", where(file, e.source()), e.description()));
  }
  std::string chosen = name;
  std::vector<std::string> known;
  for (const auto& [k, node] : doc) {
    if (k.str() == "default") {
      if (chosen.empty()) chosen = text(file, "default", node);
      continue;
    }
    if (!node.is_table()) {
      throw SlurmError(fmt::format("{}: {}: expected a table [{}] of settings or `default = \"name\"`",
                                   where(file, k.source()), k.str(), k.str()));
    }
    known.emplace_back(k.str());
  }
  if (chosen.empty()) return {};
  const auto* table = doc.get_as<toml::table>(chosen);
  if (table == nullptr) {
    throw SlurmError(fmt::format("{}: no cluster profile [{}] (profiles: {})", file.string(), chosen,
                                 known.empty() ? "none" : fmt::format("{}", fmt::join(known, ", "))));
  }
  return parse_profile(file, chosen, *table);
}

std::optional<long> parse_slurm_time(const std::string& text, const std::string& what) {
  if (text == "UNLIMITED" || text == "INFINITE" || text == "unlimited" || text == "infinite") return std::nullopt;
  // Slurm's forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
  static const std::regex plain(R"((\d+)(?::(\d+))?(?::(\d+))?)");
  static const std::regex days(R"((\d+)-(\d+)(?::(\d+))?(?::(\d+))?)");
  std::smatch m;
  auto num = [&](int i) { return m[i].matched ? std::stol(m[i].str()) : 0L; };
  long seconds = -1;
  if (text.size() < 12 && std::regex_match(text, m, days)) {
    seconds = num(1) * 86400 + num(2) * 3600 + num(3) * 60 + num(4);
  } else if (text.size() < 12 && std::regex_match(text, m, plain)) {
    if (!m[2].matched) {
      seconds = num(1) * 60;  // minutes
    } else if (!m[3].matched) {
      seconds = num(1) * 60 + num(2);  // minutes:seconds
    } else {
      seconds = num(1) * 3600 + num(2) * 60 + num(3);
    }
  }
  if (seconds <= 0) {
    throw SlurmError(fmt::format("{} '{}': not a Slurm time limit (minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S)",
                                 what, text));
  }
  return seconds;
}

namespace {

// Single quotes keep everything literal in the shell; a quote inside is
// closed, escaped and reopened.
std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Slurm job names end up in squeue columns and file names: keep them tame.
std::string job_name(const std::string& sweep) {
  std::string out = "daenr-";
  for (char c : sweep) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  return out;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

}  // namespace

std::string render_script(const BatchJob& job) {
  const Allocation& a = job.allocation;
  std::string s = "#!/bin/bash\n";
  s += fmt::format("# Written by `daenr slurm submit` for the sweep '{}'.\n", job.sweep_name);
  s += "# Submitting this file again by hand is safe: an allocation that finds another one\n";
  s += "# driving the database exits at once and names it.\n";
  s += fmt::format("#SBATCH --job-name={}\n", job_name(job.sweep_name));
  s += fmt::format("#SBATCH --nodes={}\n", *a.nodes);
  s += fmt::format("#SBATCH --ntasks-per-node={}\n", *a.ntasks_per_node);
  s += fmt::format("#SBATCH --cpus-per-task={}\n", *a.cpus_per_task);
  if (a.gpus_per_node && *a.gpus_per_node > 0) s += fmt::format("#SBATCH --gpus-per-node={}\n", *a.gpus_per_node);
  if (a.time) s += fmt::format("#SBATCH --time={}\n", *a.time);
  if (a.partition) s += fmt::format("#SBATCH --partition={}\n", *a.partition);
  if (a.account) s += fmt::format("#SBATCH --account={}\n", *a.account);
  s += "#SBATCH --requeue\n";
  const std::string& sig = *a.grace_signal;
  s += fmt::format("#SBATCH --signal=B:{}@{}\n", sig, *a.grace_s);
  // One log per Slurm job, kept across its requeues.
  s += "#SBATCH --open-mode=append\n";
  s += fmt::format("#SBATCH --output={}\n", (job.log_dir / "%x-%j.out").string());
  for (const auto& extra : a.sbatch) s += fmt::format("#SBATCH {}\n", extra);
  s += "set -u\n";
  for (const auto& line : a.setup) s += line + "\n";
  s += fmt::format("daenr={}\nspec={}\ndb={}\nlauncher={}\n", quote(*a.daenr), quote(job.spec.string()),
                   quote(job.db.string()), *a.launcher);
  // The shell below is written once; @SIG@ stands for the grace signal.
  auto with_signal = [&sig](std::string text) {
    for (auto at = text.find("@SIG@"); at != std::string::npos; at = text.find("@SIG@", at + sig.size())) {
      text.replace(at, 5, sig);
    }
    return text;
  };
  s += with_signal(R"sh(
echo "daenr: slurm job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname) at $(date -u +%FT%TZ)"

# Slurm sends @SIG@ (the grace signal) to this shell alone (the B: of --signal) before the time
# limit, and SIGTERM to every process on scancel, requeue, preemption and at
# the limit. Both tell the run to stop: it checkpoints the jobs in flight,
# marks them preempted and exits 4. On SIGTERM, what Slurm says of the job at
# that moment tells why (it may not answer later): its Restarts count already
# raised means Slurm requeues the job itself; Reason=None with the count
# unchanged means a person cancelled it; anything else (TimeLimit, Preempted)
# means we requeue it.
signal=""
run_pid=""
job_info=""
on_signal() {
  signal=$1
  if [ -n "$run_pid" ]; then kill -s "$1" "$run_pid" 2>/dev/null || true; fi
  if [ "$1" = TERM ] && [ -z "$job_info" ]; then
    job_info=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null || scontrol show job "$SLURM_JOB_ID" 2>/dev/null)
  fi
}
trap 'on_signal @SIG@' @SIG@
trap 'on_signal TERM' TERM

export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"
)sh");
  // The run is told which signal is the warning: it stops on USR1 and USR2 anyway, on ALRM
  // only when told (docs/slurm.md).
  std::string run = fmt::format("\"$daenr\" sweep run \"$spec\" --db \"$db\" --max-attempts {} --grace-signal {}",
                                job.max_attempts, sig);
  if (job.ranks_per_job > 0) run += fmt::format(" --ranks-per-job {}", job.ranks_per_job);
  if (job.jobs_per_gpu > 0) run += fmt::format(" --jobs-per-gpu {}", job.jobs_per_gpu);
  if (*a.launcher == "mpirun") {
    // Open MPI 4.1's mpirun passes SIGTERM on to the ranks only odls_base_sigkill_timeout
    // seconds after it gets it, and kills them a timeout later (measured: a stop 28 s after
    // the signal with 30, 2 s with 5). Half of Slurm's KillWait (30 s by default) leaves the
    // ranks the other half to reach a validation point and checkpoint.
    s += "export OMPI_MCA_odls_base_sigkill_timeout=\"${OMPI_MCA_odls_base_sigkill_timeout:-15}\"\n";
    // Open MPI 4.1 binds each of 2 or fewer ranks to one core, which would put a rank's
    // cpus_per_task threads on one core; the allocation already confines the ranks to its CPUs.
    s += fmt::format("mpirun {}{} &\n", *a.cpus_per_task > 1 ? "--bind-to none " : "", run);
  } else {
    // The step's CPUs per task are asked for again: since Slurm 22.05 (Debian 12's) srun no longer
    // takes --cpus-per-task from the allocation, and each rank would get one CPU, its threads
    // bound to it wherever the cluster binds tasks.
    s += fmt::format(
        "srun --mpi={} --cpus-per-task=\"${{SLURM_CPUS_PER_TASK:-1}}\" --kill-on-bad-exit=1 {} &\n",
        *a.srun_mpi, run);
  }
  s += with_signal(R"sh(run_pid=$!
# A trapped signal ends `wait` early: wait until the run has really exited.
while kill -0 "$run_pid" 2>/dev/null; do wait "$run_pid"; done
wait "$run_pid"
rc=$?

# Requeue until the sweep is complete, unless a person cancelled the job.
requeue() {
  echo "daenr: stopped on $1 with jobs left; requeueing slurm job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID"
}
# mpirun exits 1 after a SIGTERM whatever its ranks returned (they stopped
# gracefully and the database says so): a signal received is a stop.
if [ "$rc" = 1 ] && [ -n "$signal" ] && [ "$launcher" = mpirun ]; then rc=4; fi
case "$rc" in
  0) echo "daenr: the sweep is complete" ;;
  4)
    restarts=$(grep -o 'Restarts=[0-9]*' <<<"$job_info" | head -n 1 | cut -d= -f2)
    reason=$(grep -o 'Reason=[^ ]*' <<<"$job_info" | head -n 1 | cut -d= -f2)
    if [ "$signal" = @SIG@ ]; then
      requeue "the time-limit warning (@SIG@)"
    elif [ -z "$job_info" ]; then
      echo "daenr: stopped on SIGTERM; Slurm did not say why, so not requeued (daenr slurm status --db $db)"
    elif [ "${restarts:-0}" -gt "${SLURM_RESTART_COUNT:-0}" ]; then
      echo "daenr: stopped on SIGTERM; Slurm requeues slurm job $SLURM_JOB_ID itself"
    elif [ "$reason" = None ]; then
      echo "daenr: stopped on SIGTERM; cancelled, so not requeued (submit again to go on)"
    else
      requeue "SIGTERM (${reason})"
    fi
    ;;
  5) echo "daenr: the sweep finished with failed jobs; not requeued (daenr status --db $db)" ;;
  *) echo "daenr: the run exited with code $rc; not requeued" ;;
esac
exit "$rc"
)sh");
  return s;
}

namespace {

fs::path absolute_clean(const fs::path& p) { return fs::weakly_canonical(fs::absolute(p)); }

std::string self_executable() {
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("daenr") : self.string();
}

// What `squeue` says of each job id (absent: no longer known to Slurm).
std::map<std::string, std::string> queue_states(const std::vector<std::string>& ids) {
  std::map<std::string, std::string> states;
  if (ids.empty()) return states;
  const auto r = run_command({"squeue", "--noheader", "--states=all", "--format=%i|%T|%M|%l|%R",
                              fmt::format("--jobs={}", fmt::join(ids, ","))});
  // Once every listed job has left slurmctld's memory squeue says "Invalid job
  // id specified" and fails: nothing is queued, which is an answer.
  if (r.exit_code != 0 && r.err.find("Invalid job id") == std::string::npos) {
    throw SlurmError(fmt::format("squeue failed (exit {}): {}", r.exit_code, r.err.substr(0, r.err.find('\n'))));
  }
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    const auto bar = line.find('|');
    if (bar == std::string::npos) continue;
    std::string id = line.substr(0, bar);
    id.erase(0, id.find_first_not_of(' '));
    states[id] = line.substr(bar + 1);
  }
  return states;
}

bool active(const std::string& state_line) {
  const std::string state = state_line.substr(0, state_line.find('|'));
  static const std::set<std::string> kActive = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING",
                                                 "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
                                                 "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"};
  return kActive.count(state) > 0;
}

}  // namespace

namespace {

// The steps of submit(), in order.

// The allocation: the command line over the cluster profile over the defaults, its grace
// period checked against its time limit.
Allocation resolve_allocation(const Allocation& command_line, const Allocation& profile) {
  Allocation a = overlay(command_line, overlay(profile, defaults()));
  if (!a.daenr) a.daenr = self_executable();
  std::optional<long> limit;
  if (a.time) limit = parse_slurm_time(*a.time, "--time");
  if (*a.grace_s < 1 || *a.grace_s > 65535) {
    throw SlurmError(fmt::format("--grace {}: expected 1 to 65535 seconds", *a.grace_s));
  }
  if (limit && *a.grace_s >= *limit) {
    throw SlurmError(fmt::format("--grace {}: must be shorter than the time limit --time {} ({} s)", *a.grace_s,
                                 *a.time, *limit));
  }
  return a;
}

// Jobs per GPU: the flag, else the spec's (this sweep's models), else the profile's (the
// cluster's usual packing). The run reads the spec itself, so only the others are passed on
// (job.jobs_per_gpu). With GPUs, tasks per node follow from it unless set.
void pack_gpus(const Allocation& command_line, const Allocation& profile, const sweeps::SweepSpec& spec,
               Allocation& a, BatchJob& job) {
  std::optional<int> jobs_per_gpu = command_line.jobs_per_gpu;
  if (!jobs_per_gpu) jobs_per_gpu = spec.jobs_per_gpu;
  if (!jobs_per_gpu && profile.jobs_per_gpu) {
    jobs_per_gpu = profile.jobs_per_gpu;
    job.jobs_per_gpu = *profile.jobs_per_gpu;
  }
  if (command_line.jobs_per_gpu) job.jobs_per_gpu = *command_line.jobs_per_gpu;
  const int gpus = a.gpus_per_node.value_or(0);
  if (!jobs_per_gpu || gpus == 0) return;
  const char* source = command_line.jobs_per_gpu ? "--jobs-per-gpu" : "jobs_per_gpu =";
  // Rank 0 orchestrates and needs no GPU: on one node it comes on top of the GPU slots; on
  // several it takes one of node 0's (ntasks-per-node is the same on every node, and one
  // rank more on the others would put k + 1 ranks on their GPU 0, each bounded to 1/k).
  const int slots = gpus * *jobs_per_gpu;
  const int most = slots + (*a.nodes == 1 ? 1 : 0);
  if (!command_line.ntasks_per_node && !profile.ntasks_per_node) {
    a.ntasks_per_node = most;
  } else if (*a.ntasks_per_node > most) {
    throw SlurmError(fmt::format("{} {}: {} tasks per node are more than {} GPUs x {} jobs per GPU{} = {}; "
                                 "raise jobs_per_gpu or lower ntasks_per_node",
                                 source, *jobs_per_gpu, *a.ntasks_per_node, gpus, *jobs_per_gpu,
                                 *a.nodes == 1 ? " + 1 (rank 0)" : "", most));
  }
}

void check_groups(const SubmitRequest& request, const sweeps::SweepSpec& spec, const Allocation& a) {
  const int tasks = *a.nodes * *a.ntasks_per_node;
  const int rpj = request.ranks_per_job > 0 ? request.ranks_per_job : spec.ranks_per_job;
  if (rpj > 1 && (tasks < 1 + rpj || (tasks - 1) % rpj != 0)) {
    throw SlurmError(fmt::format("{} {}: needs 1 + a multiple of {} tasks; the allocation has {} "
                                 "({} nodes x {} tasks per node)",
                                 request.ranks_per_job > 0 ? "--ranks-per-job" : "ranks_per_job =", rpj, rpj,
                                 tasks, *a.nodes, *a.ntasks_per_node));
  }
}

// One allocation per database: refuse while a run holds it or one of its Slurm jobs is still
// queued (one squeue call), instead of queueing an allocation that would only exit on arrival.
void refuse_if_driven(const fs::path& db) {
  if (!fs::exists(db)) return;
  storage::Reader reader(db);
  const double now = orchestrator::unix_now();
  // Fresh by the same rule as `sweep run` takes a lock over by.
  if (auto lock = reader.run_lock(); lock && lock->fresh(now)) {
    throw storage::LockHeld(fmt::format("{}: {}", db.string(), lock->held_by(now)));
  }
  std::vector<std::string> ids;
  for (const auto& j : reader.slurm_jobs()) ids.push_back(j.slurm_job_id);
  for (const auto& [id, state] : queue_states(ids)) {
    if (active(state)) {
      throw storage::LockHeld(fmt::format("{}: slurm job {} ({}) already drives this database; wait for it or "
                                          "scancel {}",
                                          db.string(), id, state.substr(0, state.find('|')), id));
    }
  }
}

// Writes the script and submits it; returns Slurm's job id. A script that was not submitted
// is not left behind to be mistaken for one that was.
std::string write_and_submit(const fs::path& script_path, const std::string& script) {
  {
    std::ofstream out(script_path);
    out << script;
    if (!out) throw SlurmError(fmt::format("{}: cannot write the batch script", script_path.string()));
  }
  struct RemoveUnlessSubmitted {
    const fs::path& path;
    bool submitted = false;
    ~RemoveUnlessSubmitted() {
      std::error_code ec;
      if (!submitted) fs::remove(path, ec);
    }
  } cleanup{script_path};
  const auto r = run_command({"sbatch", "--parsable", script_path.string()});
  if (r.exit_code != 0) {
    throw SlurmError(fmt::format("sbatch {} failed (exit {}): {}", script_path.string(), r.exit_code,
                                 r.err.substr(0, r.err.find('\n'))));
  }
  // --parsable prints "jobid" or "jobid;cluster".
  const std::string id = r.out.substr(0, r.out.find_first_of(";\n"));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos) {
    throw SlurmError(fmt::format("sbatch printed '{}', not a job id", r.out));
  }
  cleanup.submitted = true;
  return id;
}

}  // namespace

SubmitResult submit(const SubmitRequest& request) {
  const fs::path profile_file = request.profile_file.empty() ? default_profile_file() : request.profile_file;
  Allocation command_line = request.command_line;
  if (command_line.grace_signal) command_line.grace_signal = parse_grace_signal(*command_line.grace_signal, "--grace-signal");
  const Allocation profile = load_profile(profile_file, request.cluster);
  Allocation a = resolve_allocation(command_line, profile);
  BatchJob job;
  job.spec = absolute_clean(request.spec);
  job.db = absolute_clean(request.db);
  // The spec is checked here, not an hour later in the queue.
  const auto spec = sweeps::load_sweep_spec(job.spec);
  const auto jobs = sweeps::expand(spec);
  // The grace signal: the flag, else the spec's (it knows whether its jobs use NCCL), else the
  // profile's (the cluster's), else USR2; the same order as jobs_per_gpu.
  if (!command_line.grace_signal && spec.grace_signal) a.grace_signal = spec.grace_signal;
  pack_gpus(command_line, profile, spec, a, job);
  check_groups(request, spec, a);
  job.log_dir = fs::path(job.db.string() + ".slurm");
  job.ranks_per_job = request.ranks_per_job;
  job.max_attempts = request.max_attempts;
  job.sweep_name = spec.name;
  job.allocation = a;
  if (!fs::is_directory(job.db.parent_path())) {
    throw SlurmError(fmt::format("--db {}: folder {} does not exist", request.db.string(),
                                 job.db.parent_path().string()));
  }

  SubmitResult result;
  result.script = render_script(job);
  if (request.dry_run) return result;
  refuse_if_driven(job.db);
  // A sweep already complete is not worth a place in the queue.
  const auto plan = orchestrator::plan_jobs(jobs, job.db);
  result.jobs_done = plan.done;
  result.jobs_total = plan.total;
  if (plan.total > 0 && plan.done == plan.total) return result;

  // Opening the store first creates or migrates the database, so a file this
  // build cannot write fails before anything is queued.
  storage::Store store(job.db);
  fs::create_directories(job.log_dir);
  result.script_path = job.log_dir / fmt::format("{}-{}.sbatch", job_name(job.sweep_name), utc_now());
  result.slurm_job_id = write_and_submit(result.script_path, result.script);
  orchestrator::register_sweep(store, job.spec, spec, jobs);
  store.record_slurm_job(
      {result.slurm_job_id, job.sweep_name, job.spec.string(), result.script_path.string(), orchestrator::unix_now()});
  return result;
}

std::string status(const fs::path& db) {
  const double now = orchestrator::unix_now();
  std::string out = orchestrator::status_report(db, now);
  storage::Reader reader(db);
  const auto submitted = reader.slurm_jobs();
  std::vector<std::string> ids;
  for (const auto& j : submitted) ids.push_back(j.slurm_job_id);
  // Progress is worth printing even where Slurm cannot be asked (a laptop
  // holding a copy of the database): say so instead of failing.
  std::map<std::string, std::string> states;
  std::string unknown;
  try {
    states = queue_states(ids);
  } catch (const SlurmError& e) {
    unknown = e.what();
  }
  std::map<std::string, std::pair<int, std::string>> last_run;  // slurm job -> (restarts, outcome)
  for (const auto& run : reader.runs(1000)) {
    if (!run.slurm_job_id.empty() && last_run.count(run.slurm_job_id) == 0) {
      last_run[run.slurm_job_id] = {run.slurm_restart, run.ended_at ? run.outcome : std::string("running")};
    }
  }
  if (submitted.empty()) out += "slurm: no jobs submitted for this database\n";
  for (const auto& j : submitted) {
    std::string state = unknown.empty() ? "finished (no longer in the queue)" : "state unknown (" + unknown + ")";
    if (auto found = states.find(j.slurm_job_id); found != states.end()) {
      std::vector<std::string> f;
      std::istringstream parts(found->second);
      for (std::string part; std::getline(parts, part, '|');) f.push_back(part);
      f.resize(4);
      state = fmt::format("{} (elapsed {}, limit {}, {})", f[0], f[1], f[2], f[3]);
    }
    std::string runs = "no run yet";
    if (auto found = last_run.find(j.slurm_job_id); found != last_run.end()) {
      runs = fmt::format("requeued {} times, last run {}", found->second.first, found->second.second);
    }
    out += fmt::format("slurm job {}: {}; {}; submitted {:.0f} s ago\n", j.slurm_job_id, state, runs,
                       now - j.submitted_at);
  }
  return out;
}

}  // namespace daenr::slurm
