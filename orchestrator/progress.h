#pragma once
// A sweep's progress on stderr, as `daenr sweep run` shows it. On a terminal: one line that
// updates in place with the job under way (its index, step, phase, validation loss) and the
// time left for the job and for the sweep. In every mode but kOff: one line per finished job
// (short id, model, seed, status, wall time, key test metric), so that a log shows progress
// and a terminal keeps each result once the line has moved on.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "orchestrator/job_runner.h"
#include "sweeps/expand.h"

namespace daenr::worker {
// worker/trainer.h, which brings LibTorch: sweep_runner.h, which includes this, goes without.
struct TrainingProgress;
}  // namespace daenr::worker

namespace daenr::orchestrator {

enum class ProgressMode {
  kOff,       ///< nothing (tests, benchmarks, MPI ranks other than 0)
  kLog,       ///< stderr is not a terminal: a line per finished job
  kTerminal,  ///< those lines and the updating one
};

/// "42s", "3m05s", "1h02m": a duration as the progress lines write it.
std::string format_duration(double seconds);

/// The model as the report names it, in plain text: "CAE-FR_2", "CNN-FC_1", "VQ-VAE".
std::string model_text(const sweeps::Labels& labels);

class ProgressReporter {
 public:
  /// `jobs_to_run`: the jobs this run expects to run (the index's denominator; grows if retries
  /// run more). `write` gets each piece of text for stderr and `clock` gives seconds of a steady
  /// clock (defaults: stderr, std::chrono::steady_clock); `width` caps the updating line at the
  /// terminal's columns (0: the terminal's own, or no cap when unknown).
  ProgressReporter(ProgressMode mode, int64_t jobs_to_run,
                   std::function<void(const std::string&)> write = {},
                   std::function<double()> clock = {}, int width = 0);
  /// Clears the updating line, so that what follows on stderr starts on a clean line.
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  /// Whether anything is shown: a caller may skip gathering what it would show.
  bool on() const { return mode_ != ProgressMode::kOff; }
  /// A job starts in this process (the in-process runner): its index and a first line.
  void job_started(const sweeps::JobSpec& job);
  /// A validation point of the job started last: redraws the line (terminal, at most 4 times
  /// a second unless the schedule ended).
  void training(const worker::TrainingProgress& progress);
  /// A job ended; its wall time is the time since job_started, or `wall_s` where given (MPI:
  /// rank 0 saw it assigned, not started).
  void job_finished(const sweeps::JobSpec& job, const Outcome& outcome,
                    std::optional<double> wall_s = std::nullopt);
  /// Erases the updating line (terminal).
  void clear();

 private:
  void draw(const std::string& line);
  std::string head() const;

  ProgressMode mode_;
  int64_t to_run_;
  std::function<void(const std::string&)> write_;
  std::function<double()> clock_;
  int width_;
  int64_t started_ = 0, finished_ = 0;
  double finished_wall_s_ = 0;  // the finished jobs' wall times, summed: the per-job estimate
  double job_start_ = 0, last_draw_ = -1;
  int first_step_ = -1;    // the job's first validation point in this run (-1: none yet)
  double first_time_ = 0;  // and when it came
  std::string label_;      // the job under way: "CAE-FR_2 seed 1"
  bool line_shown_ = false;
};

}  // namespace daenr::orchestrator
