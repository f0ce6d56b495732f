// Sweep expansion at scale: a spec of about 100,000 jobs (every region, layer,
// autoencoder, readout and loss of the paper, on virtual regions, times as
// many seeds as it takes), parsed and expanded, each job's canonical JSON
// written, and the jobs inserted into a fresh database as `daenr sweep run`
// inserts them. Prints one JSON line with the seconds of each phase.

#include "sweeps/expand.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>
#include <vector>

#include "orchestrator/sweep_runner.h"
#include "storage/store.h"
#include "sweeps/spec.h"

using namespace daenr;

namespace {

// Per seed: 3 regions x (4 layers x 3 autoencoders x 3 readouts x 3 losses
// with both weights, 4 layers x 3 readouts without an autoencoder, and 3
// autoencoders without a readout, which have no layer) = 3 x 123 jobs.
constexpr int kJobsPerSeed = 369;

std::string spec_text(int seeds) {
  std::string seed_list;
  for (int s = 0; s < seeds; ++s) seed_list += fmt::format("{}{}", s ? ", " : "", s);
  return fmt::format(R"(name = "bench-expand"
[data]
regions = ["virtual:1", "virtual:2", "virtual:3"]
[axes]
layer = [1, 2, 3, 4]
autoencoder = ["cae", "vae", "vqvae", "none"]
readout = ["fr", "fc", "fm", "none"]
loss = [[1, 1], [0.5, 1], [1, 0.5], [0, 1], [1, 0]]
seeds = [{}]
[train]
max_steps = 5000
[override.vae]
loss.kl_weight = 0.01
[override.h4]
train.batch_size = 32
)",
                     seed_list);
}


}  // namespace

int main(int argc, char** argv) {
  CLI::App app("daenr_bench_expand: parse, expand and insert a sweep of ~100,000 jobs");
  int target = 100000;
  bool no_insert = false;
  app.add_option("--jobs", target, "jobs to make, rounded up to whole seeds")
      ->check(CLI::PositiveNumber);
  app.add_flag("--no-insert", no_insert, "skip the database phase");
  CLI11_PARSE(app, argc, argv);
  const bool insert = !no_insert;

  const int seeds = (target + kJobsPerSeed - 1) / kJobsPerSeed;
  const std::string text = spec_text(seeds);
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };

  auto t0 = Clock::now();
  const auto spec = sweeps::parse_sweep_spec(text, "bench-expand.toml", ".");
  const double parse_s = seconds(t0);
  t0 = Clock::now();
  const auto jobs = sweeps::expand(spec);
  const double expand_s = seconds(t0);

  t0 = Clock::now();
  std::vector<storage::NewJob> rows;
  rows.reserve(jobs.size());
  for (const auto& j : jobs) {
    rows.push_back(
        {j.id, sweeps::canonical_json(j.config), daenr::orchestrator::labels_json(j.labels).dump(), j.depends_on});
  }
  const double rows_s = seconds(t0);

  double insert_s = 0;
  int64_t inserted = 0;
  if (insert) {
    const auto path = std::filesystem::temp_directory_path() /
                      fmt::format("daenr-bench-expand-{}.sqlite", ::getpid());
    {
      storage::Store store(path);
      t0 = Clock::now();
      const auto sweep = store.insert_sweep(spec.name, text, 0);
      inserted = store.insert_jobs(sweep, rows, 0);
      insert_s = seconds(t0);
    }
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path.string() + suffix).c_str());
  }
  std::cout << fmt::format(
                   "{{\"jobs\":{},\"parse_s\":{:.3f},\"expand_s\":{:.3f},\"parse_expand_s\":{:.3f},"
                   "\"json_rows_s\":{:.3f},\"inserted\":{},\"insert_s\":{:.3f}}}",
                   jobs.size(), parse_s, expand_s, parse_s + expand_s, rows_s, inserted, insert_s)
            << std::endl;
  const bool ok = static_cast<int>(jobs.size()) == seeds * kJobsPerSeed &&
                  (!insert || inserted == static_cast<int64_t>(jobs.size()));
  return ok ? 0 : 1;
}
