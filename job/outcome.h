#pragma once
// One job's outcome, whatever its kind: the one shape a result takes from the worker that
// computed it, over the MPI wire (to_json / outcome_from_json, lossless for doubles), into the
// database (storage::Store::record_result writes it in one transaction) and back out. Before,
// a result changed shape four times on that way (JobResult, ResultRecord, wire JSON, rows).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace daenr::job {

/// One validation point of a training curve.
struct CurveRow {
  int64_t step = 0;
  int64_t phase = 0;
  double learning_rate = 0, train_loss = 0, val_loss = 0;
};

/// A file a job wrote beside the database (`<db>.artifacts/`), by kind: "reconstructions",
/// "model", "decode_figure", ... (docs/schema.md lists them).
struct Artifact {
  std::string kind, path;
  bool operator==(const Artifact& o) const { return kind == o.kind && path == o.path; }
};

struct Outcome {
  enum class Status { kDone, kFailed, kPreempted };
  Status status = Status::kFailed;
  std::string job_id;
  std::string error;  ///< kFailed: one line

  // kDone: the result.
  std::string metrics;  ///< the whole result as a JSON object (text), kind-specific keys
  /// The columns every kind may fill (the results table's): image metrics of the test images,
  /// and the neural prediction's summary.
  std::optional<double> mse, psnr, ssim, mean_r;
  std::optional<int64_t> n_significant;
  int64_t neurons = 0, steps = 0;
  std::vector<double> r, p;  ///< per neuron (training jobs with a readout)
  std::vector<CurveRow> curve;
  std::vector<Artifact> artifacts;
};

std::string to_string(Outcome::Status status);

/// The wire form: every field that is set or non-empty (an absent one reads back as unset or
/// empty), doubles round-tripping exactly.
nlohmann::json to_json(const Outcome& outcome);
/// Throws nlohmann::json::exception on a malformed message.
Outcome outcome_from_json(const nlohmann::json& json);

}  // namespace daenr::job
