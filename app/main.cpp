// daenr: the command line. Parsing and exit codes only; the work is in the libraries.
//
// Exit codes: 0 success; 1 an unexpected internal error; 2 bad input (a flag,
// a configuration, a data file, a checkpoint, a database); 3 the training
// diverged; 4 a sweep stopped gracefully on SIGTERM/SIGINT/SIGUSR1/SIGUSR2, or
// the signal `--grace-signal` names (rerun to resume); 5 a sweep finished with
// failed jobs.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <unistd.h>
#include <vector>

#include "job/config.h"
#include "job/text.h"
#include "models/error.h"
#include "models/synth.h"
#include "mpi/comm.h"
#include "orchestrator/mpi_runner.h"
#include "orchestrator/stop_signals.h"
#include "orchestrator/sweep_runner.h"
#include "reports/report.h"
#include "slurm/submit.h"
#include "storage/store.h"
#include "sweeps/spec.h"
#include "worker/cpu_share.h"
#include "worker/trainer.h"

namespace {

constexpr int kExitInternal = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitDiverged = 3;
constexpr int kExitStopped = 4;
constexpr int kExitJobsFailed = 5;

// Set by SIGTERM, SIGINT, SIGUSR1 or SIGUSR2 (Slurm's warning signal, USR2
// unless the profile chose another), or the --grace-signal one: the sweep stops
// at the next validation point, checkpointing the job in flight.
std::atomic<bool> g_stop{false};
// This process's MPI rank (0 without MPI): only rank 0 prints, since every
// rank of a failed MPI setup fails the same way.
int g_rank = 0;
extern "C" void on_stop_signal(int) { g_stop.store(true); }

// USR1 and USR2 are always handled, whatever the grace signal: USR1 was the only
// warning signal before it could be chosen (scripts and people send it), and USR2
// is the default one. A third (ALRM) only when asked for, since a library could use it.
std::vector<int> stop_signal_set(int grace_signal) {
  std::vector<int> signals = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2};
  if (std::find(signals.begin(), signals.end(), grace_signal) == signals.end())
    signals.push_back(grace_signal);
  return signals;
}

// `sweep run`'s stop signals: blocked in every thread and taken by StopSignals' own thread
// (a handler on a thread inside oneDNN's GEMM corrupts the heap: orchestrator/stop_signals.h).
// The handler stays as the fallback for a thread that has them unblocked.
std::unique_ptr<daenr::orchestrator::StopSignals> take_stop_signals(int grace_signal) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  const auto signals = stop_signal_set(grace_signal);
  for (int sig : signals) ::sigaction(sig, &sa, nullptr);
  return std::make_unique<daenr::orchestrator::StopSignals>(signals, g_stop);
}

// `sweep run`'s grace signal: the flag, else the spec's key (a user's own batch script may rely
// on it), else USR2. The spec is read once more by the runner. A spec that fails to load is not
// reported here: under mpirun a rank that threw now would leave the others waiting in the
// collective setup, which is where the runner reports the failure once, from rank 0, for every
// rank (mpi_sweep.sh checks it).
int run_grace_signal(const std::string& flag, const std::string& spec_path) {
  std::string grace = flag;
  if (grace.empty()) {
    try {
      grace = daenr::sweeps::load_sweep_spec(spec_path).grace_signal.value_or("USR2");
    } catch (const std::exception&) {  // the runner reads the same file and reports it
      grace = "USR2";
    }
  }
  return daenr::slurm::grace_signal_number(
      daenr::slurm::parse_grace_signal(grace, "--grace-signal"));
}

// libgomp reads OMP_WAIT_POLICY once, when it is loaded, before main() runs. Unless the user
// chose a policy, daenr keeps libgomp's default (spin a while, then sleep) when its threads
// have CPUs of their own, and otherwise sets "passive" and re-executes itself once so that the
// runtime sees it (worker/cpu_share.h says why each).
void choose_openmp_wait_policy(char** argv, const daenr::worker::CpuShare& share) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  const auto policy = daenr::worker::wait_policy(share);
  if (!policy) return;
  ::setenv("OMP_WAIT_POLICY", policy->c_str(), 1);
  ::execv("/proc/self/exe", argv);
  // execv only returns on failure; carry on with the default policy.
}

