#include "reports/tables.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "job/model_config.h"

namespace daenr::reports {

namespace {

enum class Metric { kMse, kPsnr, kSsim, kPcc, kTrueR, kDataTrueR, kRfError, kRfWithin2 };

struct MetricInfo {
  const char* key;     // CSV
  const char* header;  // tables
  bool lower_is_better;
};

MetricInfo info(Metric m) {
  switch (m) {
    case Metric::kMse:
      return {"mse", "MSE↓", true};
    case Metric::kPsnr:
      return {"psnr", "PSNR↑", false};
    case Metric::kSsim:
      return {"ssim", "SSIM↑", false};
    case Metric::kPcc:
      return {"pcc", "PCC↑", false};
    case Metric::kTrueR:
      return {"true_r", "true r↑", false};
    case Metric::kDataTrueR:
      return {"data_true_r", "data's true r", false};
    case Metric::kRfError:
      return {"rf_error", "RF error (px)↓", true};
    case Metric::kRfWithin2:
      return {"rf_within_2px", "RF ≤ 2 px↑", false};
  }
  return {"?", "?", false};
}

std::optional<double> value_of(const JobRecord& j, Metric m) {
  switch (m) {
    case Metric::kMse:
      return j.mse;
    case Metric::kPsnr:
      return j.psnr;
    case Metric::kSsim:
      return j.ssim;
    case Metric::kPcc:
      return j.mean_r;
    case Metric::kTrueR:
      return j.true_r;
    case Metric::kDataTrueR:
      return j.data_true_r;
    case Metric::kRfError:
      return j.rf_error;
    case Metric::kRfWithin2:
      return j.rf_within_2px;
  }
  return std::nullopt;
}

constexpr Metric kReconstruction[] = {Metric::kMse, Metric::kPsnr, Metric::kSsim};
// The model names in the paper's order, from the job contract's one table.
const std::vector<std::string> kAutoencoders = job::autoencoder_names();
const std::vector<std::string> kAllAutoencoders = job::autoencoder_names(true);
const std::vector<std::string> kReadouts = job::readout_names();

std::string describe(const JobRecord& j) {
  const auto& l = j.labels;
  std::string subset = l.neurons == "all" ? "" : fmt::format(", {} neurons", l.neurons);
  // A decode or mei job is named by what it works on: its parent's labels.
  std::string kind = l.kind == "train" ? ""
                     : l.kind == "mei" ? "MEI (" + l.objective + ") of "
                                       : "decoding of ";
  return fmt::format("{}{}, {}{}, {}, seed {} (job {})", kind,
                     model_name(l.autoencoder, l.readout, l.layer), region_title(l.region), subset,
                     pair_text({l.alpha, l.beta}), l.seed, j.id);
}

}  // namespace

void add_job_notes(Table& table, const std::set<const JobRecord*>& used) {
  std::vector<const JobRecord*> failed;
  int64_t unfinished = 0;
  // In report order: the set orders by address, and the jobs are one vector in that order.
  for (const auto* j : used) {
    if (j->state == "failed")
      failed.push_back(j);
    else if (j->state != "done")
      ++unfinished;
  }
  if (used.empty()) table.notes.push_back("The database holds no job for this table.");
  if (!failed.empty()) {
    std::string text = fmt::format("Failed jobs: {}.", failed.size());
    for (std::size_t i = 0; i < failed.size() && i < 10; ++i) {
      text +=
          fmt::format(" {}: {}{}", describe(*failed[i]),
                      failed[i]->last_error.empty() ? "(no error recorded)" : failed[i]->last_error,
                      i + 1 < failed.size() && i + 1 < 10 ? ";" : ".");
    }
    if (failed.size() > 10) text += fmt::format(" And {} more (daenr status).", failed.size() - 10);
    table.notes.push_back(text);
  }
  if (unfinished > 0) {
    table.notes.push_back(fmt::format("Not finished (pending, running or preempted): {} job{}.",
                                      unfinished, unfinished == 1 ? "" : "s"));
  }
}

PairedText paired_text(const PairedTest& test, int decimals, bool lower_is_better,
                       const std::string& no_pair) {
  PairedText out;
  if (test.n == 0) {
    out.diff = "n/a";
    out.reading = no_pair;
  } else {
    out.diff = format_number(test.mean_diff, decimals);
    if (test.n > 1) out.diff += " ± " + format_number(test.sd_diff, decimals);
    if (test.n < 2) {
      out.reading = "n/a (one seed)";
    } else if (std::isnan(test.t)) {
      out.reading = "n/a (no spread)";
    } else if (test.p <= 0.05) {
      const bool better = lower_is_better ? test.mean_diff < 0 : test.mean_diff > 0;
      out.reading = better ? "better (p ≤ 0.05)" : "worse (p ≤ 0.05)";
    } else {
      out.reading = "no evidence (p > 0.05)";
    }
  }
  out.t = std::isnan(test.t) ? "n/a" : format_number(test.t, 2);
  out.p = std::isnan(test.p) ? "n/a"
          : test.p < 0.001   ? fmt::format("{:.1e}", test.p)
                             : format_number(test.p, 3);
  return out;
}

void mark_best(const std::vector<Cell*>& cells, bool lower_is_better) {
  auto shown = [](const Cell* c) { return std::stod(format_number(c->stat.mean, c->decimals)); };
  auto has_value = [](const Cell* c) {
    return c->kind == Cell::Kind::kStat && c->stat.n > 0 && std::isfinite(c->stat.mean);
  };
  std::optional<double> best;
  for (const Cell* c : cells) {
    if (!has_value(c)) continue;
    const double v = shown(c);
    if (!best || (lower_is_better ? v < *best : v > *best)) best = v;
  }
  if (!best) return;
  for (Cell* c : cells) {
    if (has_value(c) && shown(c) == *best) c->best = true;
  }
}

namespace {

// Builds one table: its cells, the jobs they rest on (for the footnotes) and
// the (alpha, beta) of each model row.
class TableBuilder {
 public:
  TableBuilder(const JobIndex& index, Table& table) : index_(index), table_(table) {}

