#include "sweeps/spec.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <csignal>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "job/text.h"
#include "job/toml_reader.h"

namespace daenr::sweeps {

namespace fs = std::filesystem;
using job::TableReader;

namespace {

// The spec names, from the contract's one list of kinds (job/model_config.h).
template <typename Kind>
std::vector<std::string> names_of(const std::vector<Kind>& kinds) {
  std::vector<std::string> out;
  for (const auto k : kinds) out.push_back(job::to_string(k));
  return out;
}
const std::vector<std::string> kAutoencoders = names_of(job::all_autoencoders());
const std::vector<std::string> kReadouts = names_of(job::all_readouts());
const std::vector<std::string> kNeuronSets = {"all", "significant", "insignificant"};
const std::vector<Axis> kAllAxes = {Axis::kRegion,  Axis::kLayer,  Axis::kAutoencoder,
                                    Axis::kReadout, Axis::kAlpha,  Axis::kBeta,
                                    Axis::kSeed,    Axis::kNeurons};
// The top-level keys a spec shares with a job file (docs/job-config.md).
const std::vector<std::string> kJobKeys = {"val_fraction", "model", "loss", "train"};
// Keys of [data] and [axes], and a job file's `seed`, written at the top
// level: where they belong.
const std::vector<std::pair<std::string, std::string>> kMisplaced = {
    {"regions", "data.regions"},
    {"data_seed", "data.data_seed"},
    {"layer", "axes.layer"},
    {"layers", "axes.layer"},
    {"autoencoder", "axes.autoencoder"},
    {"readout", "axes.readout"},
    {"seeds", "axes.seeds"},
    {"seed", "axes.seeds"},
    {"neurons", "axes.neurons"}};

// " (did you mean 'x'?)" for the nearest of `names`, or nothing.
std::string suggest(const std::string& word, const std::vector<std::string>& names) {
  return job::did_you_mean(word, names);
}

std::string format_number(double v) {
  return fmt::format("{}", v);
}

Neurons parse_neurons(const std::string& s) {
  if (s == "all") return Neurons::kAll;
  if (s == "significant") return Neurons::kSignificant;
  return Neurons::kInsignificant;
}

// The key that lists an axis's values, for messages.
std::string axis_key(Axis a) {
  switch (a) {
    case Axis::kRegion:
      return "data.regions";
    case Axis::kLayer:
      return "axes.layer";
    case Axis::kAutoencoder:
      return "axes.autoencoder";
    case Axis::kReadout:
      return "axes.readout";
    case Axis::kAlpha:
    case Axis::kBeta:
      return "axes.loss";
    case Axis::kSeed:
      return "axes.seeds";
    case Axis::kNeurons:
      return "axes.neurons";
  }
  return "?";
}

// The canonical text of each value `axis` takes in `spec` (defaults included),
// spelt as Match::matches spells a job's labels.
std::vector<std::string> axis_values(const SweepSpec& spec, Axis axis) {
  std::vector<std::string> out;
  auto add = [&](std::string v) {
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(std::move(v));
  };
  switch (axis) {
    case Axis::kRegion:
      for (const auto& r : spec.regions) add(r);
      break;
    case Axis::kLayer:
      for (int l : spec.layers) add(std::to_string(l));
      break;
    case Axis::kAutoencoder:
      for (auto a : spec.autoencoders) add(job::to_string(a));
      break;
    case Axis::kReadout:
      for (auto r : spec.readouts) add(job::to_string(r));
      break;
    case Axis::kAlpha:
      for (const auto& loss : spec.losses) add(format_number(loss.first));
      break;
    case Axis::kBeta:
      for (const auto& loss : spec.losses) add(format_number(loss.second));
      break;
    case Axis::kSeed:
      for (auto s : spec.seeds) add(std::to_string(s));
      break;
    case Axis::kNeurons:
      for (auto n : spec.neurons) add(to_string(n));
      break;
  }
  return out;
}

std::string value_text(const toml::node& node) {
  std::ostringstream ss;
  node.visit([&](const auto& leaf) { ss << leaf; });
  return ss.str();
}

// Everything the parse needs to say where a problem is.
class Parser {
 public:
  Parser(std::string source, fs::path base_dir)
      : source_(std::move(source)), base_dir_(std::move(base_dir)) {}