// Whether this process says what is common to all the run's ranks: the one process, or under
// MPI the first that trains (rank 1 of a sweep, whose rank 0 trains nothing).
bool says_for_the_run(bool orchestrated) {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    if (const char* rank = std::getenv(name))
      return std::string(rank) == (orchestrated ? "1" : "0");
  }
  return true;
}

// c10::Error messages carry a C++ backtrace after the first line; a user gets
// the first line only.

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw daenr::job::ConfigError(fmt::format("{}: cannot open the job configuration", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int run_train(const std::string& config_path, const std::vector<std::string>& overrides,
              const std::string& checkpoint, bool per_neuron, bool print_config) {
  using namespace daenr::worker;
  const std::string text = config_path.empty() ? std::string() : read_file(config_path);
  const std::string source = config_path.empty() ? "(defaults)" : config_path;
  const JobConfig config = daenr::job::apply_overrides(text, source, overrides);
  if (print_config) {
    std::cout << resolved_json(config).dump(2) << "\n";
    return 0;
  }
  RunOptions options;
  options.checkpoint = checkpoint;
  const JobResult result = run_job(config, options);
  nlohmann::ordered_json line = to_json(result, per_neuron);
  line["config"] = resolved_json(config);
  std::cout << line.dump() << std::endl;
  return 0;
}

// What the command line asks for: the options CLI11 fills, and which subcommand was given.
struct Options {
  // train
  std::string config_path, checkpoint;
  std::vector<std::string> overrides;
  bool per_neuron = false, print_config = false;
  // data synth
  std::string out_dir;
  std::uint64_t seed = 1;
  // sweep, status, report, slurm
  std::string spec_path, db_path;
  int max_attempts = 2;
  int ranks_per_job = 0;  // 0: the spec's ranks_per_job
  int jobs_per_gpu = 0;   // 0: the spec's jobs_per_gpu
  std::string run_grace_signal;  // empty: the spec's grace_signal, else USR2
  std::string report_out, report_html, report_sweep;
  std::vector<std::string> report_formats = {"md", "tex", "csv"};
  daenr::slurm::SubmitRequest request;
  std::string profile_file;
};

struct Commands {
  CLI::App *train, *synth, *plan, *run, *status, *report, *slurm_submit, *slurm_status;
};

CLI::App* add_train(CLI::App& app, Options& o) {
  auto* train = app.add_subcommand("train", "train and evaluate one job; prints one JSON line");
  train->add_option("-c,--config", o.config_path, "job configuration (TOML); defaults if omitted")
      ->check(CLI::ExistingFile);
  train->add_option("-s,--set", o.overrides,
                    "override a key, e.g. --set model.layer=3 --set train.max_steps=500");
  train->add_option("--checkpoint", o.checkpoint,
                    "checkpoint file: written during training, resumed from if it exists");
  train->add_flag("--per-neuron", o.per_neuron, "add per-neuron r and p and the training curve");
  train->add_flag("--print-config", o.print_config, "print the resolved configuration and exit");
  return train;
}

CLI::App* add_data(CLI::App& app, Options& o) {
  auto* data = app.add_subcommand("data", "data utilities");
  data->require_subcommand(1);
  auto* synth = data->add_subcommand("synth", "write the three virtual regions in the Antolík layout");
  synth->add_option("--out", o.out_dir, "output folder (region1..3 are created in it)")->required();
  synth->add_option("--seed", o.seed, "simulation seed (the data_seed of job configurations)");
  return synth;
}

void add_sweep(CLI::App& app, Options& o, Commands& c) {
  auto* sweep = app.add_subcommand("sweep", "plan or run a sweep (a TOML sweep spec) against a database");
  sweep->require_subcommand(1);
  c.plan = sweep->add_subcommand("plan", "what a run would do: total, new, done, failed, stale");
  c.plan->add_option("spec", o.spec_path, "sweep spec (TOML)")->required()->check(CLI::ExistingFile);
  c.plan->add_option("--db", o.db_path, "sweep database (SQLite)")->required();
  auto* run = c.run = sweep->add_subcommand("run", "run every job that is not done; resumable");
  run->add_option("spec", o.spec_path, "sweep spec (TOML)")->required()->check(CLI::ExistingFile);
  run->add_option("--db", o.db_path, "sweep database (SQLite; created if missing)")->required();
  run->add_option("--max-attempts", o.max_attempts, "attempts per job before it stays failed")
      ->check(CLI::Range(1, 100));
  run->add_option("--ranks-per-job", o.ranks_per_job,
                  "under mpirun: ranks that train one job together, data-parallel (default: the spec's "
                  "ranks_per_job, else 1)")
      ->check(CLI::Range(1, 1 << 20));
  run->add_option("--jobs-per-gpu", o.jobs_per_gpu,
                  "under mpirun on GPUs: worker ranks that share one GPU, each bounded to its share of "
                  "the GPU's memory (default: the spec's jobs_per_gpu, else 1)")
      ->check(CLI::Range(1, 1 << 10));
  run->add_option(
      "--grace-signal", o.run_grace_signal,
      "a signal that stops the run gracefully besides TERM, INT, USR1 and USR2: USR1, USR2 "
      "or ALRM (the Slurm batch script passes its grace signal; default: the spec's grace_signal, "
      "else USR2)");
  c.status = app.add_subcommand("status", "progress of a sweep database");
  c.status->add_option("--db", o.db_path, "sweep database (SQLite)")->required()->check(CLI::ExistingFile);
}

CLI::App* add_report(CLI::App& app, Options& o) {
  auto* report = app.add_subcommand(
      "report", "regenerate the paper's tables and figures from a sweep database; prints the tables");
  report->add_option("--db", o.db_path, "sweep database (SQLite)")->required();
  report->add_option("--out", o.report_out, "output folder (default: <db>.report beside the database)");
  report->add_option("--format", o.report_formats, "table formats to write: md, tex, csv (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember({"md", "tex", "csv"}));
  report->add_option("--html", o.report_html, "the self-contained HTML report (default: <out>/report.html)");
  report->add_option("--sweep", o.report_sweep, "only this sweep's jobs (its name or id; default: every job)");
  return report;
}

void add_slurm(CLI::App& app, Options& o, Commands& c) {
  auto* slurm = app.add_subcommand("slurm", "submit a sweep to Slurm and follow it (docs/slurm.md)");
  slurm->require_subcommand(1);
  auto* submit = c.slurm_submit = slurm->add_subcommand(
      "submit", "write an sbatch script for a sweep and submit it; the allocation requeues itself until done");
  daenr::slurm::Allocation& alloc = o.request.command_line;
  // Flags left unset fall back to the cluster profile, then to the defaults;
  // CLI11 fills a std::optional only when the flag is given.
  submit->add_option("spec", o.spec_path, "sweep spec (TOML)")->required()->check(CLI::ExistingFile);
  submit->add_option("--db", o.db_path, "sweep database (SQLite; created if missing)")->required();
  submit->add_option("--nodes", alloc.nodes, "nodes (default 1)")->check(CLI::Range(1, 1 << 20));
  submit->add_option("--ntasks-per-node", alloc.ntasks_per_node, "MPI ranks per node (default 1)")
      ->check(CLI::Range(1, 1 << 20));
  submit->add_option("--gpus-per-node", alloc.gpus_per_node, "GPUs per node (default none)")
      ->check(CLI::Range(0, 1 << 10));
  submit->add_option("--cpus-per-task", alloc.cpus_per_task, "CPUs per rank (default 1)")
      ->check(CLI::Range(1, 1 << 20));
  submit->add_option("--time", alloc.time, "time limit per allocation, Slurm's format (default: the partition's)");
  submit->add_option("--grace", alloc.grace_s,
                     "seconds before the time limit at which the run is told to checkpoint and requeue "
                     "(default 120)");
  submit->add_option("--grace-signal", alloc.grace_signal,
                     "the signal of that warning: USR2 (default), USR1 or ALRM (NCCL 2.12 catches USR1)");
  submit->add_option("--jobs-per-gpu", alloc.jobs_per_gpu,
                     "worker ranks that share one GPU; with --gpus-per-node, tasks per node default to "
                     "1 + GPUs x this (default: the spec's jobs_per_gpu, else the profile's, else 1)")
      ->check(CLI::Range(1, 1 << 10));
  submit->add_option("--partition", alloc.partition, "partition");
  submit->add_option("--account", alloc.account, "account to charge");
  submit->add_option("--launcher", alloc.launcher, "how ranks start: srun (default) or mpirun")
      ->check(CLI::IsMember({"srun", "mpirun"}));
  submit->add_option("--cluster", o.request.cluster, "cluster profile to use (default: the file's default)");
  submit->add_option("--profiles", o.profile_file,
                     "cluster profiles file (default $DAENR_CLUSTERS, else ~/.config/daenr/clusters.toml)");
  submit->add_option("--ranks-per-job", o.request.ranks_per_job,
                     "ranks that train one job together (default: the spec's ranks_per_job, else 1)")
      ->check(CLI::Range(1, 1 << 20));
  submit->add_option("--max-attempts", o.request.max_attempts, "attempts per job before it stays failed")
      ->check(CLI::Range(1, 100));
  submit->add_flag("--dry-run", o.request.dry_run, "print the batch script; submit and write nothing");
  c.slurm_status = slurm->add_subcommand(
      "status", "a sweep database's progress and its Slurm jobs' state (one squeue call)");
  c.slurm_status->add_option("--db", o.db_path, "sweep database (SQLite)")->required()->check(CLI::ExistingFile);
}

Commands define_commands(CLI::App& app, Options& o) {
  app.require_subcommand(1);
  app.set_version_flag("--version", "daenr 0.1.0");
  Commands c{};
  c.train = add_train(app, o);
  c.synth = add_data(app, o);
  add_sweep(app, o, c);
  c.report = add_report(app, o);
  add_slurm(app, o, c);
  return c;
}

// -1 when the command line is good; otherwise the exit code (help, version, or one line on a
// bad flag: CLI11 would add a second).
int parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "daenr: error: " << e.what() << " (see daenr --help)\n";
    return kExitBadInput;
  }
}

int print_plan(const Options& o) {
  const auto p = daenr::orchestrator::plan_sweep(o.spec_path, o.db_path);
  std::string kinds;
  if (p.kinds.size() > 1) {
    // Jobs on the trained models too: say how many of each kind.
    std::vector<std::string> parts;
    for (const auto& [kind, n] : p.kinds) parts.push_back(fmt::format("{} {}", n, kind));
    kinds = fmt::format(" ({})", fmt::join(parts, ", "));
  }
  std::cout << fmt::format("{} jobs{}: {} new, {} done, {} failed, {} pending, {} stale\n", p.total, kinds, p.fresh,
                           p.done, p.failed, p.pending, p.stale);
  for (const auto& id : p.fresh_ids) std::cout << "new " << id << "\n";
  return 0;
}

// `sweep run`: in process, or as one rank of an MPI world that main() has initialised.
int run_sweep(const Options& o, const std::optional<daenr::mpi::World>& world) {
  namespace orch = daenr::orchestrator;
  orch::RunnerOptions options;
  options.max_attempts = o.max_attempts;
  // A terminal gets an updating line as well; a log, a line per finished job.
  options.progress = ::isatty(STDERR_FILENO) ? orch::ProgressMode::kTerminal : orch::ProgressMode::kLog;
  options.stop = &g_stop;
  const bool over_mpi = world && world->size > 1;
  if (!world && o.ranks_per_job > 1) {
    throw daenr::job::ConfigError(fmt::format(
        "--ranks-per-job {}: needs a run under mpirun with 1 + a multiple of {} ranks", o.ranks_per_job,
        o.ranks_per_job));
  }
  orch::RunSummary s;
  if (over_mpi) {
    // mpirun -n N: rank 0 orchestrates, the others train (docs/parallel.md).
    orch::MpiOptions mpi_options;
    mpi_options.ranks_per_job = o.ranks_per_job;
    mpi_options.jobs_per_gpu = o.jobs_per_gpu;
    if (g_rank != 0) options.progress = orch::ProgressMode::kOff;
    s = orch::run_sweep_mpi(o.spec_path, o.db_path, options, mpi_options);
  } else {
    s = orch::run_sweep(o.spec_path, o.db_path, options);
  }
  const int code = s.stopped ? kExitStopped : s.failed > 0 ? kExitJobsFailed : 0;
  if (g_rank != 0) return code;
  std::cout << fmt::format("{} jobs: ran {} ({} done, {} failed, {} preempted){}\n", s.total, s.ran, s.done, s.failed,
                           s.preempted, s.stopped ? "; stopped, rerun to resume" : "");
  if (over_mpi) {
    std::cout << fmt::format("rank 0 (orchestrator): {:.2f} s of CPU in the {:.1f} s job loop\n",
                             s.orchestrator_cpu_s, s.loop_s);
  }
  return code;
}

int write_report(const Options& o) {
  daenr::reports::ReportOptions options;
  options.out_dir = o.report_out;
  options.html = o.report_html;
  options.sweep = o.report_sweep;
  auto wants = [&](const char* f) {
    return std::find(o.report_formats.begin(), o.report_formats.end(), f) != o.report_formats.end();
  };
  options.markdown = wants("md");
  options.latex = wants("tex");
  options.csv = wants("csv");
  const auto out = daenr::reports::write_report(o.db_path, options);
  // The terminal gets the tables trimmed to what holds a job; the files keep the paper's layouts.
  std::cout << out.terminal << std::flush;
  std::cerr << fmt::format("daenr report: {} files in {}; open {}\n", out.files.size(), out.out_dir.string(),
                           out.html.string());
  return 0;
}

int submit_to_slurm(Options& o) {
  o.request.spec = o.spec_path;
  o.request.db = o.db_path;
  o.request.profile_file = o.profile_file;
  const auto submitted = daenr::slurm::submit(o.request);
  if (o.request.dry_run) {
    std::cout << submitted.script;
  } else if (submitted.slurm_job_id.empty()) {
    std::cout << fmt::format("nothing to submit: all {} jobs of the sweep are done in {}\n", submitted.jobs_total,
                             o.db_path);
  } else {
    std::cout << fmt::format("submitted slurm job {} ({}); follow it with: daenr slurm status --db {}\n",
                             submitted.slurm_job_id, submitted.script_path.string(), o.db_path);
  }
  return 0;
}

int dispatch(const Commands& c, Options& o, const std::optional<daenr::mpi::World>& world) {
  if (c.train->parsed()) return run_train(o.config_path, o.overrides, o.checkpoint, o.per_neuron, o.print_config);
  if (c.plan->parsed()) return print_plan(o);
  if (c.run->parsed()) return run_sweep(o, world);
  if (c.status->parsed()) {
    std::cout << daenr::orchestrator::status_report(o.db_path, daenr::orchestrator::unix_now());
    return 0;
  }
  if (c.report->parsed()) return write_report(o);
  if (c.slurm_submit->parsed()) return submit_to_slurm(o);
  if (c.slurm_status->parsed()) {
    std::cout << daenr::slurm::status(o.db_path);
    return 0;
  }
  if (c.synth->parsed()) {
    daenr::models::write_virtual_regions(o.out_dir, o.seed);
    std::cout << fmt::format("wrote virtual regions 1-3 (seed {}) to {}\n", o.seed, o.out_dir);
    return 0;
  }
  return kExitInternal;
}

// The intra-op threads a command's jobs ask for, read before the OpenMP runtime's policy is
// chosen: a job's train.threads, the largest a sweep spec gives ([train] or an override). 1
// for the other commands, and for a configuration or spec with a mistake, which the command
// itself then reports.
int threads_asked_for(const Commands& c, const Options& o) {
  try {
    if (c.train->parsed()) {
      const std::string text = o.config_path.empty() ? std::string() : read_file(o.config_path);
      return daenr::job::apply_overrides(text, o.config_path, o.overrides).train.threads;
    }
    if (c.run->parsed()) return daenr::sweeps::load_sweep_spec(o.spec_path).most_threads();
  } catch (const std::exception&) {
  }
  return 1;
}

// The exit code of an error that reached main, its one line printed. Every rank of a failed
// MPI setup fails the same way, so only rank 0 prints those.
int exit_code_of(const std::exception_ptr& error) {
  auto say = [](const std::exception& e, bool every_rank = false) {
    if (every_rank || g_rank == 0) std::cerr << "daenr: error: " << e.what() << "\n";
  };
  try {
    std::rethrow_exception(error);
  } catch (const daenr::slurm::SlurmError& e) {
    say(e, true);
  } catch (const daenr::reports::ReportError& e) {
    say(e, true);
  } catch (const daenr::job::InputError& e) {
    say(e);  // a spec, config, data file, database, lock or checkpoint: every library's kind
  } catch (const daenr::worker::TrainingDiverged& e) {
    say(e);
    return kExitDiverged;
  } catch (const std::exception& e) {
    if (g_rank == 0) std::cerr << "daenr: internal error: " << daenr::job::first_line(e.what()) << "\n";
    return kExitInternal;
  }
  return kExitBadInput;
}

}  // namespace

