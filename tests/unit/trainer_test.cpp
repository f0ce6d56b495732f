// The training schedule, determinism, checkpoint-resume and failure handling.

#include "worker/trainer.h"

#include <dlfcn.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "job/config.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_data.h"

namespace daenr::worker {
namespace {

namespace fs = std::filesystem;

JobConfig tiny_job(const std::string& ae = "cae", const std::string& ro = "fr") {
  std::vector<std::string> overrides = {
      "model.autoencoder=" + ae, "model.readout=" + ro,  "model.layer=2",
      "model.width=4",           "model.latent=8",       "train.batch_size=16",
      "train.validate_every=5",  "train.patience=15",    "train.max_steps=60",
      "train.learning_rate=0.01"};
  if (ae == "none") overrides.push_back("loss.alpha=0");
  if (ro == "none") overrides.push_back("loss.beta=0");
  return job::apply_overrides("", "test", overrides);
}

using daenr::testing::TempDir;

void expect_same_parameters(models::DaeNr& a, models::DaeNr& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  auto ba = a->named_buffers(), bb = b->named_buffers();
  for (const auto& p : ba) EXPECT_TRUE(torch::equal(p.value(), bb[p.key()])) << p.key();
}

TEST(Trainer, SameSeedGivesBitIdenticalParametersAndCurves) {
  configure_threads(1);
  auto data = daenr::testing::tiny_dataset();
  auto config = tiny_job("vae", "fc");  // dropout and VAE noise: both random per step
  Trainer a(config, data), b(config, data);
  a.train();
  b.train();
  expect_same_parameters(a.model(), b.model());
  ASSERT_EQ(a.curve().size(), b.curve().size());
  for (std::size_t i = 0; i < a.curve().size(); ++i) {
    EXPECT_EQ(a.curve()[i].val_loss, b.curve()[i].val_loss);
    EXPECT_EQ(a.curve()[i].train_loss, b.curve()[i].train_loss);
  }
  auto other = config;
  other.seed = 1;
  Trainer c(other, data);
  c.train();
  EXPECT_FALSE(torch::equal(a.model()->parameters()[0], c.model()->parameters()[0]));
}

// The readout-only CNN at width 16 trains through models::fused_training_step (the blocked
// encoder needs whole blocks of 16 channels): the trainer's run, its curve and what it keeps
// must be autograd's, bit for bit, schedule included.
TEST(Trainer, TheFusedStepTrainsTheCnnAsAutogradDoes) {
  configure_threads(1);
  auto data = daenr::testing::tiny_dataset();
  auto config = tiny_job("none", "fr");
  config.model.width = 16;
  Trainer fused(config, data), graph(config, data);
  fused.train();
  models::use_fused_training_step(false);
  graph.train();
  models::use_fused_training_step(true);
  ASSERT_GT(fused.step(), 0);
  EXPECT_EQ(fused.step(), graph.step());
  expect_same_parameters(fused.model(), graph.model());
  ASSERT_EQ(fused.curve().size(), graph.curve().size());
  for (std::size_t i = 0; i < fused.curve().size(); ++i) {
    EXPECT_EQ(fused.curve()[i].train_loss, graph.curve()[i].train_loss) << i;
    EXPECT_EQ(fused.curve()[i].val_loss, graph.curve()[i].val_loss) << i;
  }
  // It was the fused step that ran: a step of this model from dropped gradients takes it.
  auto& model = fused.model();
  model->train();
  for (const auto& p : model->parameters()) p.mutable_grad().reset();
  auto x = data.train_images.slice(0, 0, 8);
  auto s = data.train_responses.slice(0, 0, 8);
  EXPECT_TRUE(models::fused_training_step(model, x, s, config.loss).has_value());
}

// OpenBLAS's pool beside LibTorch's would take turns with it on the same cores (1.7x slower
// CAE steps on 2 threads, bench/README.md): LibTorch gets the threads, OpenBLAS keeps one.
TEST(Trainer, ThreadsGoToLibTorchAndOpenBlasKeepsTheCallingThread) {
  using GetThreads = int (*)();
  auto openblas_threads =
      reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (openblas_threads == nullptr)
    GTEST_SKIP() << "LibTorch is linked to a BLAS other than OpenBLAS";
  configure_threads(2);
  EXPECT_EQ(torch::get_num_threads(), 2);
  EXPECT_EQ(openblas_threads(), 1);
  configure_threads(1);
  EXPECT_EQ(torch::get_num_threads(), 1);
  EXPECT_EQ(openblas_threads(), 1);
}

TEST(Trainer, ResumingFromACheckpointEndsInTheUninterruptedState) {
  configure_threads(1);
  auto data = daenr::testing::tiny_dataset();
  for (const char* ae : {"cae", "vae", "vqvae"}) {
    auto config = tiny_job(ae, "fc");
    Trainer whole(config, data);
    ASSERT_TRUE(whole.train());

    // Stop at several points, each time in a new Trainer (a new process in
    // practice), including after a phase change.
    TempDir dir;
    RunOptions options;
    options.checkpoint = dir.path() / "job.ckpt";
    for (int stop_at : {10, 25, 40}) {
      Trainer part(config, data);
      options.should_stop = [stop_at](int step) { return step >= stop_at; };
      ASSERT_FALSE(part.train(options)) << ae << " should have stopped at " << stop_at;
      EXPECT_EQ(part.step(), stop_at);
    }
    Trainer last(config, data);
    options.should_stop = nullptr;
    ASSERT_TRUE(last.train(options));
    expect_same_parameters(whole.model(), last.model());
    // The result says where it resumed from; the uninterrupted one, that it did not.
    EXPECT_EQ(last.evaluate().resumed_from_step, 40) << ae;
    EXPECT_EQ(whole.evaluate().resumed_from_step, 0) << ae;
    ASSERT_EQ(whole.curve().size(), last.curve().size()) << ae;
    for (std::size_t i = 0; i < whole.curve().size(); ++i) {
      EXPECT_EQ(whole.curve()[i].val_loss, last.curve()[i].val_loss) << ae << " point " << i;
    }
    // Only the checkpoint itself is left: the temporary file was renamed over it.
    int files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++files;
    EXPECT_EQ(files, 1);
  }
}

TEST(Trainer, ScheduleRunsBothPhasesHalvesTheRateAndRestoresTheBest) {
  configure_threads(1);
  auto data = daenr::testing::tiny_dataset(48, 16, 8);
  auto config = tiny_job("none", "fr");
  config.train.max_steps = 5000;  // the phases, not the cap, must end training
  config.train.learning_rate = 0.03;
  Trainer t(config, data);
  t.train();
  const auto& curve = t.curve();
  ASSERT_FALSE(curve.empty());
  EXPECT_LT(t.step(), 5000);
  EXPECT_EQ(curve.front().phase, 0);
  EXPECT_EQ(curve.back().phase, 1);
  EXPECT_DOUBLE_EQ(curve.front().learning_rate, 0.03);
  EXPECT_DOUBLE_EQ(curve.back().learning_rate, 0.015);
  // Each phase ends `patience` steps after its best point.
  double best = 1e300;
  for (const auto& p : curve) best = std::min(best, p.val_loss);
  // The parameters left are the best ones seen: their validation loss is the
  // curve's minimum, not the last point's.
  EXPECT_NEAR(t.validation_loss(), best, 1e-6 * std::abs(best));
  EXPECT_GT(curve.back().val_loss, best);
}

TEST(Trainer, StepCapEndsTrainingWithTheBestParameters) {
  configure_threads(1);
  auto data = daenr::testing::tiny_dataset();
  auto config = tiny_job("cae", "fr");
  config.train.max_steps = 23;  // not a multiple of validate_every: a last point at 23
  Trainer t(config, data);
  EXPECT_TRUE(t.train());
  EXPECT_EQ(t.step(), 23);
  EXPECT_EQ(t.curve().back().step, 23);
}

TEST(Trainer, ReportsProgressAtEveryValidationPoint) {
  configure_threads(1);
  auto data = daenr::testing::tiny_dataset();
  auto config = tiny_job("cae", "fr");
  config.train.max_steps = 23;
  config.train.patience = 1000;  // the cap ends it: points at 5, 10, 15, 20 and 23
  std::vector<TrainingProgress> seen;
  RunOptions options;
  options.on_progress = [&](const TrainingProgress& p) { seen.push_back(p); };
  Trainer t(config, data);
  ASSERT_TRUE(t.train(options));
  ASSERT_EQ(seen.size(), 5u);
  ASSERT_EQ(t.curve().size(), seen.size());
  double best = 1e300;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].step, i < 4 ? 5 * int(i + 1) : 23);
    EXPECT_EQ(seen[i].max_steps, 23);
    EXPECT_EQ(seen[i].phase, 0);
    EXPECT_EQ(seen[i].phases, config.train.phases);
    EXPECT_EQ(seen[i].val_loss, t.curve()[i].val_loss);
    best = std::min(best, t.curve()[i].val_loss);
    EXPECT_EQ(seen[i].best_val_loss, best);
    EXPECT_EQ(seen[i].resumed_from_step, 0);
    EXPECT_EQ(seen[i].finished, i == 4);
  }
}

