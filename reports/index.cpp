#include "reports/index.h"

#include <algorithm>
#include <fmt/format.h>

#include "job/error.h"
#include "job/model_config.h"

namespace daenr::reports {

JobIndex::JobIndex(const ReportData& data) {
  for (const auto& j : data.jobs) {
    const auto& l = j.labels;
    cells_[{l.region, l.autoencoder, l.readout, l.layer, l.neurons}].push_back(&j);
    pairs_[{l.autoencoder, l.readout, l.neurons == "all"}].insert({l.alpha, l.beta});
    layer_pairs_[{l.autoencoder, l.readout, l.neurons == "all", l.layer}].insert({l.alpha, l.beta});
    if (std::find(regions_.begin(), regions_.end(), l.region) == regions_.end()) {
      regions_.push_back(l.region);
    }
  }
  std::sort(regions_.begin(), regions_.end(), region_less);
}

std::vector<std::optional<LossPair>> JobIndex::pairs(const std::string& autoencoder,
                                                     const std::string& readout,
                                                     bool all_neurons) const {
  std::vector<std::optional<LossPair>> out;
  const auto it = pairs_.find({autoencoder, readout, all_neurons});
  if (it != pairs_.end()) out.assign(it->second.begin(), it->second.end());
  if (out.empty()) out.emplace_back(std::nullopt);
  return out;
}

std::vector<std::optional<LossPair>> JobIndex::pairs_at(const std::string& autoencoder,
                                                        const std::string& readout, bool all_neurons,
                                                        int layer) const {
  const auto it = layer_pairs_.find({autoencoder, readout, all_neurons, layer});
  if (it == layer_pairs_.end() || it->second.empty()) return pairs(autoencoder, readout, all_neurons);
  return {it->second.begin(), it->second.end()};
}

std::vector<const JobRecord*> JobIndex::jobs(const std::string& region,
                                             const std::string& autoencoder,
                                             const std::string& readout, int layer,
                                             const std::optional<LossPair>& pair,
                                             const std::string& neurons) const {
  std::vector<const JobRecord*> out;
  const auto it = cells_.find({region, autoencoder, readout, layer, neurons});
  if (it == cells_.end() || !pair) return out;
  for (const auto* j : it->second) {
    if (j->labels.alpha == pair->first && j->labels.beta == pair->second) out.push_back(j);
  }
  return out;
}

std::string model_name(const std::string& autoencoder, const std::string& readout, int layer) {
  // The names are job::display_name's; a name this build does not know (a newer database's)
  // is shown as stored.
  std::string a = autoencoder, r = readout;
  try {
    a = job::display_name(job::parse_autoencoder(autoencoder));
  } catch (const job::ConfigError&) {
  }
  if (readout == "none") return a;
  try {
    r = job::display_name(job::parse_readout(readout));
  } catch (const job::ConfigError&) {
  }
  if (layer == 0) return a + "-" + r;
  return fmt::format("{}-{}_{{{}}}", a, r, layer < 0 ? std::string("i") : std::to_string(layer));
}

std::string pair_text(const LossPair& pair) {
  return fmt::format("α={}, β={}", pair.first, pair.second);
}

std::string model_label(const std::string& autoencoder, const std::string& readout, int layer,
                        const std::vector<std::optional<LossPair>>& pairs,
                        const std::optional<LossPair>& pair) {
  std::string name = model_name(autoencoder, readout, layer);
  if (pairs.size() > 1 && pair) name += " (" + pair_text(*pair) + ")";
  return name;
}

}  // namespace daenr::reports
