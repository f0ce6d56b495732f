#pragma once
// Errors raised inside models/. Callers at job boundaries turn them into a
// recorded outcome; the message is one line and names the file or value at fault.

#include <stdexcept>
#include <string>

namespace daenr::models {

/// Bad or unreadable input data. what() is one line: "<file>: <what is wrong>".
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A model or metric asked for something that cannot be built or computed
/// (unknown name, shape mismatch between arguments).
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace daenr::models
