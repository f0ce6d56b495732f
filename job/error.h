#pragma once
// The job contract's errors. what() is one line that names the file (with line:column where
// known), the key or value, and what is wrong.

#include <stdexcept>

namespace daenr::job {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bad or unreadable input data (a data file, an artifact). what() is one line:
/// "<file>: <what is wrong>".
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace daenr::job
