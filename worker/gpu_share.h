#pragma once
// Several worker ranks on one GPU (`jobs_per_gpu`, docs/parallel.md): which GPU a rank takes,
// how much of its memory it may hold, and what a job that runs out of it is told.

#include <cstdint>
#include <exception>
#include <string>

#include <torch/torch.h>

namespace daenr::worker {

/// GPU memory each rank leaves outside LibTorch's caching allocator, for its CUDA context
/// and libraries (about 0.3-0.6 GiB on current GPUs; setMemoryFraction bounds only the cache).
constexpr std::int64_t kCudaContextBytes = 512ll << 20;
/// The smallest share worth running a job in.
constexpr std::int64_t kMinShareBytes = 256ll << 20;

/// Pure: the GPU (index among the visible ones) of the rank with this local rank on a node
/// with `device_count` GPUs, each shared by `jobs_per_gpu` ranks; -1 when none is visible.
///
/// Round-robin, `local_rank mod device_count`, whatever jobs_per_gpu is: a data-parallel
/// group is consecutive ranks, and round-robin puts them on different GPUs (NCCL refuses two
/// ranks of one communicator on one GPU, and two on one GPU would gain nothing), while a node
/// running 1 + device_count x jobs_per_gpu ranks (rank 0, the orchestrator, is local rank 0 of
/// the first node and trains nothing) still gives every GPU exactly jobs_per_gpu workers.
/// Throws ConfigError for jobs_per_gpu < 1 or a negative local rank.
int gpu_for_local_rank(int local_rank, int jobs_per_gpu, int device_count);

/// Pure: the fraction of a GPU of `device_bytes` that each of `jobs_per_gpu` ranks may hold in
/// LibTorch's caching allocator: 1 for one rank, else (device_bytes / jobs_per_gpu -
/// kCudaContextBytes) / device_bytes. Throws ConfigError naming jobs_per_gpu when that share
/// is under kMinShareBytes.
double gpu_memory_fraction(int jobs_per_gpu, std::int64_t device_bytes);

/// Bounds this process's caching allocator on `device` to gpu_memory_fraction() of it. A no-op
/// for jobs_per_gpu 1, a device that is not CUDA (or has no index), and a build without CUDA.
void share_gpu(const torch::Device& device, int jobs_per_gpu);

/// True for LibTorch's out-of-memory error (c10::OutOfMemoryError, or a c10::Error that
/// says "out of memory", as some CUDA libraries' failures do).
bool is_out_of_memory(const std::exception& e);

/// The one line a failed job records for `e`: its first line, and for an out-of-memory error
/// what a user can do about it.
std::string failure_message(const std::exception& e);

}  // namespace daenr::worker
