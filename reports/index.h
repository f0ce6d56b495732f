#pragma once
// The jobs of a report looked up by what a table cell, a figure's bar or row
// names: region, model (autoencoder, readout, layer), loss weights and neuron
// set. Shared by the tables and the figures, so that both place a job alike.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "reports/data.h"

namespace daenr::reports {

/// A model's loss weights (alpha, beta).
using LossPair = std::pair<double, double>;

class JobIndex {
 public:
  /// Keeps pointers into `data.jobs`: `data` must outlive the index.
  explicit JobIndex(const ReportData& data);

  /// Every region with a job, in report order (region_less).
  const std::vector<std::string>& regions() const { return regions_; }

  /// The (alpha, beta) pairs a model has anywhere in the database, among the
  /// jobs on all neurons or on a subset (significant/insignificant), sorted. A
  /// model without a job has one empty slot, so that it still gets its row,
  /// whose cells then say "no job".
  std::vector<std::optional<LossPair>> pairs(const std::string& autoencoder,
                                             const std::string& readout, bool all_neurons) const;

  /// The pairs of `pairs(...)` that have a job at `layer` (in any region), so that a pair swept
  /// on one layer only (an α/β trade-off on h2) adds no empty rows to the other layers. A layer
  /// without any job keeps every pair (the paper's layout, "no job" cells).
  std::vector<std::optional<LossPair>> pairs_at(const std::string& autoencoder, const std::string& readout,
                                                bool all_neurons, int layer) const;

  /// The jobs of one cell, in seed order; none for an empty pair.
  std::vector<const JobRecord*> jobs(const std::string& region, const std::string& autoencoder,
                                     const std::string& readout, int layer,
                                     const std::optional<LossPair>& pair,
                                     const std::string& neurons = "all") const;

 private:
  std::map<std::tuple<std::string, std::string, std::string, int, std::string>,
           std::vector<const JobRecord*>>
      cells_;
  std::map<std::tuple<std::string, std::string, bool>, std::set<LossPair>> pairs_;
  std::map<std::tuple<std::string, std::string, bool, int>, std::set<LossPair>> layer_pairs_;
  std::vector<std::string> regions_;
};

/// The model's name in the paper's notation, with the subscript markup of
/// tables.h: "CAE", "CNN-FR_{2}", "VQ-VAE-FM_{i}" (layer < 0 writes "_{i}";
/// layer 0 none).
std::string model_name(const std::string& autoencoder, const std::string& readout, int layer);

/// "α=1, β=0.5".
std::string pair_text(const LossPair& pair);

/// A row's label: the model's name, followed by its pair when the model has
/// several (`pairs`, from JobIndex::pairs).
std::string model_label(const std::string& autoencoder, const std::string& readout, int layer,
                        const std::vector<std::optional<LossPair>>& pairs,
                        const std::optional<LossPair>& pair);

}  // namespace daenr::reports
