#include "job/outcome.h"

namespace daenr::job {

std::string to_string(Outcome::Status status) {
  switch (status) {
    case Outcome::Status::kDone: return "done";
    case Outcome::Status::kFailed: return "failed";
    case Outcome::Status::kPreempted: return "preempted";
  }
  return "failed";
}

// Empty and unset fields are left out of the wire form (an absent key reads back as empty or
// unset): a batch of 64 short jobs' outcomes, or of their assignments, then stays small, and
// under Open MPI's eager limit a send completes without waiting for its receiver to look
// (bench/README.md, "MPI orchestrator").
nlohmann::json to_json(const Outcome& o) {
  nlohmann::json j{{"status", to_string(o.status)}, {"job_id", o.job_id}};
  if (!o.error.empty()) j["error"] = o.error;
  if (o.status != Outcome::Status::kDone) return j;
  if (!o.metrics.empty()) j["metrics"] = o.metrics;
  const std::pair<const char*, const std::optional<double>*> columns[] = {
      {"mse", &o.mse}, {"psnr", &o.psnr}, {"ssim", &o.ssim}, {"mean_r", &o.mean_r}};
  for (const auto& [key, value] : columns) {
    if (*value) j[key] = **value;
  }
  if (o.n_significant) j["n_significant"] = *o.n_significant;
  if (o.neurons != 0) j["neurons"] = o.neurons;
  if (o.steps != 0) j["steps"] = o.steps;
  if (!o.r.empty()) j["r"] = o.r;
  if (!o.p.empty()) j["p"] = o.p;
  if (!o.curve.empty()) {
    auto& curve = j["curve"] = nlohmann::json::array();
    for (const auto& c : o.curve) curve.push_back({c.step, c.phase, c.learning_rate, c.train_loss, c.val_loss});
  }
  if (!o.artifacts.empty()) {
    auto& artifacts = j["artifacts"] = nlohmann::json::array();
    for (const auto& a : o.artifacts) artifacts.push_back({a.kind, a.path});
  }
  return j;
}

Outcome outcome_from_json(const nlohmann::json& j) {
  Outcome o;
  const auto status = j.at("status").get<std::string>();
  o.status = status == "done" ? Outcome::Status::kDone
                              : status == "preempted" ? Outcome::Status::kPreempted : Outcome::Status::kFailed;
  o.job_id = j.at("job_id").get<std::string>();
  o.error = j.value("error", std::string());
  if (o.status != Outcome::Status::kDone) return o;
  o.metrics = j.value("metrics", std::string());
  for (auto [key, value] : {std::pair{"mse", &o.mse}, {"psnr", &o.psnr}, {"ssim", &o.ssim}, {"mean_r", &o.mean_r}}) {
    if (const auto it = j.find(key); it != j.end()) *value = it->get<double>();
  }
  if (const auto it = j.find("n_significant"); it != j.end()) o.n_significant = it->get<int64_t>();
  o.neurons = j.value("neurons", int64_t{0});
  o.steps = j.value("steps", int64_t{0});
  o.r = j.value("r", std::vector<double>{});
  o.p = j.value("p", std::vector<double>{});
  if (const auto it = j.find("curve"); it != j.end()) {
    for (const auto& c : *it) {
      o.curve.push_back(
          {c[0].get<int64_t>(), c[1].get<int64_t>(), c[2].get<double>(), c[3].get<double>(), c[4].get<double>()});
    }
  }
  if (const auto it = j.find("artifacts"); it != j.end()) {
    for (const auto& a : *it) o.artifacts.push_back({a[0].get<std::string>(), a[1].get<std::string>()});
  }
  return o;
}

}  // namespace daenr::job
