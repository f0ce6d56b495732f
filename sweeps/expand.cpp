#include "sweeps/expand.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
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

namespace {

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

bool override_matches(const Override& o, const Labels& l) {
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
}

// One value per axis, by index into the spec's lists: a model of the grid.
struct Point {
  std::size_t region = 0, layer = 0, autoencoder = 0, readout = 0, loss = 0, seed = 0;
};

// The training jobs of a spec, built in the grid's order (regions outermost, seeds innermost,
// the neuron sets of one model last), with what expand() must report about the spec.
class Expansion {
 public:
  Expansion(const SweepSpec& spec, FingerprintCache& fingerprints)
      : spec_(spec), fingerprints_(fingerprints), possible_(spec), used_(spec) {
    if (spec.overrides.size() > 63) {
      throw SpecError(fmt::format("{}: {}: the 64th override; at most 63 are supported", spec.overrides[63].at,
                                  spec.overrides[63].name));
    }
    // Overrides that set the data seed (per region, say) win over [data].
    for (std::size_t i = 0; i < spec.overrides.size(); ++i) {
      if (spec.overrides[i].settings.get("data_seed")) seeds_data_ |= std::uint64_t{1} << i;
    }
    // Neuron subsets come last for each model, after the job they depend on.
    for (Neurons n : {Neurons::kAll, Neurons::kSignificant, Neurons::kInsignificant}) {
      if (std::find(spec.neurons.begin(), spec.neurons.end(), n) != spec.neurons.end()) neuron_order_.push_back(n);
    }
  }

  std::vector<JobSpec> run() {
    for_each_point([&](const Point& at) { add_model(at); });
    check_every_value_used();
    check_every_override_used();
    return std::move(jobs_);
  }

 private:
  // Every point of the grid, in order: an odometer whose last wheel (seeds) turns fastest.
  template <typename F>
  void for_each_point(F&& f) const {
    const std::array<std::size_t, 6> sizes = {spec_.regions.size(),      spec_.layers.size(),
                                              spec_.autoencoders.size(), spec_.readouts.size(),
                                              spec_.losses.size(),       spec_.seeds.size()};
    if (std::find(sizes.begin(), sizes.end(), 0u) != sizes.end()) return;
    std::array<std::size_t, 6> i{};
    for (;;) {
      f(Point{i[0], i[1], i[2], i[3], i[4], i[5]});
      std::size_t wheel = sizes.size();
      while (wheel > 0 && ++i[wheel - 1] == sizes[wheel - 1]) i[--wheel] = 0;
      if (wheel == 0) return;
    }
  }

  void mark(Usage& u, const Point& at, Neurons n) {
    u.regions[at.region] = u.layers[at.layer] = u.autoencoders[at.autoencoder] = u.readouts[at.readout] = true;
    u.losses[at.loss] = u.seeds[at.seed] = u.neurons[static_cast<std::size_t>(n)] = true;
  }

  bool selected(const Labels& l) const {
    auto matches = [&](const Match& m) { return m.matches(l); };
    if (!spec_.include.empty() && std::none_of(spec_.include.begin(), spec_.include.end(), matches)) return false;
    return std::none_of(spec_.exclude.begin(), spec_.exclude.end(), matches);
  }

  // The jobs of one model: all neurons, then its subsets (which depend on the first).
  void add_model(const Point& at) {
    const auto [alpha, beta] = spec_.losses[at.loss];
    std::string all_id;  // the "all" job of this model, if kept
    for (Neurons neurons : neuron_order_) {
      Labels l{spec_.regions[at.region], spec_.layers[at.layer], spec_.autoencoders[at.autoencoder],
               spec_.readouts[at.readout], alpha, beta, spec_.seeds[at.seed], neurons};
      if (!is_model(l)) continue;
      mark(possible_, at, neurons);
      if (!selected(l)) continue;
      mark(used_, at, neurons);
      JobSpec job = make_job(at, l, all_id);
      if (neurons == Neurons::kAll) all_id = job.id;
      // A baseline (no readout) met again on another layer.
      if (ids_.insert(job.id).second) jobs_.push_back(std::move(job));
    }
  }

