#include "worker/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <dlfcn.h>
#include <exception>
#include <fcntl.h>
#include <fmt/format.h>
#include <limits>
#include <malloc.h>
#include <mutex>
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>

#include "models/adam.h"
#include "models/error.h"
#include "models/metrics.h"
#include "worker/gradient_reducer.h"

namespace daenr::worker {

namespace {

// SplitMix64 finaliser: turns (seed, counter) pairs into well-spread 64-bit
// seeds, so that the generators of neighbouring steps are unrelated.
std::uint64_t mix(std::uint64_t seed, std::uint64_t counter, std::uint64_t stream) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (counter + 1) + 0xD1B54A32D192ED03ULL * stream;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Independent random streams of one job.
enum Stream : std::uint64_t { kInit = 1, kEpoch = 2, kStep = 3, kRank = 4 };

// The seed of step `step`'s draws (dropout, VAE noise) on group rank `rank`. Rank 0's is the
// single-process seed; the other ranks' draws are independent of it, so that ranks do not
// repeat each other's noise on their shares.
std::uint64_t step_seed(std::uint64_t seed, int step, int rank) {
  const auto s = mix(seed, static_cast<std::uint64_t>(step), kStep);
  return rank == 0 ? s : mix(s, static_cast<std::uint64_t>(rank), kRank);
}

// Runs `fn`; if it throws on any rank of `group`, every rank throws (its own error, or
// CheckpointError(`elsewhere`) where `fn` succeeded), so that no rank is left waiting in a
// collective that the failed one will never join.
template <class Fn>
void collectively(GradientReducer* group, Fn&& fn, const std::string& elsewhere) {
  std::exception_ptr error;
  try {
    fn();
  } catch (...) {
    error = std::current_exception();
  }
  const bool failed_somewhere = group != nullptr ? group->any(error != nullptr) : error != nullptr;
  if (error) std::rethrow_exception(error);
  if (failed_somewhere) throw CheckpointError(elsewhere);
}

// BatchNorm statistics span the group for the duration of one train() call, however it ends.
class BatchNormGroup {
 public:
  BatchNormGroup(models::DaeNr& model, GradientReducer* group) : model_(model), on_(group) {
    if (on_) {
      models::set_batchnorm_group(*model_, [group](torch::Tensor& t) { group->all_reduce_sum(t); });
    }
  }
  ~BatchNormGroup() {
    if (on_) models::set_batchnorm_group(*model_, {});
  }
  BatchNormGroup(const BatchNormGroup&) = delete;
  BatchNormGroup& operator=(const BatchNormGroup&) = delete;

 private:
  models::DaeNr& model_;
  bool on_;
};

// fsync a path (file or directory), so that a rename is durable.
void fsync_path(const std::filesystem::path& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw CheckpointError(fmt::format("{}: cannot open to sync", path.string()));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw CheckpointError(fmt::format("{}: fsync failed", path.string()));
}

double scalar(const torch::Tensor& t) { return t.to(torch::kCPU).to(torch::kDouble).item<double>(); }

}  // namespace

void configure_threads(int n) {
  torch::set_num_threads(n);
  // LibTorch links the system BLAS, which for Debian's libtorch is OpenBLAS with its own
  // pthread pool beside LibTorch's OpenMP one. Given n threads too, the two pools take turns on
  // the same n cores, and OpenBLAS's idle threads spin after each call while OpenMP's wake to
  // run the next operator: with 2 threads a CAE-FR_2 step at batch 64 was 1.7x slower than with
  // OpenBLAS kept to the calling thread, and the readout-only CNN slower than on one thread
  // (bench/README.md, "OpenBLAS's own threads"). LibTorch parallelises around its BLAS calls
  // where that pays (batched products, im2col), so OpenBLAS gets one thread whatever n is.
  // Looked up at run time: another BLAS simply has no such setter.
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    fn(1);
  }
}

