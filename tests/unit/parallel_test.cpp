// Data parallelism, the parts that need no second process: gradient bucketing, the choice of
// a rank's GPU, and the synchronised BatchNorm with no group or a group of one. The
// multi-rank tests are in tests/mpi/.

#include <gtest/gtest.h>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <stdlib.h>

#include "tests/support/error_of.h"
#include "models/error.h"
#include "models/network.h"
#include "worker/gpu_share.h"
#include "worker/gradient_reducer.h"
#include "job/config.h"

namespace daenr::worker {
namespace {

using daenr::testing::error_of;

using Buckets = std::vector<std::vector<std::size_t>>;

TEST(Parallel, BucketsCloseBeforeTheNextTensorWouldPassTheCap) {
  // 10 + 20 = 30; 30 + 30 > 50: close; 30 + 40 > 50: close; 40 + 5 = 45.
  EXPECT_EQ(assign_buckets({10, 20, 30, 40, 5}, 50), (Buckets{{0, 1}, {2}, {3, 4}}));
  // Filling a bucket exactly is allowed.
  EXPECT_EQ(assign_buckets({25, 25, 1}, 50), (Buckets{{0, 1}, {2}}));
  // A tensor over the cap is a bucket of its own, and the next one starts afresh.
  EXPECT_EQ(assign_buckets({10, 100, 10, 10}, 50), (Buckets{{0}, {1}, {2, 3}}));
  // Cap 0: one tensor per bucket, whatever its size.
  EXPECT_EQ(assign_buckets({4, 0, 4}, 0), (Buckets{{0}, {1}, {2}}));
  // An empty tensor fits wherever there is room.
  EXPECT_EQ(assign_buckets({10, 0, 40}, 50), (Buckets{{0, 1, 2}}));
  EXPECT_EQ(assign_buckets({}, 50), Buckets{});
  // The default cap packs a model's gradients into few buckets, not one per parameter.
  const std::vector<std::size_t> model(60, 400'000);  // 60 tensors of 100k floats
  EXPECT_EQ(assign_buckets(model, 25u << 20).size(), 1u);
  EXPECT_EQ(assign_buckets(model, 4'000'000).size(), 6u);
}

TEST(Parallel, DeviceForLocalRankSpreadsRanksOverTheGpus) {
  EXPECT_EQ(device_for_local_rank("cuda", 0, 4), "cuda:0");
  EXPECT_EQ(device_for_local_rank("cuda", 5, 4), "cuda:1");
  EXPECT_EQ(device_for_local_rank("cuda:2", 5, 4), "cuda:2");  // an explicit choice stays
  EXPECT_EQ(device_for_local_rank("cpu", 3, 4), "cpu");
  EXPECT_EQ(device_for_local_rank("cuda", 3, 0), "cuda");  // no device: left to the trainer
}

TEST(Parallel, GpuForLocalRankGivesEachGpuJobsPerGpuWorkersAndAGroupDistinctGpus) {
  EXPECT_EQ(gpu_for_local_rank(0, 1, 4), 0);
  EXPECT_EQ(gpu_for_local_rank(5, 1, 4), 1);
  EXPECT_EQ(gpu_for_local_rank(5, 3, 4), 1);  // the GPU does not depend on jobs per GPU
  EXPECT_EQ(gpu_for_local_rank(7, 8, 1), 0);  // one GPU: everyone on it
  EXPECT_EQ(gpu_for_local_rank(3, 2, 0), -1);  // none visible
  // One node running rank 0 (local rank 0, no GPU) and G x k workers: k workers per GPU.
  for (const auto& [gpus, k] : {std::pair{2, 3}, std::pair{4, 2}, std::pair{3, 5}, std::pair{1, 16}}) {
    std::map<int, int> workers;
    for (int local = 1; local <= gpus * k; ++local) ++workers[gpu_for_local_rank(local, k, gpus)];
    ASSERT_EQ(static_cast<int>(workers.size()), gpus) << gpus << "x" << k;
    for (const auto& [gpu, n] : workers) EXPECT_EQ(n, k) << "GPU " << gpu << " of " << gpus << "x" << k;
  }
  // 4 GPUs, 2 jobs each, data-parallel groups of 2 (ranks 1-2, 3-4, ...): a group never shares
  // a GPU (NCCL refuses that).
  for (int first = 1; first <= 8; first += 2) {
    EXPECT_NE(gpu_for_local_rank(first, 2, 4), gpu_for_local_rank(first + 1, 2, 4)) << first;
  }
  EXPECT_EQ(error_of<job::ConfigError>([] { gpu_for_local_rank(1, 0, 4); }), "jobs_per_gpu 0: expected an integer >= 1");
  EXPECT_EQ(error_of<job::ConfigError>([] { gpu_for_local_rank(1, -2, 4); }), "jobs_per_gpu -2: expected an integer >= 1");
  EXPECT_EQ(error_of<job::ConfigError>([] { gpu_for_local_rank(-1, 1, 4); }), "local rank -1: expected an integer >= 0");
}

TEST(Parallel, GpuMemoryFractionIsAnEqualShareLessEachRanksContext) {
  constexpr std::int64_t kGiB = 1ll << 30;
  EXPECT_EQ(gpu_memory_fraction(1, 80 * kGiB), 1.0);  // alone: the whole GPU, nothing set
  // 80 GiB / 4 = 20 GiB, less 0.5 GiB: 19.5 / 80.
  EXPECT_DOUBLE_EQ(gpu_memory_fraction(4, 80 * kGiB), 19.5 / 80);
  EXPECT_DOUBLE_EQ(gpu_memory_fraction(16, 80 * kGiB), 4.5 / 80);
  // k shares and k contexts fit in the GPU.
  for (int k : {2, 3, 8, 16, 64}) EXPECT_LE(k * gpu_memory_fraction(k, 80 * kGiB) * 80 * kGiB + k * kCudaContextBytes, 80.0 * kGiB);
  // 16 GiB / 32 = 512 MiB, nothing left after the context: refused.
  EXPECT_EQ(error_of<job::ConfigError>([&] { gpu_memory_fraction(32, 16 * kGiB); }),
            "jobs_per_gpu 32: each rank's share of a 16.0 GiB GPU would be 0 MiB after 512 MiB for its CUDA "
            "context; use fewer jobs per GPU");
  EXPECT_EQ(error_of<job::ConfigError>([&] { gpu_memory_fraction(0, 16 * kGiB); }), "jobs_per_gpu 0: expected an integer >= 1");
}

TEST(Parallel, ShareGpuLeavesTheCpuAlone) {
  // No CUDA here (or a CPU device): nothing to bound, nothing thrown.
  share_gpu(torch::Device("cpu"), 4);
  share_gpu(torch::Device("cuda"), 4);  // no index: "cuda" with no device visible
  share_gpu(torch::Device("cpu"), 1);
}

TEST(Parallel, OutOfMemoryIsAJobFailureThatSaysWhatToDo) {
  const c10::OutOfMemoryError oom({"f", "file.cpp", 1},
                                  "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.11 GiB total capacity)");
  EXPECT_TRUE(is_out_of_memory(oom));
  EXPECT_EQ(failure_message(oom),
            "out of GPU memory (with jobs_per_gpu > 1 each rank holds only its share of the GPU: lower jobs_per_gpu "
            "or train.batch_size): CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.11 GiB total capacity)");
  // Some CUDA libraries' failures are plain c10::Errors that say so.
  const c10::Error cublas({"f", "file.cpp", 1}, "CUDA error: out of memory\nmore detail");
  EXPECT_TRUE(is_out_of_memory(cublas));
  EXPECT_EQ(failure_message(cublas).substr(0, 18), "out of GPU memory ");
  EXPECT_EQ(failure_message(cublas).find('\n'), std::string::npos);
  // Anything else: its first line, as before.
  const std::runtime_error other("data/x.npy: bad header\nsecond line");
  EXPECT_FALSE(is_out_of_memory(other));
  EXPECT_EQ(failure_message(other), "data/x.npy: bad header");
  const c10::Error shape({"f", "file.cpp", 1}, "shape mismatch");
  EXPECT_FALSE(is_out_of_memory(shape));
}

// Sets (or, with nullopt, unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(Parallel, LocalRankComesFromOpenMpiThenSlurm) {
  {
    ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", "3"), slurm("SLURM_LOCALID", "1");
    EXPECT_EQ(local_rank(), 3);
  }
  {
    ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", std::nullopt), slurm("SLURM_LOCALID", "1");
    EXPECT_EQ(local_rank(), 1);
  }
  {
    ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", std::nullopt),
        slurm("SLURM_LOCALID", std::nullopt);
    EXPECT_EQ(local_rank(), 0);
    // Not "cuda": no device count is asked for, and the request is returned as it is.
    EXPECT_EQ(device_for_local_rank("cpu"), "cpu");
  }
}

TEST(Parallel, LocalRankThatIsNotANumberIsAConfigError) {
  for (const char* bad : {"x1", "1x", "-1", ""}) {
    ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", bad);
    try {
      local_rank();
      ADD_FAILURE() << "expected ConfigError for '" << bad << "'";
    } catch (const job::ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), std::string("OMPI_COMM_WORLD_LOCAL_RANK: '") + bad +
                                           "' is not a non-negative integer");
    }
  }
}

