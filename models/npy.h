#pragma once
// The NumPy .npy format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html),
// the subset the Antolík data and our simulated regions use.

#include <filesystem>

#include <torch/torch.h>

#include "job/npy.h"

namespace daenr::models {

/// Reads a .npy file: format versions 1.0, 2.0 and 3.0, little-endian float32
/// ('<f4') or float64 ('<f8'), C order, any rank. Returns a contiguous CPU
/// tensor of the file's dtype (kFloat or kDouble) and shape.
/// Throws DataError "<path>: <reason>" for a missing file, a bad magic string
/// or header, Fortran order, an unsupported dtype, or a truncated payload.
torch::Tensor read_npy(const std::filesystem::path& path);

/// Writes a CPU float32 or float64 tensor as a version 1.0 .npy file (C order,
/// little-endian), atomically: a temporary file in the same directory is
/// written, flushed and renamed over `path`.
void write_npy(const std::filesystem::path& path, const torch::Tensor& tensor);

}  // namespace daenr::models
