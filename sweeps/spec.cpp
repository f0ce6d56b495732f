#include "sweeps/spec.h"

#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "models/error.h"
#include "worker/toml_reader.h"

namespace daenr::sweeps {

namespace fs = std::filesystem;
using worker::TableReader;

std::string to_string(Neurons n) {
  switch (n) {
    case Neurons::kAll:
      return "all";
    case Neurons::kSignificant:
      return "significant";
    case Neurons::kInsignificant:
      return "insignificant";
  }
  return "?";
}

std::string to_string(Axis a) {
  switch (a) {
    case Axis::kRegion:
      return "region";
    case Axis::kLayer:
      return "layer";
    case Axis::kAutoencoder:
      return "autoencoder";
    case Axis::kReadout:
      return "readout";
    case Axis::kAlpha:
      return "alpha";
    case Axis::kBeta:
      return "beta";
    case Axis::kSeed:
      return "seed";
    case Axis::kNeurons:
      return "neurons";
  }
  return "?";
}

namespace {

const std::vector<std::string> kAutoencoders = {"cae", "vae", "vqvae", "none"};
const std::vector<std::string> kReadouts = {"fr", "fc", "fm", "none"};
const std::vector<std::string> kNeuronSets = {"all", "significant", "insignificant"};
const std::vector<Axis> kAllAxes = {Axis::kRegion,  Axis::kLayer,  Axis::kAutoencoder,
                                    Axis::kReadout, Axis::kAlpha,  Axis::kBeta,
                                    Axis::kSeed,    Axis::kNeurons};

// " (did you mean 'x'?)" for the nearest of `names`, or nothing.
std::string suggest(const std::string& word, const std::vector<std::string>& names) {
  std::string best;
  std::size_t best_d = 3;
  for (const auto& n : names) {
    const auto d = worker::edit_distance(word, n);
    if (d < best_d) best_d = d, best = n;
  }
  return best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best);
}

std::string format_number(double v) {
  return fmt::format("{}", v);
}

Neurons parse_neurons(const std::string& s) {
  if (s == "all") return Neurons::kAll;
  if (s == "significant") return Neurons::kSignificant;
  return Neurons::kInsignificant;
}

// Everything the parse needs to say where a problem is.
class Parser {
 public:
  Parser(std::string source, fs::path base_dir)
      : source_(std::move(source)), base_dir_(std::move(base_dir)) {}

  [[noreturn]] void fail(const toml::node& node, const std::string& key,
                         const std::string& what) const {
    throw SpecError(fmt::format("{}: {}: {}", worker::where(node.source(), source_), key, what));
  }
  [[noreturn]] void fail_at(const toml::source_region& src, const std::string& key,
                            const std::string& what) const {
    throw SpecError(fmt::format("{}: {}: {}", worker::where(src, source_), key, what));
  }

  // A non-empty array of distinct values under `key`; `each` converts one
  // element (and fails on a bad one) to its canonical string, used for the
  // duplicate check.
  template <typename F>
  void read_axis(TableReader& r, const std::string& key, F each) {
    const toml::node* node = r.get(key);
    if (!node) return;
    const std::string dotted = r.prefix() + key;
    const auto* array = node->as_array();
    if (!array)
      fail(*node, dotted, fmt::format("expected an array, got {}", TableReader::type_name(*node)));
    if (array->empty())
      fail(*node, dotted,
           "is empty: give at least one value, or leave the key out for its default");
    std::set<std::string> seen;
    for (const auto& element : *array) {
      const std::string canonical = each(element, dotted);
      if (!seen.insert(canonical).second)
        fail(element, dotted, fmt::format("duplicate value {}", canonical));
    }
  }

  std::string read_string(const toml::node& node, const std::string& key,
                          const std::vector<std::string>& names, const std::string& what) const {
    const auto v = node.value<std::string>();
    if (!v) fail(node, key, fmt::format("expected a string, got {}", TableReader::type_name(node)));
    if (!names.empty() && std::find(names.begin(), names.end(), *v) == names.end()) {
      fail(node, key,
           fmt::format("unknown {} '{}'{}; expected one of {}", what, *v, suggest(*v, names),
                       fmt::join(names, ", ")));
    }
    return *v;
  }

