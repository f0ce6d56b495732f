// CUDA: the same job on the GPU computes what it computes on the CPU. Skipped,
// with the reason, where no CUDA device is present (every CPU-only build).

#include <gtest/gtest.h>

#include "tests/support/tiny_data.h"
#include "job/config.h"
#include "worker/trainer.h"

namespace daenr::worker {
namespace {

#define DAENR_REQUIRE_CUDA()                                                              \
  do {                                                                                    \
    if (!torch::cuda::is_available()) {                                                   \
      GTEST_SKIP() << "no CUDA device available to this process (LibTorch "               \
                   << TORCH_VERSION << (kCudaBuild ? ", CUDA build)" : ", CPU-only build)"); \
    }                                                                                     \
  } while (0)

#ifdef DAENR_HAVE_CUDA
constexpr bool kCudaBuild = true;
#else
constexpr bool kCudaBuild = false;
#endif

JobConfig gpu_job(const std::string& device) {
  return job::apply_overrides("", "gpu-test",
                         {"model.autoencoder=vqvae", "model.readout=fr", "model.layer=2",
                          "model.width=8", "train.batch_size=32", "train.validate_every=10",
                          "train.patience=50", "train.max_steps=80", "train.device=" + device});
}

TEST(Gpu, ForwardPassMatchesTheCpu) {
  DAENR_REQUIRE_CUDA();
  auto data = daenr::testing::tiny_dataset();
  Trainer cpu(gpu_job("cpu"), data), gpu(gpu_job("cuda"), data);
  // Same seed: the same initial parameters, built on the CPU and moved.
  cpu.model()->eval();
  gpu.model()->eval();
  torch::NoGradGuard g;
  auto a = cpu.model()->forward(data.test_images);
  auto b = gpu.model()->forward(data.test_images.cuda());
  EXPECT_TRUE(torch::allclose(a.prediction, b.prediction.cpu(), 1e-3, 1e-4));
  EXPECT_TRUE(torch::allclose(a.reconstruction, b.reconstruction.cpu(), 1e-3, 1e-4));
}

TEST(Gpu, TrainingOnCudaLearnsLikeTheCpu) {
  DAENR_REQUIRE_CUDA();
  auto data = daenr::testing::tiny_dataset(256, 64, 64);
  Trainer cpu(gpu_job("cpu"), data), gpu(gpu_job("cuda"), data);
  cpu.train();
  gpu.train();
  auto rc = cpu.evaluate(), rg = gpu.evaluate();
  ASSERT_TRUE(rg.mean_r && rg.mse);
  // Not bit-identical (cuDNN picks its own algorithms), but the same learning.
  EXPECT_NEAR(*rg.mean_r, *rc.mean_r, 0.1);
  EXPECT_NEAR(*rg.mse, *rc.mse, 0.2 * *rc.mse);
  EXPECT_LT(gpu.curve().back().val_loss, gpu.curve().front().val_loss);
}

}  // namespace
}  // namespace daenr::worker