TEST(Trainer, LearnsThePlantedResponses) {
  // Held-out correlation on the tiny planted data rises well above chance.
  configure_threads(1);
  auto data = daenr::testing::tiny_dataset(256, 64, 64, 6);
  auto config = tiny_job("none", "fr");
  config.train.max_steps = 300;
  config.train.patience = 100;
  config.train.validate_every = 10;
  Trainer t(config, data);
  const double before = *t.evaluate().mean_r;
  t.train();
  auto result = t.evaluate();
  ASSERT_TRUE(result.mean_r.has_value());
  // 64 test images: chance correlations are about +-0.12.
  EXPECT_GT(*result.mean_r, 0.4);
  EXPECT_GT(*result.mean_r, before + 0.25);
  EXPECT_FALSE(result.mse.has_value());  // no decoder, no reconstruction metrics
}

TEST(Trainer, NaNLossIsReportedAsDivergence) {
  auto data = daenr::testing::tiny_dataset();
  data.train_images[3][0][5][5] = std::numeric_limits<float>::quiet_NaN();
  auto config = tiny_job("cae", "fr");
  config.train.batch_size = 96;  // every batch holds the bad image
  Trainer t(config, data);
  try {
    t.train();
    FAIL() << "expected TrainingDiverged";
  } catch (const TrainingDiverged& e) {
    EXPECT_NE(std::string(e.what()).find("loss diverged at step 5"), std::string::npos) << e.what();
  }
}

