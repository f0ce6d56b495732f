// daenr: the command line. Parsing and exit codes only; the work is in the libraries.
//
// Exit codes: 0 success; 1 an unexpected internal error; 2 bad input (a flag,
// a configuration, a data file, a checkpoint, a database); 3 the training
// diverged; 4 a sweep stopped gracefully on SIGTERM/SIGINT/SIGUSR1/SIGUSR2, or
// the signal `--grace-signal` names (rerun to resume); 5 a sweep finished with
// failed jobs.

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "job/text.h"
#include "models/error.h"
#include "orchestrator/mpi.h"
#include "orchestrator/mpi_runner.h"
#include "orchestrator/sweep_runner.h"
#include "reports/report.h"
#include "slurm/submit.h"
#include "storage/store.h"
#include "sweeps/spec.h"
#include "models/synth.h"
#include "job/config.h"
#include "worker/trainer.h"

namespace {

constexpr int kExitInternal = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitDiverged = 3;
constexpr int kExitStopped = 4;
constexpr int kExitJobsFailed = 5;

// Set by SIGTERM, SIGINT, SIGUSR1 or SIGUSR2 (Slurm's warning signal, USR2
// unless the profile chose another), or the --grace-signal one: the sweep stops
// at the next validation point, checkpointing the job in flight. A signal
// handler can only reach a global.
std::atomic<bool> g_stop{false};
// This process's MPI rank (0 without MPI): only rank 0 prints, since every
// rank of a failed MPI setup fails the same way.
int g_rank = 0;
extern "C" void on_stop_signal(int) { g_stop.store(true); }

// USR1 and USR2 are always handled, whatever the grace signal: USR1 was the only
// warning signal before it could be chosen (scripts and people send it), and USR2
// is the default one. A third (ALRM) only when asked for, since a library could use it.
void install_stop_handlers(int grace_signal) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, grace_signal}) ::sigaction(sig, &sa, nullptr);
}

// libgomp reads OMP_WAIT_POLICY once, when it is loaded, before main() runs.
// Its default spin-waiting made two intra-op threads about ten times slower
// than one on a 2-core machine, so unless the user chose a policy we set
// "passive" and re-execute ourselves once so that the runtime sees it.
void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::execv("/proc/self/exe", argv);
  // execv only returns on failure; carry on with the default policy.
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

}  // namespace

