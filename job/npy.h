#pragma once
// The NumPy .npy format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html),
// the subset the Antolík data, the simulated regions and the jobs' artifacts use. Without
// LibTorch, so that reports/ reads the artifacts that models/ writes with the same parser
// (models/npy.h turns an array into a tensor and back).

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace daenr::job {

enum class NpyDtype { kFloat32, kFloat64 };  ///< '<f4', '<f8'

struct NpyArray {
  NpyDtype dtype = NpyDtype::kFloat32;
  std::vector<std::int64_t> shape;
  std::string bytes;  ///< the payload: little-endian, C order, count() * item_bytes() bytes

  std::int64_t count() const;
  std::size_t item_bytes() const { return dtype == NpyDtype::kFloat64 ? 8 : 4; }
  /// The values as float (float64 rounded).
  std::vector<float> to_floats() const;
};

/// Reads a .npy file: format versions 1.0, 2.0 and 3.0, little-endian float32 ('<f4') or
/// float64 ('<f8'), C order, any rank. Throws DataError "<path>: <reason>" for a missing file,
/// a bad magic string or header, Fortran order, an unsupported dtype, or a truncated payload.
NpyArray read_npy(const std::filesystem::path& path);

/// Writes `data` (count of `shape` values of `dtype`) as a version 1.0 .npy file (C order,
/// little-endian), atomically: a temporary file in the same directory is written, flushed and
/// renamed over `path`. Throws DataError.
void write_npy(const std::filesystem::path& path, NpyDtype dtype,
               const std::vector<std::int64_t>& shape, const void* data);

}  // namespace daenr::job