TEST(Trainer, RefusesACheckpointOfAnotherConfiguration) {
  auto data = daenr::testing::tiny_dataset();
  TempDir dir;
  RunOptions options;
  options.checkpoint = dir.path() / "job.ckpt";
  options.should_stop = [](int) { return true; };
  Trainer(tiny_job(), data).train(options);
  auto other = tiny_job();
  other.model.layer = 3;
  Trainer t(other, data);
  try {
    t.train(options);
    FAIL() << "expected CheckpointError";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()),
              options.checkpoint.string() + ": written by a different job configuration");
  }
}

TEST(Trainer, RefusesATornCheckpoint) {
  auto data = daenr::testing::tiny_dataset();
  TempDir dir;
  RunOptions options;
  options.checkpoint = dir.path() / "job.ckpt";
  options.should_stop = [](int) { return true; };
  Trainer(tiny_job(), data).train(options);
  std::filesystem::resize_file(options.checkpoint, std::filesystem::file_size(options.checkpoint) / 2);
  Trainer t(tiny_job(), data);
  try {
    t.train(options);
    FAIL() << "expected CheckpointError";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()), options.checkpoint.string() + ": not a readable checkpoint");
  }
}

TEST(Trainer, RefusesAFileThatIsNotACheckpoint) {
  auto data = daenr::testing::tiny_dataset();
  TempDir dir;
  RunOptions options;
  options.checkpoint = dir.path() / "job.ckpt";
  { std::ofstream(options.checkpoint) << "not a checkpoint"; }
  Trainer t(tiny_job(), data);
  EXPECT_THROW(t.train(options), CheckpointError);
}

}  // namespace
}  // namespace daenr::worker