int main(int argc, char** argv) {
  ensure_passive_openmp(argv);
  CLI::App app{"daenr: deep autoencoders with neural response (DAE-NR) experiments"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "daenr 0.1.0");

  auto* train = app.add_subcommand("train", "train and evaluate one job; prints one JSON line");
  std::string config_path, checkpoint;
  std::vector<std::string> overrides;
  bool per_neuron = false, print_config = false;
  train->add_option("-c,--config", config_path, "job configuration (TOML); defaults if omitted")
      ->check(CLI::ExistingFile);
  train->add_option("-s,--set", overrides,
                    "override a key, e.g. --set model.layer=3 --set train.max_steps=500");
  train->add_option("--checkpoint", checkpoint,
                    "checkpoint file: written during training, resumed from if it exists");
  train->add_flag("--per-neuron", per_neuron, "add per-neuron r and p and the training curve");
  train->add_flag("--print-config", print_config, "print the resolved configuration and exit");

  auto* data = app.add_subcommand("data", "data utilities");
  data->require_subcommand(1);
  auto* synth = data->add_subcommand("synth", "write the three virtual regions in the Antolík layout");
  std::string out_dir;
  std::uint64_t seed = 1;
  synth->add_option("--out", out_dir, "output folder (region1..3 are created in it)")->required();
  synth->add_option("--seed", seed, "simulation seed (the data_seed of job configurations)");

  auto* sweep = app.add_subcommand("sweep", "plan or run a sweep (a TOML sweep spec) against a database");
  sweep->require_subcommand(1);
  std::string spec_path, db_path;
  int max_attempts = 2;
  int ranks_per_job = 0;  // 0: the spec's ranks_per_job
  int jobs_per_gpu = 0;   // 0: the spec's jobs_per_gpu
  std::string run_grace_signal = "USR2";
  auto* plan = sweep->add_subcommand("plan", "what a run would do: total, new, done, failed, stale");
  plan->add_option("spec", spec_path, "sweep spec (TOML)")->required()->check(CLI::ExistingFile);
  plan->add_option("--db", db_path, "sweep database (SQLite)")->required();
  auto* run = sweep->add_subcommand("run", "run every job that is not done; resumable");
  run->add_option("spec", spec_path, "sweep spec (TOML)")->required()->check(CLI::ExistingFile);
  run->add_option("--db", db_path, "sweep database (SQLite; created if missing)")->required();
  run->add_option("--max-attempts", max_attempts, "attempts per job before it stays failed")
      ->check(CLI::Range(1, 100));
  run->add_option("--ranks-per-job", ranks_per_job,
                  "under mpirun: ranks that train one job together, data-parallel (default: the spec's "
                  "ranks_per_job, else 1)")
      ->check(CLI::Range(1, 1 << 20));
  run->add_option("--jobs-per-gpu", jobs_per_gpu,
                  "under mpirun on GPUs: worker ranks that share one GPU, each bounded to its share of "
                  "the GPU's memory (default: the spec's jobs_per_gpu, else 1)")
      ->check(CLI::Range(1, 1 << 10));
  run->add_option("--grace-signal", run_grace_signal,
                  "a signal that stops the run gracefully besides TERM, INT, USR1 and USR2: USR1, USR2 "
                  "or ALRM (the Slurm batch script passes its grace signal; default USR2)");
  auto* status = app.add_subcommand("status", "progress of a sweep database");
  status->add_option("--db", db_path, "sweep database (SQLite)")->required()->check(CLI::ExistingFile);

  auto* report = app.add_subcommand(
      "report", "regenerate the paper's tables and figures from a sweep database; prints the tables");
  std::string report_out, report_html, report_sweep;
  std::vector<std::string> report_formats = {"md", "tex", "csv"};
  report->add_option("--db", db_path, "sweep database (SQLite)")->required();
  report->add_option("--out", report_out, "output folder (default: <db>.report beside the database)");
  report->add_option("--format", report_formats, "table formats to write: md, tex, csv (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember({"md", "tex", "csv"}));
  report->add_option("--html", report_html, "the self-contained HTML report (default: <out>/report.html)");
  report->add_option("--sweep", report_sweep, "only this sweep's jobs (its name or id; default: every job)");

  auto* slurm = app.add_subcommand("slurm", "submit a sweep to Slurm and follow it (docs/slurm.md)");
  slurm->require_subcommand(1);
  auto* slurm_submit = slurm->add_subcommand(
      "submit", "write an sbatch script for a sweep and submit it; the allocation requeues itself until done");
  daenr::slurm::SubmitRequest request;
  daenr::slurm::Allocation& alloc = request.command_line;
  std::string profile_file;
  // Flags left unset fall back to the cluster profile, then to the defaults;
  // CLI11 fills a std::optional only when the flag is given.
  slurm_submit->add_option("spec", spec_path, "sweep spec (TOML)")->required()->check(CLI::ExistingFile);
  slurm_submit->add_option("--db", db_path, "sweep database (SQLite; created if missing)")->required();
  slurm_submit->add_option("--nodes", alloc.nodes, "nodes (default 1)")->check(CLI::Range(1, 1 << 20));
  slurm_submit->add_option("--ntasks-per-node", alloc.ntasks_per_node, "MPI ranks per node (default 1)")
      ->check(CLI::Range(1, 1 << 20));
  slurm_submit->add_option("--gpus-per-node", alloc.gpus_per_node, "GPUs per node (default none)")
      ->check(CLI::Range(0, 1 << 10));
  slurm_submit->add_option("--cpus-per-task", alloc.cpus_per_task, "CPUs per rank (default 1)")
      ->check(CLI::Range(1, 1 << 20));
  slurm_submit->add_option("--time", alloc.time, "time limit per allocation, Slurm's format (default: the partition's)");
  slurm_submit->add_option("--grace", alloc.grace_s,
                           "seconds before the time limit at which the run is told to checkpoint and requeue "
                           "(default 120)");
  slurm_submit->add_option("--grace-signal", alloc.grace_signal,
                           "the signal of that warning: USR2 (default), USR1 or ALRM (NCCL 2.12 catches USR1)");
  slurm_submit->add_option("--jobs-per-gpu", alloc.jobs_per_gpu,
                           "worker ranks that share one GPU; with --gpus-per-node, tasks per node default to "
                           "1 + GPUs x this (default: the spec's jobs_per_gpu, else the profile's, else 1)")
      ->check(CLI::Range(1, 1 << 10));
  slurm_submit->add_option("--partition", alloc.partition, "partition");
  slurm_submit->add_option("--account", alloc.account, "account to charge");
  slurm_submit->add_option("--launcher", alloc.launcher, "how ranks start: srun (default) or mpirun")
      ->check(CLI::IsMember({"srun", "mpirun"}));
  slurm_submit->add_option("--cluster", request.cluster, "cluster profile to use (default: the file's default)");
  slurm_submit->add_option("--profiles", profile_file,
                           "cluster profiles file (default $DAENR_CLUSTERS, else ~/.config/daenr/clusters.toml)");
  slurm_submit->add_option("--ranks-per-job", request.ranks_per_job,
                           "ranks that train one job together (default: the spec's ranks_per_job, else 1)")
      ->check(CLI::Range(1, 1 << 20));
  slurm_submit->add_option("--max-attempts", request.max_attempts, "attempts per job before it stays failed")
      ->check(CLI::Range(1, 100));
  slurm_submit->add_flag("--dry-run", request.dry_run, "print the batch script; submit and write nothing");
  auto* slurm_status = slurm->add_subcommand(
      "status", "a sweep database's progress and its Slurm jobs' state (one squeue call)");
  slurm_status->add_option("--db", db_path, "sweep database (SQLite)")->required()->check(CLI::ExistingFile);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, as for every other bad input (CLI11 would add a second).
    std::cerr << "daenr: error: " << e.what() << " (see daenr --help)\n";
    return kExitBadInput;
  }

  // Finalised (if initialised) when main returns, after any error is printed.
  std::optional<daenr::orchestrator::mpi::Session> mpi_session;
  try {
    if (train->parsed()) return run_train(config_path, overrides, checkpoint, per_neuron, print_config);
    if (plan->parsed()) {
      const auto p = daenr::orchestrator::plan_sweep(spec_path, db_path);
      std::string kinds;
      if (p.kinds.size() > 1) {
        // Jobs on the trained models too: say how many of each kind.
        std::vector<std::string> parts;
        for (const auto& [kind, n] : p.kinds) parts.push_back(fmt::format("{} {}", n, kind));
        kinds = fmt::format(" ({})", fmt::join(parts, ", "));
      }
      std::cout << fmt::format("{} jobs{}: {} new, {} done, {} failed, {} pending, {} stale\n", p.total, kinds,
                               p.fresh, p.done, p.failed, p.pending, p.stale);
      for (const auto& id : p.fresh_ids) std::cout << "new " << id << "\n";
      return 0;
    }
    if (run->parsed()) {
      install_stop_handlers(daenr::slurm::grace_signal_number(
          daenr::slurm::parse_grace_signal(run_grace_signal, "--grace-signal")));
      daenr::orchestrator::RunnerOptions options;
      options.max_attempts = max_attempts;
      // A terminal gets an updating line as well; a log, a line per finished job.
      options.progress = ::isatty(STDERR_FILENO) ? daenr::orchestrator::ProgressMode::kTerminal
                                                 : daenr::orchestrator::ProgressMode::kLog;
      options.stop = &g_stop;
      daenr::orchestrator::RunSummary s;
      if (daenr::orchestrator::mpi::launched_by_mpi()) {
        // mpirun -n N: rank 0 orchestrates, the others train (docs/parallel.md).
        mpi_session.emplace(&argc, &argv);
        g_rank = mpi_session->rank();
        daenr::orchestrator::MpiOptions mpi_options;
        mpi_options.ranks_per_job = ranks_per_job;
        mpi_options.jobs_per_gpu = jobs_per_gpu;
        if (g_rank != 0) options.progress = daenr::orchestrator::ProgressMode::kOff;
        if (mpi_session->size() == 1) {
          s = daenr::orchestrator::run_sweep(spec_path, db_path, options);
        } else {
          s = daenr::orchestrator::run_sweep_mpi(spec_path, db_path, options, mpi_options);
        }
      } else {
        if (ranks_per_job > 1) {
          throw daenr::job::ConfigError(fmt::format(
              "--ranks-per-job {}: needs a run under mpirun with 1 + a multiple of {} ranks", ranks_per_job,
              ranks_per_job));
        }
        s = daenr::orchestrator::run_sweep(spec_path, db_path, options);
      }
      if (g_rank != 0) return s.stopped ? kExitStopped : s.failed > 0 ? kExitJobsFailed : 0;
      std::cout << fmt::format("{} jobs: ran {} ({} done, {} failed, {} preempted){}\n", s.total, s.ran, s.done,
                               s.failed, s.preempted, s.stopped ? "; stopped, rerun to resume" : "");
      if (mpi_session && mpi_session->size() > 1) {
        std::cout << fmt::format("rank 0 (orchestrator): {:.2f} s of CPU in the {:.1f} s job loop\n",
                                 s.orchestrator_cpu_s, s.loop_s);
      }
      if (s.stopped) return kExitStopped;
      return s.failed > 0 ? kExitJobsFailed : 0;
    }
    if (status->parsed()) {
      std::cout << daenr::orchestrator::status_report(db_path, daenr::orchestrator::unix_now());
      return 0;
    }
    if (report->parsed()) {
      daenr::reports::ReportOptions options;
      options.out_dir = report_out;
      options.html = report_html;
      options.sweep = report_sweep;
      auto wants = [&](const char* f) {
        return std::find(report_formats.begin(), report_formats.end(), f) != report_formats.end();
      };
      options.markdown = wants("md");
      options.latex = wants("tex");
      options.csv = wants("csv");
      const auto out = daenr::reports::write_report(db_path, options);
      // The terminal gets the tables trimmed to what holds a job; the files keep the paper's
      // layouts.
      std::cout << out.terminal << std::flush;
      std::cerr << fmt::format("daenr report: {} files in {}; open {}\n", out.files.size(), out.out_dir.string(),
                               out.html.string());
      return 0;
    }
    if (slurm_submit->parsed()) {
      request.spec = spec_path;
      request.db = db_path;
      request.profile_file = profile_file;
      const auto submitted = daenr::slurm::submit(request);
      if (request.dry_run) {
        std::cout << submitted.script;
        return 0;
      }
      if (submitted.slurm_job_id.empty()) {
        std::cout << fmt::format("nothing to submit: all {} jobs of the sweep are done in {}\n",
                                 submitted.jobs_total, db_path);
        return 0;
      }
      std::cout << fmt::format("submitted slurm job {} ({}); follow it with: daenr slurm status --db {}\n",
                               submitted.slurm_job_id, submitted.script_path.string(), db_path);
      return 0;
    }
    if (slurm_status->parsed()) {
      std::cout << daenr::slurm::status(db_path);
      return 0;
    }
    if (synth->parsed()) {
      daenr::models::write_virtual_regions(out_dir, seed);
      std::cout << fmt::format("wrote virtual regions 1-3 (seed {}) to {}\n", seed, out_dir);
      return 0;
    }
  } catch (const daenr::job::ConfigError& e) {
    if (g_rank == 0) std::cerr << "daenr: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const daenr::models::DataError& e) {
    if (g_rank == 0) std::cerr << "daenr: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const daenr::worker::CheckpointError& e) {
    if (g_rank == 0) std::cerr << "daenr: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const daenr::sweeps::SpecError& e) {
    if (g_rank == 0) std::cerr << "daenr: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const daenr::storage::LockHeld& e) {
    if (g_rank == 0) std::cerr << "daenr: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const daenr::storage::StorageError& e) {
    if (g_rank == 0) std::cerr << "daenr: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const daenr::slurm::SlurmError& e) {
    std::cerr << "daenr: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const daenr::reports::ReportError& e) {
    std::cerr << "daenr: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const daenr::worker::TrainingDiverged& e) {
    if (g_rank == 0) std::cerr << "daenr: error: " << e.what() << "\n";
    return kExitDiverged;
  } catch (const std::exception& e) {
    if (g_rank == 0) std::cerr << "daenr: internal error: " << daenr::job::first_line(e.what()) << "\n";
    return kExitInternal;
  }
  return kExitInternal;
}
