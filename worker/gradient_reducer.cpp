#include "worker/gradient_reducer.h"

#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <map>

#include "mpi/check.h"
#include "worker/gpu_share.h"
#include "job/config.h"

#ifdef DAENR_HAVE_NCCL
#include <nccl.h>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace daenr::worker {

using job::ConfigError;

std::vector<std::vector<std::size_t>> assign_buckets(const std::vector<std::size_t>& bytes,
                                                     std::size_t cap) {
  std::vector<std::vector<std::size_t>> buckets;
  std::size_t filled = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    // A bucket holding something is closed when this tensor would take it past the cap (a
    // tensor over the cap therefore starts, and fills, a bucket of its own).
    if (buckets.empty() || (!buckets.back().empty() && filled + bytes[i] > cap)) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(i);
    filled += bytes[i];
  }
  return buckets;
}

int local_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"}) {
    const char* value = std::getenv(name);
    if (value == nullptr) continue;
    int rank = -1;
    const char* end = value + std::strlen(value);
    const auto [ptr, ec] = std::from_chars(value, end, rank);
    if (ec != std::errc() || ptr != end || ptr == value || rank < 0) {
      throw ConfigError(fmt::format("{}: '{}' is not a non-negative integer", name, value));
    }
    return rank;
  }
  return 0;
}

std::string device_for_local_rank(const std::string& requested, int local_rank, int device_count) {
  if (requested != "cuda" || device_count <= 0) return requested;
  return fmt::format("cuda:{}", gpu_for_local_rank(local_rank, 1, device_count));
}

std::string device_for_local_rank(const std::string& requested) {
  if (requested != "cuda") return requested;
  return device_for_local_rank(requested, local_rank(),
                               static_cast<int>(torch::cuda::device_count()));
}

namespace {

MPI_Datatype mpi_type(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat:
      return MPI_FLOAT;
    case torch::kDouble:
      return MPI_DOUBLE;
    case torch::kLong:
      return MPI_INT64_T;
    case torch::kInt:
      return MPI_INT32_T;
    case torch::kByte:
      return MPI_UINT8_T;
    default:
      throw ParallelError(
          fmt::format("MPI reducer: no MPI type for tensors of {}", c10::toString(type)));
  }
}

// What both transports share: the group's own communicator, the bucketing, and the stop vote
// (a host value, which MPI carries on any build).
class ReducerBase : public GradientReducer {
 public:
  ReducerBase(MPI_Comm group, std::size_t bucket_bytes) : cap_(bucket_bytes) {
    int initialised = 0;
    mpi::check(MPI_Initialized(&initialised), "MPI_Initialized");
    if (!initialised) throw ParallelError("make_reducer: MPI is not initialised");
    if (group == MPI_COMM_NULL) throw ParallelError("make_reducer: the group is MPI_COMM_NULL");
    mpi::check(MPI_Comm_dup(group, &comm_), "MPI_Comm_dup");
    mpi::check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    mpi::check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  ~ReducerBase() override {
    int finalised = 0;
    mpi::check_quietly(MPI_Finalized(&finalised), "MPI_Finalized");
    if (!finalised) mpi::check_quietly(MPI_Comm_free(&comm_), "MPI_Comm_free");
  }
  ReducerBase(const ReducerBase&) = delete;
  ReducerBase& operator=(const ReducerBase&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  bool any(bool flag) override {
    int value = flag ? 1 : 0;
    mpi::check(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_LOR, comm_), "MPI_Allreduce");
    return value != 0;
  }

  void all_reduce_sum(torch::Tensor& tensor) override {
    if (fits(tensor)) {
      sum_in_place(tensor);
      return;
    }
    // Not contiguous or elsewhere: a contiguous copy on the work device is reduced instead.
    auto flat = tensor.to(work_device()).contiguous();
    sum_in_place(flat);
    tensor.copy_(flat);
  }

  void all_reduce_mean(std::vector<torch::Tensor>& tensors) override {
    if (size_ == 1) return;
    // One flat buffer per bucket: a bucket holds one type, so tensors are grouped by type
    // first (in practice all gradients are float32 and this is one group), in order.
    std::vector<torch::ScalarType> types;
    std::map<torch::ScalarType, std::vector<std::size_t>> by_type;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const auto type = tensors[i].scalar_type();
      if (!by_type.count(type)) types.push_back(type);
      by_type[type].push_back(i);
    }
    for (const auto type : types) {
      const auto& members = by_type[type];
      std::vector<std::size_t> bytes;
      bytes.reserve(members.size());
      for (auto i : members) bytes.push_back(tensors[i].numel() * tensors[i].element_size());
      for (const auto& bucket : assign_buckets(bytes, cap_)) {
        reduce_bucket(tensors, members, bucket, type);
      }
    }
  }

 protected:
  // Where flat buffers live, and the in-place sum of one contiguous tensor there.
  virtual torch::Device work_device() const = 0;
  virtual void sum_in_place(torch::Tensor& flat) = 0;

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;