  int read_layer(const toml::node& node, const std::string& key) const {
    if (auto i = node.value_exact<int64_t>()) {
      if (*i < 1 || *i > 4) fail(node, key, fmt::format("layer {} must be 1..4 (h1..h4)", *i));
      return static_cast<int>(*i);
    }
    if (auto s = node.value<std::string>()) {
      if (s->size() == 2 && (*s)[0] == 'h' && (*s)[1] >= '1' && (*s)[1] <= '4')
        return (*s)[1] - '0';
      fail(node, key, fmt::format("unknown layer '{}'; expected 1..4 or \"h1\"..\"h4\"", *s));
    }
    fail(node, key, fmt::format("expected a layer (1..4), got {}", TableReader::type_name(node)));
  }

  double read_weight(const toml::node& node, const std::string& key, const char* name) const {
    if (!node.is_integer() && !node.is_floating_point()) {
      fail(node, key,
           fmt::format("{} must be a number, got {}", name, TableReader::type_name(node)));
    }
    const double v = *node.value<double>();
    if (!std::isfinite(v)) fail(node, key, fmt::format("{} must be finite, got {}", name, v));
    if (v < 0) fail(node, key, fmt::format("{} must be >= 0, got {}", name, v));
    return v;
  }

  std::uint64_t read_seed(const toml::node& node, const std::string& key) const {
    const auto v = node.value_exact<int64_t>();
    if (!v)
      fail(node, key,
           fmt::format("expected an integer seed, got {}", TableReader::type_name(node)));
    if (*v < 0) fail(node, key, fmt::format("seed must not be negative, got {}", *v));
    return static_cast<std::uint64_t>(*v);
  }

  // "virtual:K", or a folder (relative to the spec) that must exist.
  std::string resolve_region(const toml::node& node, const std::string& key,
                             const std::string& region) const {
    if (region.rfind("virtual:", 0) == 0) {
      const std::string k = region.substr(8);
      if (k != "1" && k != "2" && k != "3") {
        fail(node, key,
             fmt::format("unknown virtual region '{}'; expected virtual:1, virtual:2 or virtual:3",
                         region));
      }
      return region;
    }
    fs::path p(region);
    if (p.is_relative()) p = base_dir_ / p;
    std::error_code ec;
    if (!fs::exists(p, ec)) {
      fail(node, key,
           fmt::format(
               "data folder '{}' does not exist{}", p.string(),
               region.find(':') != std::string::npos ? " (virtual regions are virtual:1..3)" : ""));
    }
    if (!fs::is_directory(p, ec))
      fail(node, key,
           fmt::format("'{}' is not a folder (a region in the Antolík layout)", p.string()));
    return fs::weakly_canonical(p).string();
  }

  // The canonical string of one match value of `axis`, checked against the
  // values the axes take so that a typo in a rule is caught, not ignored.
  std::string match_value(const SweepSpec& spec, Axis axis, const toml::node& node,
                          const std::string& key) const {
    switch (axis) {
      case Axis::kRegion: {
        const auto v = read_string(node, key, spec.regions, "region (not in data.regions)");
        return v;
      }
      case Axis::kLayer:
        return std::to_string(read_layer(node, key));
      case Axis::kAutoencoder:
        return read_string(node, key, kAutoencoders, "autoencoder");
      case Axis::kReadout:
        return read_string(node, key, kReadouts, "readout");
      case Axis::kAlpha:
        return format_number(read_weight(node, key, "alpha"));
      case Axis::kBeta:
        return format_number(read_weight(node, key, "beta"));
      case Axis::kSeed:
        return std::to_string(read_seed(node, key));
      case Axis::kNeurons:
        return read_string(node, key, kNeuronSets, "neuron set");
    }
    return "";
  }