// A BatchNorm2d and a SyncBatchNorm2d with the same (non-trivial) affine parameters.
struct BatchNormPair {
  torch::nn::BatchNorm2d native{4};
  models::SyncBatchNorm2d sync{4};
  BatchNormPair() {
    torch::NoGradGuard no_grad;
    native->weight.uniform_(0.5, 1.5);
    native->bias.uniform_(-0.5, 0.5);
    sync->weight.copy_(native->weight);
    sync->bias.copy_(native->bias);
  }
};

struct Pass {
  torch::Tensor y, dx, dweight, dbias;
};

template <class Module>
Pass run(Module& m, const torch::Tensor& x, const torch::Tensor& probe) {
  auto xi = x.clone().requires_grad_(true);
  auto y = m->forward(xi);
  (y * probe).sum().backward();
  return {y.detach(), xi.grad(), m->weight.grad().clone(), m->bias.grad().clone()};
}

TEST(SyncBatchNorm, WithoutAGroupIsBatchNorm2dBitForBit) {
  torch::manual_seed(1);
  BatchNormPair bn;
  auto x = torch::randn({6, 4, 5, 5}) * 3 + 1, probe = torch::randn({6, 4, 5, 5});
  for (int step = 0; step < 2; ++step) {
    auto a = run(bn.native, x, probe), b = run(bn.sync, x, probe);
    EXPECT_TRUE(torch::equal(a.y, b.y));
    EXPECT_TRUE(torch::equal(a.dx, b.dx));
    EXPECT_TRUE(torch::equal(a.dweight, b.dweight));
  }
  EXPECT_TRUE(torch::equal(bn.native->running_var, bn.sync->running_var));
  bn.native->eval();
  bn.sync->eval();
  EXPECT_TRUE(torch::equal(bn.native->forward(x), bn.sync->forward(x)));
}

