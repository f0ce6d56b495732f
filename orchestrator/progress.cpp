#include "orchestrator/progress.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fmt/format.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "job/text.h"
#include "worker/trainer.h"

namespace daenr::orchestrator {

namespace {

// Under mpirun, a Slurm requeue's SIGTERM reaches mpirun too, which closes the ranks' output
// pipes while rank 0 still records the stopped jobs: a progress line must not kill it then with
// SIGPIPE before the database knows they stopped (tests/cli/slurm_e2e.sh, case E, failed so).
// The signal is blocked in this thread for the write, and one the write raised is dropped.
void write_stderr(const std::string& text) {
  sigset_t pipe, old;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, &old);
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
  const timespec zero{0, 0};
  while (sigtimedwait(&pipe, nullptr, &zero) == SIGPIPE) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

int terminal_width() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 0;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  const auto s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

// The paper's model name (job::display_name, the table reports use too), with the neuron set.
std::string model_text(const sweeps::Labels& l) {
  std::string name = job::display_name(l.autoencoder);
  if (l.readout == job::ReadoutKind::kNone) return name;
  name += '-';
  name += job::display_name(l.readout);
  name += fmt::format("_{}", l.layer);
  if (l.neurons != sweeps::Neurons::kAll)
    name += fmt::format(" ({})", sweeps::to_string(l.neurons));
  return name;
}

// "CAE-FR_2", or "decode CAE-FR_2" / "mei (stretch) CAE-FR_2" for the jobs on a trained model.
std::string job_text(const sweeps::JobSpec& job) {
  switch (job.kind) {
    case job::JobKind::kDecode: return "decode " + model_text(job.labels);
    case job::JobKind::kMei:
      return fmt::format("mei ({}) {}", job::to_string(job.mei.objective), model_text(job.labels));
    default: return model_text(job.labels);
  }
}

// The headline of a done job's result: its test metrics, and for decode / mei jobs the
// number their kind is about.
std::string result_text(const Outcome& o) {
  std::string out;
  if (o.mse) out += fmt::format(", test MSE {:.4f}", *o.mse);
  if (o.mean_r) out += fmt::format(", test r {:.3f}", *o.mean_r);
  const auto m = nlohmann::json::parse(o.metrics, nullptr, false);
  if (!m.is_object()) return out;
  const auto kind = m.value("kind", "");
  if (kind == "decode") {
    const auto& r = m["methods"]["responses"];
    out += fmt::format(", identified top-1 {:.0f}% (chance {:.0f}%)", 100 * r.value("top1", 0.0),
                       100 * m["chance"].value("top1", 0.0));
  } else if (kind == "mei" && m["summary"]["median_model_ratio"].is_number()) {
    out += fmt::format(", {} neurons, median drive vs best natural image {:.2f}x", o.neurons,
                       m["summary"]["median_model_ratio"].get<double>());
    if (m["summary"]["median_true_ratio"].is_number()) {
      out += fmt::format(" (true neurons {:.2f}x)", m["summary"]["median_true_ratio"].get<double>());
    }
  }
  return out;
}

ProgressReporter::ProgressReporter(ProgressMode mode, int64_t jobs_to_run,
                                   std::function<void(const std::string&)> write,
                                   std::function<double()> clock, int width)
    : mode_(mode),
      to_run_(jobs_to_run),
      write_(std::move(write)),
      clock_(std::move(clock)),
      width_(width) {
  if (!write_) write_ = write_stderr;
  if (!clock_) {
    clock_ = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
  }
  // A line wider than the terminal wraps, and "\r" then rewrites only its last row.
  if (width_ == 0 && mode_ == ProgressMode::kTerminal) width_ = terminal_width();
}

ProgressReporter::~ProgressReporter() {
  try {
    clear();
  } catch (...) {
    // Nothing to do in a destructor: the line stays.
  }
}

void ProgressReporter::clear() {
  if (!line_shown_) return;
  write_("\r\033[K");
  line_shown_ = false;
}

void ProgressReporter::draw(const std::string& line) {
  if (mode_ != ProgressMode::kTerminal) return;
  std::string text = line;
  if (width_ > 1 && static_cast<int>(text.size()) > width_ - 1) text.resize(width_ - 1);
  write_("\r\033[K" + text);
  line_shown_ = true;
  last_draw_ = clock_();
}

std::string ProgressReporter::head() const {
  return fmt::format("[job {}/{}] {}", started_, std::max(to_run_, started_), label_);
}

void ProgressReporter::job_started(const sweeps::JobSpec& job) {
  ++started_;
  job_start_ = clock_();
  first_step_ = -1;
  label_ = fmt::format("{} seed {}", job_text(job), job.labels.seed);
  std::string line = head() + ": starting";
  if (finished_ > 0) {
    const double per_job = finished_wall_s_ / double(finished_);
    const int64_t left = std::max<int64_t>(to_run_ - started_ + 1, 1);
    line += fmt::format(" | sweep ~{} left", format_duration(per_job * double(left)));
  }
  draw(line);
}

void ProgressReporter::training(const worker::TrainingProgress& p) {
  if (mode_ != ProgressMode::kTerminal) return;
  const double now = clock_();
  if (first_step_ < 0) {
    first_step_ = p.step;
    first_time_ = now;
  }
  if (!p.finished && last_draw_ >= 0 && now - last_draw_ < 0.25) return;
  const double elapsed = now - job_start_;
  std::string line = fmt::format("{}: step {}/{}, phase {}/{}, val loss {:.5g}", head(), p.step,
                                 p.max_steps, p.phase + 1, p.phases, p.val_loss);
  const int done_here = p.step - p.resumed_from_step;
  if (done_here > 0 && elapsed > 0) {
    // The rate since the job's first validation point, once there are two: the time before the
    // first one also holds loading the data and building the model.
    const double per_step = p.step > first_step_
                                ? (now - first_time_) / double(p.step - first_step_)
                                : elapsed / double(done_here);
    // At that rate to the step cap: the schedule's phases may end the job sooner.
    const double job_left = p.finished ? 0.0 : per_step * double(std::max(p.max_steps - p.step, 0));
    // The jobs not started yet take what the finished ones took on average, or, before any
    // has finished, what this one is heading for.
    const double per_job =
        finished_ > 0 ? finished_wall_s_ / double(finished_) : elapsed + job_left;
    const int64_t after = std::max<int64_t>(to_run_ - started_, 0);
    line += fmt::format(" | left: job <={}, sweep ~{}", format_duration(job_left),
                        format_duration(job_left + per_job * double(after)));
  }
  draw(line);
}

void ProgressReporter::job_finished(const sweeps::JobSpec& job, const Outcome& outcome,
                                    std::optional<double> wall_s) {
  if (mode_ == ProgressMode::kOff) return;
  ++finished_;
  const double wall = wall_s ? *wall_s : clock_() - job_start_;
  finished_wall_s_ += wall;
  std::string line =
      fmt::format("[{}/{}] {} {} {} seed {}: ", finished_, std::max(to_run_, finished_),
                  job.id.substr(0, 8), job_text(job), job.labels.region, job.labels.seed);
  switch (outcome.status) {
    case Outcome::Status::kDone:
      line += fmt::format("done in {}", format_duration(wall)) + result_text(outcome);
      break;
    case Outcome::Status::kFailed:
      line +=
          fmt::format("failed after {}: {}", format_duration(wall), job::first_line(outcome.error));
      break;
    case Outcome::Status::kPreempted:
      line +=
          fmt::format("stopped after {} (checkpointed; rerun to resume)", format_duration(wall));
      break;
  }
  // On a terminal the updating line gives way to the result, which stays.
  write_((line_shown_ ? "\r\033[K" : "") + line + "\n");
  line_shown_ = false;
}

}  // namespace daenr::orchestrator
