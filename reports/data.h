#pragma once
// What a report reads from a sweep database (docs/schema.md): every job with
// its labels and state, its test metrics, significant-neuron counts from the
// per-neuron results, its training curve and its reconstruction artifact; and
// the decode and mei jobs that work on a trained model, with their results and
// artifacts. Read-only, through storage::Reader.

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "job/error.h"
#include "job/outcome.h"

namespace daenr::reports {

/// A database a report cannot be made from (missing, not SQLite, not daenr's,
/// written by a newer daenr), or an output that cannot be written. what() is
/// one line.
class ReportError : public job::InputError {
 public:
  using job::InputError::InputError;
};

/// A job's axis values, as the sweep runner writes them into `jobs.labels`. A decode or mei job
/// carries its parent training job's values, and says what it is in `kind`.
struct JobLabels {
  std::string region;       ///< "virtual:3" or a data folder
  int layer = 0;            ///< 1..4; 0 for an autoencoder baseline (no readout)
  std::string autoencoder;  ///< cae | vae | vqvae | none
  std::string readout;      ///< fr | fc | fm | none
  double alpha = 0, beta = 0;
  uint64_t seed = 0;
  std::string neurons = "all";  ///< all | significant | insignificant
  std::string kind = "train";  ///< train | decode | mei; labels without "kind" are a training job's
  std::string parent;          ///< decode, mei: the training job it works on
  std::string objective;       ///< mei: stretch | onehot
};

/// A row of a job's training curve: the job contract's one curve row.
using CurvePoint = job::CurveRow;

/// How well one way of decoding recovers the test images (a decode job's `metrics.methods.<name>`,
/// docs/reports.md): image metrics and identification among the test images.
struct DecodeScores {
  std::optional<double> mse, psnr, ssim, pixel_r, top1, top5;
};

/// A done decode job's results.
struct DecodeResult {
  std::optional<int64_t> test_images, trials;
  std::optional<double> chance_top1, chance_top5;  ///< 1 / test_images and 5 / test_images
  /// By method: "responses" (through the autoencoder from the trial-averaged responses),
  /// "trials" (the same from single trials; absent without them), "autoencoder" (its own
  /// reconstruction: the ceiling), "pixels" (ridge from responses to pixels: the baseline).
  std::map<std::string, DecodeScores> methods;
};

/// One chosen neuron of an mei job. The true-response keys are empty on recorded data.
struct MeiNeuron {
  int64_t neuron = 0;
  std::optional<double> test_r, model_ratio, true_ratio, rf_corr, centre_error;
};

/// A done mei job's results: its neurons and their summary (as the job wrote it).
struct MeiResult {
  std::optional<int64_t> natural_images;
  std::vector<MeiNeuron> neurons;
  std::optional<double> median_model_ratio, median_true_ratio, share_true_above_1, mean_rf_corr,
      mean_centre_error;
};

struct JobRecord {
  std::string id;
  JobLabels labels;
  std::string state;  ///< pending | leased | done | failed | preempted
  std::string last_error;
  std::optional<double> mse, psnr, ssim, mean_r;  ///< test metrics of a done job
  /// Neurons with p <= 0.05 and r > 0, and all neurons predicted: from the
  /// per-neuron results where the job has them, else from its results row.
  std::optional<int64_t> significant, neurons;
  /// Ground truth of a simulated region (docs/metrics.md), from the results' metrics JSON:
  /// mean r against the noiseless responses (the model's, and the trial average's), and for
  /// FR / FM readouts the receptive-field recovery and each neuron's true and recovered centre.
  std::optional<double> true_r, data_true_r, rf_error, rf_within_2px;
  std::vector<std::array<double, 2>> rf_true, rf_recovered;
  std::filesystem::path reconstructions;  ///< the artifact's .npy, or empty
  std::vector<CurvePoint> curve;
  /// Decode and mei jobs (labels.kind): their results when done, and their artifacts' .npy
  /// files (empty when not recorded): decode_figure (4, K, 1, 32, 32), decode_responses (K, M),
  /// mei_images (K, 1, 32, 32), mei_rf (K, 31, 31; simulated regions only).
  std::optional<DecodeResult> decode;
  std::optional<MeiResult> mei;
  std::filesystem::path decode_figure, decode_responses, mei_images, mei_rf;
};

struct ReportData {
  std::string source;           ///< the database's file name
  std::string sweep;            ///< the sweep the jobs were restricted to, or empty
  /// The training jobs, in label order (see order_key), then by id: every table, figure and
  /// curve of the paper reads these only.
  std::vector<JobRecord> jobs;
  /// The jobs that work on a finished training job, each in the same order (an mei job's
  /// objective before its seed): the decoding and synthesis tables and figures.
  std::vector<JobRecord> decode_jobs, mei_jobs;
  int64_t unlabelled = 0;       ///< jobs whose labels a report cannot use, left out
};

/// Reads the database. `sweep` (a sweep's name or id) restricts the report to
/// that sweep's jobs; empty takes every job. Throws ReportError.
ReportData load_report_data(const std::filesystem::path& db, const std::string& sweep = "");

/// Regions in report order: by the number in their name ("virtual:3",
/// ".../region3"), then by name.
bool region_less(const std::string& a, const std::string& b);

/// How a region is named in tables: "Region 3 (virtual)" for "virtual:3",
/// "Region 1" for a folder named region1, else the folder's name.
std::string region_title(const std::string& region);

/// A file-name-safe form of a region: "virtual-3", "region1".
std::string region_slug(const std::string& region);

}  // namespace daenr::reports
