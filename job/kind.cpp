#include "job/kind.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "job/error.h"
#include "job/text.h"
#include "job/toml_reader.h"

namespace daenr::job {

namespace {

const std::vector<std::string>& kind_names() {
  static const std::vector<std::string> names = {"train", "decode", "mei"};
  return names;
}

// An array of T under `key`, or a single T for a one-element list; null when absent.
template <typename T>
void read_list(TableReader& r, const std::string& key, std::vector<T>& out, bool allow_empty = false) {
  const toml::node* node = r.get(key);
  if (!node) return;
  out.clear();
  auto take = [&](const toml::node& n) {
    if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = n.value<std::string>()) return out.push_back(*v);
      r.fail(n, key, fmt::format("expected a string or a list of strings, got {}", TableReader::type_name(n)));
    } else if constexpr (std::is_floating_point_v<T>) {
      if (n.is_integer() || n.is_floating_point()) return out.push_back(*n.value<double>());
      r.fail(n, key, fmt::format("expected a number or a list of numbers, got {}", TableReader::type_name(n)));
    } else {
      if (auto v = n.value_exact<int64_t>()) {
        if (*v < 0) r.fail(n, key, fmt::format("must not be negative, got {}", *v));
        return out.push_back(static_cast<T>(*v));
      }
      r.fail(n, key, fmt::format("expected an integer or a list of integers, got {}", TableReader::type_name(n)));
    }
  };
  if (const auto* array = node->as_array()) {
    for (const auto& e : *array) take(e);
    if (out.empty() && !allow_empty) r.fail(*node, key, "must not be an empty list");
  } else {
    take(*node);
  }
}

void read_filter(TableReader& r, const toml::table& table, ParentFilter& filter) {
  read_list(r, "autoencoders", filter.autoencoders);
  for (const auto& a : filter.autoencoders) {
    try {
      parse_autoencoder(a);
    } catch (const ConfigError& e) {
      r.fail(*table.get("autoencoders"), "autoencoders", e.what());
    }
  }
  read_list(r, "readouts", filter.readouts);
  for (const auto& a : filter.readouts) {
    try {
      parse_readout(a);
    } catch (const ConfigError& e) {
      r.fail(*table.get("readouts"), "readouts", e.what());
    }
  }
  read_list(r, "layers", filter.layers);
  for (int l : filter.layers) {
    if (l < 1 || l > 4) r.fail(*table.get("layers"), "layers", fmt::format("must be 1..4 (h1..h4), got {}", l));
  }
  read_list(r, "seeds", filter.seeds);
}

}  // namespace

JobKind parse_job_kind(const std::string& name) {
  if (name == "train") return JobKind::kTrain;
  if (name == "decode") return JobKind::kDecode;
  if (name == "mei") return JobKind::kMei;
  throw ConfigError(fmt::format("unknown job kind '{}'{}", name, did_you_mean(name, kind_names())));
}

std::string to_string(JobKind kind) { return kind_names().at(static_cast<std::size_t>(kind)); }

const std::vector<JobKind>& all_job_kinds() {
  static const std::vector<JobKind> kinds = {JobKind::kTrain, JobKind::kDecode, JobKind::kMei};
  return kinds;
}

MeiObjective parse_mei_objective(const std::string& name) {
  if (name == "stretch") return MeiObjective::kStretch;
  if (name == "onehot") return MeiObjective::kOneHot;
  throw ConfigError(fmt::format("unknown objective '{}'{}; expected stretch or onehot", name,
                                did_you_mean(name, {"stretch", "onehot"})));
}

std::string to_string(MeiObjective objective) {
  return objective == MeiObjective::kStretch ? "stretch" : "onehot";
}

nlohmann::ordered_json to_json(const DecodeSettings& s) {
  return {{"ridges", s.ridges}, {"single_trials", s.single_trials}, {"figure_images", s.figure_images}};
}

nlohmann::ordered_json to_json(const MeiSettings& s) {
  nlohmann::ordered_json neurons;
  if (s.all) {
    neurons = "all";
  } else if (!s.list.empty()) {
    neurons = s.list;
  } else {
    neurons = fmt::format("best:{}", s.best);
  }
  return {{"objective", to_string(s.objective)},
          {"neurons", neurons},
          {"starts", s.starts},
          {"steps", s.steps},
          {"step_size", s.step_size},
          {"blur_start", s.blur_start},
          {"blur_end", s.blur_end},
          {"jitter", s.jitter},
          {"seed", s.seed},
          {"neurons_per_chunk", s.neurons_per_chunk}};
}

