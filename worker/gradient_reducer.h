#pragma once
// Data parallelism inside one job: the collectives a group of ranks training one model needs.
// docs/parallel.md ("Data parallelism inside a job") describes how the trainer uses them, the
// bucketing and the BatchNorm statistics.
//
// The MPI implementation reduces CPU tensors (other tensors are staged through host memory);
// the NCCL implementation, built only where CMake finds a CUDA LibTorch and NCCL
// (DAENR_HAVE_NCCL), reduces CUDA tensors on LibTorch's current stream.

#include <cstddef>
#include <memory>
#include <mpi.h>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace daenr::worker {

/// A collective that could not be set up or carried out: an NCCL error, a tensor of a type the
/// transport cannot carry, MPI not initialised. A failed MPI call is an mpi::MpiError
/// (mpi/check.h), the one type for that check.
class ParallelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The collectives of one data-parallel group. Every member of the group must make the same
/// calls in the same order with tensors of the same shapes and types.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  virtual int rank() const = 0;  // within the group
  virtual int size() const = 0;
  /// Replaces each tensor by the mean over the group's ranks (in place), bucketed.
  virtual void all_reduce_mean(std::vector<torch::Tensor>& tensors) = 0;
  /// In place sum over the group (for BatchNorm statistics and small values).
  virtual void all_reduce_sum(torch::Tensor& tensor) = 0;
  /// Logical OR over the group (a collective stop decision).
  virtual bool any(bool flag) = 0;
};

/// MPI (CPU tensors) or NCCL (CUDA tensors, when built with it) over `group`, which
/// the caller owns and which must outlive the reducer. bucket_bytes caps a bucket.
///
/// Collective over `group`: every member calls it. The reducer works on its own duplicate of
/// `group` (its messages never meet the caller's) and frees it when destroyed, which must
/// happen before MPI_Finalize. A CUDA `device` without NCCL in the build gets the MPI reducer,
/// which then copies through host memory; MPI must then be initialised with at least
/// MPI_THREAD_SERIALIZED, because LibTorch runs a CUDA backward pass on its own thread.
std::unique_ptr<GradientReducer> make_reducer(MPI_Comm group, const torch::Device& device,
                                              std::size_t bucket_bytes = 25u << 20);

/// Pure: the buckets (lists of tensor indices, in order) for tensors of these byte sizes.
///
/// Tensors are taken in order and a bucket is closed when the next tensor would take it past
/// `cap`; a tensor larger than `cap` is a bucket of its own. Every index appears exactly once
/// and no bucket is empty, so an empty input gives no buckets.
std::vector<std::vector<std::size_t>> assign_buckets(const std::vector<std::size_t>& bytes,
                                                     std::size_t cap);

/// The device of this rank: "cuda:<local rank mod device count>" (gpu_for_local_rank) when `requested` is "cuda"
/// (local rank from OMPI_COMM_WORLD_LOCAL_RANK, else SLURM_LOCALID, else 0); otherwise `requested`.
std::string device_for_local_rank(const std::string& requested);

/// Pure form of the above: `requested` unchanged unless it is "cuda"; "cuda" unchanged where
/// `device_count` is 0 (the trainer then reports that no CUDA device is available).
std::string device_for_local_rank(const std::string& requested, int local_rank, int device_count);

/// This process's rank among those on its node: OMPI_COMM_WORLD_LOCAL_RANK, else
/// SLURM_LOCALID, else 0. Throws ConfigError when the variable is not a non-negative integer.
int local_rank();

}  // namespace daenr::worker