TEST(SyncBatchNorm, AGroupOfOneComputesWhatBatchNorm2dComputes) {
  torch::manual_seed(2);
  BatchNormPair bn;
  int calls = 0;
  ASSERT_EQ(models::set_batchnorm_group(*bn.sync, [&](torch::Tensor&) { ++calls; }), 1);
  ASSERT_TRUE(bn.sync->has_group());
  // A large mean against a small spread: the case where E[x^2] - E[x]^2 needs float64.
  auto x = torch::randn({6, 4, 5, 5}) * 0.5 + 20, probe = torch::randn({6, 4, 5, 5});
  for (int step = 0; step < 3; ++step) {
    auto a = run(bn.native, x, probe), b = run(bn.sync, x, probe);
    EXPECT_TRUE(torch::allclose(a.y, b.y, 1e-5, 1e-5)) << "step " << step;
    EXPECT_TRUE(torch::allclose(a.dx, b.dx, 1e-4, 1e-5)) << "step " << step;
    EXPECT_TRUE(torch::allclose(a.dweight, b.dweight, 1e-4, 1e-4)) << "step " << step;
    EXPECT_TRUE(torch::allclose(a.dbias, b.dbias, 1e-4, 1e-4)) << "step " << step;
    bn.native->zero_grad();
    bn.sync->zero_grad();
  }
  EXPECT_EQ(calls, 6);  // one sum forward and one backward per step
  EXPECT_TRUE(torch::allclose(bn.native->running_mean, bn.sync->running_mean, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(bn.native->running_var, bn.sync->running_var, 1e-6, 1e-6));
  EXPECT_EQ(bn.sync->num_batches_tracked.item<int64_t>(), 3);
  // Eval mode uses the running statistics, with no collective.
  bn.sync->eval();
  bn.sync->forward(x);
  EXPECT_EQ(calls, 6);
  models::set_batchnorm_group(*bn.sync, {});
  EXPECT_FALSE(bn.sync->has_group());
}

TEST(SyncBatchNorm, OneValuePerChannelIsAModelError) {
  models::SyncBatchNorm2d bn(2);
  models::set_batchnorm_group(*bn, [](torch::Tensor&) {});
  try {
    bn->forward(torch::randn({1, 2, 1, 1}));
    FAIL() << "expected ModelError";
  } catch (const models::ModelError& e) {
    EXPECT_EQ(std::string(e.what()),
              "SyncBatchNorm2d: 1 value(s) per channel over the group; at least 2 are needed");
  }
  models::set_batchnorm_group(*bn, {});  // the native path checks the same
  try {
    bn->forward(torch::randn({1, 2, 1, 1}));
    FAIL() << "expected ModelError";
  } catch (const models::ModelError& e) {
    EXPECT_EQ(std::string(e.what()),
              "SyncBatchNorm2d: 1 value(s) per channel; at least 2 are needed");
  }
}

TEST(SyncBatchNorm, CheckpointsOfBatchNorm2dAndSyncBatchNorm2dAreInterchangeable) {
  namespace nn = torch::nn;
  torch::manual_seed(4);
  nn::Sequential written(nn::Conv2d(nn::Conv2dOptions(1, 4, 3)), nn::BatchNorm2d(4), nn::ELU());
  written->forward(torch::randn({3, 1, 8, 8}));  // running statistics away from their start
  std::stringstream archive;
  torch::save(written, archive);
  nn::Sequential read(nn::Conv2d(nn::Conv2dOptions(1, 4, 3)), models::SyncBatchNorm2d(4),
                      nn::ELU());
  torch::load(read, archive);
  auto a = written->named_parameters(), b = read->named_parameters();
  ASSERT_EQ(a.keys(), b.keys());
  for (const auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
  auto ba = written->named_buffers(), bb = read->named_buffers();
  ASSERT_EQ(ba.keys(), bb.keys());
  for (const auto& p : ba) EXPECT_TRUE(torch::equal(p.value(), bb[p.key()])) << p.key();
}

TEST(SyncBatchNorm, EveryBatchNormOfTheModelJoinsTheGroup) {
  models::ModelConfig config;
  config.width = 4;
  config.latent = 8;
  config.layer = 2;
  config.neurons = 3;
  auto rates = torch::ones({3});
  models::DaeNr both(config, rates);  // encoder h1..h4 and decoder up1..up4
  EXPECT_EQ(models::set_batchnorm_group(*both, [](torch::Tensor&) {}), 8);
  auto names = both->named_buffers().keys();
  EXPECT_NE(std::find(names.begin(), names.end(), "encoder.h1.1.running_mean"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "decoder.up4.1.num_batches_tracked"),
            names.end());
  config.autoencoder = job::AutoencoderKind::kNone;  // encoder up to h2 only
  models::DaeNr readout_only(config, rates);
  EXPECT_EQ(models::set_batchnorm_group(*readout_only, {}), 2);
}

}  // namespace
}  // namespace daenr::worker