  Match read_match(const SweepSpec& spec, const toml::node& node, const std::string& key) const {
    const auto* table = node.as_table();
    if (!table)
      fail(
          node, key,
          fmt::format("expected a table of axis = value(s), got {}", TableReader::type_name(node)));
    if (table->empty()) fail(node, key, "is empty: it would match every job");
    std::vector<std::string> axis_names;
    for (Axis a : kAllAxes) axis_names.push_back(to_string(a));
    Match m;
    for (const auto& [k, value] : *table) {
      const std::string name(k.str());
      const std::string dotted = key + "." + name;
      auto it = std::find(axis_names.begin(), axis_names.end(), name);
      if (it == axis_names.end()) {
        fail_at(k.source(), dotted,
                fmt::format("unknown axis{}; expected one of {}", suggest(name, axis_names),
                            fmt::join(axis_names, ", ")));
      }
      const Axis axis = kAllAxes[static_cast<std::size_t>(it - axis_names.begin())];
      std::vector<std::string> values;
      if (const auto* array = value.as_array()) {
        if (array->empty()) fail(value, dotted, "is empty");
        for (const auto& e : *array) values.push_back(match_value(spec, axis, e, dotted));
      } else {
        values.push_back(match_value(spec, axis, value, dotted));
      }
      m.conditions.emplace_back(axis, std::move(values));
    }
    return m;
  }

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  fs::path base_dir_;
};

// Keys the axes set: a spec that also sets them in its job tables says two
// things at once.
void reject_axis_keys(const Parser& p, const toml::table& job, const std::string& where_prefix) {
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"data", "data.regions"},
      {"seed", "axes.seeds"},
      {"model.autoencoder", "axes.autoencoder"},
      {"model.readout", "axes.readout"},
      {"model.layer", "axes.layer"},
      {"loss.alpha", "axes.loss"},
      {"loss.beta", "axes.loss"}};
  for (const auto& [dotted, axis] : keys) {
    const auto dot = dotted.find('.');
    const toml::node* node = nullptr;
    if (dot == std::string::npos) {
      node = job.get(dotted);
    } else if (const auto* t = job.get_as<toml::table>(dotted.substr(0, dot))) {
      node = t->get(dotted.substr(dot + 1));
    }
    if (node)
      p.fail(*node, where_prefix + dotted,
             fmt::format("is set by the sweep's {}; remove it here", axis));
  }
}

// Dotted key -> value text of every leaf of a settings table.
void flatten(const toml::table& t, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  for (const auto& [k, v] : t) {
    const std::string key = prefix + std::string(k.str());
    if (const auto* sub = v.as_table()) {
      flatten(*sub, key + ".", out);
    } else {
      std::ostringstream ss;
      v.visit([&](const auto& leaf) { ss << leaf; });
      out[key] = ss.str();
    }
  }
}

// Parses a job table through the job-config reader so that its errors carry
// the spec's lines; ConfigError becomes SpecError.
void check_job_table(const toml::table& job, const std::string& source) {
  try {
    (void)worker::job_config_from_table(job, source);
  } catch (const worker::ConfigError& e) {
    throw SpecError(e.what());
  }
}

}  // namespace

bool Match::matches(const Labels& l) const {
  for (const auto& [axis, values] : conditions) {
    std::string v;
    switch (axis) {
      case Axis::kRegion:
        v = l.region;
        break;
      case Axis::kLayer:
        v = std::to_string(l.layer);
        break;
      case Axis::kAutoencoder:
        v = models::to_string(l.autoencoder);
        break;
      case Axis::kReadout:
        v = models::to_string(l.readout);
        break;
      case Axis::kAlpha:
        v = format_number(l.alpha);
        break;
      case Axis::kBeta:
        v = format_number(l.beta);
        break;
      case Axis::kSeed:
        v = std::to_string(l.seed);
        break;
      case Axis::kNeurons:
        v = to_string(l.neurons);
        break;
    }
    if (std::find(values.begin(), values.end(), v) == values.end()) return false;
  }
  return true;
}

