#pragma once
// A job's labels: the axis values it is identified by in sweeps, storage and reports.

#include <cstdint>
#include <string>

#include "job/model_config.h"

namespace daenr::job {

/// Which of a region's neurons a job fits. A subset comes from the
/// per-neuron results of the same model fitted to all neurons (Table 3).
enum class Neurons { kAll, kSignificant, kInsignificant };
std::string to_string(Neurons neurons);

/// The significance rule of docs/metrics.md: a neuron is predicted significantly when its test
/// correlation is positive with p <= kSignificanceLevel. The one definition: the neuron sets of
/// Table 3, storage's counts and the reports all use it.
inline constexpr double kSignificanceLevel = 0.05;
inline bool is_significant(double r, double p) { return p <= kSignificanceLevel && r > 0; }

/// The axes a job is identified by in reports.
enum class Axis { kRegion, kLayer, kAutoencoder, kReadout, kAlpha, kBeta, kSeed, kNeurons };
std::string to_string(Axis axis);

/// One job's axis values. `layer` is 0 for a model without a readout (the
/// layer does not exist for it: the autoencoder baselines).
struct Labels {
  std::string region;  ///< as written in the spec: "virtual:K" or the folder given
  int layer = 1;
  AutoencoderKind autoencoder = AutoencoderKind::kCae;
  ReadoutKind readout = ReadoutKind::kFr;
  double alpha = 1, beta = 1;
  std::uint64_t seed = 0;
  Neurons neurons = Neurons::kAll;
};

}  // namespace daenr::job
