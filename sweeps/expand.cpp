#include "sweeps/expand.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_set>

#include "models/data.h"
#include "job/hash.h"
#include "job/toml_reader.h"

namespace daenr::sweeps {

using job::AutoencoderKind;
using job::ReadoutKind;

const std::string& FingerprintCache::get(const std::string& source, std::uint64_t data_seed) {
  const auto key = std::make_pair(source, data_seed);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  std::string fp;
  if (source.rfind("virtual:", 0) == 0) {
    fp = job::sha256_hex(
             fmt::format("{} data_seed {} code {}", source, data_seed, kModelCodeVersion))
             .substr(0, 16);
  } else {
    // Loading checks the files (missing, shapes, NaN/Inf) before anything
    // runs; the DataError names the file.
    fp = models::fingerprint(models::load_antolik_region(source));
  }
  return cache_.emplace(key, std::move(fp)).first->second;
}

std::string canonical_json(const job::JobConfig& config) {
  return job::to_json(config).dump();
}

namespace {

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

// The canonical JSON (job::to_json(config).dump()) of configurations that
// differ from one base only in the keys the axes set, made by splicing those
// values into the base's text: building and freeing nlohmann's tree of ~35
// nodes per job took most of the 2 s that expanding 100,000 jobs took. The
// first text spliced is compared with job::to_json's, so that a change to
// its layout makes this fall back to it rather than change ids.
class CanonicalTemplate {
 public:
  explicit CanonicalTemplate(const job::JobConfig& base) {
    auto j = job::to_json(base);
    const std::vector<std::pair<std::string, std::string>> keys = {
        {"", "data"},         {"", "data_seed"},  {"", "seed"},      {"model", "autoencoder"},
        {"model", "readout"}, {"model", "layer"}, {"loss", "alpha"}, {"loss", "beta"}};
    for (std::size_t k = 0; k < keys.size(); ++k) {
      auto& table = keys[k].first.empty() ? j : j[keys[k].first];
      table[keys[k].second] = marker(k);
    }
    const std::string text = j.dump();
    std::size_t from = 0;
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const std::string m = nlohmann::ordered_json(marker(k)).dump();
      const auto at = text.find(m, from);
      if (at == std::string::npos) {
        usable_ = false;
        return;
      }
      segments_.push_back(text.substr(from, at - from));
      from = at + m.size();
    }
    segments_.push_back(text.substr(from));
    size_ = text.size();
  }

  /// The canonical JSON of `c`, with `data` in place of c.data.
  std::string render(const job::JobConfig& c, const std::string& data) {
    if (!usable_) return full(c, data);
    const std::string* values[] = {&text(data),
                                   &text(c.data_seed),
                                   &text(c.seed),
                                   &text(job::to_string(c.model.autoencoder)),
                                   &text(job::to_string(c.model.readout)),
                                   &text(static_cast<std::uint64_t>(c.model.layer)),
                                   &text(c.loss.alpha),
                                   &text(c.loss.beta)};
    std::string out;
    out.reserve(size_ + 128);
    out.append(segments_[0]);
    for (std::size_t k = 0; k < std::size(values); ++k) {
      out.append(*values[k]).append(segments_[k + 1]);
    }
    if (!checked_) {
      checked_ = true;
      usable_ = out == full(c, data);
      if (!usable_) return full(c, data);
    }
    return out;
  }

 private:
  static std::string marker(std::size_t k) { return fmt::format("@@daenr-canonical-{}@@", k); }
  static std::string full(const job::JobConfig& c, const std::string& data) {
    auto j = job::to_json(c);
    j["data"] = data;
    return j.dump();
  }

  // A value's JSON text, as nlohmann writes it, made once: a sweep has few
  // distinct values and dumping one costs an allocation or two.
  template <typename T>
  const std::string& text(const T& value) {
    auto& memo = std::get<std::map<T, std::string>>(texts_);
    auto it = memo.find(value);
    if (it == memo.end()) it = memo.emplace(value, nlohmann::ordered_json(value).dump()).first;
    return it->second;
  }