  [[noreturn]] void fail(const toml::node& node, const std::string& key,
                         const std::string& what) const {
    fail_at(node.source(), key, what);
  }
  [[noreturn]] void fail_at(const toml::source_region& src, const std::string& key,
                            const std::string& what) const {
    throw SpecError(fmt::format("{}: {}: {}", job::where(src, source_), key, what));
  }
  std::string where(const toml::source_region& src) const { return job::where(src, source_); }

  // A non-empty array of distinct values under `key`; `each` converts one
  // element (and fails on a bad one) to its canonical string, used for the
  // duplicate check and recorded in spec.written_at.
  template <typename F>
  void read_axis(SweepSpec& spec, TableReader& r, const std::string& key, F each) {
    const toml::node* node = r.get(key);
    if (!node) return;
    const std::string dotted = r.prefix() + key;
    const auto* array = node->as_array();
    if (!array) {
      fail(*node, dotted, fmt::format("expected an array, got {}", TableReader::type_name(*node)));
    }
    if (array->empty()) {
      fail(*node, dotted,
           "is empty: give at least one value, or leave the key out for its default");
    }
    std::set<std::string> seen;
    for (const auto& element : *array) {
      const std::string canonical = each(element, dotted);
      if (!seen.insert(canonical).second) {
        fail(element, dotted, fmt::format("duplicate value {}", canonical));
      }
      spec.written_at.emplace(dotted + "=" + canonical, where(element.source()));
    }
  }

  // The readers below convert one value and fail at `at`: the value's own
  // position, or that of the key that spells it in an [override.<axis>] table.
  std::string read_string(const toml::node& node, const toml::source_region& at,
                          const std::string& key, const std::vector<std::string>& names,
                          const std::string& what) const {
    const auto v = node.value<std::string>();
    if (!v) {
      fail_at(at, key, fmt::format("expected a string, got {}", TableReader::type_name(node)));
    }
    if (!names.empty() && std::find(names.begin(), names.end(), *v) == names.end()) {
      fail_at(at, key,
              fmt::format("unknown {} '{}'{}; expected one of {}", what, *v, suggest(*v, names),
                          fmt::join(names, ", ")));
    }
    return *v;
  }

  int read_layer(const toml::node& node, const toml::source_region& at,
                 const std::string& key) const {
    if (auto i = node.value_exact<int64_t>()) {
      if (*i < 1 || *i > 4) fail_at(at, key, fmt::format("layer {} must be 1..4 (h1..h4)", *i));
      return static_cast<int>(*i);
    }
    if (auto s = node.value<std::string>()) {
      if (s->size() == 2 && (*s)[0] == 'h' && (*s)[1] >= '1' && (*s)[1] <= '4') {
        return (*s)[1] - '0';
      }
      fail_at(at, key, fmt::format("unknown layer '{}'; expected 1..4 or \"h1\"..\"h4\"", *s));
    }
    fail_at(at, key, fmt::format("expected a layer (1..4), got {}", TableReader::type_name(node)));
  }

  double read_weight(const toml::node& node, const toml::source_region& at, const std::string& key,
                     const char* name) const {
    if (!node.is_integer() && !node.is_floating_point()) {
      fail_at(at, key,
              fmt::format("{} must be a number, got {}", name, TableReader::type_name(node)));
    }
    const double v = *node.value<double>();
    if (!std::isfinite(v)) fail_at(at, key, fmt::format("{} must be finite, got {}", name, v));
    if (v < 0) fail_at(at, key, fmt::format("{} must be >= 0, got {}", name, v));
    // -0.0 is 0: one spelling, one label and one id.
    return v == 0 ? 0.0 : v;
  }

