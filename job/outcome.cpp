#include "job/outcome.h"

namespace daenr::job {

namespace {

nlohmann::json optional_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }
std::optional<double> optional_double(const nlohmann::json& v) {
  return v.is_null() ? std::nullopt : std::optional<double>(v.get<double>());
}

}  // namespace

std::string to_string(Outcome::Status status) {
  switch (status) {
    case Outcome::Status::kDone: return "done";
    case Outcome::Status::kFailed: return "failed";
    case Outcome::Status::kPreempted: return "preempted";
  }
  return "failed";
}

nlohmann::json to_json(const Outcome& o) {
  nlohmann::json j{{"status", to_string(o.status)}, {"job_id", o.job_id}, {"error", o.error}};
  if (o.status != Outcome::Status::kDone) return j;
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& c : o.curve) curve.push_back({c.step, c.phase, c.learning_rate, c.train_loss, c.val_loss});
  nlohmann::json artifacts = nlohmann::json::array();
  for (const auto& a : o.artifacts) artifacts.push_back({a.kind, a.path});
  j.update({{"metrics", o.metrics},
            {"mse", optional_json(o.mse)},
            {"psnr", optional_json(o.psnr)},
            {"ssim", optional_json(o.ssim)},
            {"mean_r", optional_json(o.mean_r)},
            {"n_significant", o.n_significant ? nlohmann::json(*o.n_significant) : nlohmann::json()},
            {"neurons", o.neurons},
            {"steps", o.steps},
            {"r", o.r},
            {"p", o.p},
            {"curve", curve},
            {"artifacts", artifacts}});
  return j;
}

Outcome outcome_from_json(const nlohmann::json& j) {
  Outcome o;
  const auto status = j.at("status").get<std::string>();
  o.status = status == "done" ? Outcome::Status::kDone
                              : status == "preempted" ? Outcome::Status::kPreempted : Outcome::Status::kFailed;
  o.job_id = j.at("job_id").get<std::string>();
  o.error = j.at("error").get<std::string>();
  if (o.status != Outcome::Status::kDone) return o;
  o.metrics = j.at("metrics").get<std::string>();
  o.mse = optional_double(j.at("mse"));
  o.psnr = optional_double(j.at("psnr"));
  o.ssim = optional_double(j.at("ssim"));
  o.mean_r = optional_double(j.at("mean_r"));
  if (!j.at("n_significant").is_null()) o.n_significant = j.at("n_significant").get<int64_t>();
  o.neurons = j.at("neurons").get<int64_t>();
  o.steps = j.at("steps").get<int64_t>();
  o.r = j.at("r").get<std::vector<double>>();
  o.p = j.at("p").get<std::vector<double>>();
  for (const auto& c : j.at("curve")) {
    o.curve.push_back(
        {c[0].get<int64_t>(), c[1].get<int64_t>(), c[2].get<double>(), c[3].get<double>(), c[4].get<double>()});
  }
  for (const auto& a : j.at("artifacts")) o.artifacts.push_back({a[0].get<std::string>(), a[1].get<std::string>()});
  return o;
}

}  // namespace daenr::job
