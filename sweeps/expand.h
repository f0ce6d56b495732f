#pragma once
// Expansion of a sweep spec into jobs: the product of its axes, less the
// combinations that are not models (see below) and those the spec excludes,
// each with its canonical configuration and a content-hash id.
//
// Built-in rules (the paper's baselines, without nonsense combinations):
//  - autoencoder "none" (the readout-only CNN baselines) only with alpha = 0,
//    and alpha = 0 only with autoencoder "none"; likewise readout "none" (the
//    autoencoder baselines) exactly when beta = 0;
//  - a model without a readout has no layer: one job, whatever the layer axis
//    holds (its label's layer is 0), and only the "all" neuron set.
// An axis value left in no job after these rules and [[exclude]] is an error
// that says why: it is almost always a mistake in the spec.
//
// Ids: the first 20 hex digits of SHA-256 over the canonical configuration
// (every key, defaults included, in fixed order; a data folder replaced by
// its content fingerprint, so that moving the data does not change ids), the
// data fingerprint, the neuron set with the job it comes from, and
// kModelCodeVersion. Nothing else enters, so adding an axis value never
// changes the ids of the jobs that were there.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "sweeps/spec.h"
#include "job/config.h"

namespace daenr::sweeps {

/// Bump when a change to models/ or worker/ changes what a job computes: every
/// job id changes with it, so old results are never mistaken for new ones.
inline constexpr const char* kModelCodeVersion = "1";

struct JobSpec {
  std::string id;
  /// The training configuration: the job's own, or for a decode / mei job its parent's (the
  /// model it loads and the data it reads).
  job::JobConfig config;
  Labels labels;  ///< a decode / mei job: its parent's
  /// Training: the job whose per-neuron results pick the neurons (a subset), else empty.
  /// Decode / mei: the parent training job, which must be done first.
  std::string depends_on;
  std::string data_fingerprint;
  job::JobKind kind = job::JobKind::kTrain;
  job::DecodeSettings decode;  ///< kDecode
  job::MeiSettings mei;        ///< kMei
};

/// Whether `parent` (a training job) is one that the kind's filter selects: a decode job needs
/// a decoder, an mei job a readout; both take models fitted to all neurons.
bool selects(const job::ParentFilter& filter, job::JobKind kind, const JobSpec& parent);

/// Data fingerprints by (source, data seed). A virtual region is named by its
/// seed and the code version (simulating it to hash it would cost seconds); a
/// folder is loaded, checked (shapes, NaN/Inf) and hashed once.
class FingerprintCache {
 public:
  const std::string& get(const std::string& source, std::uint64_t data_seed);

 private:
  std::map<std::pair<std::string, std::uint64_t>, std::string> cache_;
};

/// The jobs of a spec, in a fixed order (region, layer, autoencoder, readout,
/// loss, seed, neurons; a job after the one it depends on), then its decode jobs and its mei
/// jobs in their parents' order. A decode / mei job's id hashes its kind, its parent's id and
/// its settings (job/kind.h's canonical JSON) with kModelCodeVersion. Throws SpecError.
std::vector<JobSpec> expand(const SweepSpec& spec);
std::vector<JobSpec> expand(const SweepSpec& spec, FingerprintCache& fingerprints);

/// The canonical JSON text of a configuration (what job ids hash).
std::string canonical_json(const job::JobConfig& config);

}  // namespace daenr::sweeps