  std::uint64_t read_seed(const toml::node& node, const toml::source_region& at,
                          const std::string& key) const {
    const auto v = node.value_exact<int64_t>();
    if (!v) {
      fail_at(at, key,
              fmt::format("expected an integer seed, got {}", TableReader::type_name(node)));
    }
    if (*v < 0) fail_at(at, key, fmt::format("seed must not be negative, got {}", *v));
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
    // A relative folder is relative to the spec, not to where daenr runs:
    // say where it was looked for.
    std::string looked;
    if (p.is_relative()) {
      p = base_dir_ / p;
      looked = fmt::format(" (looked for '{}')", p.lexically_normal().string());
    }
    std::error_code ec;
    if (!fs::exists(p, ec)) {
      fail(node, key,
           fmt::format(
               "data folder '{}' does not exist{}{}", region, looked,
               region.find(':') != std::string::npos ? " (virtual regions are virtual:1..3)" : ""));
    }
    if (!fs::is_directory(p, ec)) {
      fail(node, key,
           fmt::format("'{}' is not a folder (a region in the Antolík layout){}", region, looked));
    }
    return fs::weakly_canonical(p).string();
  }

  // The canonical text of `node` as a value of `axis`. It must be a value the
  // spec's axis takes: a rule or an override that names another would
  // silently match no job.
  std::string axis_value(const SweepSpec& spec, Axis axis, const toml::node& node,
                         const toml::source_region& at, const std::string& key) const {
    std::string v;
    switch (axis) {
      case Axis::kRegion:
        v = read_string(node, at, key, {}, "region");
        break;
      case Axis::kLayer:
        v = std::to_string(read_layer(node, at, key));
        break;
      case Axis::kAutoencoder:
        v = read_string(node, at, key, kAutoencoders, "autoencoder");
        break;
      case Axis::kReadout:
        v = read_string(node, at, key, kReadouts, "readout");
        break;
      case Axis::kAlpha:
        v = format_number(read_weight(node, at, key, "alpha"));
        break;
      case Axis::kBeta:
        v = format_number(read_weight(node, at, key, "beta"));
        break;
      case Axis::kSeed:
        v = std::to_string(read_seed(node, at, key));
        break;
      case Axis::kNeurons:
        v = read_string(node, at, key, kNeuronSets, "neuron set");
        break;
    }
    const auto values = axis_values(spec, axis);
    if (std::find(values.begin(), values.end(), v) == values.end()) {
      const bool weight = axis == Axis::kAlpha || axis == Axis::kBeta;
      fail_at(at, key,
              fmt::format("no job has {} {} ({}{} {} [{}])", to_string(axis), v,
                          weight ? "the " + to_string(axis) + "s of " : "", axis_key(axis),
                          weight ? "are" : "is", fmt::join(values, ", ")));
    }
    return v;
  }

  // The axis value that a key of an [override.<axis>] table spells. TOML keys
  // are strings: a layer, seed or weight is the number the key spells (a
  // layer may also be "h2").
  std::string override_value(const SweepSpec& spec, Axis axis, const toml::key& k,
                             const std::string& name) const {
    const std::string text(k.str());
    const bool number = axis == Axis::kSeed || axis == Axis::kAlpha || axis == Axis::kBeta ||
                        (axis == Axis::kLayer && text.rfind('h', 0) != 0);
    if (!number) return axis_value(spec, axis, toml::value<std::string>(text), k.source(), name);
    toml::table parsed;
    try {
      parsed = toml::parse("v = " + text);
    } catch (const toml::parse_error&) {
      // Not a number: reported below, at the key.
    }
    const toml::node* v = parsed.get("v");
    if (!v || parsed.size() != 1) {
      fail_at(k.source(), name, fmt::format("expected a number as the key, got '{}'", text));
    }
    return axis_value(spec, axis, *v, k.source(), name);
  }

  Match read_match(const SweepSpec& spec, const toml::node& node, const std::string& key) const {
    const auto* table = node.as_table();
    if (!table) {
      fail(
          node, key,
          fmt::format("expected a table of axis = value(s), got {}", TableReader::type_name(node)));
    }
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
        for (const auto& e : *array) {
          values.push_back(axis_value(spec, axis, e, e.source(), dotted));
        }
      } else {
        values.push_back(axis_value(spec, axis, value, value.source(), dotted));
      }
      m.conditions.emplace_back(axis, std::move(values));
    }
    return m;
  }

