// A data-parallel training step under mpiexec: how much of the step the all-reduces take.
// Prints one JSON line (rank 0).
//
//   mpiexec --oversubscribe --allow-run-as-root -n 2 build/bench/daenr_bench_dp_step
//
// Every collective of the real trainer goes through a timing wrapper of the reducer: the
// gradient all-reduce (all_reduce_mean), the BatchNorm statistics (all_reduce_sum) and the
// stop vote (any). As in train_throughput.cpp, times are taken between a short and a long run
// of the same job, so construction and the one validation point cancel out; the collectives'
// times are those of the long run's steps (the validation point's two collectives, a stop
// vote and a 2-value sum, are left out). The time inside a collective includes waiting for
// the slower rank; with --barrier each collective is preceded by a timed MPI_Barrier, which
// separates that wait ("skew") from the reduction itself.

#include <CLI/CLI.hpp>
#include <chrono>
#include <fmt/format.h>
#include <iostream>
#include <mpi.h>

#include "models/data.h"
#include "mpi/comm.h"
#include "models/synth.h"
#include "worker/gradient_reducer.h"
#include "job/config.h"
#include "worker/trainer.h"

using namespace daenr;

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Times {
  double grads = 0, stats = 0, skew = 0;
  int64_t grad_calls = 0, stat_calls = 0, grad_bytes = 0;
};

class TimingReducer final : public worker::GradientReducer {
 public:
  TimingReducer(worker::GradientReducer& inner, MPI_Comm comm, bool barrier)
      : inner_(inner), comm_(comm), barrier_(barrier) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  void all_reduce_mean(std::vector<torch::Tensor>& tensors) override {
    wait();
    const auto t0 = Clock::now();
    inner_.all_reduce_mean(tensors);
    times.grads += since(t0);
    ++times.grad_calls;
    for (const auto& t : tensors) times.grad_bytes += t.numel() * t.element_size();
  }
  void all_reduce_sum(torch::Tensor& tensor) override {
    // A BatchNorm sums 2C + 1 >= 9 float64 values per channel, forward and backward; the
    // other sums are the trainer's start (rank 0's parameters, float32 and int64 here) and its
    // validation point (two float64 losses), which are not step time.
    const bool batchnorm = tensor.scalar_type() == torch::kDouble && tensor.numel() > 2;
    if (batchnorm) wait();
    const auto t0 = Clock::now();
    inner_.all_reduce_sum(tensor);
    if (!batchnorm) return;
    times.stats += since(t0);
    ++times.stat_calls;
  }
  bool any(bool flag) override { return inner_.any(flag); }
  Times times;

 private:
  void wait() {
    if (!barrier_) return;
    const auto t0 = Clock::now();
    daenr::mpi::check(MPI_Barrier(comm_), "MPI_Barrier");
    times.skew += since(t0);
  }
  worker::GradientReducer& inner_;
  MPI_Comm comm_;
  bool barrier_;
};

struct Run {
  double seconds = 0;
  Times times;
};

