// Training throughput of one model through the real trainer (worker::Trainer),
// in samples per second. Prints one JSON line.
//
// The trainer validates every `validate_every` steps; here validation is put
// at the very end, and the rate is taken between two runs of different
// lengths so that model construction and that one validation cancel out:
//   rate = (steps_long - steps_short) * batch / (t_long - t_short).

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>

#include "models/data.h"
#include "models/gemm.h"
#include "models/synth.h"
#include "job/config.h"
#include "worker/trainer.h"

using namespace daenr;

namespace {

double cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

struct Timing {
  double wall = 0, cpu = 0;  // seconds; cpu: the process's CPU time, all threads
};

// Wall time is what a user waits; CPU time is what a shared machine's other load disturbs
// least (a descheduled process accrues none), so comparisons print both.
Timing timed_train(const job::JobConfig& config, const models::Dataset& data, int steps) {
  auto c = config;
  c.train.max_steps = steps;
  c.train.validate_every = steps;
  c.train.patience = steps;
  worker::Trainer trainer(c, data);
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = cpu_seconds();
  trainer.train();
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
          cpu_seconds() - c0};
}

double eval_rate(worker::Trainer& trainer, const torch::Tensor& x, int reps, bool no_grad) {
  trainer.model()->eval();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) {
    if (no_grad) {
      torch::NoGradGuard g;
      trainer.model()->forward(x);
    } else {
      trainer.model()->forward(x);
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return reps * x.size(0) / s;
}

// A 2048^3 single-precision product through models::sgemm on the configured threads, the
// best of 3: the same ceiling bench/train_throughput.py takes through PyTorch's BLAS.
double sgemm_gflops() {
  constexpr int64_t kSide = 2048;
  auto a = torch::randn({kSide, kSide}), b = torch::randn({kSide, kSide});
  auto c = torch::empty({kSide, kSide});
  models::sgemm(a, false, b, false, c);
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    models::sgemm(a, false, b, false, c);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * kSide * kSide * kSide / best / 1e9;
}

// LibTorch operator calls and autograd node evaluations per training step, by name: the
// difference between a long and a short run, so that model construction and the final
// validation cancel out. Every call costs dispatch, a tensor or two and, in backward, the
// engine's bookkeeping, a few microseconds each, a sizeable share of a small model's step
// (bench/README.md, "The CNN's operator calls").
nlohmann::ordered_json operators_per_step(const job::JobConfig& config,
                                          const models::Dataset& data, int steps) {
  static std::mutex mutex;
  static std::map<std::string, int64_t> counts;
  static bool counting = false;
  const auto handle = at::addGlobalCallback(
      at::RecordFunctionCallback([](const at::RecordFunction& fn)
                                     -> std::unique_ptr<at::ObserverContext> {
        std::lock_guard<std::mutex> lock(mutex);
        if (counting) ++counts[fn.name()];
        return nullptr;
      }).needsInputs(false));
  const auto run = [&](int n) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      counts.clear();
      counting = true;
    }
    timed_train(config, data, n);
    std::lock_guard<std::mutex> lock(mutex);
    counting = false;
    return counts;
  };
  timed_train(config, data, 3);  // warm-up, as for the rate
  const int short_steps = std::max(1, steps / 4);
  const auto few = run(short_steps);
  const auto many = run(steps);
  at::removeCallback(handle);
  std::vector<std::pair<double, std::string>> rows;
  double total = 0;
  for (const auto& [name, n] : many) {
    const auto it = few.find(name);
    const double per_step =
        static_cast<double>(n - (it == few.end() ? 0 : it->second)) / (steps - short_steps);
    if (per_step <= 0) continue;
    rows.emplace_back(per_step, name);
    total += per_step;
  }
  std::sort(rows.rbegin(), rows.rend());
  nlohmann::ordered_json out;
  out["total"] = total;
  for (const auto& [per_step, name] : rows) out["by_name"][name] = per_step;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"daenr training-throughput benchmark"};
  int batch = 256, steps = 20, threads = 1, region = 3, layer = 2;
  std::string autoencoder = "cae", readout = "fr", mode = "train", device = "cpu", profile;
  app.add_option("--batch", batch);
  app.add_option("--steps", steps, "steps of the longer run (the shorter has a quarter)");
  app.add_option("--threads", threads);
  app.add_option("--region", region);
  app.add_option("--autoencoder", autoencoder);
  app.add_option("--readout", readout);
  app.add_option("--layer", layer);
  app.add_option("--mode", mode, "train, or eval (forward with and without autograd)");
  app.add_option("--device", device, "cpu or cuda");
  bool count_ops = false;
  app.add_flag("--count-ops", count_ops,
               "print the LibTorch operator calls and autograd nodes per training step, by name");
  bool no_fused_step = false;
  app.add_flag("--no-fused-step", no_fused_step,
               "train the readout-only CNN through autograd, not models::fused_training_step "
               "(the same bits; for side-by-side comparisons)");
  app.add_option("--profile", profile,
                 "write a Chrome trace of `steps` training steps (after a warm-up) to this file;"
                 " bench/profile_summary.py sums it per operator");
  CLI11_PARSE(app, argc, argv);

  worker::configure_threads(threads);
  models::use_fused_training_step(!no_fused_step);
  auto raw = models::simulate_region(models::virtual_region_spec(region), 1);
  auto data = models::prepare(raw, 0);
  std::vector<std::string> overrides = {
      "model.autoencoder=" + autoencoder, "model.readout=" + readout,
      fmt::format("model.layer={}", layer), fmt::format("train.batch_size={}", batch),
      fmt::format("train.threads={}", threads), "train.checkpoint_every=0",
      "train.device=" + device};
  if (autoencoder == "none") overrides.push_back("loss.alpha=0");
  if (readout == "none") overrides.push_back("loss.beta=0");
  const auto config = job::apply_overrides("", "bench", overrides);

  nlohmann::ordered_json out;
  out["impl"] = "daenr";
  out["model"] = fmt::format("{}-{}_{}", autoencoder, readout, layer);
  out["batch"] = batch;
  out["threads"] = threads;
  out["device"] = device;
  if (no_fused_step) out["fused_step"] = false;
  if (count_ops) {
    out["operators_per_step"] = operators_per_step(config, data, steps);
  } else if (!profile.empty()) {
    timed_train(config, data, 3);  // warm-up, as for the rate
    torch::autograd::profiler::RecordProfile guard(profile);
    out["seconds"] = timed_train(config, data, steps).wall;
  } else if (mode == "eval") {
    worker::Trainer trainer(config, data);
    auto x = data.train_images.slice(0, 0, batch).to(torch::Device(device));
    eval_rate(trainer, x, 2, true);  // warm-up
    out["eval_no_grad_samples_per_s"] = eval_rate(trainer, x, steps, true);
    out["eval_autograd_samples_per_s"] = eval_rate(trainer, x, steps, false);
  } else {
    timed_train(config, data, 3);  // warm-up: allocator, oneDNN primitive caches
    const int short_steps = std::max(1, steps / 4);
    const auto t_short = timed_train(config, data, short_steps);
    const auto t_long = timed_train(config, data, steps);
    const double samples = (steps - short_steps) * double(batch);
    out["samples_per_s"] = samples / (t_long.wall - t_short.wall);
    out["samples_per_cpu_s"] = samples / (t_long.cpu - t_short.cpu);
    if (device == "cpu") {
      // The ceiling through daenr's own GEMM, beside the one PyTorch's runs take through the
      // BLAS: on a CPU OpenBLAS does not know, the two differ by up to 2x (models/gemm.h).
      out["daenr_sgemm_gflops"] = sgemm_gflops();
      out["daenr_sgemm"] = models::sgemm_backend();
    }
  }
  std::cout << out.dump() << std::endl;
  return 0;
}