 private:
  std::string source_;
  fs::path base_dir_;
};

// Keys the axes set: a spec that also sets them in its job tables says two
// things at once.
void reject_axis_keys(const Parser& p, const toml::table& job, const std::string& where_prefix) {
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"data", "data.regions"},          {"seed", "axes.seeds"},
      {"train.seed", "axes.seeds"},      {"model.autoencoder", "axes.autoencoder"},
      {"model.readout", "axes.readout"}, {"model.layer", "axes.layer"},
      {"loss.alpha", "axes.loss"},       {"loss.beta", "axes.loss"}};
  for (const auto& [dotted, axis] : keys) {
    const auto dot = dotted.find('.');
    const toml::node* node = nullptr;
    if (dot == std::string::npos) {
      node = job.get(dotted);
    } else if (const auto* t = job.get_as<toml::table>(dotted.substr(0, dot))) {
      node = t->get(dotted.substr(dot + 1));
    }
    if (node) {
      p.fail(*node, where_prefix + dotted,
             fmt::format("is set by the sweep's {}; remove it here", axis));
    }
  }
}

// Dotted key -> node of every leaf of a settings table.
void flatten(const toml::table& t, const std::string& prefix,
             std::map<std::string, const toml::node*>& out) {
  for (const auto& [k, v] : t) {
    const std::string key = prefix + std::string(k.str());
    if (const auto* sub = v.as_table()) {
      flatten(*sub, key + ".", out);
    } else {
      out[key] = &v;
    }
  }
}

// Moves `overlay`'s nodes into `base` (tables merge, values replace). Unlike
// job::merge it keeps their source positions, which toml++ drops from a
// node it copies.
void merge_moving(toml::table& base, toml::table& overlay) {
  for (auto&& [k, node] : overlay) {
    if (auto* sub = node.as_table()) {
      if (auto* existing = base.get_as<toml::table>(k)) {
        merge_moving(*existing, *sub);
        continue;
      }
    }
    base.insert_or_assign(k, std::move(node));
  }
}

// The spec's job settings (kJobKeys), with the override at `override_path`
// (keys under [override]) merged in when one is given. Built by moving the
// nodes out of a fresh parse of the text, so that the job reader's messages
// still point at the spec's lines.
toml::table job_table(const std::string& text, const std::string& source,
                      const std::vector<std::string>& override_path) {
  toml::table root = job::parse_toml(text, source);
  toml::table job;
  for (const auto& key : kJobKeys) {
    if (toml::node* n = root.get(key)) job.insert(key, std::move(*n));
  }
  if (!override_path.empty()) {
    toml::node* n = root.get("override");
    for (const auto& k : override_path) n = n->as_table()->get(k);
    merge_moving(job, *n->as_table());
  }
  return job;
}

// Reads a job table as a job file is read: a bad value in a spec gets the
// job file's message, with the spec's line. The checks across keys
// (job::validate) name no line; they get that of the key they name, or of
// its table. `context` names the override the table includes, if any.
void check_job_table(const toml::table& job, const std::string& source,
                     const std::string& context) {
  try {
    (void)job::job_config_from_table(job, source);
  } catch (const job::ConfigError& e) {
    std::string message = e.what();
    const std::string prefix = source + ": ";
    if (message.rfind(prefix, 0) == 0) {
      const std::string rest = message.substr(prefix.size());
      const std::string key = rest.substr(0, rest.find(':'));
      const toml::node* at = nullptr;
      const toml::table* table = &job;
      for (std::size_t begin = 0; table != nullptr;) {
        const auto dot = key.find('.', begin);
        const toml::node* n = table->get(key.substr(begin, dot - begin));
        if (n == nullptr) break;
        at = n;
        if (dot == std::string::npos) break;
        table = n->as_table();
        begin = dot + 1;
      }
      if (at != nullptr && at->source().path) {
        message = fmt::format("{}: {}", job::where(at->source(), source), rest);
      }
    }
    if (!context.empty()) message += fmt::format(" (in {})", context);
    throw SpecError(message);
  }
}

}  // namespace