 private:
  bool fits(const torch::Tensor& t) const {
    return t.device() == work_device() && t.is_contiguous();
  }

  void reduce_bucket(std::vector<torch::Tensor>& tensors, const std::vector<std::size_t>& members,
                     const std::vector<std::size_t>& bucket, torch::ScalarType type) {
    if (bucket.size() == 1 && fits(tensors[members[bucket[0]]])) {
      auto& t = tensors[members[bucket[0]]];
      sum_in_place(t);
      t.div_(size_);
      return;
    }
    int64_t total = 0;
    for (auto b : bucket) total += tensors[members[b]].numel();
    auto flat = torch::empty({total}, torch::TensorOptions().dtype(type).device(work_device()));
    int64_t offset = 0;
    for (auto b : bucket) {
      const auto& t = tensors[members[b]];
      flat.slice(0, offset, offset + t.numel()).view(t.sizes()).copy_(t);
      offset += t.numel();
    }
    sum_in_place(flat);
    flat.div_(size_);
    offset = 0;
    for (auto b : bucket) {
      auto& t = tensors[members[b]];
      t.copy_(flat.slice(0, offset, offset + t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }

  std::size_t cap_;
};

class MpiReducer final : public ReducerBase {
 public:
  using ReducerBase::ReducerBase;

 protected:
  torch::Device work_device() const override { return torch::kCPU; }

  void sum_in_place(torch::Tensor& flat) override {
    const auto type = mpi_type(flat.scalar_type());
    auto* data = static_cast<char*>(flat.data_ptr());
    // MPI counts are ints: a tensor of more than INT_MAX elements goes in pieces.
    const int64_t piece = INT_MAX / 2;
    for (int64_t start = 0; start < flat.numel(); start += piece) {
      const int count = static_cast<int>(std::min(piece, flat.numel() - start));
      mpi::check(MPI_Allreduce(MPI_IN_PLACE, data + start * flat.element_size(), count, type,
                              MPI_SUM, comm_),
                "MPI_Allreduce");
    }
  }
};

#ifdef DAENR_HAVE_NCCL

void check_nccl(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) throw ParallelError(fmt::format("{}: {}", what, ncclGetErrorString(rc)));
}

ncclDataType_t nccl_type(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat:
      return ncclFloat32;
    case torch::kDouble:
      return ncclFloat64;
    case torch::kHalf:
      return ncclFloat16;
    case torch::kLong:
      return ncclInt64;
    case torch::kInt:
      return ncclInt32;
    case torch::kByte:
      return ncclUint8;
#if NCCL_VERSION_CODE >= 21000
    case torch::kBFloat16:
      return ncclBfloat16;
#endif
    default:
      throw ParallelError(
          fmt::format("NCCL reducer: no NCCL type for tensors of {}", c10::toString(type)));
  }
}

// The group's ranks each drive one GPU. The NCCL unique id is made by rank 0 and broadcast
// over the group's MPI communicator; collectives run on LibTorch's current stream of the
// device, so they are ordered with the kernels that produced and consume the tensors.
class NcclReducer final : public ReducerBase {
 public:
  NcclReducer(MPI_Comm group, const torch::Device& device, std::size_t bucket_bytes)
      : ReducerBase(group, bucket_bytes),
        device_(torch::kCUDA, device.has_index()
                                  ? device.index()
                                  : static_cast<c10::DeviceIndex>(c10::cuda::current_device())) {
    ncclUniqueId id;
    std::memset(&id, 0, sizeof id);
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    mpi::check(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, comm_), "MPI_Bcast (NCCL unique id)");
    c10::cuda::CUDAGuard guard(device_.index());
    check_nccl(ncclCommInitRank(&nccl_, size_, id, rank_), "ncclCommInitRank");
  }
  ~NcclReducer() override {
    if (nccl_ != nullptr) ncclCommDestroy(nccl_);
  }

 protected:
  torch::Device work_device() const override { return device_; }

  void sum_in_place(torch::Tensor& flat) override {
    c10::cuda::CUDAGuard guard(device_.index());
    auto stream = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    check_nccl(ncclAllReduce(flat.data_ptr(), flat.data_ptr(), static_cast<size_t>(flat.numel()),
                             nccl_type(flat.scalar_type()), ncclSum, nccl_, stream),
               "ncclAllReduce");
  }

 private:
  torch::Device device_;
  ncclComm_t nccl_ = nullptr;
};

#endif  // DAENR_HAVE_NCCL

}  // namespace

std::unique_ptr<GradientReducer> make_reducer(MPI_Comm group, const torch::Device& device,
                                              std::size_t bucket_bytes) {
#ifdef DAENR_HAVE_NCCL
  if (device.is_cuda()) return std::make_unique<NcclReducer>(group, device, bucket_bytes);
#endif
  return std::make_unique<MpiReducer>(group, bucket_bytes);
}

}  // namespace daenr::worker
