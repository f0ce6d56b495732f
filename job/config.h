#pragma once
// One job's configuration: one typed struct, parsed from TOML (`daenr train
// --config job.toml`, and later produced by sweep expansion). docs/job-config.md
// lists every key with its default.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "job/error.h"
#include "job/model_config.h"

namespace daenr::job {

struct TrainConfig {
  int batch_size = 64;
  double learning_rate = 1e-3;
  int validate_every = 50;     ///< steps between validation-loss checks
  int patience = 1000;         ///< steps without improvement that end a phase
  int phases = 2;              ///< train, restore best, decay lr, train again ...
  double lr_decay = 0.5;       ///< learning-rate factor between phases
  int max_steps = 20000;       ///< cap on total steps over all phases
  int threads = 1;             ///< intra-op threads (LibTorch and OpenBLAS)
  std::string device = "cpu";  ///< "cpu", "cuda" or "cuda:K"
  int checkpoint_every = 1;    ///< write a checkpoint every this many validations (0: never)
};

struct JobConfig {
  std::string data = "virtual:1";  ///< "virtual:K" or a region folder in the Antolík layout
  std::uint64_t data_seed = 1;     ///< seed of the simulated region (virtual data only)
  std::uint64_t seed = 0;          ///< model init, batch order, dropout, VAE noise, data split
  double val_fraction = 0.2;       ///< share of the training images held out for early stopping
  ModelConfig model;
  LossWeights loss;
  TrainConfig train;
};

/// Parses a job TOML file. Unknown keys are errors (with a suggestion for a
/// near miss), as are wrong types and out-of-range values.
JobConfig load_job_config(const std::filesystem::path& path);

/// Parses TOML text; `source` names it in error messages.
JobConfig parse_job_config(const std::string& text, const std::string& source);

/// Applies "key=value" overrides (dotted keys: "model.layer=3",
/// "train.max_steps=200"). The value is read as TOML; a bare word that is not
/// valid TOML is taken as a string ("model.autoencoder=vae").
JobConfig apply_overrides(const std::string& text, const std::string& source,
                          const std::vector<std::string>& overrides);

/// Cross-field checks (alpha = 0 requires autoencoder "none", and so on).
/// Throws ConfigError naming `source` and the key.
void validate(const JobConfig& config, const std::string& source);

/// The configuration as a JSON object with every key (defaults included), in a
/// fixed key order: the canonical form that identifies a job.
nlohmann::ordered_json to_json(const JobConfig& config);

/// The configuration as a person reads it (`daenr train --print-config`, the `config` of a
/// result): the canonical form with `loss.reconstruction` always written, also where the
/// canonical form leaves it out to keep old job ids (see to_json).
nlohmann::ordered_json resolved_json(const JobConfig& config);

}  // namespace daenr::job