// The process's MPI lifecycle is here alone: `sweep run` under mpirun initialises MPI, and
// main finalises it after the command (every communicator freed by then), or aborts the
// world when one rank's error would leave the others waiting (mpi::AbortWorld).
int main(int argc, char** argv) {
  CLI::App app{"daenr: deep autoencoders with neural response (DAE-NR) experiments"};
  Options options;
  const Commands commands = define_commands(app, options);
  if (const int code = parse_command_line(app, argc, argv); code >= 0) return code;
  const bool orchestrated = commands.run->parsed() && daenr::mpi::launched_by_mpi();
  const auto cpus = daenr::worker::this_process(
      threads_asked_for(commands, options), [](const char* name) { return std::getenv(name); },
      orchestrated);
  choose_openmp_wait_policy(argv, cpus);
  if (const auto warning = daenr::worker::oversubscription_warning(cpus);
      !warning.empty() && says_for_the_run(orchestrated)) {
    std::cerr << warning << "\n";
  }

  std::unique_ptr<daenr::orchestrator::StopSignals> stop_signals;
  std::optional<daenr::mpi::World> world;
  int code = kExitInternal;
  try {
    // Before MPI_Init and the first parallel region, so that their threads inherit the mask. A
    // bad --grace-signal is reported after MPI_Init, once, by rank 0, as every rank has it.
    std::exception_ptr bad_grace_signal;
    if (commands.run->parsed()) {
      try {
        stop_signals =
            take_stop_signals(run_grace_signal(options.run_grace_signal, options.spec_path));
      } catch (...) {
        bad_grace_signal = std::current_exception();
      }
    }
    if (commands.run->parsed() && daenr::mpi::launched_by_mpi()) {
      world = daenr::mpi::init(&argc, &argv);
      g_rank = world->rank;
    }
    if (bad_grace_signal) std::rethrow_exception(bad_grace_signal);
    code = dispatch(commands, options, world);
  } catch (const daenr::mpi::AbortWorld& e) {
    std::fprintf(stderr, "daenr: error: %s\n", e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, kExitInternal);
  } catch (...) {
    code = exit_code_of(std::current_exception());
  }
  if (world) daenr::mpi::check_quietly(MPI_Finalize(), "MPI_Finalize");
  return code;
}