  // A row label: the model's name, with its pair when the model has several.
  std::string label(const std::string& ae, const std::string& ro, int layer,
                    const std::vector<std::optional<LossPair>>& pairs,
                    const std::optional<LossPair>& pair) {
    // A model's pair is the same in every layer: one note for CAE-FR_i.
    if (pairs.size() == 1 && pair) weights_[model_name(ae, ro, layer == 0 ? 0 : -1)] = *pair;
    return model_label(ae, ro, layer, pairs, pair);
  }

  Cell stat(const std::string& region, const std::string& ae, const std::string& ro, int layer,
            const std::optional<LossPair>& pair, const std::string& neurons, Metric metric) {
    Cell c;
    c.kind = Cell::Kind::kStat;
    std::vector<double> values;
    for (const auto* j : index_.jobs(region, ae, ro, layer, pair, neurons)) {
      used_.insert(j);
      ++c.jobs;
      if (j->state == "failed") ++c.failed;
      if (j->state != "done") continue;
      ++c.done;
      if (const auto v = value_of(*j, metric)) values.push_back(*v);
    }
    c.stat = summarize(values);
    c.keys = {region,
              ae,
              ro,
              std::to_string(layer),
              pair ? csv_number(pair->first) : "",
              pair ? csv_number(pair->second) : "",
              neurons,
              info(metric).key};
    return c;
  }

