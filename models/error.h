#pragma once
// Errors raised inside models/. Callers at job boundaries turn them into a
// recorded outcome; the message is one line and names the file or value at fault.

#include <stdexcept>
#include <string>

#include "job/error.h"

namespace at {
class Tensor;
}

namespace daenr::models {

/// Bad or unreadable input data: the job contract's (job/error.h), shared with reports/.
using job::DataError;

/// A model or metric asked for something that cannot be built or computed
/// (unknown name, shape mismatch between arguments).
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A tensor's shape as error messages write it: "(2, 31, 31)"; "undefined" for an undefined one.
std::string shape_string(const at::Tensor& t);

}  // namespace daenr::models
