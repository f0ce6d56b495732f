#pragma once
// A sweep over MPI: `mpirun -n N daenr sweep run spec.toml --db X`. Rank 0 is
// the orchestrator and the only process that opens the database; ranks 1..N-1
// form worker groups of `ranks_per_job` ranks that each train one job at a
// time (data-parallel inside the group). The protocol is at the top of
// mpi_runner.cpp.

#include <filesystem>

#include <functional>

#include "orchestrator/sweep_runner.h"

namespace daenr::orchestrator {

struct MpiOptions {
  /// Ranks per worker group; 0: the spec's ranks_per_job (default 1).
  int ranks_per_job = 0;
  /// Worker ranks per GPU, for jobs on "cuda": each rank's GPU memory is bounded to its share
  /// (worker::share_gpu); 0: the spec's jobs_per_gpu (default 1).
  int jobs_per_gpu = 0;
  /// Minimum seconds between a worker group's heartbeats to rank 0.
  double heartbeat_s = 5;
  /// Replaces training (benchmarks of the orchestration alone): given a job,
  /// returns its outcome.
  std::function<Outcome(const sweeps::JobSpec&)> execute_override;
};

/// Runs the sweep on every rank of MPI_COMM_WORLD (collective: every rank
/// calls it). Every rank returns the same summary; only rank 0's has the
/// counts. A failed setup on any rank (a bad spec, data file or database) is
/// gathered at rank 0 and thrown on every rank alike (on rank 0 as it was
/// thrown). An error past setup, which leaves other ranks waiting, is thrown
/// as mpi::AbortWorld: the caller (main) ends the world with MPI_Abort.
RunSummary run_sweep_mpi(const std::filesystem::path& spec, const std::filesystem::path& db,
                         const RunnerOptions& options, const MpiOptions& mpi_options);

}  // namespace daenr::orchestrator