  // The footnotes every table of cells carries, and its tidy CSV.
  void finish(const std::string& best_rule, bool reconstruction, bool correlation) {
    auto& notes = table_.notes;
    notes.insert(
        notes.begin(),
        "Each cell: mean ± sample standard deviation (divisor n − 1) over seeds, with n the "
        "finished jobs that have a value; \"n=2 of 3\": one of the cell's 3 jobs failed or has "
        "not finished. \"no job\": the database holds none for this cell; \"0 of k done\": none "
        "of its k jobs finished. Bold: " +
            best_rule + ".");
    if (reconstruction) {
      notes.push_back(
          "MSE on [-1, 1]; PSNR with R = 2 on [-1, 1]; SSIM with an 11x11 Gaussian window "
          "(σ 1.5), valid positions only, population covariance, on images mapped to [0, 1] "
          "(docs/metrics.md).");
    }
    if (correlation) {
      notes.push_back(
          "PCC: Pearson r between predicted and trial-averaged responses over the test images, the "
          "unweighted mean over neurons (docs/metrics.md).");
    }
    if (!weights_.empty()) {
      std::string text = "Loss weights of the rows:";
      bool first = true;
      for (const auto& [name, p] : weights_) {
        text += fmt::format("{} {} ({})", first ? "" : ";", name, pair_text(p));
        first = false;
      }
      notes.push_back(text + ".");
    }
    add_job_notes(table_, used_);
    table_.csv_header = {"table", "block", "row",  "column",  "region", "autoencoder", "readout",
                         "layer", "alpha", "beta", "neurons", "metric", "mean",        "sd",
                         "n",     "jobs",  "done", "failed",  "best"};
    for (const auto& block : table_.blocks) {
      for (const auto& row : block.rows) {
        for (std::size_t c = 0; c < row.cells.size(); ++c) {
          const Cell& cell = row.cells[c];
          if (cell.kind != Cell::Kind::kStat) continue;
          std::vector<std::string> line = {table_.id, block.subtitle, row.label, block.columns[c]};
          line.insert(line.end(), cell.keys.begin(), cell.keys.end());
          line.push_back(cell.stat.n > 0 ? csv_number(cell.stat.mean) : "");
          line.push_back(cell.stat.n > 1 ? csv_number(cell.stat.sd) : "");
          line.push_back(std::to_string(cell.stat.n));
          line.push_back(std::to_string(cell.jobs));
          line.push_back(std::to_string(cell.done));
          line.push_back(std::to_string(cell.failed));
          line.push_back(cell.best ? "1" : "0");
          table_.csv_rows.push_back(std::move(line));
        }
      }
    }
  }

