#include "models/npy.h"

#include <fmt/format.h>

#include <cstring>

#include "models/error.h"

namespace daenr::models {

torch::Tensor read_npy(const std::filesystem::path& path) {
  const job::NpyArray a = job::read_npy(path);
  const auto dtype = a.dtype == job::NpyDtype::kFloat64 ? torch::kDouble : torch::kFloat;
  auto tensor = torch::empty(a.shape, torch::TensorOptions().dtype(dtype));
  std::memcpy(tensor.data_ptr(), a.bytes.data(), a.bytes.size());
  return tensor;
}

void write_npy(const std::filesystem::path& path, const torch::Tensor& tensor) {
  const auto t = tensor.contiguous().cpu();
  job::NpyDtype dtype;
  if (t.scalar_type() == torch::kDouble) {
    dtype = job::NpyDtype::kFloat64;
  } else if (t.scalar_type() == torch::kFloat) {
    dtype = job::NpyDtype::kFloat32;
  } else {
    throw DataError(fmt::format("{}: only float32 and float64 can be written", path.string()));
  }
  job::write_npy(path, dtype, t.sizes().vec(), t.data_ptr());
}

}  // namespace daenr::models
