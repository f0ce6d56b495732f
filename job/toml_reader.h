#pragma once
// What job configurations and sweep specs share for reading TOML: a reader of
// one table against a fixed set of keys (unknown keys are errors with a
// suggestion for a near miss; every error names file:line:column and the
// dotted key), and the parse of a whole job table into a JobConfig, which
// sweep expansion calls with the spec's own nodes so that a bad value in a
// spec is blamed on the spec's line.

#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <toml++/toml.h>
#include <type_traits>
#include <vector>

#include "job/config.h"
#include "job/text.h"

namespace daenr::job {

// "file:line:col" of something parsed from a file.
inline std::string where(const toml::source_region& src, const std::string& fallback) {
  if (!src.path || src.begin.line == 0) return fallback;
  return fmt::format("{}:{}:{}", *src.path, src.begin.line, src.begin.column);
}

// Dotted key -> the --set text that set it: values merged in from the command
// line are blamed on that flag, not on the file.
using Overridden = std::map<std::string, std::string>;

// Reads one TOML table against a fixed set of keys, so that every key is
// checked once and anything left over is reported as unknown.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string prefix, std::string source,
              const Overridden& overridden)
      : table_(table),
        prefix_(std::move(prefix)),
        source_(std::move(source)),
        overridden_(overridden) {}

  [[noreturn]] void fail(const toml::source_region& src, const std::string& key,
                         const std::string& what) const {
    const auto o = overridden_.find(prefix_ + key);
    const std::string location = o != overridden_.end() ? o->second : where(src, source_);
    throw ConfigError(fmt::format("{}: {}{}: {}", location, prefix_, key, what));
  }
  [[noreturn]] void fail(const toml::node& node, const std::string& key,
                         const std::string& what) const {
    fail(node.source(), key, what);
  }

  template <typename T>
  void read(const std::string& key, T& out) {
    known_.insert(key);
    const toml::node* node = table_.get(key);
    if (!node) return;
    if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = node->value<std::string>()) {
        out = *v;
        return;
      }
      fail(*node, key, fmt::format("expected a string, got {}", type_name(*node)));
    } else if constexpr (std::is_same_v<T, bool>) {
      if (auto v = node->value_exact<bool>()) {
        out = *v;
        return;
      }
      fail(*node, key, fmt::format("expected true or false, got {}", type_name(*node)));
    } else if constexpr (std::is_floating_point_v<T>) {
      // Integers are accepted where a real is expected: "alpha = 1" means 1.0.
      if (node->is_integer() || node->is_floating_point()) {
        const double v = *node->value<double>();
        if (!std::isfinite(v)) fail(*node, key, fmt::format("must be finite, got {}", v));
        out = static_cast<T>(v);
        return;
      }
      fail(*node, key, fmt::format("expected a number, got {}", type_name(*node)));
    } else {
      if (auto v = node->value_exact<int64_t>()) {
        if constexpr (std::is_unsigned_v<T>) {
          if (*v < 0) fail(*node, key, fmt::format("must not be negative, got {}", *v));
        } else {
          if (*v < std::numeric_limits<T>::min() || *v > std::numeric_limits<T>::max()) {
            fail(*node, key, fmt::format("out of range, got {}", *v));
          }
        }
        out = static_cast<T>(*v);
        return;
      }
      fail(*node, key, fmt::format("expected an integer, got {}", type_name(*node)));
    }
  }

  template <typename T>
  void require_range(const std::string& key, T value, T lo, T hi, const std::string& what = "") {
    if (value < lo || value > hi) {
      const toml::node* node = table_.get(key);
      const std::string range = what.empty() ? fmt::format("must be in [{}, {}]", lo, hi) : what;
      fail(node ? node->source() : toml::source_region{}, key,
           fmt::format("{}, got {}", range, value));
    }
  }

  /// The node under `key` (marked as known), or null; for callers that read
  /// shapes TableReader has no typed read for (arrays of pairs, say).
  const toml::node* get(const std::string& key) {
    known_.insert(key);
    return table_.get(key);
  }
  const std::string& prefix() const { return prefix_; }
  /// The human name of a node's type ("an integer", "a table" ...).
  static std::string type_name(const toml::node& node) {
    switch (node.type()) {
      case toml::node_type::string:
        return "a string";
      case toml::node_type::integer:
        return "an integer";
      case toml::node_type::floating_point:
        return "a number";
      case toml::node_type::boolean:
        return "a boolean";
      case toml::node_type::array:
        return "an array";
      case toml::node_type::table:
        return "a table";
      default:
        return "a date or time";
    }
  }

  const toml::table* sub_table(const std::string& key) {
    known_.insert(key);
    const toml::node* node = table_.get(key);
    if (!node) return nullptr;
    if (!node->is_table())
      fail(*node, key, fmt::format("expected a table, got {}", type_name(*node)));
    return node->as_table();
  }

  // Any key not read is a mistake: report the first, with the nearest known key.
  void reject_unknown() const {
    for (const auto& [k, node] : table_) {
      const std::string key(k.str());
      if (known_.count(key)) continue;
      const std::string hint = did_you_mean(key, {known_.begin(), known_.end()}, prefix_);
      fail(k.source(), key, fmt::format("unknown key{}", hint));
    }
  }

  const std::string& source() const { return source_; }

 private:
  const toml::table& table_;
  std::string prefix_;
  std::string source_;
  std::set<std::string> known_;
  const Overridden& overridden_;
};

inline toml::table parse_toml(const std::string& text, const std::string& source) {
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw ConfigError(fmt::format("{}:{}:{}: {}", source, b.line, b.column, e.description()));
  }
}

// Recursively merges `overlay` into `base` (tables merge, values replace).
inline void merge(toml::table& base, const toml::table& overlay) {
  for (const auto& [k, node] : overlay) {
    if (node.is_table()) {
      if (auto* existing = base.get_as<toml::table>(k)) {
        merge(*existing, *node.as_table());
        continue;
      }
    }
    base.insert_or_assign(k, node);
  }
}

/// Reads a whole job table (top-level keys, [model], [loss], [train]) and
/// validates it. `overridden` maps dotted keys to the text that set them
/// (blamed instead of the file).
JobConfig job_config_from_table(const toml::table& root, const std::string& source,
                                const Overridden& overridden = {});

}  // namespace daenr::job
