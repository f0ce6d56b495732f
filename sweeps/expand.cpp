#include "sweeps/expand.h"

#include <fmt/format.h>
#include <set>
#include <unordered_set>

#include "models/data.h"
#include "models/hash.h"
#include "worker/toml_reader.h"

namespace daenr::sweeps {

using models::AutoencoderKind;
using models::ReadoutKind;

const std::string& FingerprintCache::get(const std::string& source, std::uint64_t data_seed) {
  const auto key = std::make_pair(source, data_seed);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  std::string fp;
  if (source.rfind("virtual:", 0) == 0) {
    fp = models::sha256_hex(
             fmt::format("{} data_seed {} code {}", source, data_seed, kModelCodeVersion))
             .substr(0, 16);
  } else {
    // Loading checks the files (missing, shapes, NaN/Inf) before anything
    // runs; the DataError names the file.
    fp = models::fingerprint(models::load_antolik_region(source));
  }
  return cache_.emplace(key, std::move(fp)).first->second;
}

std::string canonical_json(const worker::JobConfig& config) {
  return worker::to_json(config).dump();
}

namespace {

// Which axis values ended in at least one job, to name the ones that did not.
struct Usage {
  std::set<std::string> regions, autoencoders, readouts, losses, neurons;
  std::set<int> layers;
  std::set<std::uint64_t> seeds;
};

std::string loss_key(double a, double b) {
  return fmt::format("[{}, {}]", a, b);
}

// A combination that is a model of the paper (see expand.h).
bool is_model(const Labels& l) {
  const bool ae = l.autoencoder != AutoencoderKind::kNone;
  const bool ro = l.readout != ReadoutKind::kNone;
  if (!ae && !ro) return false;
  if (ae != (l.alpha != 0)) return false;
  if (ro != (l.beta != 0)) return false;
  if (!ro && l.neurons != Neurons::kAll) return false;
  return true;
}

}  // namespace

std::vector<JobSpec> expand(const SweepSpec& spec) {
  FingerprintCache cache;
  return expand(spec, cache);
}

std::vector<JobSpec> expand(const SweepSpec& spec, FingerprintCache& fingerprints) {
  if (spec.overrides.size() > 63) {
    throw SpecError(fmt::format("{}: override: {} overrides; at most 63 are supported", spec.source,
                                spec.overrides.size()));
  }
  // The base configuration of each set of matching overrides, parsed once.
  std::map<std::uint64_t, worker::JobConfig> bases;
  auto base_for = [&](std::uint64_t mask) -> const worker::JobConfig& {
    auto it = bases.find(mask);
    if (it != bases.end()) return it->second;
    toml::table merged = spec.base;
    for (std::size_t i = 0; i < spec.overrides.size(); ++i) {
      if (mask & (std::uint64_t{1} << i)) worker::merge(merged, spec.overrides[i].settings);
    }
    try {
      return bases.emplace(mask, worker::job_config_from_table(merged, spec.source)).first->second;
    } catch (const worker::ConfigError& e) {
      throw SpecError(e.what());
    }
  };
  auto override_matches = [](const Override& o, const Labels& l) {
    switch (o.axis) {
      case Axis::kRegion:
        return l.region == o.value;
      // A model without a readout has no layer (see expand.h).
      case Axis::kLayer:
        return l.readout != ReadoutKind::kNone && std::to_string(l.layer) == o.value;
      case Axis::kAutoencoder:
        return models::to_string(l.autoencoder) == o.value;
      case Axis::kReadout:
        return models::to_string(l.readout) == o.value;
      case Axis::kAlpha:
        return fmt::format("{}", l.alpha) == o.value;
      case Axis::kBeta:
        return fmt::format("{}", l.beta) == o.value;
      case Axis::kSeed:
        return std::to_string(l.seed) == o.value;
      case Axis::kNeurons:
        return to_string(l.neurons) == o.value;
    }
    return false;
  };

  // Overrides that set the data seed (per region, say) win over [data].
  std::uint64_t seeds_data = 0;
  for (std::size_t i = 0; i < spec.overrides.size(); ++i) {
    if (spec.overrides[i].settings.get("data_seed")) seeds_data |= std::uint64_t{1} << i;
  }

  std::vector<JobSpec> jobs;
  std::unordered_set<std::string> ids;
  Usage used;
  // Neuron subsets come last for each model, after the job they depend on.
  std::vector<Neurons> neuron_order;
  for (Neurons n : {Neurons::kAll, Neurons::kSignificant, Neurons::kInsignificant}) {
    if (std::find(spec.neurons.begin(), spec.neurons.end(), n) != spec.neurons.end())
      neuron_order.push_back(n);
  }

  for (std::size_t r = 0; r < spec.regions.size(); ++r) {
    for (int layer : spec.layers) {
      for (AutoencoderKind ae : spec.autoencoders) {
        for (ReadoutKind ro : spec.readouts) {
          for (const auto& [alpha, beta] : spec.losses) {
            for (std::uint64_t seed : spec.seeds) {
              std::string all_id;  // the "all" job of this model, if kept
              for (Neurons neurons : neuron_order) {
                Labels l{spec.regions[r], layer, ae, ro, alpha, beta, seed, neurons};
                if (!is_model(l)) continue;
                if (!spec.include.empty() &&
                    std::none_of(spec.include.begin(), spec.include.end(),
                                 [&](const Match& m) { return m.matches(l); })) {
                  continue;
                }
                if (std::any_of(spec.exclude.begin(), spec.exclude.end(),
                                [&](const Match& m) { return m.matches(l); })) {
                  continue;
                }
                std::uint64_t mask = 0;
                for (std::size_t i = 0; i < spec.overrides.size(); ++i) {
                  if (override_matches(spec.overrides[i], l)) mask |= std::uint64_t{1} << i;
                }
                used.regions.insert(l.region);
                used.layers.insert(layer);
                used.autoencoders.insert(models::to_string(ae));
                used.readouts.insert(models::to_string(ro));
                used.losses.insert(loss_key(alpha, beta));
                used.seeds.insert(seed);
                used.neurons.insert(to_string(neurons));

                JobSpec job;
                job.config = base_for(mask);
                auto& c = job.config;
                c.data = spec.region_paths[r];
                if (!(mask & seeds_data)) c.data_seed = spec.data_seed;
                c.seed = seed;
                c.model.autoencoder = ae;
                c.model.readout = ro;
                // Without a readout the layer does not exist: one job, layer 1
                // in its configuration (the default), 0 in its label.
                c.model.layer = ro == ReadoutKind::kNone ? 1 : layer;
                if (ro == ReadoutKind::kNone) l.layer = 0;
                c.loss.alpha = alpha;
                c.loss.beta = beta;
                try {
                  worker::validate(c, spec.source);
                } catch (const worker::ConfigError& e) {
                  throw SpecError(e.what());
                }
                job.labels = l;
                job.data_fingerprint = fingerprints.get(c.data, c.data_seed);

                // A data folder enters the id by its content, not its path.
                auto canonical = worker::to_json(c);
                if (c.data.rfind("virtual:", 0) != 0)
                  canonical["data"] = "folder:" + job.data_fingerprint;
                std::string subset = "all";
                if (neurons != Neurons::kAll) {
                  if (all_id.empty()) {
                    throw SpecError(
                        fmt::format("{}: axes.neurons: the {} job of {}-{}_{} {} seed {} needs the "
                                    "same model fitted to all "
                                    "neurons, which the spec excludes",
                                    spec.source, to_string(neurons), models::to_string(ae),
                                    models::to_string(ro), layer, l.region, seed));
                  }
                  job.depends_on = all_id;
                  subset = fmt::format("{} of {}", to_string(neurons), all_id);
                }
                models::Sha256 h;
                h.update(canonical.dump())
                    .update("\n")
                    .update(job.data_fingerprint)
                    .update("\n")
                    .update(subset);
                h.update("\n").update(kModelCodeVersion);
                job.id = h.hex().substr(0, 20);
                if (neurons == Neurons::kAll) all_id = job.id;
                if (!ids.insert(job.id).second) continue;  // a baseline met again on another layer
                jobs.push_back(std::move(job));
              }
            }
          }
        }
      }
    }
  }

  // Name an axis value that ended in no job, and why it probably did.
  const std::string why =
      "it is excluded, or incompatible with every other axis value (autoencoder \"none\" needs "
      "alpha = 0 and "
      "alpha = 0 needs autoencoder \"none\"; readout \"none\" needs beta = 0 and beta = 0 needs "
      "readout \"none\")";
  auto unused = [&](const std::string& axis, const std::string& value) {
    throw SpecError(fmt::format("{}: axes.{}: {} is in no job: {}", spec.source, axis, value, why));
  };
  for (const auto& v : spec.regions) {
    if (!used.regions.count(v)) unused("region", v);
  }
  for (int v : spec.layers) {
    if (!used.layers.count(v)) unused("layer", std::to_string(v));
  }
  for (auto v : spec.autoencoders) {
    if (!used.autoencoders.count(models::to_string(v)))
      unused("autoencoder", "\"" + models::to_string(v) + "\"");
  }
  for (auto v : spec.readouts) {
    if (!used.readouts.count(models::to_string(v)))
      unused("readout", "\"" + models::to_string(v) + "\"");
  }
  for (const auto& [a, b] : spec.losses) {
    if (!used.losses.count(loss_key(a, b))) unused("loss", loss_key(a, b));
  }
  for (auto v : spec.seeds) {
    if (!used.seeds.count(v)) unused("seeds", std::to_string(v));
  }
  for (auto v : spec.neurons) {
    if (!used.neurons.count(to_string(v))) unused("neurons", "\"" + to_string(v) + "\"");
  }
  return jobs;
}

}  // namespace daenr::sweeps
