#pragma once
// What a report reads from a sweep database (docs/schema.md): every job with
// its labels and state, its test metrics, significant-neuron counts from the
// per-neuron results, its training curve and its reconstruction artifact.
// Read-only, through storage::Reader.

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace daenr::reports {

/// A database a report cannot be made from (missing, not SQLite, not daenr's,
/// written by a newer daenr), or an output that cannot be written. what() is
/// one line.
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A job's axis values, as the sweep runner writes them into `jobs.labels`.
struct JobLabels {
  std::string region;       ///< "virtual:3" or a data folder
  int layer = 0;            ///< 1..4; 0 for an autoencoder baseline (no readout)
  std::string autoencoder;  ///< cae | vae | vqvae | none
  std::string readout;      ///< fr | fc | fm | none
  double alpha = 0, beta = 0;
  uint64_t seed = 0;
  std::string neurons = "all";  ///< all | significant | insignificant
};

struct CurvePoint {
  int64_t step = 0, phase = 0;
  double learning_rate = 0, train_loss = 0, val_loss = 0;
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
};

struct ReportData {
  std::string source;           ///< the database's file name
  std::string sweep;            ///< the sweep the jobs were restricted to, or empty
  std::vector<JobRecord> jobs;  ///< in label order (see order_key), then by id
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