namespace {

// A training step allocates and frees the same few large activation and gradient buffers
// every step. glibc serves blocks above its mmap threshold (128 KiB, raised adaptively) from
// fresh mappings and returns freed heap tops to the system, so every step paid page faults
// and zero-filled pages again: a fifth of a CAE step's CPU time at batch 64 was in the
// kernel. Keep freed memory in the heap for reuse instead. Process-wide, set once; the cost is
// that a process keeps its peak heap until it exits.
void keep_freed_memory() {
  static std::once_flag once;
  std::call_once(once, [] {
    ::mallopt(M_MMAP_THRESHOLD, 512 << 20);
    ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
    ::mallopt(M_TOP_PAD, 64 << 20);
  });
}

}  // namespace

Trainer::Trainer(const JobConfig& config, const models::Dataset& data)
    : config_(config), device_(device_for_local_rank(config.train.device)) {
  keep_freed_memory();
  if (device_.is_cuda() && !torch::cuda::is_available()) {
    throw ConfigError(fmt::format("train.device: \"{}\" requested but no CUDA device is available "
                                  "(this build: {})",
                                  config.train.device,
#ifdef DAENR_HAVE_CUDA
                                  "CUDA"
#else
                                  "CPU only"
#endif
                                  ));
  }
  train_x_ = data.train_images.to(device_);
  train_s_ = data.train_responses.to(device_);
  val_x_ = data.val_images.to(device_);
  val_s_ = data.val_responses.to(device_);
  test_x_ = data.test_images.to(device_);
  test_s_ = data.test_responses;  // metrics are computed on the CPU in float64
  test_raw_ = data.test_raw;
  test_expected_ = data.test_expected;
  rf_true_ = data.rf_centres;

  torch::manual_seed(mix(config.seed, 0, kInit));
  model_ = build_model(config, data);
  model_->to(device_);
  lr_ = config.train.learning_rate;
  best_val_ = std::numeric_limits<double>::infinity();
  reset_optimizer(lr_);
}

void Trainer::reset_optimizer(double lr) {
  // A new phase starts a fresh Adam: its moment estimates belong to the
  // trajectory that was just abandoned for the best parameters.
  optimizer_ = std::make_unique<torch::optim::Adam>(model_->parameters(),
                                                    torch::optim::AdamOptions(lr));
}

torch::Tensor Trainer::batch_indices(int step) {
  // Sample g = step * B + k of the job is position g mod n of the permutation of
  // epoch g / n; each epoch's permutation is seeded by (seed, epoch). Any step's
  // batch is thus a pure function of (seed, step).
  const int64_t n = train_x_.size(0);
  const int64_t b = config_.train.batch_size;
  std::vector<int64_t> idx(b);
  for (int64_t k = 0; k < b; ++k) {
    const int64_t g = static_cast<int64_t>(step) * b + k;
    const int64_t epoch = g / n;
    if (epoch != perm_epoch_) {
      auto gen = at::detail::createCPUGenerator(mix(config_.seed, epoch, kEpoch));
      perm_ = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kLong));
      perm_epoch_ = epoch;
    }
    idx[k] = perm_.data_ptr<int64_t>()[g % n];
  }
  return torch::tensor(idx, torch::kLong).to(device_);
}