SweepSpec parse_sweep_spec(const std::string& text, const std::string& source,
                           const fs::path& base_dir) {
  toml::table root;
  try {
    root = worker::parse_toml(text, source);
  } catch (const worker::ConfigError& e) {
    throw SpecError(e.what());
  }
  Parser p(source, base_dir);
  SweepSpec spec;
  spec.source = source;
  spec.text = text;
  const worker::Overridden none;
  try {
    TableReader top(root, "", source, none);
    spec.name = fs::path(source).stem().string();
    top.read("name", spec.name);
    if (spec.name.empty()) p.fail(*root.get("name"), "name", "must not be empty");
    std::string description;
    top.read("description", description);

    // [data]
    const toml::table* data = top.sub_table("data");
    if (!data)
      throw SpecError(fmt::format(
          "{}: data: missing: a sweep names its regions in [data] regions = [...]", source));
    {
      TableReader r(*data, "data.", source, none);
      p.read_axis(r, "regions", [&](const toml::node& e, const std::string& key) {
        const auto region = p.read_string(e, key, {}, "region");
        spec.regions.push_back(region);
        spec.region_paths.push_back(p.resolve_region(e, key, region));
        return region;
      });
      if (spec.regions.empty()) {
        throw SpecError(fmt::format(
            "{}: data.regions: missing: list at least one region (\"virtual:1\" or a folder)",
            worker::where(data->source(), source)));
      }
      r.read("data_seed", spec.data_seed);
      r.reject_unknown();
    }

    // [axes]
    if (const toml::table* axes = top.sub_table("axes")) {
      TableReader r(*axes, "axes.", source, none);
      p.read_axis(r, "layer", [&](const toml::node& e, const std::string& key) {
        spec.layers.push_back(p.read_layer(e, key));
        return std::to_string(spec.layers.back());
      });
      p.read_axis(r, "autoencoder", [&](const toml::node& e, const std::string& key) {
        const auto s = p.read_string(e, key, kAutoencoders, "autoencoder");
        spec.autoencoders.push_back(models::parse_autoencoder(s));
        return s;
      });
      p.read_axis(r, "readout", [&](const toml::node& e, const std::string& key) {
        const auto s = p.read_string(e, key, kReadouts, "readout");
        spec.readouts.push_back(models::parse_readout(s));
        return s;
      });
      p.read_axis(r, "loss", [&](const toml::node& e, const std::string& key) {
        const auto* pair = e.as_array();
        if (!pair || pair->size() != 2) {
          p.fail(
              e, key,
              fmt::format("each loss is a pair [alpha, beta], got {}", TableReader::type_name(e)));
        }
        const double alpha = p.read_weight(*pair->get(0), key, "alpha");
        const double beta = p.read_weight(*pair->get(1), key, "beta");
        if (alpha == 0 && beta == 0) p.fail(e, key, "alpha and beta are both 0: nothing to train");
        spec.losses.emplace_back(alpha, beta);
        return fmt::format("[{}, {}]", format_number(alpha), format_number(beta));
      });
      p.read_axis(r, "seeds", [&](const toml::node& e, const std::string& key) {
        spec.seeds.push_back(p.read_seed(e, key));
        return std::to_string(spec.seeds.back());
      });
      p.read_axis(r, "neurons", [&](const toml::node& e, const std::string& key) {
        const auto s = p.read_string(e, key, kNeuronSets, "neuron set");
        spec.neurons.push_back(parse_neurons(s));
        return s;
      });
      r.reject_unknown();
    }
    // Defaults: one job of the README's model.
    if (spec.layers.empty()) spec.layers = {1};
    if (spec.autoencoders.empty()) spec.autoencoders = {models::AutoencoderKind::kCae};
    if (spec.readouts.empty()) spec.readouts = {models::ReadoutKind::kFr};
    if (spec.losses.empty()) spec.losses = {{1.0, 1.0}};
    if (spec.seeds.empty()) spec.seeds = {0};
    if (spec.neurons.empty()) spec.neurons = {Neurons::kAll};
    const bool subsets = std::any_of(spec.neurons.begin(), spec.neurons.end(),
                                     [](Neurons n) { return n != Neurons::kAll; });
    if (subsets &&
        std::find(spec.neurons.begin(), spec.neurons.end(), Neurons::kAll) == spec.neurons.end()) {
      p.fail(*root.get_as<toml::table>("axes")->get("neurons"), "axes.neurons",
             "a neuron subset needs \"all\" too: the subset comes from the model fitted to all "
             "neurons");
    }

    // [[include]] / [[exclude]]
    for (const char* kind : {"include", "exclude"}) {
      const toml::node* node = top.get(kind);
      if (!node) continue;
      const auto* array = node->as_array();
      if (!array || !array->is_array_of_tables()) {
        p.fail(*node, kind, fmt::format("expected [[{}]] tables of axis = value(s)", kind));
      }
      auto& rules = std::string(kind) == "include" ? spec.include : spec.exclude;
      for (std::size_t i = 0; i < array->size(); ++i) {
        rules.push_back(p.read_match(spec, *array->get(i), fmt::format("{}[{}]", kind, i + 1)));
      }
    }

    // The shared job settings.
    // Checked below as part of the job table; here only claimed as known keys.
    top.get("val_fraction");
    for (const char* key : {"model", "loss", "train"}) top.sub_table(key);
    for (const char* key : {"val_fraction", "model", "loss", "train"}) {
      if (const toml::node* n = root.get(key)) spec.base.insert(key, *n);
    }
    reject_axis_keys(p, spec.base, "");
    check_job_table(spec.base, source);

    // [override.<value>] or [override.<axis>.<value>]
    if (const toml::table* overrides = top.sub_table("override")) {
      const std::vector<std::string> short_names = {"cae", "vae", "vqvae", "fr", "fc",
                                                    "fm",  "h1",  "h2",    "h3", "h4"};
      std::vector<std::string> names = short_names;
      for (Axis a : kAllAxes) names.push_back(to_string(a));
      auto add = [&](Axis axis, const std::string& value, const toml::node& settings,
                     const std::string& name) {
        const auto* t = settings.as_table();
        if (!t)
          p.fail(settings, name,
                 fmt::format("expected a table of job settings, got {}",
                             TableReader::type_name(settings)));
        Override o{axis, value, name, *t};
        reject_axis_keys(p, o.settings, name + ".");
        toml::table merged = spec.base;
        worker::merge(merged, o.settings);
        check_job_table(merged, source);
        spec.overrides.push_back(std::move(o));
      };
      for (const auto& [k, node] : *overrides) {
        const std::string key(k.str());
        const std::string name = "override." + key;
        if (key == "cae" || key == "vae" || key == "vqvae") {
          add(Axis::kAutoencoder, key, node, name);
        } else if (key == "fr" || key == "fc" || key == "fm") {
          add(Axis::kReadout, key, node, name);
        } else if (key.size() == 2 && key[0] == 'h' && key[1] >= '1' && key[1] <= '4') {
          add(Axis::kLayer, key.substr(1), node, name);
        } else {
          auto it = std::find_if(kAllAxes.begin(), kAllAxes.end(),
                                 [&](Axis a) { return to_string(a) == key; });
          if (it == kAllAxes.end()) {
            p.fail_at(k.source(), name,
                      fmt::format("unknown override target{}; expected an axis value such as vae, "
                                  "fc, h2, or an axis table such as override.region",
                                  suggest(key, names)));
          }
          const auto* by_value = node.as_table();
          if (!by_value) p.fail(node, name, "expected a table keyed by the axis value");
          for (const auto& [vk, settings] : *by_value) {
            const std::string vname = name + "." + std::string(vk.str());
            // The value as the axis spells it, checked like a match value.
            toml::value<std::string> as_string{std::string(vk.str())};
            std::string value;
            if (*it == Axis::kLayer || *it == Axis::kSeed || *it == Axis::kAlpha ||
                *it == Axis::kBeta) {
              // Keys are strings in TOML; read the number they spell.
              try {
                const auto parsed = toml::parse(fmt::format("v = {}", vk.str()));
                value = p.match_value(spec, *it, *parsed.get("v"), vname);
              } catch (const toml::parse_error&) {
                p.fail_at(vk.source(), vname, "expected a number as the key");
              }
            } else {
              value = p.match_value(spec, *it, as_string, vname);
            }
            add(*it, value, settings, vname);
          }
        }
      }
      // Two overrides that can meet on one job must not disagree.
      for (std::size_t i = 0; i < spec.overrides.size(); ++i) {
        for (std::size_t j = i + 1; j < spec.overrides.size(); ++j) {
          const auto& a = spec.overrides[i];
          const auto& b = spec.overrides[j];
          if (a.axis == b.axis) continue;
          std::map<std::string, std::string> fa, fb;
          flatten(a.settings, "", fa);
          flatten(b.settings, "", fb);
          for (const auto& [key, value] : fa) {
            const auto other = fb.find(key);
            if (other != fb.end() && other->second != value) {
              throw SpecError(
                  fmt::format("{}: {} and {} both set {} ({} vs {}) for the jobs they share",
                              source, a.name, b.name, key, value, other->second));
            }
          }
        }
      }
    }
    top.reject_unknown();
  } catch (const worker::ConfigError& e) {
    throw SpecError(e.what());
  }
  return spec;
}

SweepSpec load_sweep_spec(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SpecError(fmt::format("{}: cannot open the sweep spec", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_sweep_spec(ss.str(), path.string(),
                          path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

}  // namespace daenr::sweeps
