#pragma once
// Small regions on disk in the Antolík layout, and files read back whole: what the data,
// expansion, report and talk tests share.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "models/data.h"
#include "models/npy.h"
#include "models/synth.h"

namespace daenr::testing {

/// A simulated region small enough to load in milliseconds: 4 neurons, 30 training and 6 test
/// images, 3 repeats.
inline models::RawRegion tiny_region(std::uint64_t seed) {
  models::VirtualRegionSpec spec;
  spec.neurons = 4;
  spec.train_images = 30;
  spec.test_images = 6;
  spec.repeats = 3;
  return models::simulate_region(spec, seed);
}

/// `r` written to `dir` as the five .npy files of the Antolík layout.
inline void write_region(const std::filesystem::path& dir, const models::RawRegion& r) {
  std::filesystem::create_directories(dir);
  models::write_npy(dir / "training_inputs.npy", r.train_inputs);
  models::write_npy(dir / "training_set.npy", r.train_responses);
  models::write_npy(dir / "validation_inputs.npy", r.test_inputs);
  models::write_npy(dir / "validation_set.npy", r.test_responses);
  models::write_npy(dir / "raw_validation_set.npy", r.test_raw);
}

/// A whole file's bytes ("" when it cannot be read).
inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace daenr::testing