Run timed_train(const job::JobConfig& config, const models::Dataset& data, int steps,
                worker::GradientReducer* inner, MPI_Comm comm, bool barrier) {
  auto c = config;
  c.train.max_steps = steps;
  c.train.validate_every = steps;
  c.train.patience = steps;
  worker::Trainer trainer(c, data);
  std::optional<TimingReducer> timing;
  worker::RunOptions options;
  if (inner != nullptr) {
    timing.emplace(*inner, comm, barrier);
    options.reducer = &*timing;
  }
  daenr::mpi::check(MPI_Barrier(comm), "MPI_Barrier");
  const auto t0 = Clock::now();
  trainer.train(options);
  Run run;
  run.seconds = since(t0);
  if (timing) run.times = timing->times;
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  daenr::mpi::init(&argc, &argv);
  CLI::App app{"daenr data-parallel step benchmark (run under mpiexec)"};
  int batch = 256, steps = 20, threads = 1, region = 3, layer = 2, width = 32;
  double bucket_mib = 25;
  bool barrier = false, single = true;
  std::string autoencoder = "cae", readout = "fr", device = "cpu";
  app.add_option("--batch", batch, "global batch (each of R ranks takes batch / R)");
  app.add_option("--steps", steps, "steps of the longer run (the shorter has a quarter)");
  app.add_option("--threads", threads, "threads per rank");
  app.add_option("--region", region);
  app.add_option("--autoencoder", autoencoder);
  app.add_option("--readout", readout);
  app.add_option("--layer", layer);
  app.add_option("--width", width);
  app.add_option("--bucket-mib", bucket_mib);
  app.add_option("--device", device, "cpu or cuda (each rank takes its local rank's GPU)");
  app.add_flag("--barrier", barrier, "time a barrier before each collective (skew apart)");
  app.add_flag("!--no-single", single, "skip the single-process reference on rank 0");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    daenr::mpi::check(MPI_Finalize(), "MPI_Finalize");
    return code;
  }
  int rank = 0, size = 1;
  daenr::mpi::check(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  daenr::mpi::check(MPI_Comm_size(MPI_COMM_WORLD, &size), "MPI_Comm_size");

  worker::configure_threads(threads);
  auto raw = models::simulate_region(models::virtual_region_spec(region), 1);
  auto data = models::prepare(raw, 0);
  std::vector<std::string> overrides = {"model.autoencoder=" + autoencoder,
                                        "model.readout=" + readout,
                                        fmt::format("model.layer={}", layer),
                                        fmt::format("model.width={}", width),
                                        fmt::format("train.batch_size={}", batch),
                                        fmt::format("train.threads={}", threads),
                                        "train.checkpoint_every=0",
                                        "train.device=" + device};
  if (autoencoder == "none") overrides.push_back("loss.alpha=0");
  if (readout == "none") overrides.push_back("loss.beta=0");
  const auto config = job::apply_overrides("", "bench", overrides);
  auto reducer =
      worker::make_reducer(MPI_COMM_WORLD, torch::Device(worker::device_for_local_rank(device)),
                           static_cast<std::size_t>(bucket_mib * (1 << 20)));

  const int short_steps = std::max(1, steps / 4);
  timed_train(config, data, 3, reducer.get(), MPI_COMM_WORLD, barrier);  // warm-up
  const auto s = timed_train(config, data, short_steps, reducer.get(), MPI_COMM_WORLD, barrier);
  const auto l = timed_train(config, data, steps, reducer.get(), MPI_COMM_WORLD, barrier);
  const double n = steps - short_steps;
  const double step = (l.seconds - s.seconds) / n;
  const double grads = l.times.grads / steps;
  const double stats = l.times.stats / steps;
  const double skew = l.times.skew / steps;

  // One process on the whole batch, for the speed-up; the other ranks wait.
  double single_step = 0;
  if (single) {
    if (rank == 0) {
      timed_train(config, data, 3, nullptr, MPI_COMM_SELF, false);
      const auto s1 = timed_train(config, data, short_steps, nullptr, MPI_COMM_SELF, false);
      const auto l1 = timed_train(config, data, steps, nullptr, MPI_COMM_SELF, false);
      single_step = (l1.seconds - s1.seconds) / n;
    }
    daenr::mpi::check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  }

  if (rank == 0) {
    nlohmann::ordered_json out;
    out["model"] = fmt::format("{}-{}_{} width {}", autoencoder, readout, layer, width);
    out["ranks"] = size;
    out["batch"] = batch;
    out["threads_per_rank"] = threads;
    out["device"] = device;
    out["gradient_mib"] =
        l.times.grad_bytes / double(std::max<int64_t>(1, l.times.grad_calls)) / (1 << 20);
    out["buckets_cap_mib"] = bucket_mib;
    out["step_ms"] = step * 1e3;
    out["grad_allreduce_ms"] = grads * 1e3;
    out["batchnorm_allreduce_ms"] = stats * 1e3;
    out["batchnorm_allreduces_per_step"] = l.times.stat_calls / double(steps);
    if (barrier) out["skew_ms"] = skew * 1e3;
    out["allreduce_share"] = (grads + stats) / step;
    if (barrier) out["allreduce_and_skew_share"] = (grads + stats + skew) / step;
    if (single) {
      out["single_process_step_ms"] = single_step * 1e3;
      out["speedup"] = single_step / step;
    }
    std::cout << out.dump() << std::endl;
  }
  reducer.reset();  // frees its communicator before MPI_Finalize
  daenr::mpi::check(MPI_Finalize(), "MPI_Finalize");
  return 0;
}
