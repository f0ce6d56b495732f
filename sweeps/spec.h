#pragma once
// A sweep spec: one TOML file naming the data, the axes of an experiment and
// the training settings shared by its jobs (docs/sweep-spec.md lists every
// key). Parsing checks everything a spec can get wrong on its own (unknown
// keys, types, empty or duplicate axis values, weights, names, data paths)
// and throws SpecError with file:line:column, the dotted key, and a
// suggestion for a misspelt key or name.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <toml++/toml.h>
#include <utility>
#include <vector>

#include "job/error.h"
#include "job/kind.h"
#include "job/labels.h"
#include "job/model_config.h"

namespace daenr::sweeps {

/// A spec that cannot be used; what() is one line.
class SpecError : public job::InputError {
 public:
  using job::InputError::InputError;
};

// A job's labels are the job contract's (job/labels.h); the spec's axes range over them.
using job::Axis;
using job::Labels;
using job::Neurons;
using job::to_string;

/// "axis = value or [values]" conditions, all of which must hold.
struct Match {
  std::vector<std::pair<Axis, std::vector<std::string>>> conditions;
  bool matches(const Labels& labels) const;
};

/// Settings applied to the jobs whose `axis` has `value` (e.g. a KL weight
/// for the VAE only): a partial job table, merged over the base settings.
struct Override {
  Axis axis;
  std::string value;
  std::string name;  ///< "override.vae", for messages
  toml::table settings;
  std::string at;  ///< "file:line:col" of its table, for errors found by expansion
};

struct SweepSpec {
  std::string name;
  std::string source;                     ///< the file, for messages
  std::string text;                       ///< the file's text, stored with the sweep
  std::vector<std::string> regions;       ///< as written
  std::vector<std::string> region_paths;  ///< resolved: "virtual:K" or an absolute folder
  std::uint64_t data_seed = 1;
  /// Under mpirun: ranks that train one job together, data-parallel
  /// (`--ranks-per-job` overrides it). Not part of any job id: it changes how
  /// a job is computed, not what.
  int ranks_per_job = 1;
  /// Under mpirun on GPUs: worker ranks that share one GPU, each bounded to its share of the
  /// GPU's memory (`--jobs-per-gpu` overrides it; unset: 1). Not part of any job id, for the
  /// same reason as ranks_per_job.
  std::optional<int> jobs_per_gpu;
  /// The signal that warns a run of a Slurm time limit or preemption, as a name without "SIG"
  /// (grace_signal_problem()): `slurm submit` asks Slurm for it and the run stops gracefully on
  /// it. Unset: the flag's or the cluster profile's, else USR2. A run setting, in no job id.
  std::optional<std::string> grace_signal;
  std::vector<int> layers;
  std::vector<job::AutoencoderKind> autoencoders;
  std::vector<job::ReadoutKind> readouts;
  std::vector<std::pair<double, double>> losses;  ///< (alpha, beta)
  std::vector<std::uint64_t> seeds;
  std::vector<Neurons> neurons;
  std::vector<Match> include, exclude;
  std::vector<Override> overrides;
  /// [decode] and [mei]: jobs on the trained models the axes make (job/kind.h); unset: none.
  struct DecodeJobs {
    job::DecodeSettings settings;
    job::ParentFilter filter;
  };
  struct MeiJobs {
    job::MeiSettings settings;
    job::ParentFilter filter;
    std::vector<job::MeiObjective> objectives;
  };
  std::optional<DecodeJobs> decode;
  std::optional<MeiJobs> mei;
  /// The shared job settings: top-level val_fraction and the [model], [loss]
  /// and [train] tables, as in a job file (docs/job-config.md), without the
  /// keys the axes set.
  toml::table base;
  /// Where each axis value is written ("file:line:col"), keyed by the axis's
  /// key and the value's canonical text ("axes.layer=2", "axes.loss=[1, 0]",
  /// "data.regions=" and the resolved region): expansion finds some mistakes
  /// (a value in no job) and must still point at a line.
  std::map<std::string, std::string> written_at;

  /// The most intra-op threads any of its jobs asks for: train.threads of [train] or of an
  /// override (a process's threads are known before it runs any job; worker/cpu_share.h).
  int most_threads() const;
};

/// Reads and checks a spec file; relative data paths are relative to it.
SweepSpec load_sweep_spec(const std::filesystem::path& path);

/// A signal's name in any spelling ("sigusr1", "USR1") as daenr writes it: upper case, no "SIG".
std::string signal_name(const std::string& text);
/// Why `name` (signal_name()'s form) cannot be a grace signal, or "" if it can: USR2, USR1 or
/// ALRM (why these: sweeps/spec.cpp). Here, below the spec and Slurm, so both check it alike.
std::string grace_signal_problem(const std::string& name);
/// The signal number of a grace signal's name; -1 for any other name.
int grace_signal_number(const std::string& name);
/// The same from text; `source` names it in messages and `base_dir` resolves
/// relative data paths.
SweepSpec parse_sweep_spec(const std::string& text, const std::string& source,
                           const std::filesystem::path& base_dir);

}  // namespace daenr::sweeps
