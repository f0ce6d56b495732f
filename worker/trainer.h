#pragma once
// Turns one job configuration into one job result: builds the model, trains it
// with the paper's schedule, checkpoints atomically, evaluates on the test set.
//
// Schedule (the paper's, Sec. 4.1): Adam at the configured learning rate;
// every `validate_every` steps the loss on the held-out 20% is measured; after
// `patience` steps without improvement the best parameters are restored, the
// learning rate is multiplied by `lr_decay` and a fresh Adam trains again; after
// `phases` such phases (or `max_steps` steps in all) the best parameters are
// restored for evaluation.
//
// Determinism: every random draw of step s (batch order, dropout, VAE noise)
// comes from generators seeded by (seed, s), so a run resumed from a checkpoint
// at step s continues exactly as an uninterrupted one, and the same seed, data
// and thread count give bit-identical results on CPU.
//
// Data parallelism (RunOptions::reducer, docs/parallel.md): the R ranks of a group hold the
// same parameters, each takes a rank-strided share of every batch, BatchNorm statistics span
// the group, gradients are averaged, and every decision (schedule, stop) is taken alike on all.

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "job/error.h"
#include "models/data.h"
#include "models/network.h"
#include "job/config.h"
#include "job/outcome.h"

namespace daenr::worker {

// A job's configuration is the job contract's (job/config.h); the worker runs it.
using job::ConfigError;
using job::JobConfig;

class GradientReducer;

/// The loss became NaN or infinite: an expected failure, recorded with its step.
class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A checkpoint that cannot be used (unreadable, or written by another config).
class CheckpointError : public job::InputError {
 public:
  using job::InputError::InputError;
};

/// One validation point of the training curve: the job contract's row (job/outcome.h), the
/// same from the trainer to the database.
using CurvePoint = job::CurveRow;

/// Where a job stands at a validation point, for a progress display.
struct TrainingProgress {
  int step = 0;       ///< steps done
  int max_steps = 0;  ///< the cap; the schedule may end sooner, after its phases
  int phase = 0;      ///< the phase under way (0-based; the last one once training ends)
  int phases = 0;
  double val_loss = 0;        ///< this point's validation loss
  double best_val_loss = 0;   ///< the best so far, including this point
  int resumed_from_step = 0;  ///< the step this run started from (0: from scratch)
  bool finished = false;      ///< the schedule ended at this point
};

struct JobResult {
  enum class Status { kDone, kStopped };
  Status status = Status::kDone;
  int steps = 0;
  int phases_completed = 0;
  /// The step of the checkpoint this run resumed from (0: trained from scratch).
  int resumed_from_step = 0;
  double best_val_loss = 0;
  double train_seconds = 0;
  // Reconstruction of the test images (models with a decoder).
  std::optional<double> mse, psnr, ssim;
  std::optional<double> perplexity;  ///< VQ-VAE codebook use on the test images
  // Neural prediction on the test images (models with a readout).
  std::vector<double> r, p;          ///< per neuron
  std::optional<double> mean_r;
  std::optional<int> n_significant;  ///< p <= 0.05 and r > 0
  std::optional<double> mean_feve;
  // Ground truth (simulated regions only; empty / nullopt on recordings, docs/metrics.md).
  std::vector<double> true_r;            ///< per neuron: r(prediction, noiseless response)
  std::optional<double> mean_true_r;     ///< its mean
  std::optional<double> data_true_r;     ///< mean r(trial average, noiseless response)
  /// FR / FM readouts: each neuron's recovered and true RF centre (row, col) on the 31x31 grid.
  std::vector<std::array<double, 2>> rf_recovered, rf_true;
  std::optional<double> rf_error;        ///< mean distance in pixels
  std::optional<double> rf_within_2px;   ///< share of neurons within 2 pixels
  // The data's own ceiling (where repeats exist), for reading r in context.
  std::optional<double> oracle_r, split_half_r;
  int neurons = 0;
  std::string data_fingerprint;
  /// The first (up to 10) test images and their reconstructions, (k, 1, 32, 32)
  /// on [-1, 1], for figures; undefined without a decoder.
  torch::Tensor test_images, reconstructions;
  std::vector<CurvePoint> curve;
};

/// The result as one JSON object; per-neuron arrays only when asked.
nlohmann::ordered_json to_json(const JobResult& result, bool per_neuron = false);

/// Sets LibTorch's intra-op threads to `n` and keeps OpenBLAS (whose pool LibTorch does not
/// control) to the calling thread, whatever `n` is: its own threads would compete with
/// LibTorch's for the same cores.
void configure_threads(int n);

struct RunOptions {
  /// Where the job's checkpoint lives. Empty: no checkpoints. An existing file
  /// is resumed from.
  std::filesystem::path checkpoint;
  /// Asked at every validation point; returning true checkpoints and stops.
  std::function<bool(int step)> should_stop;
  /// Told at every validation point, before `should_stop`, on every rank of a group.
  std::function<void(const TrainingProgress&)> on_progress;
  /// Fit only these neurons (column indices); empty: all of them.
  std::vector<int64_t> neurons;
  /// The data-parallel group this rank trains the job with; it must outlive train(). Every
  /// rank of the group calls train() (or run_job) with the same job. Group rank 0 alone writes
  /// the checkpoint; all ranks read it to resume, so it must be at a path they all see.
  /// `should_stop` is asked on every rank and the group stops when any rank's answer is true.
  /// A group of one is the single-process path, bit for bit.
  GradientReducer* reducer = nullptr;  ///< data-parallel group; null: this rank alone
  /// Where to keep the trained (best, restored) model for later jobs (decode, mei); empty: not
  /// kept. Written by group rank 0 alone, atomically.
  std::filesystem::path save_model;
};

/// The model of `config` for `data`, untrained: the network with the neuron count of the data
/// and, for the FM readout, the fixed mask at each neuron's receptive-field centre estimated
/// from the training split.
models::DaeNr build_model(const JobConfig& config, const models::Dataset& data);

/// The model of a finished training job: build_model's, with the weights `save_model` kept,
/// on `device`, in evaluation mode. Throws CheckpointError naming the file when it is missing
/// or is not that model's.
models::DaeNr load_model(const JobConfig& config, const models::Dataset& data, const std::filesystem::path& file,
                         const torch::Device& device);

class Trainer {
 public:
  /// `data` must outlive the trainer; it is moved to the configured device ("cuda": the GPU
  /// of this process's local rank, see device_for_local_rank).
  Trainer(const JobConfig& config, const models::Dataset& data);

