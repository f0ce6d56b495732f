#pragma once
// The stop signals (SIGTERM, SIGINT, Slurm's grace signal) as a flag, taken on a thread of
// their own so that no signal handler ever runs on a thread that computes.
//
// Why not a plain handler: oneDNN's JIT f32 GEMM points the stack pointer into the heap
// while it runs (uxlfoundation/oneDNN issue 4845, fixed in 3.11.2; Debian 12 ships 2.6.3).
// A handler the kernel starts on that thread pushes its frame there and corrupts the heap:
// `sweep run` aborted in free() with "corrupted size vs. prev_size" about once in 6-19
// SIGTERMs mid-training, and in every run of a GEMM loop under a stream of signals
// (tests/unit/stop_signals_test.cpp). With the signals blocked in every thread but one
// that waits for them in sigwait(), no handler frame is ever written on a computing stack.

#include <atomic>
#include <csignal>
#include <thread>
#include <vector>

namespace daenr::orchestrator {

class StopSignals {
 public:
  /// Blocks `signals` in the calling thread, and so in every thread it starts from now on
  /// (OpenMP's, MPI's), and starts a thread that waits for them and sets `flag`. Make it
  /// before any other thread exists: before MPI_Init and the first parallel region. A thread
  /// started earlier keeps the signals unblocked and, were the kernel to choose it, would run
  /// whatever handler is installed there (main() keeps one as a fallback).
  /// Throws std::invalid_argument for an empty list, std::system_error where the mask or the
  /// thread cannot be set up.
  StopSignals(std::vector<int> signals, std::atomic<bool>& flag);
  /// Stops the waiting thread, takes any signal still pending as a stop request, and restores
  /// the calling thread's mask. Destroy it on the thread that made it.
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  /// The last stop signal taken (0: none yet).
  int last_signal() const { return last_signal_.load(); }
  /// How many were taken; a signal sent while one is pending is merged into it.
  int count() const { return count_.load(); }

 private:
  void wait_loop();

  std::vector<int> signals_;
  sigset_t set_{};
  sigset_t previous_mask_{};
  std::atomic<bool>& flag_;
  std::atomic<bool> closing_{false};
  std::atomic<int> last_signal_{0};
  std::atomic<int> count_{0};
  std::thread waiter_;
};

}  // namespace daenr::orchestrator