int SweepSpec::most_threads() const {
  auto threads_in = [](const toml::table& settings) {
    return settings["train"]["threads"].value<std::int64_t>().value_or(1);
  };
  std::int64_t most = threads_in(base);
  for (const auto& o : overrides) most = std::max(most, threads_in(o.settings));
  return static_cast<int>(std::clamp<std::int64_t>(most, 1, 1 << 16));
}

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
        v = job::to_string(l.autoencoder);
        break;
      case Axis::kReadout:
        v = job::to_string(l.readout);
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

namespace {

// The steps of parse_sweep_spec, one per part of the spec, in the order a spec is read.

void read_top_level(Parser& p, TableReader& top, const toml::table& root, SweepSpec& spec) {
  spec.name = fs::path(spec.source).stem().string();
  top.read("name", spec.name);
  if (spec.name.empty()) p.fail(*root.get("name"), "name", "must not be empty");
  std::string description;
  top.read("description", description);
  top.read("ranks_per_job", spec.ranks_per_job);
  top.require_range("ranks_per_job", spec.ranks_per_job, 1, 1 << 20);
  if (root.contains("jobs_per_gpu")) {
    int jobs_per_gpu = 1;
    top.read("jobs_per_gpu", jobs_per_gpu);
    top.require_range("jobs_per_gpu", jobs_per_gpu, 1, 1 << 10);
    spec.jobs_per_gpu = jobs_per_gpu;
  }
  if (const auto* node = root.get("grace_signal")) {
    std::string text;
    top.read("grace_signal", text);
    const auto name = signal_name(text);
    if (const auto why = grace_signal_problem(name); !why.empty()) {
      p.fail(*node, "grace_signal",
             fmt::format("'{}': {}; use USR2 (the default), USR1 or ALRM", text, why));
    }
    spec.grace_signal = name;
  }
}

// [data]
void read_data(Parser& p, TableReader& top, const toml::table& root, SweepSpec& spec) {
  const toml::table* data = top.sub_table("data");
  if (!data) p.fail_at(root.source(), "data", "missing: a sweep names its regions in [data] regions = [...]");
  const job::Overridden none;
  TableReader r(*data, "data.", spec.source, none);
  p.read_axis(spec, r, "regions", [&](const toml::node& e, const std::string& key) {
    const auto region = p.read_string(e, e.source(), key, {}, "region");
    spec.regions.push_back(region);
    spec.region_paths.push_back(p.resolve_region(e, key, region));
    // Two spellings of one folder are one region.
    return spec.region_paths.back();
  });
  if (spec.regions.empty()) {
    p.fail_at(data->source(), "data.regions", "missing: list at least one region (\"virtual:1\" or a folder)");
  }
  r.read("data_seed", spec.data_seed);
  r.reject_unknown();
}

std::string loss_label(double a, double b) { return fmt::format("[{}, {}]", format_number(a), format_number(b)); }

// One element of axes.loss: a pair [alpha, beta], or a table {alpha = A, beta = [b1, b2, ...]}
// (or alpha as the array, or both) that stands for every pair of the product, in the order
// written: the paper's alpha/beta trade-off in one line. Returns the element's label.
std::string read_loss(Parser& p, const toml::node& e, const std::string& key, SweepSpec& spec) {
  // One (alpha, beta) pair, unless an earlier element already gave it.
  auto add = [&](const toml::node& at, double alpha, double beta) {
    if (alpha == 0 && beta == 0) p.fail(at, key, "alpha and beta are both 0: nothing to train");
    if (std::find(spec.losses.begin(), spec.losses.end(), std::pair{alpha, beta}) != spec.losses.end()) {
      p.fail(at, key, fmt::format("duplicate value {}", loss_label(alpha, beta)));
    }
    spec.losses.emplace_back(alpha, beta);
    spec.written_at.emplace(key + "=" + loss_label(alpha, beta), p.where(at.source()));
  };
  if (const auto* grid = e.as_table()) {
    std::vector<double> values[2];
    const char* names[2] = {"alpha", "beta"};
    for (const auto& [k, v] : *grid) {
      const std::string name(k.str());
      if (name != "alpha" && name != "beta") {
        p.fail(v, key, fmt::format("a loss table has keys alpha and beta, got '{}'", name));
      }
    }
    for (int w = 0; w < 2; ++w) {
      const toml::node* v = grid->get(names[w]);
      if (!v) p.fail(e, key, fmt::format("a loss table needs {} (a number or an array)", names[w]));
      if (const auto* list = v->as_array()) {
        if (list->empty()) p.fail(*v, key, fmt::format("{} is an empty array", names[w]));
        for (const auto& x : *list) values[w].push_back(p.read_weight(x, x.source(), key, names[w]));
      } else {
        values[w].push_back(p.read_weight(*v, v->source(), key, names[w]));
      }
    }
    std::vector<std::string> pairs;
    for (double a : values[0]) {
      for (double b : values[1]) {
        add(e, a, b);
        pairs.push_back(loss_label(a, b));
      }
    }
    return fmt::format("{{{}}}", fmt::join(pairs, ", "));
  }
  const auto* pair = e.as_array();
  if (!pair || pair->size() != 2) {
    p.fail(e, key,
           fmt::format("each loss is a pair [alpha, beta] or a table {{alpha = ..., beta = [...]}}, got {}{}",
                       TableReader::type_name(e), pair ? fmt::format(" of {} elements", pair->size()) : ""));
  }
  const auto& a = *pair->get(0);
  const auto& b = *pair->get(1);
  const double alpha = p.read_weight(a, a.source(), key, "alpha");
  const double beta = p.read_weight(b, b.source(), key, "beta");
  add(e, alpha, beta);
  return loss_label(alpha, beta);
}

// [axes]; returns the table (null without one).
const toml::table* read_axes(Parser& p, TableReader& top, SweepSpec& spec) {
  const toml::table* axes = top.sub_table("axes");
  if (!axes) return nullptr;
  const job::Overridden none;
  TableReader r(*axes, "axes.", spec.source, none);
  p.read_axis(spec, r, "layer", [&](const toml::node& e, const std::string& key) {
    spec.layers.push_back(p.read_layer(e, e.source(), key));
    return std::to_string(spec.layers.back());
  });
  p.read_axis(spec, r, "autoencoder", [&](const toml::node& e, const std::string& key) {
    const auto s = p.read_string(e, e.source(), key, kAutoencoders, "autoencoder");
    spec.autoencoders.push_back(job::parse_autoencoder(s));
    return s;
  });
  p.read_axis(spec, r, "readout", [&](const toml::node& e, const std::string& key) {
    const auto s = p.read_string(e, e.source(), key, kReadouts, "readout");
    spec.readouts.push_back(job::parse_readout(s));
    return s;
  });
  p.read_axis(spec, r, "loss",
              [&](const toml::node& e, const std::string& key) { return read_loss(p, e, key, spec); });
  p.read_axis(spec, r, "seeds", [&](const toml::node& e, const std::string& key) {
    spec.seeds.push_back(p.read_seed(e, e.source(), key));
    return std::to_string(spec.seeds.back());
  });
  p.read_axis(spec, r, "neurons", [&](const toml::node& e, const std::string& key) {
    const auto s = p.read_string(e, e.source(), key, kNeuronSets, "neuron set");
    spec.neurons.push_back(parse_neurons(s));
    return s;
  });
  r.reject_unknown();
  return axes;
}

// Axes left out take one value, the README's model; a neuron subset needs what it comes from.
void complete_axes(Parser& p, const toml::table* axes, SweepSpec& spec) {
  if (spec.layers.empty()) spec.layers = {1};
  if (spec.autoencoders.empty()) spec.autoencoders = {job::AutoencoderKind::kCae};
  if (spec.readouts.empty()) spec.readouts = {job::ReadoutKind::kFr};
  if (spec.losses.empty()) spec.losses = {{1.0, 1.0}};
  if (spec.seeds.empty()) spec.seeds = {0};
  if (spec.neurons.empty()) spec.neurons = {Neurons::kAll};
  const bool subsets =
      std::any_of(spec.neurons.begin(), spec.neurons.end(), [](Neurons n) { return n != Neurons::kAll; });
  if (!subsets) return;
  const toml::node& neurons = *axes->get("neurons");
  if (std::find(spec.neurons.begin(), spec.neurons.end(), Neurons::kAll) == spec.neurons.end()) {
    p.fail(neurons, "axes.neurons",
           "a neuron subset needs \"all\" too: the subset comes from the model fitted to all neurons");
  }
  if (std::all_of(spec.readouts.begin(), spec.readouts.end(),
                  [](job::ReadoutKind r) { return r == job::ReadoutKind::kNone; })) {
    p.fail(neurons, "axes.neurons", "a neuron subset needs a model with a readout, and every readout is \"none\"");
  }
}

// [[include]] / [[exclude]]
void read_rules(Parser& p, TableReader& top, SweepSpec& spec) {
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
}

// [decode] / [mei]: jobs on the trained models, each with its parent filter.
void read_dependent_kinds(TableReader& top, SweepSpec& spec) {
  if (const toml::table* t = top.sub_table("decode")) {
    SweepSpec::DecodeJobs d;
    job::read_decode_table(*t, spec.source, d.settings, d.filter);
    spec.decode = std::move(d);
  }
  if (const toml::table* t = top.sub_table("mei")) {
    SweepSpec::MeiJobs m;
    job::read_mei_table(*t, spec.source, m.settings, m.filter, m.objectives);
    spec.mei = std::move(m);
  }
}

// Two overrides of different axes can meet on one job: they must not disagree. `own` are the
// overrides' own tables (the copies in spec.overrides have lost their source positions).
void check_overrides_agree(Parser& p, const SweepSpec& spec, const std::vector<const toml::table*>& own) {
  for (std::size_t i = 0; i < spec.overrides.size(); ++i) {
    for (std::size_t j = i + 1; j < spec.overrides.size(); ++j) {
      const auto& a = spec.overrides[i];
      const auto& b = spec.overrides[j];
      if (a.axis == b.axis) continue;
      std::map<std::string, const toml::node*> fa, fb;
      flatten(*own[i], "", fa);
      flatten(*own[j], "", fb);
      for (const auto& [key, node] : fb) {
        const auto other = fa.find(key);
        if (other == fa.end()) continue;
        const std::string here = value_text(*node), there = value_text(*other->second);
        if (here != there) {
          p.fail(*node, b.name + "." + key,
                 fmt::format("is {} here but {} in {}, and a job can have both; set it in one of them", here,
                             there, a.name));
        }
      }
    }
  }
}

// [override.<value>] or [override.<axis>.<value>]
void read_overrides(Parser& p, TableReader& top, SweepSpec& spec) {
  const toml::table* overrides = top.sub_table("override");
  if (!overrides) return;
  const std::vector<std::string> short_names = {"cae", "vae", "vqvae", "fr", "fc", "fm", "h1", "h2", "h3", "h4"};
  std::vector<std::string> names = short_names;
  for (Axis a : kAllAxes) names.push_back(to_string(a));
  std::vector<const toml::table*> own;
  auto add = [&](Axis axis, const std::string& value, const toml::node& settings, const toml::source_region& at,
                 const std::string& name, const std::vector<std::string>& path) {
    const auto* t = settings.as_table();
    if (!t) {
      p.fail(settings, name,
             fmt::format("expected a table of job settings, got {}", TableReader::type_name(settings)));
    }
    for (const auto& o : spec.overrides) {
      if (o.axis == axis && o.value == value) {
        p.fail_at(at, name, fmt::format("applies to the same jobs as {}; merge the two", o.name));
      }
    }
    reject_axis_keys(p, *t, name + ".");
    check_job_table(job_table(spec.text, spec.source, path), spec.source, name);
    spec.overrides.push_back({axis, value, name, *t, p.where(at)});
    own.push_back(t);
  };
  for (const auto& [k, node] : *overrides) {
    const std::string key(k.str());
    const std::string name = "override." + key;
    if (std::find(short_names.begin(), short_names.end(), key) != short_names.end()) {
      const Axis axis = key[0] == 'h'                               ? Axis::kLayer
                        : key == "fr" || key == "fc" || key == "fm" ? Axis::kReadout
                                                                    : Axis::kAutoencoder;
      add(axis, p.override_value(spec, axis, k, name), node, k.source(), name, {key});
      continue;
    }
    auto it = std::find_if(kAllAxes.begin(), kAllAxes.end(), [&](Axis a) { return to_string(a) == key; });
    if (it == kAllAxes.end()) {
      p.fail_at(k.source(), name,
                fmt::format("unknown override target{}; expected an axis value such as vae, "
                            "fc, h2, or an axis table such as override.region",
                            suggest(key, names)));
    }
    const auto* by_value = node.as_table();
    if (!by_value) {
      p.fail(node, name,
             fmt::format("expected a table of [{}.<value>] tables, got {}", name, TableReader::type_name(node)));
    }
    for (const auto& [vk, settings] : *by_value) {
      const std::string value_key(vk.str());
      const std::string vname = name + "." + value_key;
      add(*it, p.override_value(spec, *it, vk, vname), settings, vk.source(), vname, {key, value_key});
    }
  }
  check_overrides_agree(p, spec, own);
}

// A job setting written at the top level of the spec, where it belongs in a table.
void reject_misplaced(Parser& p, const toml::table& root) {
  for (const auto& [k, node] : root) {
    const std::string key(k.str());
    for (const auto& [misplaced, belongs] : kMisplaced) {
      if (key == misplaced) p.fail_at(k.source(), key, fmt::format("unknown key (did you mean '{}'?)", belongs));
    }
  }
}

}  // namespace