void Trainer::reduce_gradients(GradientReducer& group) {
  std::vector<torch::Tensor> grads;
  for (auto& p : model_->parameters()) {
    // Every rank must hand over the same list: a gradient that backward left undefined on this
    // rank (a parameter its share did not reach) is a zero one.
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  group.all_reduce_mean(grads);
}

void Trainer::broadcast_from_rank0(GradientReducer& group) {
  // Ranks build the same initial model from the same seed; taking rank 0's parameters and
  // buffers (x + 0 + ... + 0 is exact) makes that a guarantee rather than an assumption.
  torch::NoGradGuard no_grad;
  auto send = [&](torch::Tensor t) {
    if (group.rank() != 0) t.zero_();
    group.all_reduce_sum(t);
  };
  for (auto& p : model_->parameters()) send(p);
  for (auto& b : model_->buffers()) send(b);
}

void Trainer::snapshot_best() {
  torch::NoGradGuard no_grad;
  best_state_.clear();
  for (const auto& p : model_->parameters()) best_state_.push_back(p.detach().clone());
  for (const auto& b : model_->buffers()) best_state_.push_back(b.detach().clone());
}

void Trainer::restore_best() {
  if (best_state_.empty()) return;
  torch::NoGradGuard no_grad;
  std::size_t i = 0;
  for (auto& p : model_->parameters()) p.copy_(best_state_[i++]);
  for (auto& b : model_->buffers()) b.copy_(best_state_[i++]);
}

double Trainer::validation_loss() {
  // The data terms of the objective, alpha * reconstruction + beta * Poisson, in eval mode
  // (running BatchNorm statistics, no dropout, the VAE's mean). Regularisers
  // and the VAE/VQ terms are left out: they say nothing about held-out data.
  torch::NoGradGuard no_grad;
  model_->eval();
  const int64_t n = val_x_.size(0);
  const int64_t chunk = 512;
  double total = 0;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t end = std::min(n, start + chunk);
    auto x = val_x_.slice(0, start, end);
    auto s = val_s_.slice(0, start, end);
    auto out = model_->forward(x);
    double v = 0;
    if (out.reconstruction.defined()) {
      // Reduced as in training (the paper's sum over pixels, or the mean).
      v += config_.loss.alpha * models::reconstruction_scale(config_.loss, x) *
           scalar(torch::nn::functional::mse_loss(out.reconstruction, x));
    }
    if (out.prediction.defined()) {
      v += config_.loss.beta * scalar(models::poisson_loss(out.prediction, s));
    }
    total += v * static_cast<double>(end - start);
  }
  model_->train();
  return total / static_cast<double>(n);
}

// The steps of train(), in the order a training run takes them.

void Trainer::check_group(const Group& g) const {
  if (config_.train.batch_size < g.ranks) {
    throw ConfigError(
        fmt::format("train.batch_size: {} is smaller than the data-parallel group "
                    "({} ranks), which needs a sample per rank",
                    config_.train.batch_size, g.ranks));
  }
}

void Trainer::resume_from(const std::filesystem::path& path, const Group& g) {
  if (path.empty()) return;
  const bool here = std::filesystem::exists(path);
  if (g.reducer != nullptr) {
    const bool somewhere = g.reducer->any(here), missing_somewhere = g.reducer->any(!here);
    if (somewhere && missing_somewhere) {
      throw CheckpointError(fmt::format(
          "{}: exists for some ranks of the data-parallel group only (it must be on a file "
          "system that all ranks share)",
          path.string()));
    }
  }
  if (!here) return;
  collectively(
      g.reducer, [&] { load_checkpoint(path); },
      fmt::format("{}: another rank of the data-parallel group could not resume from it", path.string()));
  resumed_from_step_ = step_;
}

void Trainer::optimisation_step(const Group& g, const models::LossWeights& weights, torch::Tensor& running) {
  const auto& tc = config_.train;
  // One optimisation step; its random draws are seeded by (seed, step).
  torch::manual_seed(step_seed(config_.seed, step_, g.rank));
  auto idx = batch_indices(step_);
  // Data parallel: this rank's share of the batch is every R-th sample from its rank on.
  if (g.reducer != nullptr) idx = idx.slice(0, g.rank, tc.batch_size, g.ranks);
  auto x = train_x_.index_select(0, idx);
  auto s = train_s_.index_select(0, idx);
  // Drop the gradients instead of filling them with zeros: backward then
  // writes them fresh, one pass less over every parameter. (Every parameter
  // is reached by the loss at every step, so Adam sees the same gradients.)
  // Not Module::zero_grad(true): it detaches each gradient before dropping it, an operator
  // call per parameter for nothing.
  for (const auto& p : model_->parameters()) p.mutable_grad().reset();
  std::optional<models::LossTerms> fused;
  // The readout-only CNN on one CPU rank: its forward and backward passes chained without
  // autograd (models/network.h, fused_training_step), the same bits.
  if (g.reducer == nullptr) fused = models::fused_training_step(model_, x, s, weights);
  if (fused) {
    running += fused->total;
  } else {
    auto out = model_->forward(x);
    auto terms = models::compute_loss(model_, out, x, s, weights);
    if (g.reducer == nullptr) {
      terms.total.backward();
      running += terms.total.detach();
    } else {
      // The loss is a mean over this rank's share. Weighted by share * R / B, the ranks' losses
      // average to the whole batch's mean loss, and their gradients (through the group's
      // BatchNorm statistics too) average, in all_reduce_mean, to its gradient.
      const double share = static_cast<double>(idx.size(0)) / tc.batch_size;
      (terms.total * (share * g.ranks)).backward();
      reduce_gradients(*g.reducer);
      running += terms.total.detach() * share;
    }
  }
  models::adam_step(*optimizer_);  // LibTorch's Adam in one pass per parameter (models/adam.h)
  ++step_;
}