  std::vector<std::string> segments_;
  std::size_t size_ = 0;
  bool usable_ = true, checked_ = false;
  std::tuple<std::map<std::string, std::string>, std::map<std::uint64_t, std::string>,
             std::map<double, std::string>>
      texts_;
};

// Which values of each axis (by index) occur in at least one combination.
struct Usage {
  std::vector<bool> regions, layers, autoencoders, readouts, losses, seeds, neurons;
  explicit Usage(const SweepSpec& s)
      : regions(s.regions.size()),
        layers(s.layers.size()),
        autoencoders(s.autoencoders.size()),
        readouts(s.readouts.size()),
        losses(s.losses.size()),
        seeds(s.seeds.size()),
        neurons(3) {}
};

// Why a value of an axis is in no model at all, by the built-in rules. Losses
// are checked first, so that the reasons given for the other axes hold.
std::string loss_reason(const SweepSpec& spec, double alpha, double beta) {
  auto has = [](const auto& values, auto value) {
    return std::find(values.begin(), values.end(), value) != values.end();
  };
  const bool ae_none = has(spec.autoencoders, AutoencoderKind::kNone);
  const bool ae_some = std::any_of(spec.autoencoders.begin(), spec.autoencoders.end(),
                                   [](AutoencoderKind k) { return k != AutoencoderKind::kNone; });
  const bool ro_none = has(spec.readouts, ReadoutKind::kNone);
  const bool ro_some = std::any_of(spec.readouts.begin(), spec.readouts.end(),
                                   [](ReadoutKind k) { return k != ReadoutKind::kNone; });
  std::vector<std::string> parts;
  if (alpha == 0 && !ae_none) parts.push_back("alpha = 0 needs autoencoder \"none\"");
  if (alpha != 0 && !ae_some) parts.push_back("alpha > 0 needs an autoencoder other than \"none\"");
  if (beta == 0 && !ro_none) parts.push_back("beta = 0 needs readout \"none\"");
  if (beta != 0 && !ro_some) parts.push_back("beta > 0 needs a readout other than \"none\"");
  return fmt::format("{}", fmt::join(parts, "; "));
}

}  // namespace

bool selects(const job::ParentFilter& f, job::JobKind kind, const JobSpec& parent) {
  const auto& l = parent.labels;
  if (parent.kind != job::JobKind::kTrain || l.neurons != Neurons::kAll) return false;
  if (kind == job::JobKind::kDecode && l.autoencoder == AutoencoderKind::kNone) return false;
  if (kind == job::JobKind::kMei && l.readout == ReadoutKind::kNone) return false;
  auto in = [](const auto& list, const auto& value) {
    return list.empty() || std::find(list.begin(), list.end(), value) != list.end();
  };
  return in(f.autoencoders, job::to_string(l.autoencoder)) && in(f.readouts, job::to_string(l.readout)) &&
         in(f.layers, l.layer) && in(f.seeds, l.seed);
}