  JobSpec make_job(const Point& at, Labels l, const std::string& all_id) {
    std::uint64_t mask = 0;
    for (std::size_t i = 0; i < spec_.overrides.size(); ++i) {
      if (override_matches(spec_.overrides[i], l)) mask |= std::uint64_t{1} << i;
    }
    overrides_used_ |= mask;
    Base& base = base_for(mask);
    JobSpec job;
    job.config = base.config;
    auto& c = job.config;
    c.data = spec_.region_paths[at.region];
    if (!(mask & seeds_data_)) c.data_seed = spec_.data_seed;
    c.seed = l.seed;
    c.model.autoencoder = l.autoencoder;
    c.model.readout = l.readout;
    // Without a readout the layer does not exist: one job, layer 1
    // in its configuration (the default), 0 in its label.
    c.model.layer = l.readout == ReadoutKind::kNone ? 1 : l.layer;
    if (l.readout == ReadoutKind::kNone) l.layer = 0;
    c.loss.alpha = l.alpha;
    c.loss.beta = l.beta;
    try {
      job::validate(c, spec_.source);
    } catch (const job::ConfigError& e) {
      throw SpecError(e.what());
    }
    job.labels = l;
    job.data_fingerprint = fingerprints_.get(c.data, c.data_seed);

    // A data folder enters the id by its content, not its path.
    const std::string canonical =
        base.canonical(c).render(c, c.data.rfind("virtual:", 0) == 0 ? c.data : "folder:" + job.data_fingerprint);
    std::string subset = "all";
    if (l.neurons != Neurons::kAll) {
      if (all_id.empty()) {
        throw SpecError(fmt::format(
            "{}: axes.neurons: the {} job of {}-{}_{} {} seed {} needs the same "
            "model fitted to all neurons, which the spec excludes",
            written_at("axes.neurons", to_string(l.neurons)), to_string(l.neurons),
            job::to_string(l.autoencoder), job::to_string(l.readout), spec_.layers[at.layer], l.region, l.seed));
      }
      job.depends_on = all_id;
      subset = fmt::format("{} of {}", to_string(l.neurons), all_id);
    }
    job::Sha256 h;
    h.update(canonical).update("\n").update(job.data_fingerprint).update("\n").update(subset);
    h.update("\n").update(kModelCodeVersion);
    job.id = h.hex().substr(0, 20);
    return job;
  }

  Base& base_for(std::uint64_t mask) {
    auto it = bases_.find(mask);
    if (it != bases_.end()) return it->second;
    toml::table merged = spec_.base;
    for (std::size_t i = 0; i < spec_.overrides.size(); ++i) {
      if (mask & (std::uint64_t{1} << i)) job::merge(merged, spec_.overrides[i].settings);
    }
    try {
      auto config = job::job_config_from_table(merged, spec_.source);
      auto variant = [&](AutoencoderKind ae) {
        auto c = config;
        c.model.autoencoder = ae;
        return CanonicalTemplate(c);
      };
      auto without = variant(AutoencoderKind::kNone);
      auto with = variant(AutoencoderKind::kCae);
      return bases_.emplace(mask, Base{std::move(config), std::move(without), std::move(with)}).first->second;
    } catch (const job::ConfigError& e) {
      throw SpecError(e.what());
    }
  }

  // "file:line:col" of an axis value, or the file for a default.
  std::string written_at(const std::string& key, const std::string& value) const {
    const auto it = spec_.written_at.find(key + "=" + value);
    return it != spec_.written_at.end() ? it->second : spec_.source;
  }

  [[noreturn]] void in_no_job(const std::string& key, const std::string& value, const std::string& shown,
                              const std::string& why) const {
    throw SpecError(fmt::format("{}: {}: {} is in no job: {}", written_at(key, value), key, shown, why));
  }