std::pair<double, double> Trainer::point_losses(const Group& g, double train_sum, int steps) {
  double val = validation_loss();
  if (g.reducer != nullptr) {
    // The training loss is the group's (each rank summed its share's); the validation loss
    // is rank 0's, so that all ranks take the same schedule decisions even if their own
    // evaluations were to round differently.
    auto both = torch::tensor({train_sum, g.rank == 0 ? val : 0.0},
                              torch::TensorOptions().dtype(torch::kDouble).device(device_));
    g.reducer->all_reduce_sum(both);
    both = both.cpu();
    train_sum = both[0].item<double>();
    val = both[1].item<double>();
  }
  const double train_loss = train_sum / steps;
  if (!std::isfinite(train_loss) || !std::isfinite(val)) {
    throw TrainingDiverged(
        fmt::format("loss diverged at step {} (train {}, validation {})", step_, train_loss, val));
  }
  return {train_loss, val};
}

void Trainer::advance_schedule(double val, bool at_cap) {
  const auto& tc = config_.train;
  if (val < best_val_) {
    best_val_ = val;
    best_step_ = step_;
    snapshot_best();
  }
  if (step_ - best_step_ >= tc.patience) {
    // End of a phase: back to the best parameters, then a smaller step size.
    restore_best();
    ++phase_;
    if (phase_ < tc.phases) {
      lr_ *= tc.lr_decay;
      reset_optimizer(lr_);
      best_step_ = step_;
    }
  }
  if (phase_ >= tc.phases || at_cap) {
    restore_best();
    finished_ = true;
  }
}

bool Trainer::stop_requested(const RunOptions& options, const Group& g) {
  if (finished_) return false;
  bool stop = options.should_stop && options.should_stop(step_);
  if (g.reducer != nullptr) stop = g.reducer->any(stop);
  return stop;
}

void Trainer::checkpoint(const std::filesystem::path& path, const Group& g) {
  collectively(
      g.reducer,
      [&] {
        if (g.rank == 0) save_checkpoint(path);
      },
      fmt::format("{}: rank 0 of the data-parallel group could not write it", path.string()));
}

bool Trainer::train(const RunOptions& options) {
  const auto& tc = config_.train;
  // A group of one has nothing to synchronise: it takes the single-process path exactly.
  Group g;
  if (options.reducer != nullptr && options.reducer->size() > 1) {
    g = {options.reducer, options.reducer->rank(), options.reducer->size()};
  }
  check_group(g);
  const auto& path = options.checkpoint;
  resume_from(path, g);
  BatchNormGroup batchnorm_group(model_, g.reducer);
  if (g.reducer != nullptr) broadcast_from_rank0(*g.reducer);
  const models::LossWeights weights = config_.loss;
  model_->train();
  auto started = std::chrono::steady_clock::now();
  auto running = torch::zeros({}, torch::TensorOptions().device(device_));
  int since_point = 0;
  int validations = 0;

  while (!finished_) {
    optimisation_step(g, weights, running);
    ++since_point;
    const bool at_cap = step_ >= tc.max_steps;
    if (step_ % tc.validate_every != 0 && !at_cap) continue;

    // A validation point: losses, the schedule, progress, a stop, a checkpoint.
    const auto [train_loss, val] = point_losses(g, scalar(running), since_point);
    running.zero_();
    since_point = 0;
    curve_.push_back({step_, phase_, lr_, train_loss, val});
    advance_schedule(val, at_cap);
    ++validations;
    if (options.on_progress) {
      options.on_progress({step_, tc.max_steps, std::min(phase_, tc.phases - 1), tc.phases, val, best_val_,
                           resumed_from_step_, finished_});
    }
    const bool stop = stop_requested(options, g);
    const bool periodic = tc.checkpoint_every > 0 && validations % tc.checkpoint_every == 0;
    if (!path.empty() && (stop || periodic || finished_)) {
      train_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      started = std::chrono::steady_clock::now();
      checkpoint(path, g);
    }
    if (stop) return false;
  }
  train_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return true;
}