namespace {

JobSpec dependent_job(const JobSpec& parent, job::JobKind kind, const nlohmann::ordered_json& settings) {
  JobSpec job;
  job.config = parent.config;
  job.labels = parent.labels;
  job.depends_on = parent.id;
  job.data_fingerprint = parent.data_fingerprint;
  job.kind = kind;
  // The parent's id stands for everything it was trained with and on.
  job::Sha256 h;
  h.update(job::to_string(kind)).update("\n").update(parent.id).update("\n").update(settings.dump());
  h.update("\n").update(kModelCodeVersion);
  job.id = h.hex().substr(0, 20);
  return job;
}

// The decode and mei jobs of a spec, after every training job (so that a sweep trains first
// and a worker is never idle waiting for a parent while training is left). A filter that
// selects no trained model is a mistake in the spec, said as such.
void add_dependent_jobs(const SweepSpec& spec, std::vector<JobSpec>& jobs) {
  const std::size_t trained = jobs.size();
  if (spec.decode) {
    std::size_t made = 0;
    for (std::size_t i = 0; i < trained; ++i) {
      if (!selects(spec.decode->filter, job::JobKind::kDecode, jobs[i])) continue;
      JobSpec d = dependent_job(jobs[i], job::JobKind::kDecode, job::to_json(spec.decode->settings));
      d.decode = spec.decode->settings;
      jobs.push_back(std::move(d));
      ++made;
    }
    if (made == 0) {
      throw SpecError(fmt::format("{}: decode: selects no trained model (a decode job needs a model with an "
                                  "autoencoder, fitted to all neurons, that its filter keeps)",
                                  spec.source));
    }
  }
  if (spec.mei) {
    std::size_t made = 0;
    for (std::size_t i = 0; i < trained; ++i) {
      if (!selects(spec.mei->filter, job::JobKind::kMei, jobs[i])) continue;
      for (const auto objective : spec.mei->objectives) {
        job::MeiSettings settings = spec.mei->settings;
        settings.objective = objective;
        JobSpec m = dependent_job(jobs[i], job::JobKind::kMei, job::to_json(settings));
        m.mei = settings;
        jobs.push_back(std::move(m));
        ++made;
      }
    }
    if (made == 0) {
      throw SpecError(fmt::format("{}: mei: selects no trained model (an mei job needs a model with a readout, "
                                  "fitted to all neurons, that its filter keeps)",
                                  spec.source));
    }
  }
}

}  // namespace

std::vector<JobSpec> expand(const SweepSpec& spec) {
  FingerprintCache cache;
  return expand(spec, cache);
}

