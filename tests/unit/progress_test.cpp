// A sweep's progress lines (orchestrator/progress.h) against a fake clock: what the
// terminal's updating line says (step, phase, validation loss, the time left for the job
// and the sweep, computed by hand below), the one line per finished job a log gets, and
// that nothing else reaches a log.

#include "orchestrator/progress.h"

#include <gtest/gtest.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "worker/trainer.h"

namespace daenr::orchestrator {
namespace {

sweeps::JobSpec spec(const std::string& id, models::AutoencoderKind ae, models::ReadoutKind ro,
                     int layer, uint64_t seed) {
  sweeps::JobSpec j;
  j.id = id;
  j.labels.region = "virtual:3";
  j.labels.autoencoder = ae;
  j.labels.readout = ro;
  j.labels.layer = layer;
  j.labels.seed = seed;
  return j;
}

sweeps::JobSpec cae_fr2(uint64_t seed) {
  return spec(seed == 0 ? "0123456789abcdef" : "fedcba9876543210", models::AutoencoderKind::kCae,
              models::ReadoutKind::kFr, 2, seed);
}

worker::TrainingProgress at(int step, int max_steps, double val, int resumed = 0,
                            bool finished = false) {
  worker::TrainingProgress p;
  p.step = step;
  p.max_steps = max_steps;
  p.phase = 0;
  p.phases = 2;
  p.val_loss = val;
  p.best_val_loss = val;
  p.resumed_from_step = resumed;
  p.finished = finished;
  return p;
}

Outcome done(const std::string& id, std::optional<double> mse, std::optional<double> r) {
  Outcome o;
  o.status = Outcome::Status::kDone;
  o.job_id = id;
  o.mse = mse;
  o.mean_r = r;
  return o;
}

// What the reporter wrote, piece by piece, and a clock the test moves.
struct Fake {
  std::vector<std::string> out;
  double now = 0;
  ProgressReporter make(ProgressMode mode, int64_t jobs, int width = 200) {
    return ProgressReporter(
        mode, jobs, [this](const std::string& s) { out.push_back(s); }, [this] { return now; },
        width);
  }
};

TEST(Progress, DurationsAsTheLinesWriteThem) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(125), "2m05s");
  EXPECT_EQ(format_duration(3725), "1h02m");
  EXPECT_EQ(format_duration(-3), "0s");
  EXPECT_EQ(format_duration(std::nan("")), "0s");
}

TEST(Progress, ModelsAreNamedAsTheReportNamesThem) {
  EXPECT_EQ(model_text(cae_fr2(0).labels), "CAE-FR_2");
  EXPECT_EQ(
      model_text(spec("x", models::AutoencoderKind::kNone, models::ReadoutKind::kFc, 1, 0).labels),
      "CNN-FC_1");
  EXPECT_EQ(
      model_text(
          spec("x", models::AutoencoderKind::kVqVae, models::ReadoutKind::kNone, 0, 0).labels),
      "VQ-VAE");
  auto sig = cae_fr2(0);
  sig.labels.neurons = sweeps::Neurons::kSignificant;
  EXPECT_EQ(model_text(sig.labels), "CAE-FR_2 (significant)");
}

TEST(Progress, TheTerminalLineShowsStepPhaseLossAndTheTimeLeft) {
  Fake f;
  {
    auto p = f.make(ProgressMode::kTerminal, 2);
    p.job_started(cae_fr2(0));
    ASSERT_EQ(f.out.size(), 1u);
    EXPECT_EQ(f.out[0], "\r\033[K[job 1/2] CAE-FR_2 seed 0: starting");
    // 100 of 400 steps in 10 s: 300 more take 30 s; the other job, as long as this one's
    // projected 40 s: the sweep has 70 s left.
    f.now = 10;
    p.training(at(100, 400, 1.234567));
    ASSERT_EQ(f.out.size(), 2u);
    EXPECT_EQ(f.out[1],
              "\r\033[K[job 1/2] CAE-FR_2 seed 0: step 100/400, phase 1/2, val loss 1.2346 | "
              "left: job <=30s, sweep ~1m10s");
    // A tenth of a second later: not redrawn.
    f.now = 10.1;
    p.training(at(101, 400, 1.2));
    EXPECT_EQ(f.out.size(), 2u);
    // The result replaces the line and stays.
    f.now = 40;
    p.job_finished(cae_fr2(0), done("0123456789abcdef", 0.043214, 0.41234));
    ASSERT_EQ(f.out.size(), 3u);
    EXPECT_EQ(f.out[2],
              "\r\033[K[1/2] 01234567 CAE-FR_2 virtual:3 seed 0: done in 40s, test MSE 0.0432, "
              "test r 0.412\n");
    // The next job: the finished one's 40 s is the estimate per job now.
    p.job_started(cae_fr2(1));
    EXPECT_EQ(f.out[3], "\r\033[K[job 2/2] CAE-FR_2 seed 1: starting | sweep ~40s left");
    // Resumed at step 300: 50 steps in 10 s, 50 more in 10 s; no job after it.
    f.now = 50;
    p.training(at(350, 400, 0.5, 300));
    EXPECT_EQ(f.out[4],
              "\r\033[K[job 2/2] CAE-FR_2 seed 1: step 350/400, phase 1/2, val loss 0.5 | "
              "left: job <=10s, sweep ~10s");
    // From the second point on, the rate is the one since the first (3 s for 10 steps: 12 s for
    // the 40 left), not since the start, which holds the job's setup (13 s for 60: 9 s).
    f.now = 53;
    p.training(at(360, 400, 0.4, 300));
    EXPECT_EQ(f.out[5],
              "\r\033[K[job 2/2] CAE-FR_2 seed 1: step 360/400, phase 1/2, val loss 0.4 | "
              "left: job <=12s, sweep ~12s");
  }
  // Leaving scope clears the line that was left showing.
  EXPECT_EQ(f.out.back(), "\r\033[K");
  EXPECT_EQ(f.out.size(), 7u);
}