SweepSpec parse_sweep_spec(const std::string& text, const std::string& source, const fs::path& base_dir) {
  toml::table root;
  try {
    root = job::parse_toml(text, source);
  } catch (const job::ConfigError& e) {
    throw SpecError(e.what());
  }
  Parser p(source, base_dir);
  SweepSpec spec;
  spec.source = source;
  spec.text = text;
  const job::Overridden none;
  try {
    TableReader top(root, "", source, none);
    read_top_level(p, top, root, spec);
    read_data(p, top, root, spec);
    complete_axes(p, read_axes(p, top, spec), spec);
    read_rules(p, top, spec);
    read_dependent_kinds(top, spec);
    // The shared job settings. Checked as a job table; here only claimed as known keys.
    top.get("val_fraction");
    for (const char* key : {"model", "loss", "train"}) top.sub_table(key);
    spec.base = job_table(text, source, {});
    reject_axis_keys(p, spec.base, "");
    check_job_table(spec.base, source, "");
    read_overrides(p, top, spec);
    reject_misplaced(p, root);
    top.reject_unknown();
  } catch (const job::ConfigError& e) {
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

namespace {

// The grace signals daenr accepts: forwarded to the ranks by both launchers without any
// setting (srun forwards INT, QUIT, CONT, TERM, HUP, ALRM, USR1, USR2 and PIPE; mpirun's
// ess_base_forward_signals TSTP, USR1, USR2, ABRT, ALRM and CONT), catchable, and not
// already meaning something else to Slurm, mpirun or the batch shell (TERM is Slurm's stop).
// USR2 is the default because NCCL 2.12 catches USR1 (slurm/submit.cpp). ALRM is for a site
// where a library takes both user signals (RCCL has been proposed to catch USR2).
struct NamedSignal {
  const char* name;
  int number;
};
constexpr NamedSignal kGraceSignals[] = {{"USR2", SIGUSR2}, {"USR1", SIGUSR1}, {"ALRM", SIGALRM}};

}  // namespace

std::string signal_name(const std::string& text) {
  std::string name;
  for (char c : text) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
  return name;
}

std::string grace_signal_problem(const std::string& name) {
  if (grace_signal_number(name) >= 0) return "";
  return name == "KILL" || name == "STOP" ? "cannot be caught, so the run could not checkpoint"
                                          : "not a grace signal daenr handles";
}

int grace_signal_number(const std::string& name) {
  for (const auto& s : kGraceSignals) {
    if (name == s.name) return s.number;
  }
  return -1;
}

}  // namespace daenr::sweeps
