// The talk's tables (not in the paper), from the decode and mei jobs that work on a trained
// model: Table 9 (decoding the test images from the neurons), Table 10 (does training with
// the neurons make the code more decodable?) and Table 11 (synthesised images).
// docs/reports.md describes them. The paper's tables never see these jobs (ReportData keeps
// them apart), so a database without them gives the same bytes as before.

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "reports/tables.h"

namespace daenr::reports {

namespace {

// What a decode or mei job works on, but its seed: its parent's model, neuron set, and an mei
// job's objective. The jobs of one key are one row, summarised over seeds.
struct ModelKey {
  std::string region, autoencoder, readout;
  int layer = 0;
  LossPair pair;
  std::string neurons, objective;

  auto tied() const {
    return std::tie(region, autoencoder, readout, layer, pair, neurons, objective);
  }
  bool operator==(const ModelKey& o) const { return tied() == o.tied(); }
};

ModelKey key_of(const JobRecord& j) {
  const auto& l = j.labels;
  return {l.region, l.autoencoder, l.readout, l.layer, {l.alpha, l.beta}, l.neurons, l.objective};
}

// The (alpha, beta) pairs of each model among these jobs, so that a row names its pair only
// where its model has several, as the paper's tables do (JobIndex::pairs).
using PairsOf = std::map<std::tuple<std::string, std::string, bool>, std::set<LossPair>>;

PairsOf pairs_of(const std::vector<JobRecord>& jobs) {
  PairsOf out;
  for (const auto& j : jobs) {
    const auto& l = j.labels;
    out[{l.autoencoder, l.readout, l.neurons == "all"}].insert({l.alpha, l.beta});
  }
  return out;
}

std::string objective_title(const std::string& objective) {
  return objective == "onehot" ? "one-hot" : objective;
}

std::string row_label(const ModelKey& k, const PairsOf& pairs) {
  const auto& set = pairs.at({k.autoencoder, k.readout, k.neurons == "all"});
  const std::vector<std::optional<LossPair>> list(set.begin(), set.end());
  std::string label = model_label(k.autoencoder, k.readout, k.layer, list, k.pair);
  if (k.neurons != "all") label += fmt::format(" ({} neurons)", k.neurons);
  if (!k.objective.empty()) label += ", " + objective_title(k.objective);
  return label;
}

struct Group {
  ModelKey key;
  std::string label;
  std::vector<const JobRecord*> jobs;  // in seed order
};

// The jobs of a vector grouped by key. ReportData sorts decode and mei jobs by their labels
// with the seed last, so a group's jobs are neighbours and the groups come in report order.
std::vector<Group> groups_of(const std::vector<JobRecord>& jobs) {
  const PairsOf pairs = pairs_of(jobs);
  std::vector<Group> out;
  for (const auto& j : jobs) {
    ModelKey k = key_of(j);
    if (out.empty() || !(out.back().key == k)) {
      std::string label = row_label(k, pairs);
      out.push_back({std::move(k), std::move(label), {}});
    }
    out.back().jobs.push_back(&j);
  }
  return out;
}

using Value = std::function<std::optional<double>(const JobRecord&)>;

// A cell over a group's jobs: the mean and sd of the done jobs' values, as in Tables 2-6.
Cell stat_cell(const std::vector<const JobRecord*>& jobs, const Value& value, int decimals) {
  Cell c;
  c.kind = Cell::Kind::kStat;
  c.decimals = decimals;
  std::vector<double> values;
  for (const auto* j : jobs) {
    ++c.jobs;
    if (j->state == "failed") ++c.failed;
    if (j->state != "done") continue;
    ++c.done;
    if (const auto v = value(*j)) values.push_back(*v);
  }
  c.stat = summarize(values);
  return c;
}

// A column group (or column) of a block is shown when a finished job of the block has its
// value: single trials only where the data has them, true responses only on simulated regions.
// While none of the block's jobs has finished, nothing is known yet and every column stays.
bool column_known(const std::vector<const Group*>& groups, const Value& value) {
  bool any_done = false;
  for (const auto* g : groups) {
    for (const auto* j : g->jobs) {
      if (j->state != "done") continue;
      any_done = true;
      if (value(*j)) return true;
    }
  }
  return !any_done;
}

std::vector<std::string> stat_csv(const Cell& c) {
  return {c.stat.n > 0 ? csv_number(c.stat.mean) : "",
          c.stat.n > 1 ? csv_number(c.stat.sd) : "",
          std::to_string(c.stat.n),
          std::to_string(c.jobs),
          std::to_string(c.done),
          std::to_string(c.failed)};
}

std::vector<std::string> model_csv(const ModelKey& k) {
  return {k.region,
          k.autoencoder,
          k.readout,
          std::to_string(k.layer),
          csv_number(k.pair.first),
          csv_number(k.pair.second),
          k.neurons};
}

// The regions of the groups, in report order, each with its groups.
std::vector<std::pair<std::string, std::vector<const Group*>>> by_region(
    const std::vector<Group>& groups) {
  std::vector<std::pair<std::string, std::vector<const Group*>>> out;
  for (const auto& g : groups) {
    if (out.empty() || out.back().first != g.key.region) out.push_back({g.key.region, {}});
    out.back().second.push_back(&g);
  }
  return out;
}

// ---------------------------------------------------------------- Table 9

struct Method {
  const char* key;    // metrics.methods.<key>
  const char* title;  // the column group
  bool best;          // bold marks compare the models here
};

// Short group titles: Markdown repeats a group's title in each of its four columns.
constexpr Method kMethods[] = {{"responses", "From neurons", true},
                               {"trials", "From single trials", true},
                               {"autoencoder", "AE ceiling", false},
                               {"pixels", "Pixel baseline", false}};

struct Score {
  const char* key;
  const char* header;
  std::optional<double> DecodeScores::*member;
};

constexpr Score kScores[] = {{"pixel_r", "pixel r↑", &DecodeScores::pixel_r},
                             {"ssim", "SSIM↑", &DecodeScores::ssim},
                             {"top1", "top-1↑", &DecodeScores::top1},
                             {"top5", "top-5↑", &DecodeScores::top5}};

Value decode_value(const std::string& method, std::optional<double> DecodeScores::*member) {
  return [method, member](const JobRecord& j) -> std::optional<double> {
    if (!j.decode) return std::nullopt;
    const auto it = j.decode->methods.find(method);
    if (it == j.decode->methods.end()) return std::nullopt;
    return it->second.*member;
  };
}

// What chance is in a region: "50 test images (chance: top-1 0.020, top-5 0.100)", one such
// text per distinct number of test images among its finished jobs.
std::string chance_text(const std::vector<const Group*>& groups) {
  std::map<int64_t, std::pair<double, double>> seen;
  for (const auto* g : groups) {
    for (const auto* j : g->jobs) {
      if (j->state != "done" || !j->decode || !j->decode->test_images) continue;
      const auto& d = *j->decode;
      if (d.chance_top1 && d.chance_top5)
        seen.emplace(*d.test_images, std::make_pair(*d.chance_top1, *d.chance_top5));
    }
  }
  std::string out;
  for (const auto& [n, chance] : seen) {
    out += fmt::format("{}{} test images (chance: top-1 {}, top-5 {})", out.empty() ? "" : "; ", n,
                       format_number(chance.first, 3), format_number(chance.second, 3));
  }
  return out;
}

Table table9(const ReportData& data) {
  Table t;
  t.id = "table9";
  t.name = "Table 9";
  t.caption =
      "(The talk's, not in the paper.) Decoding the test images from the neurons' responses "
      "through each model's autoencoder";
  t.csv_header = {"table", "block", "row",  "column",  "region", "autoencoder", "readout",
                  "layer", "alpha", "beta", "neurons", "method", "metric",      "mean",
                  "sd",    "n",     "jobs", "done",    "failed", "best"};
  const auto groups = groups_of(data.decode_jobs);
  std::set<const JobRecord*> used;
  for (const auto& [region, region_groups] : by_region(groups)) {
    Block block;
    const std::string chance = chance_text(region_groups);
    block.subtitle = region_title(region) + (chance.empty() ? "" : ": " + chance);
    block.row_header = "Model";
    std::vector<const Method*> methods;
    for (const auto& m : kMethods) {
      bool known = false;
      for (const auto& s : kScores)
        known = known || column_known(region_groups, decode_value(m.key, s.member));
      if (!known) continue;
      methods.push_back(&m);
      block.groups.push_back({m.title, int(std::size(kScores))});
      for (const auto& s : kScores) block.columns.push_back(s.header);
    }
    for (const auto* g : region_groups) {
      for (const auto* j : g->jobs) used.insert(j);
      Row row{g->label, {}};
      for (const auto* m : methods) {
        for (const auto& s : kScores)
          row.cells.push_back(stat_cell(g->jobs, decode_value(m->key, s.member), 3));
      }
      block.rows.push_back(std::move(row));
    }
    // Bold: the best model of each column decoded from the neurons. The ceiling and the
    // baseline say what the models' decoding lies between; they are not a contest.
    std::size_t c = 0;
    for (const auto* m : methods) {
      for (std::size_t s = 0; s < std::size(kScores); ++s, ++c) {
        if (!m->best) continue;
        std::vector<Cell*> cells;
        for (auto& row : block.rows) cells.push_back(&row.cells[c]);
        mark_best(cells, false);
      }
    }
    for (std::size_t r = 0; r < block.rows.size(); ++r) {
      const Row& row = block.rows[r];
      const Group& g = *region_groups[r];
      std::size_t col = 0;
      for (const auto* m : methods) {
        for (const auto& s : kScores) {
          const Cell& cell = row.cells[col];
          std::vector<std::string> line = {t.id, region_title(region), row.label,
                                           std::string(m->title) + " " + s.header};
          for (auto& f : model_csv(g.key)) line.push_back(std::move(f));
          line.insert(line.end(), {m->key, s.key});
          for (auto& f : stat_csv(cell)) line.push_back(std::move(f));
          line.push_back(cell.best ? "1" : "0");
          t.csv_rows.push_back(std::move(line));
          ++col;
        }
      }
      // Chance, which the block's title shows, in tidy form beside the row's cells.
      for (const auto& [key, header, member] :
           {std::tuple{"top1", "chance top-1", &DecodeResult::chance_top1},
            std::tuple{"top5", "chance top-5", &DecodeResult::chance_top5}}) {
        const Cell cell = stat_cell(
            g.jobs,
            [member = member](const JobRecord& j) {
              return j.decode ? (*j.decode).*member : std::nullopt;
            },
            3);
        std::vector<std::string> line = {t.id, region_title(region), row.label, header};
        for (auto& f : model_csv(g.key)) line.push_back(std::move(f));
        line.insert(line.end(), {"chance", key});
        for (auto& f : stat_csv(cell)) line.push_back(std::move(f));
        line.push_back("0");
        t.csv_rows.push_back(std::move(line));
      }
    }
    t.blocks.push_back(std::move(block));
  }
  t.notes.push_back(
      "Each cell: mean ± sample standard deviation (divisor n − 1) over seeds of the decode jobs "
      "of the model (the training job each decodes through), with n the finished jobs that have "
      "a value; \"n=2 of 3\", \"no value\" and \"0 of k done\" as in Tables 2-6. Bold: the best "
      "model of each column decoded from the neurons (from neurons, from single trials).");
  t.notes.push_back(
      "From neurons: a ridge map from the trial-averaged responses to the autoencoder's code "
      "(its ridge chosen on a validation split), decoded by the autoencoder's decoder; from single "
      "trials: the same from each single trial, averaged over trials (a region without repeats "
      "has no such columns); AE ceiling: the autoencoder's own reconstruction of the test images, "
      "the ceiling of decoding through it; pixel baseline: a ridge map from the responses straight "
      "to the pixels, no autoencoder (docs/decode-mei.md).");
  t.notes.push_back(
      "pixel r: Pearson r between a decoded image and its test image over pixels, the mean over "
      "test images; SSIM as in Table 2; top-1, top-5: identification, the share of test images "
      "whose decoded image correlates more with them than with any other test image (top-1), or "
      "with at most four others (top-5). Chance (beside each region): 1 / N and 5 / N for N test "
      "images.");
  add_job_notes(t, used);
  return t;
}

// ---------------------------------------------------------------- Table 10

// Per seed, the mean of the done jobs' values (one job per seed unless two sweeps ran the
// same labels), as Table 7 pairs them.
std::map<uint64_t, double> values_by_seed(const std::vector<const JobRecord*>& jobs, const Value& value) {
  std::map<uint64_t, std::vector<double>> values;
  for (const auto* j : jobs) {
    if (j->state != "done") continue;
    if (const auto v = value(*j)) values[j->labels.seed].push_back(*v);
  }
  std::map<uint64_t, double> out;
  for (const auto& [seed, v] : values) out[seed] = summarize(v).mean;
  return out;
}

Table table10(const ReportData& data) {
  Table t;
  t.id = "table10";
  t.name = "Table 10";
  t.caption =
      "(The talk's, not in the paper.) Does training with the neurons make the code more "
      "decodable? Each DAE-NR variant's decoding against its plain autoencoder's, paired over "
      "seeds";
  Block block;
  block.row_header = "Region";
  block.columns = {"Model", "Baseline", "Metric", "n", "Δ (model − baseline)", "t", "p", "Reading"};
  t.csv_header = {"table",         "region", "model",  "autoencoder", "readout",
                  "layer",         "alpha",  "beta",   "baseline",    "baseline_alpha",
                  "baseline_beta", "method", "metric", "n",           "mean_diff",
                  "sd_diff",       "t",      "p",      "reading",     "seeds"};
  const auto groups = groups_of(data.decode_jobs);
  std::set<const JobRecord*> used;
  struct Compared {
    const char* key;
    const char* header;
    std::optional<double> DecodeScores::*member;
  };
  const Compared compared[] = {{"top1", "top-1↑", &DecodeScores::top1},
                               {"pixel_r", "pixel r↑", &DecodeScores::pixel_r}};
  for (const auto& g : groups) {
    const ModelKey& k = g.key;
    // A DAE-NR variant on all neurons; its baseline is the same autoencoder trained alone.
    if (k.neurons != "all" || k.autoencoder == "none" || k.readout == "none") continue;
    for (const auto* j : g.jobs) used.insert(j);
    std::vector<const Group*> bases;
    for (const auto& b : groups) {
      if (b.key.region == k.region && b.key.autoencoder == k.autoencoder &&
          b.key.readout == "none" && b.key.pair.second == 0 && b.key.neurons == "all") {
        bases.push_back(&b);
      }
    }
    // Without a baseline's decode job the rows still say so, as Table 7's do.
    if (bases.empty()) bases.push_back(nullptr);
    const std::string& model = g.label;
    for (const Group* base : bases) {
      const std::vector<const JobRecord*> none;
      const auto& base_jobs = base ? base->jobs : none;
      for (const auto* j : base_jobs) used.insert(j);
      const std::string base_name = base ? base->label : model_name(k.autoencoder, "none", 0);
      for (const auto& c : compared) {
        const Value value = decode_value("responses", c.member);
        const auto a = values_by_seed(g.jobs, value), b = values_by_seed(base_jobs, value);
        std::vector<double> x, y;
        std::string seeds;
        for (const auto& [seed, v] : a) {
          const auto it = b.find(seed);
          if (it == b.end()) continue;
          x.push_back(v);
          y.push_back(it->second);
          // Appended in two steps: GCC 12's -Wstringop-overflow misreads `"" + to_string(...)`
          // once this function is inlined into its caller (a false positive).
          if (!seeds.empty()) seeds += ' ';
          seeds += std::to_string(seed);
        }
        const PairedTest test = paired_t_test(x, y);
        const PairedText text = paired_text(
            test, 3, false, base_jobs.empty() ? "no baseline job" : "no seed finished by both");
        block.rows.push_back(
            {region_title(k.region),
             {Cell::text_cell(model), Cell::text_cell(base_name), Cell::text_cell(c.header),
              Cell::text_cell(std::to_string(test.n)), Cell::text_cell(text.diff),
              Cell::text_cell(text.t), Cell::text_cell(text.p), Cell::text_cell(text.reading)}});
        auto opt = [](double v) { return std::isnan(v) ? std::string() : csv_number(v); };
        t.csv_rows.push_back({t.id,
                              k.region,
                              model_name(k.autoencoder, k.readout, k.layer),
                              k.autoencoder,
                              k.readout,
                              std::to_string(k.layer),
                              csv_number(k.pair.first),
                              csv_number(k.pair.second),
                              model_name(k.autoencoder, "none", 0),
                              base ? csv_number(base->key.pair.first) : "",
                              base ? csv_number(base->key.pair.second) : "",
                              "responses",
                              c.key,
                              std::to_string(test.n),
                              opt(test.mean_diff),
                              opt(test.sd_diff),
                              opt(test.t),
                              opt(test.p),
                              text.reading,
                              seeds});
      }
    }
  }
  t.blocks.push_back(std::move(block));
  t.notes.push_back(
      "For each DAE-NR variant with decode jobs (a DAE with a readout, on all neurons): against "
      "the decode jobs of its plain autoencoder (the same DAE without a readout, β = 0) in the "
      "same region, on top-1 identification and pixel r of the images decoded from the neurons' "
      "trial-averaged responses (Table 9). Δ: mean ± sample sd of the per-seed differences model "
      "− baseline over the n seeds both finished; t and p as in Table 7.");
  t.notes.push_back(
      "Reading: \"better\" when the variant's code is decoded better with p ≤ 0.05 (training with "
      "the neurons made it more decodable), \"worse\" when less; \"no evidence\" when p > 0.05. "
      "Without two paired seeds, or with identical differences, there is no test.");
  add_job_notes(t, used);
  return t;
}

// ---------------------------------------------------------------- Table 11

struct SynthesisColumn {
  const char* key;
  const char* header;
  int decimals;
  bool truth;  // needs the simulated neurons' true responses
  Value value;
};

std::vector<SynthesisColumn> synthesis_columns() {
  auto summary = [](std::optional<double> MeiResult::*member) -> Value {
    return [member](const JobRecord& j) { return j.mei ? (*j.mei).*member : std::nullopt; };
  };
  return {
      {"chosen_neurons", "neurons", 0, false,
       [](const JobRecord& j) -> std::optional<double> {
         if (!j.mei || j.mei->neurons.empty()) return std::nullopt;
         return double(j.mei->neurons.size());
       }},
      {"median_model_ratio", "median model ratio", 2, false,
       summary(&MeiResult::median_model_ratio)},
      {"median_true_ratio", "median true ratio", 2, true, summary(&MeiResult::median_true_ratio)},
      {"share_true_above_1", "true ratio > 1", 2, true, summary(&MeiResult::share_true_above_1)},
      {"mean_rf_corr", "mean RF r", 3, true, summary(&MeiResult::mean_rf_corr)},
      {"mean_centre_error", "mean centre error (px)", 2, true,
       summary(&MeiResult::mean_centre_error)},
  };
}

Table table11(const ReportData& data) {
  Table t;
  t.id = "table11";
  t.name = "Table 11";
  t.caption =
      "(The talk's, not in the paper.) Synthesised images that drive chosen neurons: the model's "
      "gain, and on the simulated regions the true neurons' gain and receptive fields";
  t.csv_header = {"table", "block", "row",  "column",  "region",    "autoencoder", "readout",
                  "layer", "alpha", "beta", "neurons", "objective", "metric",      "mean",
                  "sd",    "n",     "jobs", "done",    "failed"};
  const auto groups = groups_of(data.mei_jobs);
  const auto columns = synthesis_columns();
  std::set<const JobRecord*> used;
  bool left_out = false;
  for (const auto& [region, region_groups] : by_region(groups)) {
    Block block;
    block.subtitle = region_title(region);
    block.row_header = "Model, objective";
    std::vector<const SynthesisColumn*> shown;
    for (const auto& c : columns) {
      if (c.truth && !column_known(region_groups, c.value)) {
        left_out = true;
        continue;
      }
      shown.push_back(&c);
      block.columns.push_back(c.header);
    }
    for (const auto* g : region_groups) {
      for (const auto* j : g->jobs) used.insert(j);
      Row row{g->label, {}};
      for (const auto* c : shown) {
        row.cells.push_back(stat_cell(g->jobs, c->value, c->decimals));
        std::vector<std::string> line = {t.id, block.subtitle, row.label, c->header};
        for (auto& f : model_csv(g->key)) line.push_back(std::move(f));
        line.insert(line.end(), {g->key.objective, c->key});
        for (auto& f : stat_csv(row.cells.back())) line.push_back(std::move(f));
        t.csv_rows.push_back(std::move(line));
      }
      block.rows.push_back(std::move(row));
    }
    t.blocks.push_back(std::move(block));
  }
  t.notes.push_back(
      "Each cell: mean ± sample standard deviation (divisor n − 1) over seeds of the mei jobs of "
      "the model and objective, each job's value its own summary over its chosen neurons; n and "
      "\"n/a\" as in Tables 2-6. No bold: the objectives' model ratios are not on one scale.");
  t.notes.push_back(
      "Objectives: stretch, the neuron's predicted response; one-hot, its softmax share of the "
      "population's. Model ratio: the objective for the neuron's best synthesised image over the "
      "same for its best natural image, the median over neurons. True ratio: the simulated "
      "neuron's true expected response to its synthesised image over that to its best natural "
      "image (median; > 1: the share of neurons the image drives beyond every natural one). RF r: "
      "correlation of the synthesised image with the neuron's true receptive field; centre error: "
      "pixels between their centres (means over neurons; docs/decode-mei.md).");
  if (left_out) {
    t.notes.push_back(
        "The true-response columns are left out where no finished job has them: a recording has "
        "no true responses or receptive fields, only the simulated (virtual) regions do.");
  }
  add_job_notes(t, used);
  return t;
}

}  // namespace

std::vector<ModelJobs> group_by_model(const std::vector<JobRecord>& jobs) {
  std::vector<ModelJobs> out;
  for (auto& g : groups_of(jobs)) out.push_back({std::move(g.label), std::move(g.jobs)});
  return out;
}

std::vector<Table> build_decode_mei_tables(const ReportData& data) {
  std::vector<Table> out;
  if (!data.decode_jobs.empty()) {
    out.push_back(table9(data));
    out.push_back(table10(data));
  }
  if (!data.mei_jobs.empty()) out.push_back(table11(data));
  return out;
}

}  // namespace daenr::reports
