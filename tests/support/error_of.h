#pragma once
// The one-line message of a bad input, as the tests compare it.

#include <functional>
#include <string>

namespace daenr::testing {

/// What `f` throws as an `E` (its what()), or "(no error)" when it throws nothing; any other
/// exception propagates and fails the test.
template <typename E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace daenr::testing
