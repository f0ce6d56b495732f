// Orchestration overhead without training: insert N jobs, then lease and
// record a no-op result for each through the storage layer, as the sweep
// runner does (one transaction per lease and per record). Prints one JSON line.

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <unistd.h>

#include "storage/store.h"

using namespace daenr::storage;

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::stoi(argv[1]) : 100000;
  const auto path = std::filesystem::temp_directory_path() / fmt::format("daenr-bench-{}.sqlite", ::getpid());
  auto seconds = [](auto t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  double insert_s = 0, run_s = 0;
  int64_t leased = 0;
  {
    Store store(path);
    const auto sweep = store.insert_sweep("bench", "bench spec", 0);
    std::vector<NewJob> jobs;
    jobs.reserve(n);
    for (int i = 0; i < n; ++i) {
      jobs.push_back({fmt::format("{:020x}", i * 2654435761ULL), fmt::format("{{\"i\":{}}}", i), "{}", ""});
    }
    auto t0 = std::chrono::steady_clock::now();
    store.insert_jobs(sweep, jobs, 0);
    insert_s = seconds(t0);
    t0 = std::chrono::steady_clock::now();
    ResultRecord r;
    r.metrics = "{}";
    while (auto job = store.lease_next(sweep, "bench", 1, 60, 3)) {
      r.job_id = job->id;
      store.record_result(r, "bench", 2);
      ++leased;
    }
    run_s = seconds(t0);
  }
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path.string() + suffix).c_str());
  std::cout << fmt::format(
                   "{{\"jobs\":{},\"insert_s\":{:.3f},\"leased_and_recorded\":{},\"lease_record_s\":{:.3f},"
                   "\"jobs_per_s\":{:.0f}}}",
                   n, insert_s, leased, run_s, leased / run_s)
            << std::endl;
  return leased == n ? 0 : 1;
}