  /// Trains until the schedule ends (returns true) or `should_stop` asks to
  /// stop (checkpoints, returns false). Resumes from `options.checkpoint`
  /// when that file exists.
  bool train(const RunOptions& options = {});

  /// Test-set metrics of the current (best, after train) parameters. No
  /// autograd, and only the heads whose metrics exist.
  JobResult evaluate();

  models::DaeNr& model() { return model_; }
  int step() const { return step_; }
  const std::vector<CurvePoint>& curve() const { return curve_; }

  /// The validation objective of the current parameters.
  double validation_loss();

 private:
  // This rank's data-parallel group: none (a single process, or a group of one), or its reducer.
  struct Group {
    GradientReducer* reducer = nullptr;
    int rank = 0, ranks = 1;
  };
  // The steps of train().
  void check_group(const Group& g) const;
  void resume_from(const std::filesystem::path& path, const Group& g);
  void optimisation_step(const Group& g, const models::LossWeights& weights, torch::Tensor& running);
  /// (training loss over the `steps` since the last point, validation loss), the group's; throws
  /// TrainingDiverged on a non-finite one.
  std::pair<double, double> point_losses(const Group& g, double train_sum, int steps);
  /// Best parameters, patience, phases and the end of the schedule.
  void advance_schedule(double val, bool at_cap);
  bool stop_requested(const RunOptions& options, const Group& g);
  void checkpoint(const std::filesystem::path& path, const Group& g);

  torch::Tensor batch_indices(int step);
  void reduce_gradients(GradientReducer& group);
  void broadcast_from_rank0(GradientReducer& group);
  void snapshot_best();
  void restore_best();
  void reset_optimizer(double lr);
  void save_checkpoint(const std::filesystem::path& path) const;
  void load_checkpoint(const std::filesystem::path& path);
  void load_checkpoint_archive(const std::filesystem::path& path);

  JobConfig config_;
  torch::Device device_;
  torch::Tensor train_x_, train_s_, val_x_, val_s_, test_x_, test_s_, test_raw_;
  torch::Tensor test_expected_, rf_true_;  // ground truth of a simulated region, or undefined
  models::DaeNr model_{nullptr};
  std::unique_ptr<torch::optim::Adam> optimizer_;
  std::vector<torch::Tensor> best_state_;

  // Schedule state: everything a checkpoint must hold to resume exactly.
  int step_ = 0;
  int phase_ = 0;
  double lr_ = 0;
  double best_val_ = 0;
  int best_step_ = 0;   // step of the best validation loss, or the phase's start
  bool finished_ = false;
  std::vector<CurvePoint> curve_;
  double train_seconds_ = 0;
  int resumed_from_step_ = 0;  // provenance, not schedule state: not checkpointed

  int64_t perm_epoch_ = -1;  // cache of the current epoch's permutation
  torch::Tensor perm_;
};

/// Loads the data, trains, evaluates: the whole job. Throws DataError,
/// ConfigError, TrainingDiverged, CheckpointError.
JobResult run_job(const JobConfig& config, const RunOptions& options = {});

}  // namespace daenr::worker