TEST(Progress, ALogGetsOneLinePerFinishedJobAndNothingElse) {
  Fake f;
  {
    auto p = f.make(ProgressMode::kLog, 1);
    p.job_started(cae_fr2(0));
    f.now = 3;
    p.training(at(10, 100, 2.0));
    p.training(at(100, 100, 1.0, 0, true));
    f.now = 5;
    Outcome failed;
    failed.job_id = "0123456789abcdef";
    failed.error = "loss diverged at step 40\nsecond line";
    p.job_finished(cae_fr2(0), failed);
    // A retry: the count goes past the jobs expected rather than stopping at them.
    p.job_started(cae_fr2(0));
    Outcome stopped;
    stopped.status = Outcome::Status::kPreempted;
    p.job_finished(cae_fr2(0), stopped, 2.0);
    const auto cnn =
        spec("abcdef0123456789", models::AutoencoderKind::kNone, models::ReadoutKind::kFr, 1, 4);
    p.job_finished(cnn, done("abcdef0123456789", std::nullopt, 0.25), 61.0);
  }
  ASSERT_EQ(f.out.size(), 3u);
  EXPECT_EQ(
      f.out[0],
      "[1/1] 01234567 CAE-FR_2 virtual:3 seed 0: failed after 5s: loss diverged at step 40\n");
  EXPECT_EQ(f.out[1],
            "[2/2] 01234567 CAE-FR_2 virtual:3 seed 0: stopped after 2s (checkpointed; rerun to "
            "resume)\n");
  EXPECT_EQ(f.out[2], "[3/3] abcdef01 CNN-FR_1 virtual:3 seed 4: done in 1m01s, test r 0.250\n");
}

TEST(Progress, OffWritesNothing) {
  Fake f;
  {
    auto p = f.make(ProgressMode::kOff, 1);
    p.job_started(cae_fr2(0));
    p.training(at(10, 100, 2.0));
    p.job_finished(cae_fr2(0), done("0123456789abcdef", 0.1, 0.2));
  }
  EXPECT_TRUE(f.out.empty());
}

TEST(Progress, TheUpdatingLineFitsTheTerminal) {
  Fake f;
  auto p = f.make(ProgressMode::kTerminal, 1, 20);
  p.job_started(cae_fr2(0));
  // "\r\033[K" and the first 19 columns: a line as wide as the terminal would wrap.
  EXPECT_EQ(f.out.at(0), "\r\033[K[job 1/1] CAE-FR_2 ");
}

// Under mpirun, a requeue closes the ranks' output pipes while rank 0 still records the stopped
// jobs. In a child whose stderr is a pipe with no reader, a finished job's line must not kill
// it with SIGPIPE.
TEST(Progress, AStderrWithNoReaderDoesNotKillTheRun) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int fds[2];
    if (::pipe(fds) != 0) ::_exit(2);
    ::close(fds[0]);
    ::dup2(fds[1], STDERR_FILENO);
    {
      ProgressReporter p(ProgressMode::kLog, 1);
      p.job_finished(cae_fr2(0), done("0123456789abcdef", 0.1, 0.2), 1.0);
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status)) << "killed by signal "
                                 << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
}

}  // namespace
}  // namespace daenr::orchestrator
