#pragma once
// The kinds of job a sweep runs, and the settings of the two kinds that work on a trained
// model (the talk's half, shared/reference/v4-autoencoder-talk.txt):
//  - train: fit one model (the paper's jobs; job/config.h);
//  - decode: map neural responses into a trained autoencoder's code by ridge regression and
//    decode the test images from them (docs/decode-mei.md);
//  - mei: synthesise images that drive chosen neurons by gradient ascent through a trained
//    model with a readout ("most exciting inputs", and one-hot population control).
// A decode or mei job names its parent training job; its id hashes the parent's id and these
// settings (sweeps/expand.h), so that changing a setting makes a new job and never reuses an
// old result.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

namespace daenr::job {

enum class JobKind { kTrain, kDecode, kMei };
/// "train", "decode", "mei" <-> JobKind; throws ConfigError on others.
JobKind parse_job_kind(const std::string& name);
std::string to_string(JobKind kind);
/// Every kind, in the order a sweep runs them (a kind's parents come first).
const std::vector<JobKind>& all_job_kinds();

/// Which trained jobs of a sweep a decode or mei job is made for: every value list that is
/// not empty must hold the job's value ("autoencoders = ['cae']": only the CAE models).
struct ParentFilter {
  std::vector<std::string> autoencoders, readouts;  ///< spec names ("cae", "fr", ...)
  std::vector<int> layers;
  std::vector<std::uint64_t> seeds;
};

struct DecodeSettings {
  /// Ridge grid, relative to the mean eigenvalue of the centred training responses' covariance
  /// (so that one grid suits any scale of response); the validation split picks one.
  std::vector<double> ridges = {1e-3, 1e-2, 1e-1, 1, 10, 100, 1000};
  bool single_trials = true;  ///< also decode each single trial (where the data has them)
  int figure_images = 10;     ///< test images kept for the figure
};

enum class MeiObjective { kStretch, kOneHot };
/// "stretch", "onehot" <-> MeiObjective; throws ConfigError on others.
MeiObjective parse_mei_objective(const std::string& name);
std::string to_string(MeiObjective objective);

struct MeiSettings {
  /// The predicted response of the neuron (kStretch, "maximal neural drive") or its softmax
  /// share of the population's (kOneHot, "one-hot population control").
  MeiObjective objective = MeiObjective::kStretch;
  /// Which neurons: the best-predicted `best` by test r of the parent (0: not this rule), or
  /// the listed ones (column indices of the parent's neurons), or every neuron (all = true).
  int best = 8;
  std::vector<std::int64_t> list;
  bool all = false;
  int starts = 4;              ///< seeded random starting images per neuron; the best is kept
  int steps = 200;             ///< gradient-ascent steps
  double step_size = 0.5;      ///< per step, in units of the image's RMS contrast
  double blur_start = 2.0;     ///< Gaussian sigma (pixels) of the gradient's blur, first step
  double blur_end = 0.5;       ///< ... last step (geometric decay in between; 0: no blur)
  int jitter = 2;              ///< random shift of the image by up to this many pixels per step
  std::uint64_t seed = 0;      ///< starting images and jitter
  int neurons_per_chunk = 8;   ///< neurons optimised together; a checkpoint follows each chunk
};

/// The canonical forms that job ids hash (every key, fixed order).
nlohmann::ordered_json to_json(const DecodeSettings& settings);
nlohmann::ordered_json to_json(const MeiSettings& settings);
nlohmann::ordered_json to_json(const ParentFilter& filter);

/// Reads a sweep spec's [decode] or [mei] table (`prefix` "decode." or "mei.", `source` the
/// file): the kind's settings and its parent filter. Unknown keys, wrong types and values out
/// of range throw ConfigError with file:line:column and the dotted key.
void read_decode_table(const toml::table& table, const std::string& source, DecodeSettings& settings,
                       ParentFilter& filter);
/// `objective` may be one name or a list: one mei job per objective and parent.
void read_mei_table(const toml::table& table, const std::string& source, MeiSettings& settings,
                    ParentFilter& filter, std::vector<MeiObjective>& objectives);

}  // namespace daenr::job
