// MEI synthesis speed (models/mei.h): gradient-ascent steps per second through a randomly
// initialised DaeNr CAE-FR on h2 (its weights do not change the work), for 1, 16 and all 103
// neurons x `starts` starting images per step. Prints a table and the CPU model.
//
// The rate is taken between a short and a long run (steps / 4 and steps), so that drawing the
// starting images and the final evaluation cancel out. The last lines say whether a target's
// images came out bit-identical alone and within a batch of 16 (what chunked MEI jobs rely on),
// with one target per model call, four, and all 16 (MeiOptions::targets_per_call).

#include "models/mei.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <numeric>
#include <string>
#include <time.h>
#include <vector>

#include "models/network.h"
#include "worker/trainer.h"

using namespace daenr;

namespace {

// "model name" alone can be as terse as "AMD EPYC"; the family and model number say which.
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, name = "unknown CPU", family, model;
  auto value = [&] { return line.substr(line.find(':') + 2); };
  while (std::getline(in, line) && line.find_first_not_of(" \t") != std::string::npos) {
    if (line.rfind("model name", 0) == 0) name = value();
    if (line.rfind("cpu family", 0) == 0) family = value();
    if (line.rfind("model\t", 0) == 0) model = value();
  }
  return family.empty() ? name : fmt::format("{} (family {}, model {})", name, family, model);
}

double cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

// Wall time is what a user waits; CPU time is what a shared machine's other load disturbs
// least (a descheduled process accrues none), so both are printed.
struct Timing {
  double wall = 0, cpu = 0;
};

Timing time_run(const models::ResponseFunction& responses, const std::vector<int64_t>& targets,
                models::MeiOptions options, int steps) {
  options.settings.steps = steps;
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = cpu_seconds();
  models::synthesise(responses, targets, options);
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
          cpu_seconds() - c0};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"daenr MEI synthesis benchmark"};
  int steps = 20, threads = 1, width = 16, starts = 4, neurons = 103;
  app.add_option("--steps", steps, "steps of the longer run (the shorter has a quarter)");
  app.add_option("--threads", threads);
  app.add_option("--width", width, "channels of h1");
  app.add_option("--starts", starts, "starting images per neuron");
  app.add_option("--neurons", neurons, "neurons of the model (virtual regions have 103)");
  CLI11_PARSE(app, argc, argv);

  worker::configure_threads(threads);
  torch::manual_seed(0);
  models::ModelConfig config;
  config.autoencoder = models::AutoencoderKind::kCae;
  config.readout = models::ReadoutKind::kFr;
  config.layer = 2;
  config.width = width;
  config.neurons = neurons;
  models::DaeNr model(config, torch::full({neurons}, 0.5), torch::Tensor());
  model->eval();
  const models::ResponseFunction responses = [&](const torch::Tensor& x) {
    return model->forward(x, false, true).prediction;
  };
  models::MeiOptions options;
  options.settings.starts = starts;

  fmt::print("MEI gradient ascent, CAE-FR_2 width {}, {} neurons, {} starts, {} thread{}\n", width,
             neurons, starts, threads, threads == 1 ? "" : "s");
  fmt::print("CPU: {}\n\n", cpu_model());
  fmt::print(
      "| neurons | images per step | images per call | model calls per step | steps/s | steps per "
      "CPU s | images x steps per CPU s | CPU ms per step |\n");
  fmt::print("|---|---|---|---|---|---|---|---|\n");
  for (int count : {1, 16, neurons}) {
    std::vector<int64_t> targets(count);
    std::iota(targets.begin(), targets.end(), 0);
    // Targets per model call: one (batch-independent bits), the cache-sized groups a CPU core
    // favours, and all of them (what a GPU favours).
    std::vector<int> groupings;
    for (int per_call : {1, 2, 4, 8, 16}) {
      if (per_call < count) groupings.push_back(per_call);
    }
    groupings.push_back(count);
    for (int per_call : groupings) {
      auto o = options;
      o.targets_per_call = per_call;
      time_run(responses, targets, o, 2);  // warm-up: allocator, oneDNN primitives
      const int short_steps = std::max(1, steps / 4);
      const auto t_short = time_run(responses, targets, o, short_steps);
      const auto t_long = time_run(responses, targets, o, steps);
      const double rate = (steps - short_steps) / (t_long.wall - t_short.wall);
      const double cpu_rate = (steps - short_steps) / (t_long.cpu - t_short.cpu);
      const int calls = (count + per_call - 1) / per_call;
      fmt::print("| {} | {} | {} | {} | {:.2f} | {:.2f} | {:.0f} | {:.1f} |\n", count,
                 count * starts, per_call * starts, calls, rate, cpu_rate,
                 cpu_rate * count * starts, 1000 / cpu_rate);
    }
  }

  auto check = options;
  check.settings.steps = 5;
  std::vector<int64_t> sixteen(16);
  std::iota(sixteen.begin(), sixteen.end(), 0);
  const auto alone = models::synthesise(responses, {5}, check);
  for (int per_call : {1, 4, 16}) {
    check.targets_per_call = per_call;
    const auto batch = models::synthesise(responses, sixteen, check);
    fmt::print("\nneuron 5 alone and among 16 ({} targets per call), bit-identical: {}, max |diff| {:.2g}",
               per_call, torch::equal(alone.images[0], batch.images[5]) ? "yes" : "no",
               (alone.images[0] - batch.images[5]).abs().max().item<double>());
  }
  fmt::print("\n");
  return 0;
}