void Trainer::save_checkpoint(const std::filesystem::path& path) const {
  torch::serialize::OutputArchive archive;
  archive.write("config", c10::IValue(to_json(config_).dump()));
  archive.write("step", c10::IValue(static_cast<int64_t>(step_)));
  archive.write("phase", c10::IValue(static_cast<int64_t>(phase_)));
  archive.write("lr", c10::IValue(lr_));
  archive.write("best_val", c10::IValue(best_val_));
  archive.write("best_step", c10::IValue(static_cast<int64_t>(best_step_)));
  archive.write("finished", c10::IValue(finished_));
  archive.write("train_seconds", c10::IValue(train_seconds_));
  std::vector<double> curve;
  for (const auto& c : curve_) {
    curve.insert(curve.end(), {double(c.step), double(c.phase), c.learning_rate, c.train_loss, c.val_loss});
  }
  archive.write("curve", torch::tensor(curve, torch::kDouble).reshape({-1, 5}));
  torch::serialize::OutputArchive model_archive;
  model_->save(model_archive);
  archive.write("model", model_archive);
  torch::serialize::OutputArchive optim_archive;
  optimizer_->save(optim_archive);
  archive.write("optimizer", optim_archive);
  for (std::size_t i = 0; i < best_state_.size(); ++i) {
    archive.write(fmt::format("best_{}", i), best_state_[i].cpu(), /*is_buffer=*/true);
  }
  archive.write("best_count", c10::IValue(static_cast<int64_t>(best_state_.size())));

  // Write beside the target, make it durable, then rename over the old one: a
  // crash leaves either the previous checkpoint or the new one, never half.
  auto tmp = path;
  tmp += fmt::format(".tmp.{}", ::getpid());
  std::filesystem::create_directories(path.parent_path().empty() ? "." : path.parent_path());
  archive.save_to(tmp.string());
  fsync_path(tmp, false);
  std::filesystem::rename(tmp, path);
  fsync_path(path.parent_path().empty() ? "." : path.parent_path(), true);
}

void Trainer::load_checkpoint(const std::filesystem::path& path) {
  try {
    load_checkpoint_archive(path);
  } catch (const c10::Error&) {
    // A torn, foreign or older-format file: LibTorch's message is a backtrace.
    throw CheckpointError(fmt::format("{}: not a readable checkpoint", path.string()));
  }
}

void Trainer::load_checkpoint_archive(const std::filesystem::path& path) {
  torch::serialize::InputArchive archive;
  archive.load_from(path.string(), device_);
  c10::IValue v;
  archive.read("config", v);
  if (v.toStringRef() != to_json(config_).dump()) {
    throw CheckpointError(fmt::format("{}: written by a different job configuration", path.string()));
  }
  archive.read("step", v), step_ = static_cast<int>(v.toInt());
  archive.read("phase", v), phase_ = static_cast<int>(v.toInt());
  archive.read("lr", v), lr_ = v.toDouble();
  archive.read("best_val", v), best_val_ = v.toDouble();
  archive.read("best_step", v), best_step_ = static_cast<int>(v.toInt());
  archive.read("finished", v), finished_ = v.toBool();
  archive.read("train_seconds", v), train_seconds_ = v.toDouble();
  torch::Tensor curve;
  archive.read("curve", curve);
  curve_.clear();
  curve = curve.cpu().contiguous();
  for (int64_t i = 0; i < curve.size(0); ++i) {
    auto row = curve[i];
    curve_.push_back({int(row[0].item<double>()), int(row[1].item<double>()), row[2].item<double>(),
                      row[3].item<double>(), row[4].item<double>()});
  }
  torch::serialize::InputArchive model_archive;
  archive.read("model", model_archive);
  model_->load(model_archive);
  reset_optimizer(lr_);
  torch::serialize::InputArchive optim_archive;
  archive.read("optimizer", optim_archive);
  optimizer_->load(optim_archive);
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr_);
  }
  archive.read("best_count", v);
  best_state_.assign(v.toInt(), torch::Tensor());
  for (std::size_t i = 0; i < best_state_.size(); ++i) {
    archive.read(fmt::format("best_{}", i), best_state_[i], /*is_buffer=*/true);
    best_state_[i] = best_state_[i].to(device_);
  }
}

