#include "worker/gpu_share.h"

#include <fmt/format.h>

#include <c10/util/Exception.h>

#include "job/config.h"
#include "job/text.h"

#ifdef DAENR_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace daenr::worker {

using job::ConfigError;

int gpu_for_local_rank(int local_rank, int jobs_per_gpu, int device_count) {
  if (jobs_per_gpu < 1)
    throw ConfigError(fmt::format("jobs_per_gpu {}: expected an integer >= 1", jobs_per_gpu));
  if (local_rank < 0)
    throw ConfigError(fmt::format("local rank {}: expected an integer >= 0", local_rank));
  if (device_count <= 0) return -1;
  return local_rank % device_count;
}

double gpu_memory_fraction(int jobs_per_gpu, std::int64_t device_bytes) {
  if (jobs_per_gpu < 1)
    throw ConfigError(fmt::format("jobs_per_gpu {}: expected an integer >= 1", jobs_per_gpu));
  if (jobs_per_gpu == 1) return 1.0;
  const std::int64_t share = device_bytes / jobs_per_gpu - kCudaContextBytes;
  if (share < kMinShareBytes) {
    throw ConfigError(
        fmt::format("jobs_per_gpu {}: each rank's share of a {:.1f} GiB GPU would be {} MiB after "
                    "{} MiB for its CUDA context; use fewer jobs per GPU",
                    jobs_per_gpu, double(device_bytes) / double(1ll << 30), share >> 20,
                    kCudaContextBytes >> 20));
  }
  return double(share) / double(device_bytes);
}

void share_gpu(const torch::Device& device, int jobs_per_gpu) {
  if (jobs_per_gpu == 1 || !device.is_cuda() || !device.has_index()) return;
#ifdef DAENR_HAVE_CUDA
  const int index = device.index();
  const auto total =
      static_cast<std::int64_t>(at::cuda::getDeviceProperties(index)->totalGlobalMem);
  const double fraction = gpu_memory_fraction(jobs_per_gpu, total);
  // The caching allocator exists once CUDA is initialised on the device, which a first
  // tensor there does (LibTorch 1.13's setMemoryFraction asserts otherwise).
  (void)torch::empty({1}, torch::TensorOptions().device(device));
  c10::cuda::CUDACachingAllocator::setMemoryFraction(fraction, index);
#else
  (void)jobs_per_gpu;
#endif
}

bool is_out_of_memory(const std::exception& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  const auto* error = dynamic_cast<const c10::Error*>(&e);
  return error != nullptr && error->msg().find("out of memory") != std::string::npos;
}

std::string failure_message(const std::exception& e) {
  const std::string line = job::first_line(e.what());
  if (!is_out_of_memory(e)) return line;
  return "out of GPU memory (with jobs_per_gpu > 1 each rank holds only its share of the GPU: "
         "lower jobs_per_gpu or train.batch_size): " +
         line;
}

}  // namespace daenr::worker