nlohmann::ordered_json to_json(const ParentFilter& f) {
  return {{"autoencoders", f.autoencoders}, {"readouts", f.readouts}, {"layers", f.layers}, {"seeds", f.seeds}};
}

void read_decode_table(const toml::table& table, const std::string& source, DecodeSettings& s,
                       ParentFilter& filter) {
  const Overridden none;
  TableReader r(table, "decode.", source, none);
  read_filter(r, table, filter);
  read_list(r, "ridges", s.ridges);
  for (double v : s.ridges) {
    if (!(v > 0) || !std::isfinite(v)) {
      r.fail(*table.get("ridges"), "ridges", fmt::format("every ridge must be a positive number, got {}", v));
    }
  }
  r.read("single_trials", s.single_trials);
  r.read("figure_images", s.figure_images);
  r.require_range("figure_images", s.figure_images, 1, 50);
  r.reject_unknown();
}

void read_mei_table(const toml::table& table, const std::string& source, MeiSettings& s, ParentFilter& filter,
                    std::vector<MeiObjective>& objectives) {
  const Overridden none;
  TableReader r(table, "mei.", source, none);
  read_filter(r, table, filter);
  std::vector<std::string> names = {to_string(s.objective)};
  read_list(r, "objective", names);
  objectives.clear();
  for (const auto& name : names) {
    try {
      objectives.push_back(parse_mei_objective(name));
    } catch (const ConfigError& e) {
      r.fail(*table.get("objective"), "objective", e.what());
    }
    if (std::count(objectives.begin(), objectives.end(), objectives.back()) > 1) {
      r.fail(*table.get("objective"), "objective", fmt::format("names '{}' twice", name));
    }
  }
  if (const toml::node* n = r.get("neurons")) {
    // "all", "best:N", or a list of neuron indices.
    if (auto text = n->value<std::string>()) {
      if (*text == "all") {
        s.all = true;
      } else if (text->rfind("best:", 0) == 0) {
        try {
          std::size_t used = 0;
          s.best = std::stoi(text->substr(5), &used);
          if (used != text->size() - 5 || s.best < 1) throw std::invalid_argument("");
        } catch (const std::exception&) {
          r.fail(*n, "neurons", fmt::format("expected \"best:N\" with N >= 1, got \"{}\"", *text));
        }
      } else {
        r.fail(*n, "neurons", fmt::format("expected \"all\", \"best:N\" or a list of neuron indices, got \"{}\"", *text));
      }
    } else {
      read_list(r, "neurons", s.list);
      std::vector<std::int64_t> sorted = s.list;
      std::sort(sorted.begin(), sorted.end());
      if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
        r.fail(*n, "neurons", "lists a neuron twice");
      }
      s.best = 0;
    }
  }
  r.read("starts", s.starts);
  r.require_range("starts", s.starts, 1, 1024);
  r.read("steps", s.steps);
  r.require_range("steps", s.steps, 1, 1000000);
  r.read("step_size", s.step_size);
  r.require_range("step_size", s.step_size, 1e-6, 100.0);
  r.read("blur_start", s.blur_start);
  r.require_range("blur_start", s.blur_start, 0.0, 16.0);
  r.read("blur_end", s.blur_end);
  r.require_range("blur_end", s.blur_end, 0.0, 16.0);
  if ((s.blur_start == 0) != (s.blur_end == 0)) {
    const char* key = s.blur_start == 0 ? "blur_start" : "blur_end";
    r.fail(table.get(key) ? table.get(key)->source() : table.source(), key,
           "blur_start and blur_end are both 0 (no blur) or both positive");
  }
  r.read("jitter", s.jitter);
  r.require_range("jitter", s.jitter, 0, 8);
  r.read("seed", s.seed);
  r.read("neurons_per_chunk", s.neurons_per_chunk);
  r.require_range("neurons_per_chunk", s.neurons_per_chunk, 1, 100000);
  r.reject_unknown();
}

}  // namespace daenr::job
