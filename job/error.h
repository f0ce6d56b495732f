#pragma once
// The job contract's errors. what() is one line that names the file (with line:column where
// known), the key or value, and what is wrong.

#include <stdexcept>

namespace daenr::job {

/// Bad input: a spec, a configuration, a data file, a database, a checkpoint, a flag. Every
/// library's input error derives from it, so that one catch (or one dynamic_cast) tells a
/// user's mistake (exit 2, main's kExitBadInput) from daenr's own (exit 4, internal), wherever
/// the error was thrown and on whichever rank.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A job configuration that cannot be used: a key, a value, a combination.
class ConfigError : public InputError {
 public:
  using InputError::InputError;
};

/// Bad or unreadable input data (a data file, an artifact). what() is one line:
/// "<file>: <what is wrong>".
class DataError : public InputError {
 public:
  using InputError::InputError;
};

}  // namespace daenr::job
