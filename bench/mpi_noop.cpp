// Orchestration overhead over MPI: a sweep of no-op jobs through the real
// MPI runner (rank 0 leasing and recording through storage/, worker ranks
// pulling jobs), with training replaced by an empty outcome. Run under
// mpirun (bench/mpi.sh); rank 0 prints one JSON line.
//   mpirun -n 4 build/bench/daenr_bench_mpi_noop [jobs]

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "mpi/comm.h"
#include "orchestrator/mpi_runner.h"

using namespace daenr::orchestrator;

namespace mpi = daenr::mpi;

int main(int argc, char** argv) {
  const mpi::World world = mpi::init(&argc, &argv);
  const int n = argc > 1 ? std::stoi(argv[1]) : 20000;
  // The same paths on every rank: rank 0 names them and broadcasts its pid.
  const int pid = mpi::broadcast_int(::getpid(), 0, MPI_COMM_WORLD);
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("daenr-bench-mpi-{}", pid);
  const auto spec = dir / "noop.toml", db = dir / "noop.sqlite";
  if (world.rank == 0) {
    std::filesystem::create_directories(dir);
    // n jobs: n seeds of one tiny model (expansion is cheap: bench/expand).
    std::ofstream out(spec);
    out << "name = \"noop\"\n[data]\nregions = [\"virtual:1\"]\n[axes]\nseeds = [";
    for (int i = 0; i < n; ++i) out << (i ? "," : "") << i;
    out << "]\n";
  }
  mpi::check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");

  RunnerOptions options;
  MpiOptions mpi_options;
  mpi_options.execute_override = [](const daenr::sweeps::JobSpec& job) {
    Outcome o;
    o.status = Outcome::Status::kDone;
    o.job_id = job.id;
    o.metrics = "{}";
    return o;
  };
  // The setup (every rank expands the spec; rank 0 inserts the jobs) is
  // reported apart from the loop of leases, messages and records.
  const auto summary = run_sweep_mpi(spec, db, options, mpi_options);
  if (world.rank == 0) {
    std::cout << fmt::format(
                     "{{\"ranks\":{},\"jobs\":{},\"done\":{},\"setup_s\":{:.3f},\"loop_s\":{:.3f},"
                     "\"jobs_per_s\":{:.0f},\"rank0_loop_cpu_s\":{:.3f}}}",
                     world.size, summary.total, summary.done, summary.setup_s, summary.loop_s,
                     summary.done / summary.loop_s, summary.orchestrator_cpu_s)
              << std::endl;
    std::filesystem::remove_all(dir);
  }
  mpi::check(MPI_Finalize(), "MPI_Finalize");
  return summary.done == n ? 0 : 1;
}