  // Name an axis value that ended in no job, and why: a built-in rule, or the
  // spec's rules. Losses first: once each loss has a model, the reasons given
  // for the other axes are the whole story.
  void check_every_value_used() const {
    const std::string excluded = "every job with it is excluded by [[include]] / [[exclude]]";
    for (std::size_t i = 0; i < spec_.losses.size(); ++i) {
      const auto [a, b] = spec_.losses[i];
      const std::string v = fmt::format("[{}, {}]", a, b);
      if (!used_.losses[i]) in_no_job("axes.loss", v, v, possible_.losses[i] ? excluded : loss_reason(spec_, a, b));
    }
    for (std::size_t i = 0; i < spec_.autoencoders.size(); ++i) {
      const auto v = job::to_string(spec_.autoencoders[i]);
      const std::string why = spec_.autoencoders[i] == AutoencoderKind::kNone
                                  ? "autoencoder \"none\" (the readout-only baseline) needs a loss "
                                    "with alpha = 0"
                                  : "autoencoder \"" + v + "\" needs a loss with alpha > 0";
      if (!used_.autoencoders[i]) {
        in_no_job("axes.autoencoder", v, "\"" + v + "\"", possible_.autoencoders[i] ? excluded : why);
      }
    }
    for (std::size_t i = 0; i < spec_.readouts.size(); ++i) {
      const auto v = job::to_string(spec_.readouts[i]);
      const std::string why = spec_.readouts[i] == ReadoutKind::kNone
                                  ? "readout \"none\" (the autoencoder-only baseline) needs a loss "
                                    "with beta = 0"
                                  : "readout \"" + v + "\" needs a loss with beta > 0";
      if (!used_.readouts[i]) in_no_job("axes.readout", v, "\"" + v + "\"", possible_.readouts[i] ? excluded : why);
    }
    for (Neurons n : spec_.neurons) {
      const auto i = static_cast<std::size_t>(n);
      if (!used_.neurons[i]) {
        in_no_job("axes.neurons", to_string(n), "\"" + to_string(n) + "\"",
                  possible_.neurons[i] ? excluded : "a neuron subset needs a model with a readout");
      }
    }
    for (std::size_t i = 0; i < spec_.regions.size(); ++i) {
      if (!used_.regions[i]) in_no_job("data.regions", spec_.region_paths[i], spec_.regions[i], excluded);
    }
    for (std::size_t i = 0; i < spec_.layers.size(); ++i) {
      const auto v = std::to_string(spec_.layers[i]);
      if (!used_.layers[i]) in_no_job("axes.layer", v, v, excluded);
    }
    for (std::size_t i = 0; i < spec_.seeds.size(); ++i) {
      const auto v = std::to_string(spec_.seeds[i]);
      if (!used_.seeds[i]) in_no_job("axes.seeds", v, v, excluded);
    }
  }

  // Every override value is on its axis (checked by the parse) and so in some
  // job, but a layer override reaches only models with a readout.
  void check_every_override_used() const {
    for (std::size_t i = 0; i < spec_.overrides.size(); ++i) {
      const auto& o = spec_.overrides[i];
      if (!(overrides_used_ & (std::uint64_t{1} << i))) {
        throw SpecError(fmt::format("{}: {}: matches no job{}", o.at, o.name,
                                    o.axis == Axis::kLayer ? " (a model without a readout has no layer)" : ""));
      }
    }
  }

  const SweepSpec& spec_;
  FingerprintCache& fingerprints_;
  std::map<std::uint64_t, Base> bases_;
  std::uint64_t seeds_data_ = 0, overrides_used_ = 0;
  std::vector<Neurons> neuron_order_;
  // Values in some model, and values in some job (after [[include]] and
  // [[exclude]]): a value in neither is named with the reason.
  Usage possible_, used_;
  std::vector<JobSpec> jobs_;
  std::unordered_set<std::string> ids_;
};

}  // namespace

std::vector<JobSpec> expand(const SweepSpec& spec, FingerprintCache& fingerprints) {
  auto jobs = Expansion(spec, fingerprints).run();
  add_dependent_jobs(spec, jobs);
  return jobs;
}

}  // namespace daenr::sweeps
