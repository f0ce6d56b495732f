#pragma once
// slurm/: a sweep submitted to Slurm as one allocation that requeues itself
// until the sweep is complete (docs/slurm.md).
//
// `daenr slurm submit` resolves the allocation from the command line over a
// cluster profile over built-in defaults, checks the spec and the database,
// writes an sbatch script from a template into <db>.slurm/, submits it with
// `sbatch --parsable` and records the Slurm job id in the database.
// `daenr slurm status` prints the database's progress and the state of its
// Slurm jobs from a single `squeue` call.
//
// Nothing here talks to slurmctld except through the Slurm commands, so the
// same code serves any Slurm version that has them and tests run against a
// real one-node Slurm (slurm/local-cluster.sh).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "job/error.h"

namespace daenr::slurm {

/// Bad input to a Slurm command: a flag, a profile, a time. One line naming
/// the file, key or flag and what is wrong.
class SlurmError : public job::InputError {
 public:
  using job::InputError::InputError;
};

/// What to ask Slurm for. Every field is optional so that the command line,
/// a cluster profile and the defaults can be layered (overlay()).
struct Allocation {
  std::optional<int> nodes, ntasks_per_node, gpus_per_node, cpus_per_task;
  std::optional<int> grace_s;        ///< the warning signal's lead over the time limit
  /// The warning signal's name without "SIG": USR2 (default), USR1 or ALRM (parse_grace_signal()).
  std::optional<std::string> grace_signal;
  /// Worker ranks that share one GPU (docs/parallel.md); unset: the spec's, else 1.
  std::optional<int> jobs_per_gpu;
  std::optional<std::string> time;   ///< Slurm's format: minutes, H:M:S, D-H:M, ...
  std::optional<std::string> partition, account;
  std::optional<std::string> launcher;  ///< "srun" (default) or "mpirun"
  std::optional<std::string> srun_mpi;  ///< srun's --mpi plugin (default pmix)
  std::optional<std::string> daenr;     ///< the daenr executable the allocation runs
  std::vector<std::string> sbatch;      ///< further #SBATCH options, e.g. "--qos=long"
  std::vector<std::string> setup;       ///< shell lines run first, e.g. "module load openmpi"
};

/// `over`'s fields where set, else `under`'s; the lists are concatenated.
Allocation overlay(const Allocation& over, const Allocation& under);

/// Built-in defaults: 1 node, 1 task, 1 CPU, grace 120 s on USR2, srun --mpi=pmix.
Allocation defaults();

/// The grace (time-limit warning) signal `text` names ("USR2", "SIGUSR2", "usr2"), as its
/// name without "SIG": one of USR2, USR1, ALRM, the signals that both srun and mpirun forward
/// to the ranks and that nothing else in a run needs. Throws SlurmError naming `what` (a flag
/// or file:line:column and key) and the value otherwise.
std::string parse_grace_signal(const std::string& text, const std::string& what);

/// The signal number of a name parse_grace_signal() returned.
int grace_signal_number(const std::string& name);

/// The cluster profile `name` (or the file's `default` one when name is
/// empty) from a TOML file; an empty Allocation when the file does not
/// exist and no name was asked for. Unknown keys and wrong types are errors
/// naming file:line:column and the key.
Allocation load_profile(const std::filesystem::path& file, const std::string& name);

/// Where profiles are read from: $DAENR_CLUSTERS, else
/// $XDG_CONFIG_HOME/daenr/clusters.toml, else ~/.config/daenr/clusters.toml.
std::filesystem::path default_profile_file();

/// Seconds in a Slurm time limit ("30", "5:00", "1:00:00", "2-0", "2-12:30",
/// "2-12:30:00"); nullopt for "UNLIMITED" or "INFINITE". `what` names the
/// flag or key in the error.
std::optional<long> parse_slurm_time(const std::string& text, const std::string& what);

/// Everything the batch script needs, resolved and checked.
struct BatchJob {
  Allocation allocation;  ///< fully resolved (every optional set but gpus, time, partition, account)
  std::filesystem::path spec, db, log_dir;  ///< absolute
  std::string sweep_name;
  int ranks_per_job = 0;  ///< 0: the spec's
  int jobs_per_gpu = 0;   ///< 0: the spec's (not passed to the run)
  int max_attempts = 2;
};

/// The sbatch script (a pure function of its input, so it is tested alone).
std::string render_script(const BatchJob& job);

struct SubmitRequest {
  std::filesystem::path spec, db;
  Allocation command_line;
  std::filesystem::path profile_file;  ///< empty: default_profile_file()
  std::string cluster;                 ///< profile name; empty: the file's default, if any
  int ranks_per_job = 0;
  int max_attempts = 2;
  bool dry_run = false;
};

struct SubmitResult {
  std::string script;  ///< the script's text
  std::filesystem::path script_path;  ///< where it was written (empty for a dry run)
  std::string slurm_job_id;           ///< empty for a dry run or when nothing is left to run
  int64_t jobs_done = 0, jobs_total = 0;  ///< the database's count before submitting
};

/// Checks, writes the script, submits it and records the job; with dry_run
/// only checks and renders. Throws SlurmError (bad input, sbatch failing),
/// sweeps::SpecError, storage::StorageError / LockHeld (another run or
/// allocation drives the database).
SubmitResult submit(const SubmitRequest& request);

/// The database's progress, its runs, and its Slurm jobs with their state
/// from one squeue call.
std::string status(const std::filesystem::path& db);

}  // namespace daenr::slurm