JobResult Trainer::evaluate() {
  torch::NoGradGuard no_grad;
  model_->eval();
  JobResult result;
  result.steps = step_;
  result.phases_completed = phase_;
  result.resumed_from_step = resumed_from_step_;
  result.best_val_loss = best_val_;
  result.train_seconds = train_seconds_;
  result.curve = curve_;
  result.neurons = static_cast<int>(test_s_.size(1));
  auto out = model_->forward(test_x_);
  if (out.reconstruction.defined()) {
    auto rec = out.reconstruction.to(torch::kCPU);
    auto ref = test_x_.to(torch::kCPU);
    result.mse = models::mse(rec, ref);
    result.psnr = models::psnr(*result.mse);
    result.ssim = models::ssim(rec, ref);
    const int64_t k = std::min<int64_t>(10, rec.size(0));
    result.test_images = ref.slice(0, 0, k).clone();
    result.reconstructions = rec.slice(0, 0, k).clone();
  }
  if (out.perplexity.defined()) result.perplexity = scalar(out.perplexity);
  if (out.prediction.defined()) {
    auto pred = out.prediction.to(torch::kCPU).to(torch::kDouble);
    auto r = models::pearson_per_neuron(pred, test_s_);
    auto p = models::pearson_p_values(r, static_cast<int>(pred.size(0)));
    result.r.assign(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
    result.p.assign(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
    result.mean_r = r.mean().item<double>();
    result.n_significant = models::count_significant(r, p);
    if (test_raw_.defined() && test_raw_.size(0) >= 2) {
      result.mean_feve = models::feve(pred, test_raw_).mean().item<double>();
    }
    if (test_expected_.defined()) {
      // How close the prediction is to the neurons' noiseless response, which only a
      // simulation knows; beside it, how close the trial average itself is.
      auto true_r = models::pearson_per_neuron(pred, test_expected_);
      result.true_r.assign(true_r.data_ptr<double>(), true_r.data_ptr<double>() + true_r.numel());
      result.mean_true_r = true_r.mean().item<double>();
      result.data_true_r = models::pearson_per_neuron(test_s_, test_expected_).mean().item<double>();
    }
    const auto kind = model_->config().readout;
    if (rf_true_.defined() && (kind == job::ReadoutKind::kFr || kind == job::ReadoutKind::kFm)) {
      const auto recovered = models::readout_peak_centres(model_->readout()->spatial_masks(), model_->config().layer);
      const auto truth = rf_true_.to(torch::kDouble).contiguous();
      const auto rf = models::rf_recovery(recovered, truth);
      result.rf_error = rf.mean_distance;
      result.rf_within_2px = rf.within_2px;
      for (int64_t n = 0; n < recovered.size(0); ++n) {
        result.rf_recovered.push_back({recovered[n][0].item<double>(), recovered[n][1].item<double>()});
        result.rf_true.push_back({truth[n][0].item<double>(), truth[n][1].item<double>()});
      }
    }
  }
  if (test_raw_.defined() && test_raw_.size(0) >= 2) {
    auto ceiling = models::noise_ceiling(test_raw_);
    result.oracle_r = ceiling.mean_oracle_r;
    result.split_half_r = ceiling.mean_split_half_r;
  }
  model_->train();
  return result;
}

nlohmann::ordered_json to_json(const JobResult& r, bool per_neuron) {
  nlohmann::ordered_json j;
  auto opt = [&](const char* key, const auto& v) {
    if (v) j[key] = *v; else j[key] = nullptr;
  };
  j["status"] = r.status == JobResult::Status::kDone ? "done" : "stopped";
  j["steps"] = r.steps;
  j["phases_completed"] = r.phases_completed;
  j["resumed_from_step"] = r.resumed_from_step;
  j["best_val_loss"] = r.best_val_loss;
  opt("mse", r.mse);
  opt("psnr", r.psnr);
  opt("ssim", r.ssim);
  opt("perplexity", r.perplexity);
  opt("mean_r", r.mean_r);
  opt("n_significant", r.n_significant);
  j["neurons"] = r.neurons;
  opt("mean_feve", r.mean_feve);
  opt("oracle_r", r.oracle_r);
  opt("split_half_r", r.split_half_r);
  opt("true_r", r.mean_true_r);
  opt("data_true_r", r.data_true_r);
  opt("rf_error", r.rf_error);
  opt("rf_within_2px", r.rf_within_2px);
  j["train_seconds"] = r.train_seconds;
  // How this process's OpenMP threads waited between parallel regions, which train_seconds
  // depends on by up to 1.8x on two threads (worker/cpu_share.h): the user's or daenr's
  // OMP_WAIT_POLICY, else libgomp's default.
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  j["openmp_wait"] = wait != nullptr ? wait : "default";
  j["data_fingerprint"] = r.data_fingerprint;
  if (per_neuron) {
    j["r"] = r.r;
    j["p"] = r.p;
    if (!r.true_r.empty()) j["true_r_per_neuron"] = r.true_r;
    if (!r.rf_recovered.empty()) {
      j["rf_recovered"] = r.rf_recovered;
      j["rf_true"] = r.rf_true;
    }
    auto& curve = j["curve"] = nlohmann::ordered_json::array();
    for (const auto& c : r.curve) {
      curve.push_back({{"step", c.step}, {"phase", c.phase}, {"learning_rate", c.learning_rate},
                       {"train_loss", c.train_loss}, {"val_loss", c.val_loss}});
    }
  }
  return j;
}

models::DaeNr build_model(const JobConfig& config, const models::Dataset& data) {
  auto model_config = config.model;
  model_config.neurons = static_cast<int>(data.train_responses.size(1));
  torch::Tensor fm_positions;
  if (model_config.readout == job::ReadoutKind::kFm) {
    // The fixed mask sits at each neuron's RF centre estimated from the
    // training split alone, never from the test images.
    auto centres = models::estimate_rf_centres(data.train_images31, data.train_responses);
    fm_positions = models::rf_centres_to_positions(centres, model_config.layer);
  }
  return models::DaeNr(model_config, data.train_responses.mean(0), fm_positions);
}

models::DaeNr load_model(const JobConfig& config, const models::Dataset& data, const std::filesystem::path& file,
                         const torch::Device& device) {
  if (!std::filesystem::exists(file)) {
    throw CheckpointError(fmt::format("{}: the trained model is missing (was the database's artifacts folder "
                                      "deleted or moved?)",
                                      file.string()));
  }
  auto model = build_model(config, data);
  try {
    torch::load(model, file.string(), device);
  } catch (const c10::Error&) {
    throw CheckpointError(fmt::format("{}: not a readable model of this job", file.string()));
  }
  model->to(device);
  model->eval();
  return model;
}

JobResult run_job(const JobConfig& config, const RunOptions& options) {
  configure_threads(config.train.threads);
  auto raw = models::load_source(config.data, config.data_seed);
  if (!options.neurons.empty()) raw = models::select_neurons(raw, options.neurons);
  const auto data = models::prepare(raw, config.seed, config.val_fraction);
  Trainer trainer(config, data);
  const bool complete = trainer.train(options);
  if (!complete) {
    JobResult stopped;
    stopped.status = JobResult::Status::kStopped;
    stopped.steps = trainer.step();
    stopped.curve = trainer.curve();
    return stopped;
  }
  auto result = trainer.evaluate();
  result.data_fingerprint = models::fingerprint(raw);
  const bool writer = options.reducer == nullptr || options.reducer->rank() == 0;
  if (writer && !options.save_model.empty()) {
    // The weights alone (not the optimiser): what a decode or mei job loads.
    auto tmp = options.save_model;
    tmp += fmt::format(".tmp.{}", ::getpid());
    std::filesystem::create_directories(options.save_model.parent_path().empty() ? "."
                                                                                  : options.save_model.parent_path());
    torch::save(trainer.model(), tmp.string());
    fsync_path(tmp, false);
    std::filesystem::rename(tmp, options.save_model);
  }
  return result;
}

}  // namespace daenr::worker