 private:
  const JobIndex& index_;
  Table& table_;
  std::set<const JobRecord*> used_;  // jobs are stored in report order: addresses sort the same way
  std::map<std::string, LossPair> weights_;
};

// Best of each data column of a block.
void mark_best_per_column(Block& block, const std::vector<Metric>& column_metrics) {
  for (std::size_t c = 0; c < block.columns.size(); ++c) {
    std::vector<Cell*> cells;
    for (auto& row : block.rows) cells.push_back(&row.cells[c]);
    mark_best(cells, info(column_metrics[c]).lower_is_better);
  }
}

std::string layer_header(int layer) {
  return fmt::format("h_{{{}}}", layer);
}

Table table2(const JobIndex& index) {
  Table t;
  t.id = "table2";
  t.name = "Table 2";
  t.caption = "Image reconstruction with all neurons: CAE and CAE-FR_{i} in each region";
  TableBuilder b(index, t);
  Block block;
  block.row_header = "Model";
  std::vector<Metric> metrics;
  for (const auto& region : index.regions()) {
    block.groups.push_back({region_title(region), 3});
    for (Metric m : kReconstruction) {
      block.columns.push_back(info(m).header);
      metrics.push_back(m);
    }
  }
  auto add_rows = [&](const std::string& ro, int layer) {
    const auto pairs = index.pairs("cae", ro, true);
    for (const auto& pair : index.pairs_at("cae", ro, true, layer)) {
      Row row{b.label("cae", ro, layer, pairs, pair), {}};
      for (const auto& region : index.regions()) {
        for (Metric m : kReconstruction)
          row.cells.push_back(b.stat(region, "cae", ro, layer, pair, "all", m));
      }
      block.rows.push_back(std::move(row));
    }
  };
  add_rows("none", 0);
  for (int layer = 1; layer <= 4; ++layer) add_rows("fr", layer);
  mark_best_per_column(block, metrics);
  t.blocks.push_back(std::move(block));
  b.finish("the best of each column (lowest MSE, highest PSNR and SSIM)", true, false);
  return t;
}

Table table3(const JobIndex& index) {
  Table t;
  t.id = "table3";
  t.name = "Table 3";
  t.caption =
      "Image reconstruction with the significant (✓) or insignificant (×) neurons only: CAE-FR_{i}";
  TableBuilder b(index, t);
  const std::vector<Metric> order = {Metric::kMse, Metric::kSsim,
                                     Metric::kPsnr};  // the paper's order
  const auto pairs = index.pairs("cae", "fr", false);
  for (const auto& region : index.regions()) {
    Block block;
    block.subtitle = region_title(region);
    block.row_header = "Model";
    std::vector<Metric> metrics;
    for (Metric m : order) {
      block.groups.push_back({info(m).header, 2});
      block.columns.push_back("✓");
      block.columns.push_back("×");
      metrics.insert(metrics.end(), {m, m});
    }
    for (int layer = 1; layer <= 4; ++layer) {
      for (const auto& pair : pairs) {
        Row row{b.label("cae", "fr", layer, pairs, pair), {}};
        for (Metric m : order) {
          for (const char* subset : {"significant", "insignificant"}) {
            row.cells.push_back(b.stat(region, "cae", "fr", layer, pair, subset, m));
          }
        }
        block.rows.push_back(std::move(row));
      }
    }
    mark_best_per_column(block, metrics);
    t.blocks.push_back(std::move(block));
  }
  t.notes.push_back(
      "Significant neurons: p ≤ 0.05 and r > 0 in the CAE-FR_{i} job fitted to all neurons "
      "that the subset's job depends on (docs/metrics.md).");
  b.finish("the best of each column (lowest MSE, highest SSIM and PSNR)", true, false);
  return t;
}

Table table4(const JobIndex& index) {
  Table t;
  t.id = "table4";
  t.name = "Table 4";
  t.caption = "PCC of CNN-FR_{i} (no reconstruction loss) and CAE-FR_{i} in each region";
  TableBuilder b(index, t);
  Block block;
  block.row_header = "Region";
  struct Column {
    std::string ae;
    int layer;
    std::optional<LossPair> pair;
  };
  std::vector<Column> columns;
  const auto cnn = index.pairs("none", "fr", true);
  const auto cae = index.pairs("cae", "fr", true);
  for (int layer = 1; layer <= 4; ++layer) {
    int span = 0;
    for (const auto* family : {&cnn, &cae}) {
      const std::string ae = family == &cnn ? "none" : "cae";
      for (const auto& pair : index.pairs_at(ae, "fr", true, layer)) {
        block.columns.push_back(b.label(ae, "fr", layer, *family, pair));
        columns.push_back({ae, layer, pair});
        ++span;
      }
    }
    block.groups.push_back({layer_header(layer), span});
  }
  for (const auto& region : index.regions()) {
    Row row{region_title(region), {}};
    for (const auto& c : columns)
      row.cells.push_back(b.stat(region, c.ae, "fr", c.layer, c.pair, "all", Metric::kPcc));
    // The paper marks the better of CNN-FR_i and CAE-FR_i in each region.
    for (int layer = 1; layer <= 4; ++layer) {
      std::vector<Cell*> group;
      for (std::size_t i = 0; i < columns.size(); ++i) {
        if (columns[i].layer == layer) group.push_back(&row.cells[i]);
      }
      mark_best(group, false);
    }
    block.rows.push_back(std::move(row));
  }
  t.blocks.push_back(std::move(block));
  b.finish("the higher PCC of CNN-FR_{i} and CAE-FR_{i} for each region and layer", false, true);
  return t;
}

Table table5(const JobIndex& index) {
  Table t;
  t.id = "table5";
  t.name = "Table 5";
  t.caption =
      "Image reconstruction with all neurons: every DAE-NR variant and its autoencoder baseline, "
      "by layer h_{i}";
  TableBuilder b(index, t);
  for (const auto& region : index.regions()) {
    Block block;
    block.subtitle = region_title(region);
    block.row_header = "Model";
    std::vector<Metric> metrics;
    for (int layer = 1; layer <= 4; ++layer) {
      block.groups.push_back({layer_header(layer), 3});
      for (Metric m : kReconstruction) {
        block.columns.push_back(info(m).header);
        metrics.push_back(m);
      }
    }
    for (const auto& ae : kAutoencoders) {
      for (const std::string ro : {"none", "fr", "fc", "fm"}) {
        const auto pairs = index.pairs(ae, ro, true);
        for (const auto& pair : pairs) {
          Row row{b.label(ae, ro, ro == "none" ? 0 : -1, pairs, pair), {}};
          for (int layer = 1; layer <= 4; ++layer) {
            // A baseline has no layer: its one value stands in every h_i, as in the paper.
            for (Metric m : kReconstruction) {
              row.cells.push_back(b.stat(region, ae, ro, ro == "none" ? 0 : layer, pair, "all", m));
              row.cells.back().repeated = ro == "none";
            }
          }
          block.rows.push_back(std::move(row));
        }
      }
    }
    mark_best_per_column(block, metrics);
    t.blocks.push_back(std::move(block));
  }
  b.finish("the best of each column (lowest MSE, highest PSNR and SSIM)", true, false);
  return t;
}

Table table6(const JobIndex& index) {
  Table t;
  t.id = "table6";
  t.name = "Table 6";
  t.caption = "PCC of every model with a readout, by region and layer h_{i}";
  TableBuilder b(index, t);
  Block block;
  block.row_header = "Model";
  std::vector<Metric> metrics;
  for (const auto& region : index.regions()) {
    block.groups.push_back({region_title(region), 4});
    for (int layer = 1; layer <= 4; ++layer) {
      block.columns.push_back(layer_header(layer));
      metrics.push_back(Metric::kPcc);
    }
  }
  for (const auto& ro : kReadouts) {
    for (const auto& ae : kAllAutoencoders) {
      const auto pairs = index.pairs(ae, ro, true);
      for (const auto& pair : pairs) {
        Row row{b.label(ae, ro, -1, pairs, pair), {}};
        for (const auto& region : index.regions()) {
          for (int layer = 1; layer <= 4; ++layer) {
            row.cells.push_back(b.stat(region, ae, ro, layer, pair, "all", Metric::kPcc));
          }
        }
        block.rows.push_back(std::move(row));
      }
    }
  }
  mark_best_per_column(block, metrics);
  t.blocks.push_back(std::move(block));
  b.finish("the highest PCC of each column", false, true);
  return t;
}

// Per seed, the mean of the done jobs' values (one job per seed unless two
// sweeps ran the same labels).
std::map<uint64_t, double> by_seed(const std::vector<const JobRecord*>& jobs, Metric m) {
  std::map<uint64_t, std::vector<double>> values;
  for (const auto* j : jobs) {
    if (j->state != "done") continue;
    if (const auto v = value_of(*j, m)) values[j->labels.seed].push_back(*v);
  }
  std::map<uint64_t, double> out;
  for (const auto& [seed, v] : values) out[seed] = summarize(v).mean;
  return out;
}

Table table7(const JobIndex& index, const ReportData& data) {
  Table t;
  t.id = "table7";
  t.name = "Table 7";
  t.caption = "(Not in the paper.) Each DAE-NR variant against its baseline, paired over seeds";
  Block block;
  block.row_header = "Region";
  block.columns = {"Model", "Baseline", "Metric", "n", "Δ (model − baseline)", "t", "p", "Reading"};
  t.csv_header = {"table",    "region",         "model",         "autoencoder",
                  "readout",  "layer",          "alpha",         "beta",
                  "baseline", "baseline_alpha", "baseline_beta", "metric",
                  "n",        "mean_diff",      "sd_diff",       "t",
                  "p",        "reading",        "seeds"};
  std::set<const JobRecord*> used;

  // The variants present, in report order: (region, ae, ro, layer, pair).
  std::vector<std::tuple<std::string, std::string, std::string, int, LossPair>> variants;
  for (const auto& j : data.jobs) {
    const auto& l = j.labels;
    if (l.neurons != "all" || l.autoencoder == "none" || l.readout == "none") continue;
    auto key =
        std::make_tuple(l.region, l.autoencoder, l.readout, l.layer, LossPair{l.alpha, l.beta});
    if (variants.empty() || variants.back() != key) variants.push_back(key);
  }

  for (const auto& [region, ae, ro, layer, pair] : variants) {
    const auto model_jobs = index.jobs(region, ae, ro, layer, pair, "all");
    for (const auto* j : model_jobs) used.insert(j);
    const std::string model = model_label(ae, ro, layer, index.pairs(ae, ro, true), pair);

    struct Baseline {
      std::string ae, ro;
      int layer;
      std::vector<Metric> metrics;
    };
    for (const Baseline& base :
         {Baseline{ae, "none", 0, {Metric::kMse, Metric::kPsnr, Metric::kSsim}},
          Baseline{"none", ro, layer, {Metric::kPcc}}}) {
      const auto base_pairs = index.pairs(base.ae, base.ro, true);
      for (const auto& base_pair : base_pairs) {
        const auto base_jobs = index.jobs(region, base.ae, base.ro, base.layer, base_pair, "all");
        for (const auto* j : base_jobs) used.insert(j);
        const std::string base_name =
            model_label(base.ae, base.ro, base.layer, base_pairs, base_pair);
        for (Metric m : base.metrics) {
          const auto a = by_seed(model_jobs, m), bb = by_seed(base_jobs, m);
          std::vector<double> x, y;
          std::string seeds;
          for (const auto& [seed, v] : a) {
            const auto it = bb.find(seed);
            if (it == bb.end()) continue;
            x.push_back(v);
            y.push_back(it->second);
            if (!seeds.empty()) seeds += ' ';
            seeds += std::to_string(seed);
          }
          const PairedTest test = paired_t_test(x, y);
          const int decimals = m == Metric::kMse ? 4 : 3;
          const PairedText text =
              paired_text(test, decimals, info(m).lower_is_better,
                          base_jobs.empty() ? "no baseline job" : "no seed finished by both");
          Row row{
              region_title(region),
              {Cell::text_cell(model), Cell::text_cell(base_name), Cell::text_cell(info(m).header),
               Cell::text_cell(std::to_string(test.n)), Cell::text_cell(text.diff),
               Cell::text_cell(text.t), Cell::text_cell(text.p), Cell::text_cell(text.reading)}};
          block.rows.push_back(std::move(row));
          auto opt = [](double v) { return std::isnan(v) ? std::string() : csv_number(v); };
          t.csv_rows.push_back({t.id, region, model_name(ae, ro, layer), ae, ro,
                                std::to_string(layer), csv_number(pair.first), csv_number(pair.second),
                                model_name(base.ae, base.ro, base.layer),
                                base_pair ? csv_number(base_pair->first) : "",
                                base_pair ? csv_number(base_pair->second) : "", info(m).key,
                                std::to_string(test.n), opt(test.mean_diff), opt(test.sd_diff),
                                opt(test.t), opt(test.p), text.reading, seeds});
        }
      }
    }
  }
  t.blocks.push_back(std::move(block));
  t.notes.push_back(
      "For each DAE-NR variant (a DAE with a readout, α > 0 and β > 0): against its autoencoder "
      "baseline (the same DAE without a readout) on MSE, PSNR and SSIM, and against its neural "
      "baseline (CNN with the same readout and layer, no reconstruction loss) on PCC, in the same "
      "region. Δ: mean ± sample sd of the per-seed differences model − baseline over the n seeds "
      "that both finished (pairing by seed: the same seed gives both the same validation split); "
      "t = mean / (sd / √n); p: two-sided, Student's t with n − 1 degrees of freedom.");
  t.notes.push_back(
      "Reading: \"better\" or \"worse\" when p ≤ 0.05, by the metric's direction (lower MSE, "
      "higher PSNR, SSIM and PCC are better); \"no evidence\" when p > 0.05. Without two paired "
      "seeds, or with identical differences, there is no test.");
  add_job_notes(t, used);
  return t;
}

}  // namespace

// Table 8 (not in the paper): what only a simulation can show. A block per region whose jobs
// carry ground truth (virtual regions); a row per model with a readout that has jobs there.
Table table8(const JobIndex& index, const ReportData& data) {
  Table t;
  t.id = "table8";
  t.name = "Table 8";
  t.caption =
      "Ground truth on the virtual regions: predictions against the neurons' noiseless responses, "
      "and receptive-field centres recovered by FR / FM readouts";
  TableBuilder b(index, t);
  std::set<std::string> with_truth;
  for (const auto& j : data.jobs) {
    if (j.true_r || j.data_true_r) with_truth.insert(j.labels.region);
  }
  const std::vector<Metric> metrics = {Metric::kTrueR, Metric::kDataTrueR, Metric::kPcc, Metric::kRfError,
                                       Metric::kRfWithin2};
  for (const auto& region : index.regions()) {
    if (!with_truth.count(region)) continue;
    Block block;
    block.subtitle = region_title(region);
    block.row_header = "Model";
    for (auto m : metrics) block.columns.push_back(info(m).header);
    for (const auto& ro : kReadouts) {
      for (const auto& ae : kAllAutoencoders) {
        const auto pairs = index.pairs(ae, ro, true);
        for (int layer = 1; layer <= 4; ++layer) {
          for (const auto& pair : pairs) {
            if (index.jobs(region, ae, ro, layer, pair).empty()) continue;
            Row row{b.label(ae, ro, layer, pairs, pair), {}};
            for (auto m : metrics) {
              row.cells.push_back(b.stat(region, ae, ro, layer, pair, "all", m));
              // An FC readout has no spatial mask: its RF cells are empty by design.
              if ((m == Metric::kRfError || m == Metric::kRfWithin2) && ro == "fc") {
                row.cells.back() = Cell::text_cell("n/a (no mask)");
              }
            }
            block.rows.push_back(std::move(row));
          }
        }
      }
    }
    std::vector<Metric> best_of = metrics;
    mark_best_per_column(block, best_of);
    // The data's own true r is the same for every model of a region: no best.
    const auto data_col = static_cast<std::size_t>(
        std::find(metrics.begin(), metrics.end(), Metric::kDataTrueR) - metrics.begin());
    for (auto& row : block.rows) row.cells[data_col].best = false;
    t.blocks.push_back(std::move(block));
  }
  if (t.blocks.empty()) {
    t.notes.push_back("No job in the database has ground truth: it exists for the simulated (virtual) "
                      "regions only.");
  }
  t.notes.push_back(
      "true r: Pearson r between a model's predicted responses and the simulated neurons' noiseless "
      "expected responses over the test images, the mean over neurons; data's true r: the same for "
      "the trial-averaged responses the models are scored against (how far the data themselves are "
      "from the truth with this many repeats). A model whose true r exceeds the data's has averaged "
      "out more noise than the repeats did.");
  t.notes.push_back(
      "RF error: distance in image pixels (31x31 grid) between the peak of a neuron's spatial "
      "readout mask, mapped back to the image through h_{i}'s stride, and its true receptive-field "
      "centre, the mean over neurons; RF ≤ 2 px: the share of neurons within 2 pixels. The mapping's "
      "resolution is the stride 2^i of h_{i} (docs/metrics.md).");
  b.finish("the best of each column", false, true);
  return t;
}

std::string csv_number(double v) { return fmt::format("{}", v); }

std::string format_number(double value, int decimals) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{:.{}f}", value, decimals);
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

namespace {

bool holds_job(const Cell& c) {
  return c.kind == Cell::Kind::kStat && c.jobs > 0;
}

// The column groups of a block as [first, end) ranges; a column outside any group is its own.
std::vector<std::pair<std::size_t, std::size_t>> column_groups(const Block& block) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  std::size_t c = 0;
  for (const auto& g : block.groups) {
    const std::size_t end = std::min(block.columns.size(), c + static_cast<std::size_t>(g.span));
    out.emplace_back(c, end);
    c = end;
  }
  for (; c < block.columns.size(); ++c) out.emplace_back(c, c + 1);
  return out;
}

// The block with only its rows and columns that hold a job; no rows when none does.
Block compact_block(const Block& block) {
  std::vector<const Row*> rows;
  for (const auto& row : block.rows) {
    if (std::any_of(row.cells.begin(), row.cells.end(), holds_job)) rows.push_back(&row);
  }
  std::vector<bool> keep(block.columns.size(), false);
  for (const Row* row : rows) {
    for (std::size_t c = 0; c < row->cells.size(); ++c) {
      if (holds_job(row->cells[c]) && !row->cells[c].repeated) keep[c] = true;
    }
  }
  // A row whose jobs are all repeated values (Table 5's baseline when no variant has a job)
  // would otherwise show no value at all: its first group of columns with a job stays.
  const auto groups = column_groups(block);
  for (const Row* row : rows) {
    bool shown = false;
    for (std::size_t c = 0; c < row->cells.size(); ++c)
      shown = shown || (keep[c] && holds_job(row->cells[c]));
    if (shown) continue;
    for (const auto& [first, end] : groups) {
      bool any = false;
      for (std::size_t c = first; c < end; ++c) any = any || holds_job(row->cells[c]);
      if (!any) continue;
      for (std::size_t c = first; c < end; ++c) keep[c] = true;
      break;
    }
  }
  Block out;
  out.subtitle = block.subtitle;
  out.row_header = block.row_header;
  for (std::size_t g = 0; g < block.groups.size(); ++g) {
    int span = 0;
    for (std::size_t c = groups[g].first; c < groups[g].second; ++c) span += keep[c] ? 1 : 0;
    if (span > 0) out.groups.push_back({block.groups[g].label, span});
  }
  for (std::size_t c = 0; c < block.columns.size(); ++c) {
    if (keep[c]) out.columns.push_back(block.columns[c]);
  }
  for (const Row* row : rows) {
    Row r{row->label, {}};
    for (std::size_t c = 0; c < row->cells.size(); ++c) {
      if (keep[c]) r.cells.push_back(row->cells[c]);
    }
    out.rows.push_back(std::move(r));
  }
  return out;
}

std::string optional_number(const std::optional<double>& v, int decimals) {
  return v ? format_number(*v, decimals) : "-";
}

}  // namespace

