#include "reports/data.h"

#include <algorithm>
#include <cctype>
#include <fmt/format.h>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "job/model_config.h"
#include "storage/store.h"

namespace daenr::reports {

namespace fs = std::filesystem;

namespace {

// The number a region's name ends with ("virtual:3" -> 3, ".../region12" ->
// 12), or -1.
long region_number(const std::string& region) {
  std::size_t end = region.size();
  while (end > 0 && region[end - 1] == '/') --end;
  std::size_t begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(region[begin - 1]))) --begin;
  if (begin == end || end - begin > 9) return -1;
  return std::stol(region.substr(begin, end - begin));
}

std::string last_component(const std::string& region) {
  std::string s = region;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  const auto slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

int autoencoder_rank(const std::string& a) {
  static const std::vector<std::string> order = job::autoencoder_names(true);
  const auto it = std::find(order.begin(), order.end(), a);
  return it == order.end() ? 99 : int(it - order.begin());
}

int readout_rank(const std::string& r) {
  static const std::vector<std::string> order = {"none", "fr", "fc", "fm"};
  const auto it = std::find(order.begin(), order.end(), r);
  return it == order.end() ? 99 : int(it - order.begin());
}

int neurons_rank(const std::string& n) {
  return n == "all" ? 0 : n == "significant" ? 1 : n == "insignificant" ? 2 : 3;
}

// Labels a report can place: the sweep runner's keys with known values.
// Anything else (a job inserted by another tool) is counted and left out.
std::optional<JobLabels> parse_labels(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  try {
    JobLabels l;
    l.region = j.at("region").get<std::string>();
    l.layer = j.at("layer").get<int>();
    l.autoencoder = j.at("autoencoder").get<std::string>();
    l.readout = j.at("readout").get<std::string>();
    l.alpha = j.at("alpha").get<double>();
    l.beta = j.at("beta").get<double>();
    l.seed = j.at("seed").get<uint64_t>();
    l.neurons = j.value("neurons", std::string("all"));
    if (autoencoder_rank(l.autoencoder) == 99 || readout_rank(l.readout) == 99 ||
        neurons_rank(l.neurons) == 3 || l.layer < 0 || l.layer > 4 ||
        (l.autoencoder == "none" && l.readout == "none")) {
      return std::nullopt;
    }
    // Labels written before job kinds existed have no "kind": training jobs.
    l.kind = j.value("kind", std::string("train"));
    if (l.kind == "decode" || l.kind == "mei") {
      l.parent = j.at("parent").get<std::string>();
      if (l.parent.empty()) return std::nullopt;
      if (l.kind == "mei") {
        l.objective = j.at("objective").get<std::string>();
        if (l.objective != "stretch" && l.objective != "onehot") return std::nullopt;
      }
    } else if (l.kind != "train") {
      return std::nullopt;
    }
    return l;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

// The ground-truth metrics of a job's metrics JSON; a job without them (a recording, an
// older daenr) keeps them empty, and so does one whose JSON a report cannot read.
void read_ground_truth(const std::string& text, JobRecord& j) {
  const auto m = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!m.is_object()) return;
  auto number = [&](const char* key) -> std::optional<double> {
    const auto it = m.find(key);
    if (it == m.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
  };
  j.true_r = number("true_r");
  j.data_true_r = number("data_true_r");
  j.rf_error = number("rf_error");
  j.rf_within_2px = number("rf_within_2px");
  try {
    if (m.contains("rf_true") && m.contains("rf_recovered")) {
      auto t = m.at("rf_true").get<std::vector<std::array<double, 2>>>();
      auto r = m.at("rf_recovered").get<std::vector<std::array<double, 2>>>();
      if (t.size() == r.size()) j.rf_true = std::move(t), j.rf_recovered = std::move(r);
    }
  } catch (const nlohmann::json::exception&) {
    j.rf_true.clear(), j.rf_recovered.clear();
  }
}

std::optional<double> number_at(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::optional<int64_t> integer_at(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

// A decode job's metrics JSON (docs/reports.md). A key that is missing, null or not a number
// stays empty, so that a cell says "no value" rather than the report failing.
DecodeResult read_decode(const nlohmann::json& m) {
  DecodeResult d;
  d.test_images = integer_at(m, "test_images");
  d.trials = integer_at(m, "trials");
  if (const auto it = m.find("chance"); it != m.end() && it->is_object()) {
    d.chance_top1 = number_at(*it, "top1");
    d.chance_top5 = number_at(*it, "top5");
  }
  if (d.test_images && *d.test_images > 0) {
    if (!d.chance_top1) d.chance_top1 = 1.0 / double(*d.test_images);
    if (!d.chance_top5) d.chance_top5 = std::min(1.0, 5.0 / double(*d.test_images));
  }
  if (const auto it = m.find("methods"); it != m.end() && it->is_object()) {
    for (const auto& [name, v] : it->items()) {
      if (!v.is_object()) continue;
      DecodeScores s;
      s.mse = number_at(v, "mse");
      s.psnr = number_at(v, "psnr");
      s.ssim = number_at(v, "ssim");
      s.pixel_r = number_at(v, "pixel_r");
      s.top1 = number_at(v, "top1");
      s.top5 = number_at(v, "top5");
      d.methods[name] = s;
    }
  }
  return d;
}

MeiResult read_mei(const nlohmann::json& m) {
  MeiResult r;
  r.natural_images = integer_at(m, "natural_images");
  if (const auto it = m.find("neurons"); it != m.end() && it->is_array()) {
    for (const auto& n : *it) {
      if (!n.is_object()) continue;
      MeiNeuron x;
      x.neuron = integer_at(n, "neuron").value_or(-1);
      x.test_r = number_at(n, "test_r");
      x.model_ratio = number_at(n, "model_ratio");
      x.true_ratio = number_at(n, "true_ratio");
      x.rf_corr = number_at(n, "rf_corr");
      x.centre_error = number_at(n, "centre_error");
      r.neurons.push_back(x);
    }
  }
  if (const auto it = m.find("summary"); it != m.end() && it->is_object()) {
    r.median_model_ratio = number_at(*it, "median_model_ratio");
    r.median_true_ratio = number_at(*it, "median_true_ratio");
    r.share_true_above_1 = number_at(*it, "share_true_above_1");
    r.mean_rf_corr = number_at(*it, "mean_rf_corr");
    r.mean_centre_error = number_at(*it, "mean_centre_error");
  }
  return r;
}

auto order_key(const JobRecord& j) {
  const auto& l = j.labels;
  return std::make_tuple(region_number(l.region), l.region, neurons_rank(l.neurons),
                         autoencoder_rank(l.autoencoder), readout_rank(l.readout), l.layer, l.alpha,
                         l.beta, l.seed, j.id);
}

// The same with an mei job's objective before its seed (a decode job's is empty), so that a
// model's seeds of one objective are neighbours: the decoding and synthesis tables group them so.
auto derived_order_key(const JobRecord& j) {
  const auto& l = j.labels;
  return std::make_tuple(region_number(l.region), l.region, neurons_rank(l.neurons),
                         autoencoder_rank(l.autoencoder), readout_rank(l.readout), l.layer, l.alpha,
                         l.beta, l.objective, l.seed, j.id);
}

}  // namespace

bool region_less(const std::string& a, const std::string& b) {
  return std::make_tuple(region_number(a), a) < std::make_tuple(region_number(b), b);
}

std::string region_title(const std::string& region) {
  const long n = region_number(region);
  if (region.rfind("virtual:", 0) == 0 && n >= 0) return fmt::format("Region {} (virtual)", n);
  const std::string name = last_component(region);
  if (n >= 0 && name == fmt::format("region{}", n)) return fmt::format("Region {}", n);
  return name;
}

std::string region_slug(const std::string& region) {
  std::string name = region.rfind("virtual:", 0) == 0 ? region : last_component(region);
  std::string slug;
  for (char c : name) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c));
    if (ok) {
      slug += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!slug.empty() && slug.back() != '-') {
      slug += '-';
    }
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  return slug.empty() ? "region" : slug;
}

namespace {

// The steps of load_report_data.

// The id of the sweep named `sweep` (its name or id), "" for every job; sets data.sweep.
std::string find_sweep(storage::Reader& reader, const fs::path& db_path, const std::string& sweep, ReportData& data) {
  if (sweep.empty()) return "";
  const auto found = reader.find_sweeps(sweep);
  if (found.empty()) {
    throw ReportError(fmt::format("{}: no sweep named '{}' (give a sweep's name or id)", db_path.string(), sweep));
  }
  if (found.size() > 1) {
    throw ReportError(fmt::format("{}: {} sweeps are named '{}'; give one's id, e.g. {}", db_path.string(),
                                  found.size(), sweep, found.back().id));
  }
  data.sweep = fmt::format("{} ({})", found[0].name, found[0].id);
  return found[0].id;
}

// A job's row with its result, or nothing for a row without labels.
std::optional<JobRecord> job_record(storage::JobRow& row) {
  auto labels = parse_labels(row.labels);
  if (!labels) return std::nullopt;
  JobRecord j;
  j.id = std::move(row.id);
  j.labels = std::move(*labels);
  j.state = storage::to_string(row.state);
  j.last_error = std::move(row.last_error);
  if (row.state != storage::JobState::kDone) return j;
  j.mse = row.mse;
  j.psnr = row.psnr;
  j.ssim = row.ssim;
  j.mean_r = row.mean_r;
  j.significant = row.n_significant;
  j.neurons = row.neurons;
  if (j.labels.kind == "train") {
    if (!row.metrics.empty()) read_ground_truth(row.metrics, j);
  } else {
    // A result the report cannot parse reads as one without values.
    auto m = nlohmann::json::parse(row.metrics, nullptr, /*allow_exceptions=*/false);
    if (!m.is_object()) m = nlohmann::json::object();
    if (j.labels.kind == "decode") j.decode = read_decode(m);
    if (j.labels.kind == "mei") j.mei = read_mei(m);
  }
  return j;
}

void sort_jobs(ReportData& data) {
  std::sort(data.jobs.begin(), data.jobs.end(),
            [](const JobRecord& a, const JobRecord& b) { return order_key(a) < order_key(b); });
  for (auto* derived : {&data.decode_jobs, &data.mei_jobs}) {
    std::sort(derived->begin(), derived->end(), [](const JobRecord& a, const JobRecord& b) {
      return derived_order_key(a) < derived_order_key(b);
    });
  }
}

// The other tables' rows (per-neuron counts, curves, artifacts: storage finds a moved
// database's files), each on its job; rows of jobs left out are skipped.
void attach_rows(storage::Reader& reader, ReportData& data) {
  std::map<std::string, JobRecord*> index;
  for (auto* jobs : {&data.jobs, &data.decode_jobs, &data.mei_jobs}) {
    for (auto& j : *jobs) index[j.id] = &j;
  }
  auto job_of = [&](const std::string& id) -> JobRecord* {
    const auto it = index.find(id);
    return it == index.end() ? nullptr : it->second;
  };
  // The significance rule (job::is_significant) applied to the stored per-neuron results.
  for (const auto& [id, counts] : reader.neuron_counts()) {
    JobRecord* j = job_of(id);
    if (!j || j->state != "done") continue;
    j->neurons = counts.neurons;
    j->significant = counts.significant;
  }
  for (const auto& [id, row] : reader.curves()) {
    if (JobRecord* j = job_of(id)) j->curve.push_back(row);
  }
  for (const auto& [id, path] : reader.artifacts("reconstructions")) {
    if (JobRecord* j = job_of(id)) j->reconstructions = path;
  }
  // A decode or mei job's artifacts; one of another kind's name is not looked at.
  const std::pair<const char*, fs::path JobRecord::*> derived[] = {{"decode_figure", &JobRecord::decode_figure},
                                                                   {"decode_responses", &JobRecord::decode_responses},
                                                                   {"mei_images", &JobRecord::mei_images},
                                                                   {"mei_rf", &JobRecord::mei_rf}};
  for (const auto& [kind, member] : derived) {
    for (const auto& [id, path] : reader.artifacts(kind)) {
      JobRecord* j = job_of(id);
      if (j && j->labels.kind != "train") j->*member = path;
    }
  }
}

}  // namespace

ReportData load_report_data(const fs::path& db_path, const std::string& sweep) {
  ReportData data;
  data.source = db_path.filename().string();
  try {
    storage::Reader reader(db_path);
    const std::string sweep_id = find_sweep(reader, db_path, sweep, data);
    for (auto& row : reader.jobs(sweep_id)) {
      auto j = job_record(row);
      if (!j) {
        ++data.unlabelled;
        continue;
      }
      auto& into = j->labels.kind == "decode" ? data.decode_jobs
                   : j->labels.kind == "mei"  ? data.mei_jobs
                                              : data.jobs;
      into.push_back(std::move(*j));
    }
    sort_jobs(data);
    attach_rows(reader, data);
  } catch (const storage::StorageError& e) {
    throw ReportError(e.what());
  }
  return data;
}

}  // namespace daenr::reports