std::vector<JobSpec> expand(const SweepSpec& spec, FingerprintCache& fingerprints) {
  if (spec.overrides.size() > 63) {
    throw SpecError(fmt::format("{}: {}: the 64th override; at most 63 are supported",
                                spec.overrides[63].at, spec.overrides[63].name));
  }
  // The base configuration of each set of matching overrides, parsed once.
  // Two templates per base: the canonical form of a model with a decoder can hold a key that
  // one without lacks (loss.reconstruction, see job::to_json), so they differ in layout.
  struct Base {
    job::JobConfig config;
    CanonicalTemplate without_decoder, with_decoder;
    CanonicalTemplate& canonical(const job::JobConfig& c) {
      return c.model.autoencoder == AutoencoderKind::kNone ? without_decoder : with_decoder;
    }
  };
  std::map<std::uint64_t, Base> bases;
  auto base_for = [&](std::uint64_t mask) -> Base& {
    auto it = bases.find(mask);
    if (it != bases.end()) return it->second;
    toml::table merged = spec.base;
    for (std::size_t i = 0; i < spec.overrides.size(); ++i) {
      if (mask & (std::uint64_t{1} << i)) job::merge(merged, spec.overrides[i].settings);
    }
    try {
      auto config = job::job_config_from_table(merged, spec.source);
      auto variant = [&](AutoencoderKind ae) {
        auto c = config;
        c.model.autoencoder = ae;
        return CanonicalTemplate(c);
      };
      auto without = variant(AutoencoderKind::kNone);
      auto with = variant(AutoencoderKind::kCae);
      return bases.emplace(mask, Base{std::move(config), std::move(without), std::move(with)}).first->second;
    } catch (const job::ConfigError& e) {
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
        return job::to_string(l.autoencoder) == o.value;
      case Axis::kReadout:
        return job::to_string(l.readout) == o.value;
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
  // "file:line:col" of an axis value, or the file for a default.
  auto written_at = [&](const std::string& key, const std::string& value) {
    const auto it = spec.written_at.find(key + "=" + value);
    return it != spec.written_at.end() ? it->second : spec.source;
  };

  // Overrides that set the data seed (per region, say) win over [data].
  std::uint64_t seeds_data = 0;
  for (std::size_t i = 0; i < spec.overrides.size(); ++i) {
    if (spec.overrides[i].settings.get("data_seed")) seeds_data |= std::uint64_t{1} << i;
  }

  std::vector<JobSpec> jobs;
  std::unordered_set<std::string> ids;
  // Values in some model, and values in some job (after [[include]] and
  // [[exclude]]): a value in neither is named below with the reason.
  Usage possible(spec), used(spec);
  auto mark = [](Usage& u, std::size_t r, std::size_t li, std::size_t ai, std::size_t ri,
                 std::size_t wi, std::size_t si, Neurons n) {
    u.regions[r] = u.layers[li] = u.autoencoders[ai] = u.readouts[ri] = true;
    u.losses[wi] = u.seeds[si] = u.neurons[static_cast<std::size_t>(n)] = true;
  };
  std::uint64_t overrides_used = 0;
  // Neuron subsets come last for each model, after the job they depend on.
  std::vector<Neurons> neuron_order;
  for (Neurons n : {Neurons::kAll, Neurons::kSignificant, Neurons::kInsignificant}) {
    if (std::find(spec.neurons.begin(), spec.neurons.end(), n) != spec.neurons.end()) {
      neuron_order.push_back(n);
    }
  }

  for (std::size_t r = 0; r < spec.regions.size(); ++r) {
    for (std::size_t li = 0; li < spec.layers.size(); ++li) {
      const int layer = spec.layers[li];
      for (std::size_t ai = 0; ai < spec.autoencoders.size(); ++ai) {
        const AutoencoderKind ae = spec.autoencoders[ai];
        for (std::size_t ri = 0; ri < spec.readouts.size(); ++ri) {
          const ReadoutKind ro = spec.readouts[ri];
          for (std::size_t wi = 0; wi < spec.losses.size(); ++wi) {
            const auto [alpha, beta] = spec.losses[wi];
            for (std::size_t si = 0; si < spec.seeds.size(); ++si) {
              const std::uint64_t seed = spec.seeds[si];
              std::string all_id;  // the "all" job of this model, if kept
              for (Neurons neurons : neuron_order) {
                Labels l{spec.regions[r], layer, ae, ro, alpha, beta, seed, neurons};
                if (!is_model(l)) continue;
                mark(possible, r, li, ai, ri, wi, si, neurons);
                if (!spec.include.empty() &&
                    std::none_of(spec.include.begin(), spec.include.end(),
                                 [&](const Match& m) { return m.matches(l); })) {
                  continue;
                }
                if (std::any_of(spec.exclude.begin(), spec.exclude.end(),
                                [&](const Match& m) { return m.matches(l); })) {
                  continue;
                }
                mark(used, r, li, ai, ri, wi, si, neurons);
                std::uint64_t mask = 0;
                for (std::size_t i = 0; i < spec.overrides.size(); ++i) {
                  if (override_matches(spec.overrides[i], l)) mask |= std::uint64_t{1} << i;
                }
                overrides_used |= mask;

                Base& base = base_for(mask);
                JobSpec job;
                job.config = base.config;
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
                  job::validate(c, spec.source);
                } catch (const job::ConfigError& e) {
                  throw SpecError(e.what());
                }
                job.labels = l;
                job.data_fingerprint = fingerprints.get(c.data, c.data_seed);

                // A data folder enters the id by its content, not its path.
                const std::string canonical = base.canonical(c).render(
                    c,
                    c.data.rfind("virtual:", 0) == 0 ? c.data : "folder:" + job.data_fingerprint);
                std::string subset = "all";
                if (neurons != Neurons::kAll) {
                  if (all_id.empty()) {
                    throw SpecError(fmt::format(
                        "{}: axes.neurons: the {} job of {}-{}_{} {} seed {} needs the same "
                        "model fitted to all neurons, which the spec excludes",
                        written_at("axes.neurons", to_string(neurons)), to_string(neurons),
                        job::to_string(ae), job::to_string(ro), layer, l.region, seed));
                  }
                  job.depends_on = all_id;
                  subset = fmt::format("{} of {}", to_string(neurons), all_id);
                }
                job::Sha256 h;
                h.update(canonical)
                    .update("\n")
                    .update(job.data_fingerprint)
                    .update("\n")
                    .update(subset);
                h.update("\n").update(kModelCodeVersion);
                job.id = h.hex().substr(0, 20);
                if (neurons == Neurons::kAll) all_id = job.id;
                // A baseline (no readout) met again on another layer.
                if (ids.insert(job.id).second) jobs.push_back(std::move(job));
              }
            }
          }
        }
      }
    }
  }

  // Name an axis value that ended in no job, and why: a built-in rule, or the
  // spec's rules. Losses first: once each loss has a model, the reasons given
  // for the other axes are the whole story.
  const std::string excluded = "every job with it is excluded by [[include]] / [[exclude]]";
  auto in_no_job = [&](const std::string& key, const std::string& value, const std::string& shown,
                       const std::string& why) {
    throw SpecError(
        fmt::format("{}: {}: {} is in no job: {}", written_at(key, value), key, shown, why));
  };
  for (std::size_t i = 0; i < spec.losses.size(); ++i) {
    const auto [a, b] = spec.losses[i];
    const std::string v = fmt::format("[{}, {}]", a, b);
    if (!used.losses[i])
      in_no_job("axes.loss", v, v, possible.losses[i] ? excluded : loss_reason(spec, a, b));
  }
  for (std::size_t i = 0; i < spec.autoencoders.size(); ++i) {
    const auto v = job::to_string(spec.autoencoders[i]);
    const std::string why = spec.autoencoders[i] == AutoencoderKind::kNone
                                ? "autoencoder \"none\" (the readout-only baseline) needs a loss "
                                  "with alpha = 0"
                                : "autoencoder \"" + v + "\" needs a loss with alpha > 0";
    if (!used.autoencoders[i]) {
      in_no_job("axes.autoencoder", v, "\"" + v + "\"", possible.autoencoders[i] ? excluded : why);
    }
  }
  for (std::size_t i = 0; i < spec.readouts.size(); ++i) {
    const auto v = job::to_string(spec.readouts[i]);
    const std::string why = spec.readouts[i] == ReadoutKind::kNone
                                ? "readout \"none\" (the autoencoder-only baseline) needs a loss "
                                  "with beta = 0"
                                : "readout \"" + v + "\" needs a loss with beta > 0";
    if (!used.readouts[i]) {
      in_no_job("axes.readout", v, "\"" + v + "\"", possible.readouts[i] ? excluded : why);
    }
  }
  for (Neurons n : spec.neurons) {
    const auto i = static_cast<std::size_t>(n);
    if (!used.neurons[i]) {
      in_no_job("axes.neurons", to_string(n), "\"" + to_string(n) + "\"",
                possible.neurons[i] ? excluded : "a neuron subset needs a model with a readout");
    }
  }
  for (std::size_t i = 0; i < spec.regions.size(); ++i) {
    if (!used.regions[i])
      in_no_job("data.regions", spec.region_paths[i], spec.regions[i], excluded);
  }
  for (std::size_t i = 0; i < spec.layers.size(); ++i) {
    const auto v = std::to_string(spec.layers[i]);
    if (!used.layers[i]) in_no_job("axes.layer", v, v, excluded);
  }
  for (std::size_t i = 0; i < spec.seeds.size(); ++i) {
    const auto v = std::to_string(spec.seeds[i]);
    if (!used.seeds[i]) in_no_job("axes.seeds", v, v, excluded);
  }
  // Every override value is on its axis (checked by the parse) and so in some
  // job, but a layer override reaches only models with a readout.
  for (std::size_t i = 0; i < spec.overrides.size(); ++i) {
    const auto& o = spec.overrides[i];
    if (!(overrides_used & (std::uint64_t{1} << i))) {
      throw SpecError(
          fmt::format("{}: {}: matches no job{}", o.at, o.name,
                      o.axis == Axis::kLayer ? " (a model without a readout has no layer)" : ""));
    }
  }
  add_dependent_jobs(spec, jobs);
  return jobs;
}

}  // namespace daenr::sweeps