CompactTables compact_tables(const std::vector<Table>& tables) {
  CompactTables out;
  for (const auto& t : tables) {
    // Table 7 is text only, its rows made for the variants with jobs: nothing to trim there. A
    // table without any cell (Table 2 of an empty database: no region, no column) is not.
    bool any_cell = false, any_stat = false;
    for (const auto& b : t.blocks) {
      for (const auto& r : b.rows) {
        for (const auto& c : r.cells) {
          any_cell = true;
          any_stat = any_stat || c.kind == Cell::Kind::kStat;
        }
      }
    }
    const bool text_only = any_cell && !any_stat;
    Table shown = t;
    shown.blocks.clear();
    for (const auto& block : t.blocks) {
      Block kept = text_only ? block : compact_block(block);
      if (kept.rows.empty()) continue;
      if (kept.rows.size() != block.rows.size() || kept.columns.size() != block.columns.size())
        out.trimmed = true;
      shown.blocks.push_back(std::move(kept));
    }
    if (shown.blocks.empty()) {
      out.left_out.push_back(t.name);
      continue;
    }
    if (shown.blocks.size() != t.blocks.size()) out.trimmed = true;
    out.tables.push_back(std::move(shown));
  }
  return out;
}

Table jobs_table(const ReportData& data, std::size_t limit) {
  Table t;
  t.id = "jobs";
  t.name = "Jobs";
  t.caption = "each job's test metrics";
  Block block;
  block.row_header = "Model";
  block.columns = {"Job",   "Region", "Seed", "State",      "MSE↓",
                   "PSNR↑", "SSIM↑",  "PCC↑", "Significant"};
  // The pairs of each model across the report, so that a label names its pair only where the
  // model has several, as the tables' rows do.
  const JobIndex index(data);
  for (std::size_t i = 0; i < data.jobs.size() && i < limit; ++i) {
    const JobRecord& j = data.jobs[i];
    const auto& l = j.labels;
    std::string label = model_label(l.autoencoder, l.readout, l.layer,
                                    index.pairs(l.autoencoder, l.readout, l.neurons == "all"),
                                    LossPair{l.alpha, l.beta});
    if (l.neurons != "all") label += fmt::format(" ({} neurons)", l.neurons);
    const std::string significant =
        j.significant && j.neurons ? fmt::format("{}/{}", *j.significant, *j.neurons) : "-";
    block.rows.push_back(
        {label,
         {Cell::text_cell(j.id.substr(0, 8)), Cell::text_cell(region_title(l.region)),
          Cell::text_cell(std::to_string(l.seed)), Cell::text_cell(j.state),
          Cell::text_cell(optional_number(j.mse, 4)), Cell::text_cell(optional_number(j.psnr, 2)),
          Cell::text_cell(optional_number(j.ssim, 3)),
          Cell::text_cell(optional_number(j.mean_r, 3)), Cell::text_cell(significant)}});
  }
  t.blocks.push_back(std::move(block));
  if (data.jobs.size() > limit) {
    t.notes.push_back(fmt::format("The first {} of {} jobs; the tables below summarise them all.",
                                  limit, data.jobs.size()));
  }
  t.notes.push_back(
      "Job: the first 8 characters of its id. \"-\": a metric the job has not got (unfinished, "
      "failed, or a model without that head). Significant: neurons with p ≤ 0.05 and r > 0, of all "
      "neurons predicted.");
  return t;
}

std::vector<Table> build_tables(const ReportData& data) {
  const JobIndex index(data);
  std::vector<Table> tables = {table2(index),      table3(index), table4(index),
                               table5(index),      table6(index), table7(index, data),
                               table8(index, data)};
  for (auto& t : build_decode_mei_tables(data)) tables.push_back(std::move(t));
  return tables;
}

}  // namespace daenr::reports
