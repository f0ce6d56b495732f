// The report: statistics against hand-computed values, tables and figures of a
// fixture database with known results (a missing cell, a failed job, an
// unfinished one), golden files for every text output, determinism, and
// one-line errors for databases a report cannot read.
//
// Golden files live in tests/data/reports/. After an intended change of the
// output, regenerate them and review the diff:
//   DAENR_UPDATE_GOLDEN=1 build/tests/daenr_unit_tests --gtest_filter='ReportGolden.*'

#include "tests/support/region_files.h"
#include "tests/support/error_of.h"
#include "reports/report.h"

#include <cmath>
#include <cstdlib>
#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <nlohmann/json.hpp>
#include <png.h>
#include <sstream>

#include "job/npy.h"
#include "reports/figures.h"
#include "reports/render.h"
#include "reports/stats.h"
#include "reports/tables.h"
#include "storage/store.h"
#include "tests/support/temp_dir.h"

namespace daenr::reports {
namespace {

using daenr::testing::read_bytes;

using daenr::testing::error_of;

namespace fs = std::filesystem;
using daenr::testing::TempDir;

// ------------------------------------------------------------ statistics

TEST(ReportStats, MeanAndSampleStandardDeviation) {
  // Sum of squared deviations from the mean 5 is 32; sample sd = sqrt(32 / 7).
  const Summary s = summarize({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_EQ(s.n, 8);
  EXPECT_DOUBLE_EQ(s.mean, 5.0);
  EXPECT_NEAR(s.sd, std::sqrt(32.0 / 7.0), 1e-12);
  const Summary two = summarize({0.042, 0.044});
  EXPECT_NEAR(two.mean, 0.043, 1e-15);
  EXPECT_NEAR(two.sd, 0.002 / std::sqrt(2.0), 1e-15);
}

TEST(ReportStats, TooFewValuesHaveNoSpread) {
  const Summary one = summarize({0.3});
  EXPECT_EQ(one.n, 1);
  EXPECT_DOUBLE_EQ(one.mean, 0.3);
  EXPECT_TRUE(std::isnan(one.sd));
  const Summary none = summarize({});
  EXPECT_EQ(none.n, 0);
  EXPECT_TRUE(std::isnan(none.mean));
}

TEST(ReportStats, StudentTTwoSidedPMatchesClosedForms) {
  // df = 1 is the Cauchy distribution: p = 1 - (2 / pi) atan|t|.
  EXPECT_NEAR(students_t_two_sided_p(1.0, 1), 0.5, 1e-12);
  EXPECT_NEAR(students_t_two_sided_p(-2.0, 1), 1 - 2 / M_PI * std::atan(2.0), 1e-12);
  // df = 2: p = 1 - |t| / sqrt(2 + t^2).
  EXPECT_NEAR(students_t_two_sided_p(1.0, 2), 1 - 1 / std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(students_t_two_sided_p(3.0, 2), 1 - 3 / std::sqrt(11.0), 1e-12);
  // Large df: the normal distribution's 1.96.
  EXPECT_NEAR(students_t_two_sided_p(1.959963984540054, 1e9), 0.05, 1e-6);
  EXPECT_DOUBLE_EQ(students_t_two_sided_p(0.0, 5), 1.0);
}

TEST(ReportStats, PairedTTestOfHandComputedDifferences) {
  // d = (1, 2, 3): mean 2, sd 1, t = 2 / (1 / sqrt 3) = 2 sqrt 3, df 2,
  // p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(12 / 14).
  const PairedTest t = paired_t_test({11, 22, 33}, {10, 20, 30});
  EXPECT_EQ(t.n, 3);
  EXPECT_DOUBLE_EQ(t.mean_diff, 2.0);
  EXPECT_DOUBLE_EQ(t.sd_diff, 1.0);
  EXPECT_NEAR(t.t, 2 * std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(t.p, 1 - std::sqrt(12.0 / 14.0), 1e-12);
  // The sign follows a - b; p does not.
  const PairedTest r = paired_t_test({10, 20, 30}, {11, 22, 33});
  EXPECT_NEAR(r.t, -2 * std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(r.p, t.p, 1e-15);
}

TEST(ReportStats, PairedTTestWithoutATest) {
  const PairedTest one = paired_t_test({1.0}, {0.5});
  EXPECT_EQ(one.n, 1);
  EXPECT_DOUBLE_EQ(one.mean_diff, 0.5);
  EXPECT_TRUE(std::isnan(one.t));
  EXPECT_TRUE(std::isnan(one.p));
  const PairedTest same = paired_t_test({2, 3, 4}, {1, 2, 3});  // identical differences: no spread
  EXPECT_DOUBLE_EQ(same.mean_diff, 1.0);
  EXPECT_DOUBLE_EQ(same.sd_diff, 0.0);
  EXPECT_TRUE(std::isnan(same.p));
  EXPECT_THROW(paired_t_test({1, 2}, {1}), std::invalid_argument);
}

// ------------------------------------------------------------ fixture

// A job of the fixture and what became of it.
struct Planned {
  std::string id, region, ae, ro;
  int layer = 0;
  double alpha = 0, beta = 0;
  int seed = 0;
  std::string neurons = "all";
  enum { kDone, kFailed, kPending } outcome = kDone;
  std::optional<double> mse, psnr, ssim, pcc;
  std::vector<double> r, p;  // per neuron; empty: only n_significant / neurons
  int64_t n_significant = 0, neurons_total = 0;
  bool curve = false;
  std::string
      artifact;  // "write": a .npy in the fixture folder; "missing": a path that does not exist
};

Planned job(std::string id, std::string region, std::string ae, std::string ro, int layer,
            double alpha, double beta, int seed, std::string neurons = "all") {
  Planned j;
  j.id = std::move(id);
  j.region = std::move(region);
  j.ae = std::move(ae);
  j.ro = std::move(ro);
  j.layer = layer;
  j.alpha = alpha;
  j.beta = beta;
  j.seed = seed;
  j.neurons = std::move(neurons);
  return j;
}

std::string labels_json(const Planned& j) {
  return fmt::format(
      R"({{"region":"{}","layer":{},"autoencoder":"{}","readout":"{}","alpha":{},"beta":{},"seed":{},"neurons":"{}"}})",
      j.region, j.layer, j.ae, j.ro, j.alpha, j.beta, j.seed, j.neurons);
}

// Test images: a horizontal ramp from -1 to 1; reconstructions: 0.5 everywhere.
void write_reconstructions(const fs::path& path, int k) {
  std::string header =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': (2, {}, 1, 32, 32), }}", k);
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.put(char(len & 0xff));
  out.put(char(len >> 8));
  out << header;
  for (int half = 0; half < 2; ++half) {
    for (int i = 0; i < k * 32 * 32; ++i) {
      const float v = half == 0 ? float(i % 32) / 31.0f * 2 - 1 : 0.5f;
      out.write(reinterpret_cast<const char*>(&v), 4);
    }
  }
}

const std::vector<double> kR = {0.5, 0.3, -0.4, 0.1, 0.28};
const std::vector<double> kP = {0.001, 0.04, 0.01, 0.5,
                                0.05};  // significant: neurons 0, 1 and 4 (p = 0.05 counts)

std::vector<Planned> fixture_jobs() {
  std::vector<Planned> jobs;
  auto add = [&](Planned j) { jobs.push_back(std::move(j)); };
  const std::string r3 = "virtual:3", r1 = "virtual:1";
  // Region 3. The CAE baseline: MSE 0.080, 0.082, 0.084 (mean 0.082, sd 0.002).
  for (int s = 0; s < 3; ++s) {
    Planned j = job(fmt::format("r3-cae-s{}", s), r3, "cae", "none", 0, 1, 0, s);
    j.mse = 0.080 + 0.002 * s;
    j.psnr = 17.0 + 0.2 * s;
    j.ssim = 0.56 + 0.01 * s;
    if (s == 0) j.artifact = "write";
    add(j);
  }
  // CAE-FR_1: PCC 0.25, 0.26, 0.27 against CNN-FR_1's 0.24: differences 0.01, 0.02, 0.03.
  for (int s = 0; s < 3; ++s) {
    Planned j = job(fmt::format("r3-cae-fr1-s{}", s), r3, "cae", "fr", 1, 1, 1, s);
    j.mse = 0.044 + 0.001 * s;
    j.psnr = 19.7 + 0.1 * s;
    j.ssim = 0.76 + 0.01 * s;
    j.pcc = 0.25 + 0.01 * s;
    j.r = kR;
    j.p = kP;
    j.curve = true;
    if (s == 0) j.artifact = "write";
    add(j);
  }
  // CAE-FR_2: seeds 0 and 1 done, seed 2 failed.
  for (int s = 0; s < 3; ++s) {
    Planned j = job(fmt::format("r3-cae-fr2-s{}", s), r3, "cae", "fr", 2, 1, 1, s);
    if (s == 2) {
      j.outcome = Planned::kFailed;
    } else {
      j.mse = 0.042 + 0.002 * s;
      j.psnr = 19.9 - 0.2 * s;
      j.ssim = 0.77 - 0.01 * s;
      j.pcc = 0.38 + 0.02 * s;
      j.r = kR;
      j.p = kP;
      if (s == 0) j.artifact = "missing";
    }
    add(j);
  }
  for (int s = 0; s < 3; ++s) {
    Planned j = job(fmt::format("r3-cae-fr3-s{}", s), r3, "cae", "fr", 3, 1, 1, s);
    j.mse = 0.043;
    j.psnr = 19.8;
    j.ssim = 0.761;
    j.pcc = 0.40;
    j.r = kR;
    j.p = kP;
    add(j);
  }
  {
    Planned j = job("r3-cae-fr4-s0", r3, "cae", "fr", 4, 1, 1, 0);  // one seed: no spread
    j.mse = 0.059;
    j.psnr = 18.462;
    j.ssim = 0.668;
    j.pcc = 0.393;
    j.r = kR;
    j.p = kP;
    add(j);
  }
  // CNN-FR_i: no decoder. CNN-FR_2 stores no per-neuron results (its counts
  // come from the results row); CNN-FR_3 is still pending; CNN-FR_4 has no job.
  for (int s = 0; s < 3; ++s) {
    Planned j = job(fmt::format("r3-cnn-fr1-s{}", s), r3, "none", "fr", 1, 0, 1, s);
    j.pcc = 0.24;
    j.r = {0.5, -0.3, 0.1, 0.1, 0.1};
    j.p = {0.001, 0.04, 0.5, 0.5, 0.5};
    add(j);
  }
  for (int s = 0; s < 3; ++s) {
    Planned j = job(fmt::format("r3-cnn-fr2-s{}", s), r3, "none", "fr", 2, 0, 1, s);
    j.pcc = s < 2 ? 0.37 : 0.36;
    j.n_significant = 2;
    j.neurons_total = 5;
    add(j);
  }
  {
    Planned j = job("r3-cnn-fr3-s0", r3, "none", "fr", 3, 0, 1, 0);
    j.outcome = Planned::kPending;
    add(j);
  }
  // The VAE and VAE-FC_2, for Tables 5 and 7.
  for (int s = 0; s < 2; ++s) {
    Planned j = job(fmt::format("r3-vae-s{}", s), r3, "vae", "none", 0, 1, 0, s);
    j.mse = 0.104;
    j.psnr = 15.983;
    j.ssim = 0.402;
    add(j);
    Planned v = job(fmt::format("r3-vae-fc2-s{}", s), r3, "vae", "fc", 2, 1, 1, s);
    v.mse = 0.101 - 0.001 * s;
    v.psnr = 16.094 + 0.01 * s;
    v.ssim = 0.412;
    v.pcc = 0.29;
    v.r = kR;
    v.p = kP;
    add(v);
  }
  // Table 3: CAE-FR_2 on the significant and insignificant neurons.
  for (int s = 0; s < 2; ++s) {
    for (const char* subset : {"significant", "insignificant"}) {
      const bool sig = std::string(subset) == "significant";
      Planned j = job(fmt::format("r3-cae-fr2-{}-s{}", sig ? "sig" : "insig", s), r3, "cae", "fr",
                      2, 1, 1, s, subset);
      j.mse = sig ? 0.047 : 0.082;
      j.psnr = sig ? 19.467 : 16.970;
      j.ssim = sig ? 0.743 : 0.547;
      j.pcc = sig ? 0.45 : 0.05;
      add(j);
    }
  }
  // Region 1: CAE and CAE-FR_1 with two seeds; CAE-FR_4's only job failed;
  // no CAE-FR_2, CAE-FR_3 or CNN jobs.
  for (int s = 0; s < 2; ++s) {
    Planned c = job(fmt::format("r1-cae-s{}", s), r1, "cae", "none", 0, 1, 0, s);
    c.mse = 0.022;
    c.psnr = 23.709;
    c.ssim = 0.771;
    add(c);
    Planned f = job(fmt::format("r1-cae-fr1-s{}", s), r1, "cae", "fr", 1, 1, 1, s);
    f.mse = 0.021;
    f.psnr = 23.829 + 0.002 * s;
    f.ssim = 0.776;
    f.pcc = 0.346;
    f.r = kR;
    f.p = kP;
    add(f);
  }
  {
    Planned j = job("r1-cae-fr4-s0", r1, "cae", "fr", 4, 1, 1, 0);
    j.outcome = Planned::kFailed;
    add(j);
  }
  return jobs;
}

// Writes a database of `planned` jobs through storage::Store, as a sweep would; `foreign`
// adds a job without a report's labels.
fs::path write_database(const fs::path& dir, const std::string& name,
                        const std::vector<Planned>& planned, bool foreign) {
  const fs::path db = dir / name;
  storage::Store store(db);
  const auto sweep = store.insert_sweep("fixture", "fixture spec", 1000);
  std::map<std::string, const Planned*> by_id;
  std::vector<storage::NewJob> run_now, later;
  for (const auto& j : planned) {
    by_id[j.id] = &j;
    (j.outcome == Planned::kPending ? later : run_now).push_back({j.id, "{}", labels_json(j), ""});
  }
  // A job another tool inserted, without a report's labels: left out, counted.
  if (foreign) run_now.push_back({"foreign-job", "{}", R"({"note":"not from a sweep"})", ""});
  store.insert_jobs(sweep, run_now, 1000);
  double now = 1001;
  while (auto leased = store.lease_next(sweep, "tester", now, 60, 1)) {
    now += 1;
    const auto it = by_id.find(leased->id);
    if (it == by_id.end()) {
      store.record_failure(leased->id, "tester", "not a report job", now);
      continue;
    }
    const Planned& j = *it->second;
    if (j.outcome == Planned::kFailed) {
      store.record_failure(j.id, "tester", "training diverged: NaN loss at step 40", now);
      continue;
    }
    storage::ResultRecord r;
    r.job_id = j.id;
    r.metrics = "{}";
    r.mse = j.mse;
    r.psnr = j.psnr;
    r.ssim = j.ssim;
    r.mean_r = j.pcc;
    r.r = j.r;
    r.p = j.p;
    r.neurons = j.r.empty() ? j.neurons_total : int64_t(j.r.size());
    if (j.ro != "none")
      r.n_significant = j.r.empty() ? j.n_significant : 99;  // per-neuron rows win
    r.steps = 30;
    if (j.curve)
      r.curve = {{10, 0, 1e-3, 2.0, 2.4}, {20, 0, 1e-3, 1.5, 2.1}, {30, 1, 5e-4, 1.2, 2.0}};
    store.record_result(r, "tester", now);
    if (j.artifact == "write") {
      const auto file = dir / (j.id + "-reconstructions.npy");
      write_reconstructions(file, 3);
      store.add_artifact(j.id, "reconstructions", file.string());
    } else if (j.artifact == "missing") {
      store.add_artifact(j.id, "reconstructions",
                         "/nonexistent/daenr/" + j.id + "-reconstructions.npy");
    }
  }
  store.insert_jobs(sweep, later, now);
  return db;
}

fs::path make_fixture(const fs::path& dir) {
  return write_database(dir, "fixture.sqlite", fixture_jobs(), true);
}

const Table& find_table(const std::vector<Table>& tables, const std::string& id) {
  for (const auto& t : tables) {
    if (t.id == id) return t;
  }
  throw std::runtime_error("no table " + id);
}

const Row& find_row(const Block& block, const std::string& label) {
  for (const auto& r : block.rows) {
    if (r.label == label) return r;
  }
  throw std::runtime_error("no row " + label);
}

const Cell& cell_at(const Block& block, const std::string& row, const std::string& group,
                    const std::string& column) {
  std::size_t c = 0;
  for (const auto& g : block.groups) {
    if (g.label == group || group.empty()) {
      for (int k = 0; k < g.span; ++k) {
        if (block.columns[c + k] == column) return find_row(block, row).cells[c + k];
      }
    }
    c += g.span;
  }
  if (block.groups.empty()) {
    for (std::size_t i = 0; i < block.columns.size(); ++i) {
      if (block.columns[i] == column) return find_row(block, row).cells[i];
    }
  }
  throw std::runtime_error("no column " + group + " " + column);
}

class ReportFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    db_ = new fs::path(make_fixture(dir_->path()));
  }
  static void TearDownTestSuite() {
    delete db_;
    delete dir_;
  }
  static TempDir* dir_;
  static fs::path* db_;
};
TempDir* ReportFixture::dir_ = nullptr;
fs::path* ReportFixture::db_ = nullptr;

using ReportTables = ReportFixture;
using ReportFigures = ReportFixture;
using ReportGolden = ReportFixture;

// ------------------------------------------------------------ data

TEST_F(ReportTables, LoadsEveryLabelledJobInReportOrder) {
  const auto data = load_report_data(*db_);
  EXPECT_EQ(data.source, "fixture.sqlite");
  EXPECT_EQ(data.unlabelled, 1);
  ASSERT_EQ(data.jobs.size(), fixture_jobs().size());
  // Regions by number, region 1 first; then autoencoder, readout, layer, seed.
  EXPECT_EQ(data.jobs.front().id, "r1-cae-s0");
  EXPECT_EQ(data.jobs.back().id, "r3-cae-fr2-insig-s1");
  // Significance from the per-neuron rows (p <= 0.05 and r > 0: 3 of 5), not
  // the results row's 99; without per-neuron rows, the results row.
  for (const auto& j : data.jobs) {
    if (j.id == "r3-cae-fr1-s0") {
      EXPECT_EQ(j.significant, 3);
      EXPECT_EQ(j.neurons, 5);
      EXPECT_EQ(j.curve.size(), 3u);
    }
    if (j.id == "r3-cnn-fr2-s0") {
      EXPECT_EQ(j.significant, 2);
    }
    if (j.id == "r3-cae-fr2-s2") {
      EXPECT_EQ(j.state, "failed");
      EXPECT_EQ(j.last_error, "training diverged: NaN loss at step 40");
    }
  }
}

TEST_F(ReportTables, RestrictsToOneSweepByNameOrId) {
  EXPECT_EQ(load_report_data(*db_, "fixture").jobs.size(), fixture_jobs().size());
  try {
    load_report_data(*db_, "nope");
    FAIL() << "no error for an unknown sweep";
  } catch (const ReportError& e) {
    EXPECT_EQ(std::string(e.what()),
              db_->string() + ": no sweep named 'nope' (give a sweep's name or id)");
  }
}

// ------------------------------------------------------------ tables

TEST_F(ReportTables, Table2CellsAreMeanSdAndNOverSeeds) {
  const auto tables = build_tables(load_report_data(*db_));
  const Table& t = find_table(tables, "table2");
  ASSERT_EQ(t.blocks.size(), 1u);
  const Block& b = t.blocks[0];
  ASSERT_EQ(b.groups.size(), 2u);
  EXPECT_EQ(b.groups[0].label, "Region 1 (virtual)");
  EXPECT_EQ(b.groups[1].label, "Region 3 (virtual)");
  const Cell& cae = cell_at(b, "CAE", "Region 3 (virtual)", "MSE↓");
  EXPECT_EQ(cae.stat.n, 3);
  EXPECT_NEAR(cae.stat.mean, 0.082, 1e-12);
  EXPECT_NEAR(cae.stat.sd, 0.002, 1e-12);
  EXPECT_EQ(markdown_cell(cae), "0.082 ± 0.002 (n=3)");
  // A failed seed: n=2 of 3, and the failure is in the footnotes.
  const Cell& fr2 = cell_at(b, "CAE-FR_{2}", "Region 3 (virtual)", "MSE↓");
  EXPECT_EQ(fr2.stat.n, 2);
  EXPECT_EQ(fr2.jobs, 3);
  EXPECT_EQ(fr2.failed, 1);
  EXPECT_NEAR(fr2.stat.mean, 0.043, 1e-12);
  EXPECT_EQ(markdown_cell(fr2), "**0.043** ± 0.001 (n=2 of 3)");
  // The best MSE of region 3's column is CAE-FR_2's 0.043, in bold; CAE-FR_3
  // shows 0.043 too, and a tie at the decimals shown is marked twice.
  EXPECT_TRUE(fr2.best);
  EXPECT_TRUE(cell_at(b, "CAE-FR_{3}", "Region 3 (virtual)", "MSE↓").best);
  EXPECT_FALSE(cae.best);
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{3}", "Region 3 (virtual)", "MSE↓")),
            "**0.043** ± 0.000 (n=3)");
  // One seed: no spread.
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{4}", "Region 3 (virtual)", "SSIM↑")), "0.668 (n=1)");
  // No job, and jobs none of which finished: said so, never 0.
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{2}", "Region 1 (virtual)", "MSE↓")), "n/a (no job)");
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{4}", "Region 1 (virtual)", "MSE↓")),
            "n/a (0 of 1 done)");
  bool noted = false;
  for (const auto& n : t.notes) {
    if (n.rfind("Failed jobs: 2.", 0) == 0) {
      noted = true;
      EXPECT_NE(n.find("CAE-FR_{2}, Region 3 (virtual), α=1, β=1, seed 2 (job r3-cae-fr2-s2): "
                       "training diverged"),
                std::string::npos)
          << n;
    }
  }
  EXPECT_TRUE(noted);
}

TEST_F(ReportTables, Table3SplitsSignificantAndInsignificantNeurons) {
  const auto tables = build_tables(load_report_data(*db_));
  const Table& t = find_table(tables, "table3");
  ASSERT_EQ(t.blocks.size(), 2u);
  const Block& r3 = t.blocks[1];
  EXPECT_EQ(r3.subtitle, "Region 3 (virtual)");
  const Cell& sig = cell_at(r3, "CAE-FR_{2}", "MSE↓", "✓");
  const Cell& insig = cell_at(r3, "CAE-FR_{2}", "MSE↓", "×");
  EXPECT_NEAR(sig.stat.mean, 0.047, 1e-12);
  EXPECT_NEAR(insig.stat.mean, 0.082, 1e-12);
  EXPECT_EQ(markdown_cell(cell_at(r3, "CAE-FR_{1}", "MSE↓", "✓")), "n/a (no job)");
}

TEST_F(ReportTables, Table4MarksTheBetterOfCnnAndCaeInEachLayer) {
  const auto tables = build_tables(load_report_data(*db_));
  const Block& b = find_table(tables, "table4").blocks[0];
  const Cell& cnn = cell_at(b, "Region 3 (virtual)", "h_{1}", "CNN-FR_{1}");
  const Cell& cae = cell_at(b, "Region 3 (virtual)", "h_{1}", "CAE-FR_{1}");
  EXPECT_NEAR(cnn.stat.mean, 0.24, 1e-12);
  EXPECT_NEAR(cae.stat.mean, 0.26, 1e-12);
  EXPECT_TRUE(cae.best);
  EXPECT_FALSE(cnn.best);
  EXPECT_EQ(markdown_cell(cell_at(b, "Region 3 (virtual)", "h_{3}", "CNN-FR_{3}")),
            "n/a (0 of 1 done)");
  EXPECT_EQ(markdown_cell(cell_at(b, "Region 3 (virtual)", "h_{4}", "CNN-FR_{4}")), "n/a (no job)");
  // With no CNN-FR_4 value, CAE-FR_4 is the best of its pair.
  EXPECT_TRUE(cell_at(b, "Region 3 (virtual)", "h_{4}", "CAE-FR_{4}").best);
}

TEST_F(ReportTables, Table5RepeatsTheBaselineInEveryLayer) {
  const auto tables = build_tables(load_report_data(*db_));
  const Table& t = find_table(tables, "table5");
  const Block& r3 = t.blocks[1];
  ASSERT_EQ(r3.rows.size(), 12u);  // {CAE, VAE, VQ-VAE} x {baseline, FR, FC, FM}
  for (int layer = 1; layer <= 4; ++layer) {
    EXPECT_NEAR(cell_at(r3, "VAE", fmt::format("h_{{{}}}", layer), "MSE↓").stat.mean, 0.104, 1e-12);
  }
  EXPECT_NEAR(cell_at(r3, "VAE-FC_{i}", "h_{2}", "MSE↓").stat.mean, 0.1005, 1e-12);
  EXPECT_EQ(markdown_cell(cell_at(r3, "VQ-VAE-FM_{i}", "h_{1}", "PSNR↑")), "n/a (no job)");
}

TEST_F(ReportTables, Table6HasEveryReadoutModelByRegionAndLayer) {
  const auto tables = build_tables(load_report_data(*db_));
  const Block& b = find_table(tables, "table6").blocks[0];
  ASSERT_EQ(b.rows.size(), 12u);
  EXPECT_EQ(b.rows[0].label, "CNN-FR_{i}");
  EXPECT_EQ(b.rows[3].label, "VQ-VAE-FR_{i}");
  EXPECT_NEAR(cell_at(b, "CAE-FR_{i}", "Region 3 (virtual)", "h_{2}").stat.mean, 0.39, 1e-12);
  EXPECT_TRUE(cell_at(b, "CAE-FR_{i}", "Region 3 (virtual)", "h_{2}").best);
}

TEST_F(ReportTables, Table7PairsEachVariantWithItsBaselineBySeed) {
  const auto tables = build_tables(load_report_data(*db_));
  const Table& t = find_table(tables, "table7");
  // CSV columns: ... metric(11) n(12) mean_diff(13) sd_diff(14) t(15) p(16) reading(17) seeds(18).
  auto row = [&](const std::string& region, const std::string& model, const std::string& metric) {
    for (const auto& r : t.csv_rows) {
      if (r[1] == region && r[2] == model && r[11] == metric) return r;
    }
    throw std::runtime_error("no comparison " + model + " " + metric);
  };
  // CAE-FR_1 vs CNN-FR_1 (PCC): differences 0.01, 0.02, 0.03: t = 2 sqrt 3, df 2.
  const auto pcc = row("virtual:3", "CAE-FR_{1}", "pcc");
  EXPECT_EQ(pcc[8], "CNN-FR_{1}");
  EXPECT_EQ(pcc[12], "3");
  EXPECT_NEAR(std::stod(pcc[13]), 0.02, 1e-12);
  EXPECT_NEAR(std::stod(pcc[14]), 0.01, 1e-12);
  EXPECT_NEAR(std::stod(pcc[15]), 2 * std::sqrt(3.0), 1e-9);
  EXPECT_NEAR(std::stod(pcc[16]), 1 - std::sqrt(12.0 / 14.0), 1e-9);
  EXPECT_EQ(pcc[17], "no evidence (p > 0.05)");
  EXPECT_EQ(pcc[18], "0 1 2");
  // CAE-FR_2 vs CNN-FR_2: seed 2 of CAE-FR_2 failed, so seeds 0 and 1 pair:
  // differences 0.01, 0.03, t = 2 with df 1, p = 1 - (2 / pi) atan 2.
  const auto pcc2 = row("virtual:3", "CAE-FR_{2}", "pcc");
  EXPECT_EQ(pcc2[18], "0 1");
  EXPECT_NEAR(std::stod(pcc2[15]), 2.0, 1e-9);
  EXPECT_NEAR(std::stod(pcc2[16]), 1 - 2 / M_PI * std::atan(2.0), 1e-9);
  // CAE-FR_1 vs the CAE on MSE: differences -0.036, -0.037, -0.038: far from noise.
  const auto mse = row("virtual:3", "CAE-FR_{1}", "mse");
  EXPECT_EQ(mse[8], "CAE");
  EXPECT_NEAR(std::stod(mse[13]), -0.037, 1e-12);
  EXPECT_EQ(mse[17], "better (p ≤ 0.05)");
  // CAE-FR_4: one seed; region 1's CAE-FR_1 has no CNN baseline.
  EXPECT_EQ(row("virtual:3", "CAE-FR_{4}", "mse")[17], "n/a (one seed)");
  EXPECT_EQ(row("virtual:1", "CAE-FR_{1}", "pcc")[17], "no baseline job");
  // CNN-FR_3's only job is pending: no seed to pair.
  EXPECT_EQ(row("virtual:3", "CAE-FR_{3}", "pcc")[17], "no seed finished by both");
}

TEST(ReportTablesPairs, AVariantWithSeveralLossWeightsGetsOneRowPerPair) {
  TempDir dir;
  const auto db = dir.path() / "pairs.sqlite";
  {
    storage::Store store(db);
    const auto sweep = store.insert_sweep("pairs", "spec", 0);
    std::vector<storage::NewJob> jobs;
    for (double beta : {1.0, 0.5}) {
      Planned j = job(fmt::format("b{}", beta), "virtual:3", "cae", "fr", 2, 1, beta, 0);
      jobs.push_back({j.id, "{}", labels_json(j), ""});
    }
    // CAE-FR_4 at one of the two pairs only (a trade-off swept on h2 alone).
    Planned l4 = job("h4", "virtual:3", "cae", "fr", 4, 1, 1.0, 0);
    jobs.push_back({l4.id, "{}", labels_json(l4), ""});
    store.insert_jobs(sweep, jobs, 0);
    while (auto leased = store.lease_next(sweep, "t", 1, 60, 1)) {
      storage::ResultRecord r;
      r.job_id = leased->id;
      r.metrics = "{}";
      r.mse = leased->id == "b1" ? 0.05 : 0.04;
      r.neurons = 1;
      store.record_result(r, "t", 2);
    }
  }
  const auto tables = build_tables(load_report_data(db));
  const Block& b = find_table(tables, "table2").blocks[0];
  EXPECT_NEAR(cell_at(b, "CAE-FR_{2} (α=1, β=0.5)", "", "MSE↓").stat.mean, 0.04, 1e-12);
  EXPECT_NEAR(cell_at(b, "CAE-FR_{2} (α=1, β=1)", "", "MSE↓").stat.mean, 0.05, 1e-12);
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{1} (α=1, β=1)", "", "MSE↓")), "n/a (no job)");
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE", "", "MSE↓")), "n/a (no job)");
  // A layer with jobs shows only the pairs it has; one without any keeps every pair's row.
  EXPECT_NEAR(cell_at(b, "CAE-FR_{4} (α=1, β=1)", "", "MSE↓").stat.mean, 0.04, 1e-12);
  EXPECT_THROW(find_row(b, "CAE-FR_{4} (α=1, β=0.5)"), std::runtime_error);
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{3} (α=1, β=0.5)", "", "MSE↓")), "n/a (no job)");
  // Table 4 likewise: h4 has one CAE-FR column, h2 two.
  const Block& t4 = find_table(tables, "table4").blocks[0];
  const auto columns = [&](const std::string& prefix) {
    return std::count_if(t4.columns.begin(), t4.columns.end(),
                         [&](const std::string& c) { return c.rfind(prefix, 0) == 0; });
  };
  EXPECT_EQ(columns("CAE-FR_{4}"), 1);
  EXPECT_EQ(columns("CAE-FR_{2}"), 2);
}

// A database whose jobs carry ground truth (a virtual region) and a sweep over beta / alpha.
fs::path make_truth_db(const fs::path& dir) {
  const auto db = dir / "truth.sqlite";
  storage::Store store(db);
  const auto sweep = store.insert_sweep("truth", "spec", 0);
  struct Spec {
    std::string id, ae, ro;
    int layer;
    double alpha, beta;
    int seed;
    double mse, pcc, true_r, rf_error, within;
  };
  const std::vector<Spec> specs = {
      {"cnn1-s0", "none", "fr", 1, 0, 1, 0, -1, 0.50, 0.70, 1.5, 0.75},
      {"cnn1-s1", "none", "fr", 1, 0, 1, 1, -1, 0.54, 0.74, 2.5, 0.25},
      {"cae1-s0", "cae", "fr", 1, 1, 1, 0, 0.05, 0.52, 0.72, 1.0, 1.0},
      {"cae1-s1", "cae", "fr", 1, 1, 1, 1, 0.07, 0.56, 0.78, 2.0, 0.5},
      {"cae1b10-s0", "cae", "fr", 1, 1, 10, 0, 0.09, 0.60, 0.80, 1.2, 0.8},
      {"cae-s0", "cae", "none", 0, 1, 0, 0, 0.04, -1, -1, -1, -1},
      {"cae1fc-s0", "cae", "fc", 1, 1, 1, 0, 0.06, 0.40, 0.50, -1, -1},
  };
  std::vector<storage::NewJob> jobs;
  for (const auto& s : specs) {
    Planned j = job(s.id, "virtual:3", s.ae, s.ro, s.layer, s.alpha, s.beta, s.seed);
    jobs.push_back({j.id, "{}", labels_json(j), ""});
  }
  store.insert_jobs(sweep, jobs, 0);
  while (auto leased = store.lease_next(sweep, "t", 1, 60, 1)) {
    const Spec* s = nullptr;
    for (const auto& x : specs) {
      if (x.id == leased->id) s = &x;
    }
    nlohmann::json m = {{"data_true_r", 0.9}};
    if (s->true_r >= 0) m["true_r"] = s->true_r;
    if (s->rf_error >= 0) {
      m["rf_error"] = s->rf_error;
      m["rf_within_2px"] = s->within;
      m["rf_true"] = {{10.0, 12.0}, {20.0, 5.0}};
      m["rf_recovered"] = {{11.0, 12.0}, {18.0, 6.0}};
    }
    storage::ResultRecord r;
    r.job_id = leased->id;
    r.metrics = m.dump();
    if (s->mse >= 0) r.mse = s->mse;
    if (s->pcc >= 0) r.mean_r = s->pcc;
    r.neurons = 2;
    store.record_result(r, "t", 2);
  }
  return db;
}

TEST(ReportGroundTruth, Table8HasTheTruthOfEachModelWithAReadout) {
  TempDir dir;
  const auto data = load_report_data(make_truth_db(dir.path()));
  const auto tables = build_tables(data);
  const Table& t = find_table(tables, "table8");
  ASSERT_EQ(t.blocks.size(), 1u);
  const Block& b = t.blocks[0];
  EXPECT_EQ(b.subtitle, "Region 3 (virtual)");
  // CNN-FR_1: true r (0.70, 0.74): mean 0.72, sd 0.028; RF error (1.5, 2.5): 2.0 ± 0.707.
  const Cell& cnn = cell_at(b, "CNN-FR_{1}", "", "true r↑");
  EXPECT_NEAR(cnn.stat.mean, 0.72, 1e-12);
  EXPECT_NEAR(cnn.stat.sd, std::sqrt(0.0008), 1e-12);
  EXPECT_EQ(cnn.stat.n, 2);
  EXPECT_NEAR(cell_at(b, "CNN-FR_{1}", "", "RF error (px)↓").stat.mean, 2.0, 1e-12);
  EXPECT_NEAR(cell_at(b, "CNN-FR_{1}", "", "RF ≤ 2 px↑").stat.mean, 0.5, 1e-12);
  EXPECT_NEAR(cell_at(b, "CNN-FR_{1}", "", "data's true r").stat.mean, 0.9, 1e-12);
  // CAE-FR_1 has two pairs: a row each. (1, 1): true r 0.75, RF error 1.5.
  EXPECT_NEAR(cell_at(b, "CAE-FR_{1} (α=1, β=1)", "", "true r↑").stat.mean, 0.75, 1e-12);
  const Cell& best_rf = cell_at(b, "CAE-FR_{1} (α=1, β=10)", "", "RF error (px)↓");
  EXPECT_NEAR(best_rf.stat.mean, 1.2, 1e-12);
  EXPECT_TRUE(best_rf.best);  // the lowest RF error
  EXPECT_TRUE(cell_at(b, "CAE-FR_{1} (α=1, β=10)", "", "true r↑").best);
  EXPECT_FALSE(cell_at(b, "CNN-FR_{1}", "", "data's true r").best);  // the same for every model
  // An FC readout has no mask: its RF cells say so, and its true r is there.
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FC_{1}", "", "RF error (px)↓")), "n/a (no mask)");
  EXPECT_NEAR(cell_at(b, "CAE-FC_{1}", "", "true r↑").stat.mean, 0.5, 1e-12);
  // Only models with jobs in the region: the CAE (no readout) has no row.
  EXPECT_THROW(find_row(b, "CAE"), std::runtime_error);
  EXPECT_EQ(b.rows.size(), 4u);
}

TEST(ReportGroundTruth, Figures5And6DrawCentresAndTheTradeOff) {
  TempDir dir;
  const auto figures = build_figures(load_report_data(make_truth_db(dir.path())));
  const Figure* f5 = nullptr;
  const Figure* f6 = nullptr;
  for (const auto& f : figures) {
    if (f.name == "figure5-virtual-3") f5 = &f;
    if (f.name == "figure6-virtual-3") f6 = &f;
  }
  ASSERT_NE(f5, nullptr);
  ASSERT_NE(f6, nullptr);
  auto count = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  // Three FR models (CNN-FR_1, CAE-FR_1 at two pairs), two neurons each: a true and a
  // recovered dot per neuron (plus the two legend dots), and a line joining them.
  EXPECT_EQ(count(f5->bytes, "<circle"), 3u * 2u * 2u + 2u);
  EXPECT_EQ(count(f5->bytes, "stroke-opacity"), 3u * 2u);
  EXPECT_NE(f5->caption.find("job cnn1-s0"), std::string::npos) << f5->caption;  // the lowest seed
  // True centre (10, 12) on the 31x31 grid at 6 px a pixel: (12 + 0.5) * 6 + 14 = 89.
  EXPECT_NE(f5->bytes.find("cx=\"89.0\""), std::string::npos);
  // Figure 6: CAE-FR_1 at beta/alpha 1 and 10, MSE and PCC: two polylines, the CAE baseline
  // (MSE 0.04) and the CNN-FR_1 baseline (PCC 0.52) as dashed lines.
  EXPECT_EQ(count(f6->bytes, "<polyline"), 2u);
  EXPECT_NE(f6->bytes.find("autoencoder alone (n=1)"), std::string::npos);
  EXPECT_NE(f6->bytes.find("CNN alone (n=2)"), std::string::npos);
  // A database without ground truth or a trade-off has neither figure.
  TempDir other;
  for (const auto& f : build_figures(load_report_data(make_fixture(other.path())))) {
    EXPECT_EQ(f.name.find("figure5"), std::string::npos);
    EXPECT_EQ(f.name.find("figure6"), std::string::npos);
  }
}

// ------------------------------------------------------------ formats

TEST(ReportRender, MarkupInEachFormat) {
  EXPECT_EQ(plain_text("CAE-FR_{2} h_{i}"), "CAE-FR_2 h_i");
  EXPECT_EQ(latex_text("CAE-FR_{2}: 50% & α≤1"), "CAE-FR$_{2}$: 50\\% \\& $\\alpha$$\\leq$1");
  EXPECT_EQ(html_text("VAE-FC_{1} <x> & y"), "VAE-FC<sub>1</sub> &lt;x&gt; &amp; y");
  EXPECT_EQ(format_number(-0.0001, 3), "0.000");
  EXPECT_EQ(format_number(0.0445, 3), "0.044");  // binary 0.0445 is just below the half
  EXPECT_EQ(format_number(0.0425, 3), "0.043");  // and 0.0425 just above
}

TEST(ReportRender, CsvQuotesWhatNeedsIt) {
  Table t;
  t.csv_header = {"a", "b"};
  t.csv_rows = {{"x,y", "say \"hi\""}, {"CAE-FR_{1}", "plain"}};
  EXPECT_EQ(render_csv(t), "a,b\n\"x,y\",\"say \"\"hi\"\"\"\nCAE-FR_1,plain\n");
}

TEST(ReportRender, Base64) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
}

// ------------------------------------------------------------ figures

struct Decoded {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;
};

Decoded decode_png(const std::string& bytes) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    throw std::runtime_error(std::string("not a PNG: ") + image.message);
  }
  image.format = PNG_FORMAT_GRAY;
  Decoded d;
  d.width = int(image.width);
  d.height = int(image.height);
  d.pixels.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, d.pixels.data(), 0, nullptr)) {
    throw std::runtime_error(std::string("bad PNG: ") + image.message);
  }
  return d;
}

TEST_F(ReportFigures, Figure2IsAGridOfTestImagesAndReconstructions) {
  const auto figures = build_figures(load_report_data(*db_));
  ASSERT_EQ(figures.size(), 6u);  // Figures 2, 3, 4 for two regions
  const Figure& f = figures[1];
  EXPECT_EQ(f.name, "figure2-virtual-3");
  EXPECT_EQ(f.mime, "image/png");
  const Decoded png = decode_png(f.bytes);
  // A 62 px column of row letters, then 3 images of 96 px with 4 px gaps;
  // rows: test images, CAE, CAE-FR_1..4.
  const int x0 = 62;
  EXPECT_EQ(png.width, x0 + 3 * 100);
  EXPECT_EQ(png.height, 4 + 6 * 100);
  auto at = [&](int x, int y) {
    return png.pixels[std::size_t(y) * std::size_t(png.width) + std::size_t(x)];
  };
  EXPECT_EQ(at(x0, 4), 0);                // test image: the ramp starts at -1
  EXPECT_EQ(at(x0 + 95, 4), 255);         // and ends at 1
  EXPECT_EQ(at(x0, 104 + 10), 191);       // CAE's reconstruction: 0.5 -> 191
  EXPECT_EQ(at(x0, 204 + 10), 191);       // CAE-FR_1's
  EXPECT_EQ(at(x0 + 10, 304 + 10), 128);  // CAE-FR_2: its artifact is missing: crossed out
  EXPECT_EQ(at(x0 + 10, 304 + 11), 215);
  EXPECT_EQ(at(x0 - 2, 4), 255);  // the margin
  // "(a)": the "(" glyph's top stroke, rows centred in the 96 px image row.
  const int glyph_top = 4 + (96 - 21) / 2;
  EXPECT_EQ(at(4 + 3 * 3, glyph_top), 0);
  EXPECT_EQ(at(4, glyph_top), 255);
  EXPECT_NE(f.caption.find("(b) CAE (seed 0, job r3-cae-s0)"), std::string::npos) << f.caption;
  EXPECT_NE(f.caption.find("(d) CAE-FR_{2}: crossed out, no readable reconstructions"),
            std::string::npos)
      << f.caption;
  EXPECT_NE(f.caption.find("(f) CAE-FR_{4}: crossed out, no reconstructions stored"),
            std::string::npos);
  EXPECT_NE(f.caption.find("/nonexistent/daenr/r3-cae-fr2-s0-reconstructions.npy: no such file"),
            std::string::npos);
}

TEST_F(ReportFigures, Figures3And4CountSignificantNeurons) {
  const auto figures = build_figures(load_report_data(*db_));
  const Figure& f3 = figures[3];
  EXPECT_EQ(f3.name, "figure3-virtual-3");
  EXPECT_EQ(f3.mime, "image/svg+xml");
  EXPECT_NE(f3.bytes.find("3 of 5 significant (n=3)"), std::string::npos);       // CAE-FR_1
  EXPECT_NE(f3.bytes.find("1 of 5 significant (n=3)"), std::string::npos);       // CNN-FR_1
  EXPECT_NE(f3.bytes.find("3 of 5 significant (n=2 of 3)"), std::string::npos);  // CAE-FR_2
  EXPECT_NE(f3.bytes.find("0 of 1 done"), std::string::npos);                    // CNN-FR_3
  EXPECT_NE(f3.bytes.find(">no job<"), std::string::npos);                       // CNN-FR_4
  const Figure& f4 = figures[5];
  EXPECT_EQ(f4.name, "figure4-virtual-3");
  EXPECT_NE(f4.bytes.find("VAE-FC<tspan baseline-shift=\"sub\" font-size=\"75%\">2</tspan>"),
            std::string::npos);
  EXPECT_EQ(f4.bytes.find("VQ-VAE"), std::string::npos);  // no job of it in the region: no bar
}

TEST(ReportNpy, ReadsFloat32AndRejectsOtherFiles) {
  TempDir dir;
  write_reconstructions(dir.path() / "a.npy", 2);
  const auto a = read_npy_floats(dir.path() / "a.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2, 1, 32, 32}));
  ASSERT_EQ(a.values.size(), 2u * 2 * 32 * 32);
  EXPECT_FLOAT_EQ(a.values[0], -1.0f);
  EXPECT_FLOAT_EQ(a.values[31], 1.0f);
  EXPECT_FLOAT_EQ(a.values.back(), 0.5f);
  std::ofstream(dir.path() / "b.npy") << "hello";
  try {
    read_npy_floats(dir.path() / "b.npy");
    FAIL();
  } catch (const ReportError& e) {
    EXPECT_EQ(std::string(e.what()), (dir.path() / "b.npy").string() + ": not a .npy file (bad magic string)");
  }
}

TEST_F(ReportFigures, HtmlIsSelfContained) {
  TempDir out;
  ReportOptions options;
  options.out_dir = out.path() / "r";
  const auto result = write_report(*db_, options);
  EXPECT_EQ(result.html, out.path() / "r" / "report.html");
  const std::string html = read_bytes(result.html);
  std::size_t images = 0, pos = 0;
  while ((pos = html.find("<img src=\"", pos)) != std::string::npos) {
    pos += 10;
    EXPECT_EQ(html.compare(pos, 5, "data:"), 0) << "an image that is not inlined";
    ++images;
  }
  EXPECT_EQ(images, 6u + 3u);  // Figures 2-4 for two regions; the curves of CAE-FR_1's three seeds
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("href=\"http"), std::string::npos);
  EXPECT_NE(html.find("data-broken-images"), std::string::npos);
  for (const char* id :
       {"table2", "table3", "table4", "table5", "table6", "table7", "figures", "curves"}) {
    EXPECT_NE(html.find(fmt::format("id=\"{}\"", id)), std::string::npos) << id;
  }
}

// ------------------------------------------------------------ outputs

TEST_F(ReportGolden, SameDatabaseGivesByteIdenticalFiles) {
  TempDir out;
  ReportOptions a, b;
  a.out_dir = out.path() / "a";
  b.out_dir = out.path() / "b";
  const auto first = write_report(*db_, a);
  const auto second = write_report(*db_, b);
  ASSERT_EQ(first.files.size(), second.files.size());
  for (std::size_t i = 0; i < first.files.size(); ++i) {
    EXPECT_EQ(fs::relative(first.files[i], a.out_dir), fs::relative(second.files[i], b.out_dir));
    EXPECT_EQ(read_bytes(first.files[i]), read_bytes(second.files[i])) << first.files[i];
  }
  EXPECT_EQ(first.markdown, second.markdown);
}

void expect_golden(const fs::path& produced, const std::string& name) {
  const fs::path golden = fs::path(DAENR_SOURCE_DIR) / "tests" / "data" / "reports" / name;
  const std::string actual = read_bytes(produced);
  if (std::getenv("DAENR_UPDATE_GOLDEN") != nullptr) {
    fs::create_directories(golden.parent_path());
    std::ofstream(golden, std::ios::binary) << actual;
    return;
  }
  ASSERT_TRUE(fs::exists(golden)) << golden << " is missing; create it with DAENR_UPDATE_GOLDEN=1";
  EXPECT_EQ(actual, read_bytes(golden))
      << name << " differs from its golden file; if the change is intended, "
      << "regenerate with DAENR_UPDATE_GOLDEN=1 (see the top of this file)";
}

TEST_F(ReportGolden, TextOutputsMatchTheGoldenFiles) {
  TempDir out;
  ReportOptions options;
  options.out_dir = out.path() / "r";
  const auto result = write_report(*db_, options);
  for (const char* name : {"tables.md", "tables.tex", "table2.csv", "table3.csv", "table4.csv",
                           "table5.csv", "table6.csv", "table7.csv"}) {
    expect_golden(result.out_dir / name, name);
  }
  expect_golden(result.out_dir / "figures" / "figure3-virtual-3.svg", "figure3-virtual-3.svg");
  expect_golden(result.out_dir / "figures" / "figure4-virtual-3.svg", "figure4-virtual-3.svg");
  expect_golden(result.out_dir / "curves" / "curve-r3-cae-fr1-s0.svg", "curve-r3-cae-fr1-s0.svg");
}

TEST_F(ReportGolden, FormatsCanBeLeftOut) {
  TempDir out;
  ReportOptions options;
  options.out_dir = out.path() / "r";
  options.latex = options.csv = false;
  options.html = out.path() / "elsewhere" / "x.html";
  const auto result = write_report(*db_, options);
  EXPECT_TRUE(fs::exists(options.out_dir / "tables.md"));
  EXPECT_FALSE(fs::exists(options.out_dir / "tables.tex"));
  EXPECT_FALSE(fs::exists(options.out_dir / "table2.csv"));
  EXPECT_FALSE(fs::exists(options.out_dir / "report.html"));
  EXPECT_TRUE(fs::exists(options.html));
  EXPECT_EQ(result.files.back(), options.html);
}

// ------------------------------------------------------------ bad databases

std::string report_error(const fs::path& db) {
  return error_of<ReportError>([&] { load_report_data(db); });
}

TEST(ReportErrors, OneLineForADatabaseThatCannotBeRead) {
  TempDir dir;
  EXPECT_EQ(report_error(dir.path() / "absent.sqlite"),
            (dir.path() / "absent.sqlite").string() + ": no such database");
  std::ofstream(dir.path() / "notes.txt")
      << "not a database at all, just text that is long enough to be a header";
  EXPECT_EQ(
      report_error(dir.path() / "notes.txt"),
      (dir.path() / "notes.txt").string() + ": not an SQLite database (file is not a database)");
  {
    storage::Database db(dir.path() / "other.sqlite", storage::Database::Mode::kCreate);
    db.exec("CREATE TABLE t (x INTEGER)");
  }
  EXPECT_EQ(report_error(dir.path() / "other.sqlite"),
            (dir.path() / "other.sqlite").string() + ": not a daenr database");
  {
    storage::Database db(dir.path() / "newer.sqlite", storage::Database::Mode::kCreate);
    db.exec("PRAGMA user_version = 99");
  }
  EXPECT_EQ(report_error(dir.path() / "newer.sqlite"),
            (dir.path() / "newer.sqlite").string() +
                ": written by a newer daenr (schema version 99; this build knows up to 3)");
}

TEST(ReportErrors, AnEmptyDatabaseStillGivesEveryTable) {
  TempDir dir;
  { storage::Store store(dir.path() / "empty.sqlite"); }
  ReportOptions options;
  const auto result = write_report(dir.path() / "empty.sqlite", options);
  EXPECT_EQ(result.out_dir, fs::path(dir.path().string() + "/empty.sqlite.report"));
  for (const char* name :
       {"## Table 2:", "## Table 3:", "## Table 6:", "## Table 7:", "0 jobs: 0 done"}) {
    EXPECT_NE(result.markdown.find(name), std::string::npos) << name;
  }
  EXPECT_NE(result.markdown.find("The database holds no job for this table."), std::string::npos);
}

TEST(ReportErrors, AnOutputFolderThatCannotBeMadeIsOneLine) {
  TempDir dir;
  { storage::Store store(dir.path() / "x.sqlite"); }
  std::ofstream(dir.path() / "file") << "x";
  ReportOptions options;
  options.out_dir = dir.path() / "file" / "sub";
  try {
    write_report(dir.path() / "x.sqlite", options);
    FAIL();
  } catch (const ReportError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(
                  (dir.path() / "file" / "sub").string() + ": cannot create the output folder", 0),
              0u)
        << e.what();
  }
}

// ------------------------------------------------------------ the terminal

std::vector<std::string> group_labels(const Block& b) {
  std::vector<std::string> out;
  for (const auto& g : b.groups) out.push_back(fmt::format("{}/{}", g.label, g.span));
  return out;
}

std::vector<std::string> row_labels(const Block& b) {
  std::vector<std::string> out;
  for (const auto& r : b.rows) out.push_back(r.label);
  return out;
}

using Strings = std::vector<std::string>;

// One finished CAE-FR_2 job on virtual region 3: every table's full grid is "no job" but
// for one cell per metric.
Planned one_cae_fr2() {
  Planned j = job("0123456789abcdef", "virtual:3", "cae", "fr", 2, 1, 1, 0);
  j.mse = 0.05;
  j.psnr = 19.0;
  j.ssim = 0.7;
  j.pcc = 0.3;
  j.r = kR;
  j.p = kP;
  return j;
}

TEST(ReportTerminal, AOneJobDatabaseShowsThatRowAndThoseColumnsOnly) {
  TempDir dir;
  const auto db = write_database(dir.path(), "one.sqlite", {one_cae_fr2()}, false);
  const auto data = load_report_data(db);
  const auto full = build_tables(data);
  const CompactTables compact = compact_tables(full);
  EXPECT_EQ(compact.left_out, (Strings{"Table 3", "Table 8"}));
  EXPECT_TRUE(compact.trimmed);
  ASSERT_EQ(compact.tables.size(), 5u);

  const Block& t2 = find_table(compact.tables, "table2").blocks.at(0);
  EXPECT_EQ(row_labels(t2), (Strings{"CAE-FR_{2}"}));
  EXPECT_EQ(t2.columns, (Strings{"MSE↓", "PSNR↑", "SSIM↑"}));
  EXPECT_EQ(group_labels(t2), (Strings{"Region 3 (virtual)/3"}));
  EXPECT_EQ(markdown_cell(t2.rows[0].cells[0]), "**0.050** (n=1)");
  // Table 4: CNN-FR_2 has no job, so its column goes; CAE-FR_2's stays.
  const Block& t4 = find_table(compact.tables, "table4").blocks.at(0);
  EXPECT_EQ(row_labels(t4), (Strings{"Region 3 (virtual)"}));
  EXPECT_EQ(t4.columns, (Strings{"CAE-FR_{2}"}));
  EXPECT_EQ(group_labels(t4), (Strings{"h_{2}/1"}));
  // Table 5: one block (region 3), the CAE-FR_i row, h_2's three columns.
  const Table& t5 = find_table(compact.tables, "table5");
  ASSERT_EQ(t5.blocks.size(), 1u);
  EXPECT_EQ(row_labels(t5.blocks[0]), (Strings{"CAE-FR_{i}"}));
  EXPECT_EQ(t5.blocks[0].columns, (Strings{"MSE↓", "PSNR↑", "SSIM↑"}));
  EXPECT_EQ(group_labels(t5.blocks[0]), (Strings{"h_{2}/3"}));
  const Block& t6 = find_table(compact.tables, "table6").blocks.at(0);
  EXPECT_EQ(row_labels(t6), (Strings{"CAE-FR_{i}"}));
  EXPECT_EQ(t6.columns, (Strings{"h_{2}"}));
  EXPECT_EQ(group_labels(t6), (Strings{"Region 3 (virtual)/1"}));
  // Table 7's rows are made for the variants with jobs: kept whole.
  EXPECT_EQ(find_table(compact.tables, "table7").blocks.at(0).rows.size(),
            find_table(full, "table7").blocks.at(0).rows.size());

  const std::string terminal = render_terminal(data, full);
  EXPECT_EQ(terminal.find("n/a (no job)"), std::string::npos) << terminal;
  EXPECT_EQ(terminal.find("## Table 3:"), std::string::npos);
  EXPECT_EQ(terminal.find("## Table 8:"), std::string::npos);
  EXPECT_NE(terminal.find("\nTables 3, 8 not shown: no jobs for them.\n"), std::string::npos);
  EXPECT_NE(terminal.find("the report's files keep the paper's full layouts."), std::string::npos);
  // Its one row, padded as Markdown: | CAE-FR_2 | 01234567 | Region 3 (virtual) | 0 | done | ...
  EXPECT_NE(terminal.find("| CAE-FR_2 | 01234567 | Region 3 (virtual) | 0    | done  | 0.0500 | "
                          "19.00 | 0.700 | 0.300 | 3/5         |"),
            std::string::npos)
      << terminal;

  // The files keep the paper's full layouts.
  TempDir out;
  ReportOptions options;
  options.out_dir = out.path() / "r";
  const auto result = write_report(db, options);
  EXPECT_EQ(result.terminal, terminal);
  const std::string file = read_bytes(result.out_dir / "tables.md");
  EXPECT_EQ(file.rfind(result.markdown, 0), 0u);
  EXPECT_NE(file.find("## Table 3:"), std::string::npos);
  EXPECT_NE(file.find("| CAE-FR_1 "), std::string::npos);
  EXPECT_NE(file.find("n/a (no job)"), std::string::npos);
  EXPECT_EQ(file.find("## Jobs"), std::string::npos);
  EXPECT_EQ(file.find("not shown"), std::string::npos);
}

TEST_F(ReportTables, CompactTablesKeepEveryRowWithAJobAndNoneWithout) {
  const auto full = build_tables(load_report_data(*db_));
  const CompactTables compact = compact_tables(full);
  // The fixture's jobs carry no ground truth: Table 8 has no block. Every other table has a job.
  EXPECT_EQ(compact.left_out, (Strings{"Table 8"}));
  ASSERT_EQ(compact.tables.size(), full.size() - 1);
  for (std::size_t t = 0; t + 1 < full.size(); ++t) {
    ASSERT_EQ(compact.tables[t].id, full[t].id);
    EXPECT_EQ(compact.tables[t].notes, full[t].notes);
    for (const auto& block : full[t].blocks) {
      const Block* kept = nullptr;
      for (const auto& b : compact.tables[t].blocks) {
        if (b.subtitle == block.subtitle) kept = &b;
      }
      for (const auto& row : block.rows) {
        const bool has_job = std::any_of(row.cells.begin(), row.cells.end(), [](const Cell& c) {
          return c.kind == Cell::Kind::kStat && c.jobs > 0;
        });
        const bool text_only = std::all_of(row.cells.begin(), row.cells.end(), [](const Cell& c) {
          return c.kind == Cell::Kind::kText;
        });
        const bool shown =
            kept != nullptr && std::any_of(kept->rows.begin(), kept->rows.end(),
                                           [&](const Row& r) { return r.label == row.label; });
        EXPECT_EQ(shown, has_job || text_only)
            << full[t].id << " " << block.subtitle << " " << row.label;
      }
    }
  }
  // Region 1 has the CAE, CAE-FR_1 and the failed CAE-FR_4: Table 5 keeps h_1 and h_4 (a
  // failed job is a job), and the CAE's value, repeated in h_2 and h_3, keeps neither.
  const Table& t5 = find_table(compact.tables, "table5");
  ASSERT_EQ(t5.blocks.size(), 2u);
  EXPECT_EQ(t5.blocks[0].subtitle, "Region 1 (virtual)");
  EXPECT_EQ(row_labels(t5.blocks[0]), (Strings{"CAE", "CAE-FR_{i}"}));
  EXPECT_EQ(group_labels(t5.blocks[0]), (Strings{"h_{1}/3", "h_{4}/3"}));
  EXPECT_EQ(markdown_cell(cell_at(t5.blocks[0], "CAE-FR_{i}", "h_{4}", "MSE↓")),
            "n/a (0 of 1 done)");
  // Table 3 has region 3's block only, and there the CAE-FR_2 rows.
  const Table& t3 = find_table(compact.tables, "table3");
  ASSERT_EQ(t3.blocks.size(), 1u);
  EXPECT_EQ(t3.blocks[0].subtitle, "Region 3 (virtual)");
  EXPECT_EQ(row_labels(t3.blocks[0]), (Strings{"CAE-FR_{2}"}));
  EXPECT_EQ(t3.blocks[0].columns.size(), 6u);
  EXPECT_TRUE(compact.trimmed);
}

TEST(ReportTerminal, ABaselineAloneKeepsItsFirstLayerInTable5) {
  TempDir dir;
  Planned cae = job("cae-only", "virtual:3", "cae", "none", 0, 1, 0, 0);
  cae.mse = 0.08;
  cae.psnr = 17.0;
  cae.ssim = 0.56;
  const auto db = write_database(dir.path(), "cae.sqlite", {cae}, false);
  const auto data = load_report_data(db);
  const CompactTables compact = compact_tables(build_tables(data));
  const Block& t5 = find_table(compact.tables, "table5").blocks.at(0);
  EXPECT_EQ(row_labels(t5), (Strings{"CAE"}));
  EXPECT_EQ(group_labels(t5), (Strings{"h_{1}/3"}));
  EXPECT_EQ(markdown_cell(t5.rows[0].cells[0]), "**0.080** (n=1)");
  // No readout: Tables 3, 4, 6 and 8 have nothing; Table 7 pairs no variant.
  EXPECT_EQ(compact.left_out, (Strings{"Table 3", "Table 4", "Table 6", "Table 7", "Table 8"}));
  EXPECT_NE(render_terminal(data, build_tables(data))
                .find("\nTables 3, 4, 6, 7, 8 not shown: no jobs for them.\n"),
            std::string::npos);
}

TEST(ReportTerminal, AnEmptyDatabaseNamesEveryTableLeftOut) {
  TempDir dir;
  { storage::Store store(dir.path() / "empty.sqlite"); }
  const auto data = load_report_data(dir.path() / "empty.sqlite");
  const std::string terminal = render_terminal(data, build_tables(data));
  EXPECT_EQ(terminal, markdown_preamble(data) +
                          "\nTables 2, 3, 4, 5, 6, 7, 8 not shown: no jobs for them.\n"
                          "Rows and columns without a job are left out here; the report's files "
                          "keep the paper's full layouts.\n");
}

TEST_F(ReportTables, TheJobsTableListsEachJobUpToItsLimit) {
  const auto data = load_report_data(*db_);
  const Table all = jobs_table(data, 1000);
  ASSERT_EQ(all.blocks.at(0).rows.size(), fixture_jobs().size());
  const Table few = jobs_table(data, 3);
  const Block& b = few.blocks.at(0);
  ASSERT_EQ(b.rows.size(), 3u);
  EXPECT_EQ(few.notes.at(0),
            fmt::format("The first 3 of {} jobs; the tables below summarise them all.",
                        fixture_jobs().size()));
  // Report order: region 1 first; the CAE's two seeds, then CAE-FR_1 (loss pair not named:
  // each model has one).
  EXPECT_EQ(row_labels(b), (Strings{"CAE", "CAE", "CAE-FR_{1}"}));
  std::vector<std::string> cells;
  for (const auto& c : b.rows[2].cells) cells.push_back(c.text);
  EXPECT_EQ(cells, (Strings{"r1-cae-f", "Region 1 (virtual)", "0", "done", "0.0210", "23.83",
                            "0.776", "0.346", "3/5"}));
  // A failed job: no metric.
  bool saw_failed = false;
  for (const auto& row : all.blocks[0].rows) {
    if (row.cells[3].text != "failed") continue;
    saw_failed = true;
    EXPECT_EQ(row.cells[4].text, "-");
    EXPECT_EQ(row.cells[7].text, "-");
  }
  EXPECT_TRUE(saw_failed);
}

// ------------------------------------------------------------ decode and mei jobs

// A decode or mei job of the talk fixture: its parent (a fixture job, whose labels it
// carries) and its result.
struct DerivedJob {
  std::string id, kind, objective;
  Planned parent;
  enum { kDone, kFailed, kPending } outcome = kDone;
  nlohmann::json metrics;
  std::map<std::string, std::string> artifacts;  // kind -> "write" or "missing"
};

nlohmann::json scores(double pixel_r, double ssim, double top1, double top5) {
  return {{"mse", 0.1},         {"psnr", 16.0}, {"ssim", ssim},
          {"pixel_r", pixel_r}, {"top1", top1}, {"top5", top5}};
}

// A decode job's metrics; `trials_r` < 0: the data has no single trials.
nlohmann::json decode_metrics(const std::string& parent, int test_images, bool chance,
                              const nlohmann::json& responses, double trials_r) {
  nlohmann::json m = {{"kind", "decode"},
                      {"parent", parent},
                      {"ridge", {{"code", 0.1}, {"pixels", 10.0}}},
                      {"test_images", test_images},
                      {"trials", trials_r < 0 ? 0 : 10}};
  if (chance) m["chance"] = {{"top1", 1.0 / test_images}, {"top5", 5.0 / test_images}};
  m["methods"] = {{"responses", responses},
                  {"autoencoder", scores(0.9, 0.8, 0.96, 1.0)},
                  {"pixels", scores(0.3, 0.2, 0.1, 0.3)}};
  if (trials_r >= 0) m["methods"]["trials"] = scores(trials_r, 0.2, 0.1, 0.3);
  return m;
}

// An mei job's metrics; a negative true ratio: recorded data (the true-data keys null).
nlohmann::json mei_metrics(const std::string& parent, const std::string& objective,
                           double model_ratio, double true_ratio, double share, double rf,
                           double centre) {
  const bool truth = true_ratio >= 0;
  auto value = [&](double v) { return truth ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json neurons = nlohmann::json::array();
  for (int n : {3, 0, 4}) {
    neurons.push_back({{"neuron", n},
                       {"test_r", 0.6},
                       {"model_ratio", model_ratio},
                       {"true_ratio", value(true_ratio)},
                       {"rf_corr", value(rf)},
                       {"centre_error", value(centre)}});
  }
  return {{"kind", "mei"},
          {"parent", parent},
          {"objective", objective},
          {"natural_images", 1490},
          {"neurons", neurons},
          {"summary",
           {{"median_model_ratio", model_ratio},
            {"median_true_ratio", value(true_ratio)},
            {"share_true_above_1", value(share)},
            {"mean_rf_corr", value(rf)},
            {"mean_centre_error", value(centre)}}}};
}

const Planned& planned(const std::vector<Planned>& jobs, const std::string& id) {
  for (const auto& j : jobs) {
    if (j.id == id) return j;
  }
  throw std::runtime_error("no fixture job " + id);
}

std::vector<DerivedJob> derived_jobs() {
  const auto train = fixture_jobs();
  std::vector<DerivedJob> out;
  out.reserve(32);  // the helpers below hand out pointers into it
  auto decode = [&](const std::string& parent, nlohmann::json metrics) {
    DerivedJob d;
    d.id = "d-" + parent;
    d.kind = "decode";
    d.parent = planned(train, parent);
    d.metrics = std::move(metrics);
    out.push_back(d);
    return &out.back();
  };
  // Region 3: the CAE and CAE-FR_1 decoded over three seeds. Pixel r 0.40, 0.42, 0.44 and
  // 0.50, 0.53, 0.56 (differences 0.10, 0.11, 0.12); top-1 0.3 each and 0.4, 0.5, 0.6
  // (differences 0.1, 0.2, 0.3).
  for (int s = 0; s < 3; ++s) {
    auto* cae = decode(fmt::format("r3-cae-s{}", s),
                       decode_metrics(fmt::format("r3-cae-s{}", s), 50, true,
                                      scores(0.40 + 0.02 * s, 0.30, 0.3, 0.6), 0.2));
    auto* fr1 =
        decode(fmt::format("r3-cae-fr1-s{}", s),
               decode_metrics(fmt::format("r3-cae-fr1-s{}", s), 50, true,
                              scores(0.50 + 0.03 * s, 0.40, 0.4 + 0.1 * s, 0.8), 0.20 + 0.05 * s));
    if (s == 0)
      cae->artifacts = fr1->artifacts = {{"decode_figure", "write"}, {"decode_responses", "write"}};
  }
  // CAE-FR_2: seed 0 done, its figure's file gone; seed 1 failed.
  decode("r3-cae-fr2-s0",
         decode_metrics("r3-cae-fr2-s0", 50, true, scores(0.48, 0.35, 0.35, 0.7), 0.2))
      ->artifacts = {{"decode_figure", "missing"}};
  decode("r3-cae-fr2-s1", {})->outcome = DerivedJob::kFailed;
  // Its neuron subset's figure is a reconstructions artifact's shape: the wrong one.
  decode("r3-cae-fr2-sig-s0",
         decode_metrics("r3-cae-fr2-sig-s0", 50, true, scores(0.45, 0.3, 0.3, 0.6), 0.2))
      ->artifacts = {{"decode_figure", "wrong shape"}};
  decode("r3-cae-fr3-s0", {})->outcome = DerivedJob::kPending;
  // Region 1: no single trials, no chance key (1 / 100 and 5 / 100 then), no CAE decoded.
  decode("r1-cae-fr1-s0",
         decode_metrics("r1-cae-fr1-s0", 100, false, scores(0.6, 0.5, 0.2, 0.4), -1));

  auto mei = [&](const std::string& id, const Planned& parent, const std::string& objective,
                 nlohmann::json metrics) {
    DerivedJob d;
    d.id = id;
    d.kind = "mei";
    d.objective = objective;
    d.parent = parent;
    d.metrics = std::move(metrics);
    out.push_back(d);
    return &out.back();
  };
  // Region 3, CAE-FR_1, stretch: medians 1.8 and 2.0, true 1.2 and 1.4, shares 0.75 and 0.25,
  // RF r 0.6 and 0.7, centre errors 1.5 and 2.5 over seeds 0 and 1.
  mei("m-r3-fr1-s0", planned(train, "r3-cae-fr1-s0"), "stretch",
      mei_metrics("r3-cae-fr1-s0", "stretch", 1.8, 1.2, 0.75, 0.6, 1.5))
      ->artifacts = {{"mei_images", "write"}, {"mei_rf", "write"}};
  mei("m-r3-fr1-s1", planned(train, "r3-cae-fr1-s1"), "stretch",
      mei_metrics("r3-cae-fr1-s1", "stretch", 2.0, 1.4, 0.25, 0.7, 2.5));
  // One-hot on the same model, its true keys null: n/a beside the stretch row's values.
  mei("m-r3-fr1-onehot-s0", planned(train, "r3-cae-fr1-s0"), "onehot",
      mei_metrics("r3-cae-fr1-s0", "onehot", 3.0, -1, 0, 0, 0))
      ->artifacts = {{"mei_images", "write"}};
  // A recorded region: no ground truth at all, and its images' file is gone.
  Planned recorded = job("rec-fr1-s0", "/data/region2", "cae", "fr", 1, 1, 1, 0);
  mei("m-rec-fr1-s0", recorded, "stretch", mei_metrics("rec-fr1-s0", "stretch", 1.5, -1, 0, 0, 0))
      ->artifacts = {{"mei_images", "missing"}};
  return out;
}

std::string derived_labels(const DerivedJob& d) {
  auto labels = nlohmann::json::parse(labels_json(d.parent));
  labels["kind"] = d.kind;
  labels["parent"] = d.parent.id;
  if (d.kind == "mei") labels["objective"] = d.objective;
  return labels.dump();
}

void write_array(const fs::path& path, const std::vector<int64_t>& shape,
                 const std::vector<float>& values) {
  job::write_npy(path, job::NpyDtype::kFloat32, shape, values.data());
}

// decode_figure (4, 3, 1, 32, 32): the ramp of write_reconstructions, then 0.5 (the
// autoencoder), 0 (decoded) and -0.5 (the pixel baseline) everywhere; decode_responses
// (3, 5): neuron i responds i to every image.
void write_decode_artifacts(const fs::path& dir, const DerivedJob& d, storage::Store& store) {
  for (const auto& [kind, how] : d.artifacts) {
    const fs::path file = how == "missing"
                              ? fs::path("/nonexistent/daenr/" + d.id + "-" + kind + ".npy")
                              : dir / (d.id + "-" + kind + ".npy");
    if (how == "wrong shape") write_reconstructions(file, 3);
    if (how == "write") {
      if (kind == "decode_figure") {
        std::vector<float> v;
        for (float fill : {2.0f, 0.5f, 0.0f, -0.5f}) {
          for (int i = 0; i < 3 * 32 * 32; ++i)
            v.push_back(fill > 1 ? float(i % 32) / 31.0f * 2 - 1 : fill);
        }
        write_array(file, {4, 3, 1, 32, 32}, v);
      } else if (kind == "decode_responses") {
        std::vector<float> v;
        for (int c = 0; c < 3; ++c) {
          for (int i = 0; i < 5; ++i) v.push_back(float(i));
        }
        write_array(file, {3, 5}, v);
      } else if (kind == "mei_images") {
        // Neuron c's image is -1 + c everywhere: black, grey, white.
        std::vector<float> v;
        for (int c = 0; c < 3; ++c) v.insert(v.end(), 32 * 32, float(c) - 1);
        write_array(file, {3, 1, 32, 32}, v);
      } else if (kind == "mei_rf") {
        // Each field is 0 but its centre pixel, 2.
        std::vector<float> v(3 * 31 * 31, 0.0f);
        for (int c = 0; c < 3; ++c) v[std::size_t(c) * 31 * 31 + 15 * 31 + 15] = 2.0f;
        write_array(file, {3, 31, 31}, v);
      }
    }
    store.add_artifact(d.id, kind, file.string());
  }
}

// The fixture's training jobs (as make_fixture writes them) and, in a second sweep, the
// decode and mei jobs of derived_jobs().
fs::path make_talk_fixture(const fs::path& dir) {
  const fs::path db = write_database(dir, "fixture.sqlite", fixture_jobs(), true);
  storage::Store store(db);
  const auto sweep = store.insert_sweep("talk", "talk spec", 2000);
  const auto derived = derived_jobs();
  std::vector<storage::NewJob> now_jobs, later;
  for (const auto& d : derived) {
    // The recorded region's parent is not in the fixture: no dependency to wait for.
    const std::string depends = d.parent.region == "/data/region2" ? "" : d.parent.id;
    (d.outcome == DerivedJob::kPending ? later : now_jobs)
        .push_back({d.id, "{}", derived_labels(d), depends,
                    nlohmann::json::parse(derived_labels(d)).at("kind").get<std::string>()});
  }
  store.insert_jobs(sweep, now_jobs, 2000);
  double now = 2001;
  while (auto leased = store.lease_next(sweep, "tester", now, 60, 1)) {
    now += 1;
    const DerivedJob* d = nullptr;
    for (const auto& x : derived) {
      if (x.id == leased->id) d = &x;
    }
    if (d->outcome == DerivedJob::kFailed) {
      store.record_failure(d->id, "tester", "ridge: singular matrix", now);
      continue;
    }
    storage::ResultRecord r;
    r.job_id = d->id;
    r.metrics = d->metrics.dump();
    if (d->kind == "decode") {
      const auto& resp = d->metrics["methods"]["responses"];
      r.mse = resp["mse"].get<double>();
      r.psnr = resp["psnr"].get<double>();
      r.ssim = resp["ssim"].get<double>();
    }
    store.record_result(r, "tester", now);
    write_decode_artifacts(dir, *d, store);
  }
  store.insert_jobs(sweep, later, now);
  return db;
}

class ReportDecodeMei : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    db_ = new fs::path(make_talk_fixture(dir_->path()));
  }
  static void TearDownTestSuite() {
    delete db_;
    delete dir_;
  }
  static TempDir* dir_;
  static fs::path* db_;
};
TempDir* ReportDecodeMei::dir_ = nullptr;
fs::path* ReportDecodeMei::db_ = nullptr;

TEST_F(ReportDecodeMei, LoadsDecodeAndMeiJobsApartFromTheTrainingJobs) {
  const auto data = load_report_data(*db_);
  ASSERT_EQ(data.jobs.size(), fixture_jobs().size());  // the training jobs, as before
  EXPECT_EQ(data.unlabelled, 1);
  for (const auto& j : data.jobs) EXPECT_EQ(j.labels.kind, "train") << j.id;
  ASSERT_EQ(data.decode_jobs.size(), 11u);
  ASSERT_EQ(data.mei_jobs.size(), 4u);
  // Report order: region 1 first; in region 3 the CAE, CAE-FR_1..3, then the neuron subset.
  EXPECT_EQ(data.decode_jobs.front().id, "d-r1-cae-fr1-s0");
  EXPECT_EQ(data.decode_jobs[1].id, "d-r3-cae-s0");
  EXPECT_EQ(data.decode_jobs.back().id, "d-r3-cae-fr2-sig-s0");
  // The recorded region (2) before virtual 3; there "onehot" before "stretch", then seeds.
  EXPECT_EQ(data.mei_jobs[0].id, "m-rec-fr1-s0");
  EXPECT_EQ(data.mei_jobs[1].id, "m-r3-fr1-onehot-s0");
  EXPECT_EQ(data.mei_jobs[2].id, "m-r3-fr1-s0");
  const JobRecord& d = data.decode_jobs[1];
  EXPECT_EQ(d.labels.kind, "decode");
  EXPECT_EQ(d.labels.parent, "r3-cae-s0");
  ASSERT_TRUE(d.decode.has_value());
  EXPECT_EQ(d.decode->test_images, 50);
  EXPECT_DOUBLE_EQ(*d.decode->chance_top1, 0.02);
  EXPECT_DOUBLE_EQ(*d.decode->methods.at("responses").pixel_r, 0.40);
  EXPECT_EQ(d.mse, 0.1);  // the results row's columns are the responses' metrics
  EXPECT_FALSE(d.decode_figure.empty());
  // Without a chance key, chance is 1 / N and 5 / N.
  EXPECT_DOUBLE_EQ(*data.decode_jobs[0].decode->chance_top5, 0.05);
  const JobRecord& m = data.mei_jobs[2];
  EXPECT_EQ(m.labels.objective, "stretch");
  ASSERT_TRUE(m.mei.has_value());
  ASSERT_EQ(m.mei->neurons.size(), 3u);
  EXPECT_EQ(m.mei->neurons[0].neuron, 3);
  EXPECT_DOUBLE_EQ(*m.mei->median_true_ratio, 1.2);
  EXPECT_FALSE(data.mei_jobs[0].mei->median_true_ratio.has_value());  // null on recorded data
  EXPECT_FALSE(m.mei_rf.empty());
}

TEST_F(ReportDecodeMei, DecodingTableCellsAreMeansOverSeedsWithChanceBeside) {
  const auto tables = build_tables(load_report_data(*db_));
  const Table& t = find_table(tables, "table9");
  ASSERT_EQ(t.blocks.size(), 2u);
  const Block& r1 = t.blocks[0];
  // No single trials in region 1: that group is left out; chance from 100 test images.
  EXPECT_EQ(r1.subtitle, "Region 1 (virtual): 100 test images (chance: top-1 0.010, top-5 0.050)");
  EXPECT_EQ(group_labels(r1), (Strings{"From neurons/4", "AE ceiling/4", "Pixel baseline/4"}));
  const Block& b = t.blocks[1];
  EXPECT_EQ(b.subtitle, "Region 3 (virtual): 50 test images (chance: top-1 0.020, top-5 0.100)");
  EXPECT_EQ(group_labels(b), (Strings{"From neurons/4", "From single trials/4", "AE ceiling/4",
                                      "Pixel baseline/4"}));
  EXPECT_EQ(b.columns.front(), "pixel r↑");
  EXPECT_EQ(row_labels(b), (Strings{"CAE", "CAE-FR_{1}", "CAE-FR_{2}", "CAE-FR_{3}",
                                    "CAE-FR_{2} (significant neurons)"}));
  // CAE-FR_1 from the neurons: pixel r 0.50, 0.53, 0.56 -> 0.53 ± 0.03; top-1 0.4, 0.5, 0.6.
  const Cell& r = cell_at(b, "CAE-FR_{1}", "From neurons", "pixel r↑");
  EXPECT_EQ(r.stat.n, 3);
  EXPECT_NEAR(r.stat.mean, 0.53, 1e-12);
  EXPECT_NEAR(r.stat.sd, 0.03, 1e-12);
  EXPECT_TRUE(r.best);
  EXPECT_EQ(markdown_cell(r), "**0.530** ± 0.030 (n=3)");
  EXPECT_NEAR(cell_at(b, "CAE-FR_{1}", "From neurons", "top-1↑").stat.mean, 0.5, 1e-12);
  EXPECT_NEAR(cell_at(b, "CAE-FR_{1}", "From neurons", "top-1↑").stat.sd, 0.1, 1e-12);
  EXPECT_NEAR(cell_at(b, "CAE-FR_{1}", "From single trials", "pixel r↑").stat.mean, 0.25, 1e-12);
  EXPECT_NEAR(cell_at(b, "CAE", "From neurons", "pixel r↑").stat.mean, 0.42, 1e-12);
  EXPECT_FALSE(cell_at(b, "CAE", "From neurons", "pixel r↑").best);
  EXPECT_NEAR(cell_at(b, "CAE", "AE ceiling", "SSIM↑").stat.mean, 0.8, 1e-12);
  EXPECT_NEAR(cell_at(b, "CAE", "Pixel baseline", "top-5↑").stat.mean, 0.3, 1e-12);
  EXPECT_FALSE(cell_at(b, "CAE", "Pixel baseline", "top-5↑").best);  // not a contest
  // CAE-FR_2: one seed of two (the other failed); CAE-FR_3 not finished.
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{2}", "From neurons", "pixel r↑")),
            "0.480 (n=1 of 2)");
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{3}", "From neurons", "pixel r↑")),
            "n/a (0 of 1 done)");
  bool failed = false, pending = false;
  for (const auto& note : t.notes) {
    failed = failed || note.find(
                           "Failed jobs: 1. decoding of CAE-FR_{2}, Region 3 (virtual), "
                           "α=1, β=1, seed 1 (job d-r3-cae-fr2-s1): ridge: singular "
                           "matrix.") != std::string::npos;
    pending = pending || note == "Not finished (pending, running or preempted): 1 job.";
  }
  EXPECT_TRUE(failed);
  EXPECT_TRUE(pending);
  // The tidy CSV: a row per cell and two for chance per model row.
  const std::string csv = render_csv(t);
  EXPECT_NE(csv.find("table9,Region 3 (virtual),CAE-FR_1,From neurons pixel r↑,virtual:3,cae,"
                     "fr,1,1,1,all,responses,pixel_r,0.53"),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find("table9,Region 1 (virtual),CAE-FR_1,chance top-1,virtual:1,cae,fr,1,1,1,"
                     "all,chance,top1,0.01,,1,1,1,0,0"),
            std::string::npos)
      << csv;
}

TEST_F(ReportDecodeMei, EachVariantIsPairedWithItsPlainAutoencoderBySeed) {
  const auto tables = build_tables(load_report_data(*db_));
  const Table& t = find_table(tables, "table10");
  ASSERT_EQ(t.blocks.size(), 1u);
  const Block& b = t.blocks[0];
  // Region 1's CAE-FR_1, region 3's CAE-FR_1, _2 and _3; top-1 and pixel r each. The neuron
  // subset's decoding has no pair.
  ASSERT_EQ(b.rows.size(), 8u);
  auto cells = [&](std::size_t row) {
    std::vector<std::string> out = {b.rows[row].label};
    for (const auto& c : b.rows[row].cells) out.push_back(c.text);
    return out;
  };
  EXPECT_EQ(cells(0), (Strings{"Region 1 (virtual)", "CAE-FR_{1}", "CAE", "top-1↑", "0", "n/a",
                               "n/a", "n/a", "no baseline job"}));
  // Region 3, CAE-FR_1 against the CAE: top-1 differences 0.1, 0.2, 0.3 over seeds 0-2: mean
  // 0.2, sd 0.1, t = 2 sqrt 3, p = 1 - sqrt(12 / 14) = 0.074 (df 2): no evidence.
  const auto top1 = cells(2);
  EXPECT_EQ(top1, (Strings{"Region 3 (virtual)", "CAE-FR_{1}", "CAE", "top-1↑", "3",
                           "0.200 ± 0.100", "3.46", "0.074", "no evidence (p > 0.05)"}));
  // Pixel r differences 0.10, 0.11, 0.12: mean 0.11, sd 0.01, t = 0.11 sqrt 3 / 0.01 = 19.05,
  // p = 1 - t / sqrt(2 + t^2) = 0.0027: the variant's code decodes better.
  const double t_r = 0.11 * std::sqrt(3.0) / 0.01;
  const auto pixel = cells(3);
  EXPECT_EQ(pixel[3], "pixel r↑");
  EXPECT_EQ(pixel[4], "3");
  EXPECT_EQ(pixel[5], "0.110 ± 0.010");
  EXPECT_EQ(pixel[6], format_number(t_r, 2));
  EXPECT_EQ(pixel[7], format_number(1 - t_r / std::sqrt(2 + t_r * t_r), 3));
  EXPECT_EQ(pixel[8], "better (p ≤ 0.05)");
  // CAE-FR_2: one seed finished by both (seed 1's decoding failed); CAE-FR_3: none.
  EXPECT_EQ(cells(4)[4], "1");
  EXPECT_EQ(cells(4)[8], "n/a (one seed)");
  EXPECT_EQ(cells(6)[8], "no seed finished by both");
  const std::string csv = render_csv(t);
  EXPECT_NE(csv.find(",responses,top1,3,0.2"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",better (p ≤ 0.05),0 1 2\n"), std::string::npos) << csv;
}

TEST_F(ReportDecodeMei, SynthesisTableHasTheTrueColumnsOnlyWhereTheyExist) {
  const auto tables = build_tables(load_report_data(*db_));
  const Table& t = find_table(tables, "table11");
  ASSERT_EQ(t.blocks.size(), 2u);
  // The recorded region: no true responses, so no such columns, and a note says why.
  const Block& rec = t.blocks[0];
  EXPECT_EQ(rec.subtitle, "Region 2");
  EXPECT_EQ(rec.columns, (Strings{"neurons", "median model ratio"}));
  EXPECT_EQ(row_labels(rec), (Strings{"CAE-FR_{1}, stretch"}));
  EXPECT_NE(std::find_if(t.notes.begin(), t.notes.end(),
                         [](const std::string& n) {
                           return n.rfind("The true-response columns are left out", 0) == 0;
                         }),
            t.notes.end());
  const Block& b = t.blocks[1];
  EXPECT_EQ(b.columns, (Strings{"neurons", "median model ratio", "median true ratio",
                                "true ratio > 1", "mean RF r", "mean centre error (px)"}));
  EXPECT_EQ(row_labels(b), (Strings{"CAE-FR_{1}, one-hot", "CAE-FR_{1}, stretch"}));
  // Stretch over seeds 0 and 1: 1.8 and 2.0, 1.2 and 1.4, 0.75 and 0.25, 0.6 and 0.7, 1.5, 2.5.
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{1}, stretch", "", "neurons")), "3 ± 0 (n=2)");
  EXPECT_NEAR(cell_at(b, "CAE-FR_{1}, stretch", "", "median model ratio").stat.mean, 1.9, 1e-12);
  EXPECT_NEAR(cell_at(b, "CAE-FR_{1}, stretch", "", "median true ratio").stat.mean, 1.3, 1e-12);
  const Cell& share = cell_at(b, "CAE-FR_{1}, stretch", "", "true ratio > 1");
  EXPECT_NEAR(share.stat.mean, 0.5, 1e-12);
  EXPECT_NEAR(share.stat.sd, std::sqrt(0.125), 1e-12);
  EXPECT_NEAR(cell_at(b, "CAE-FR_{1}, stretch", "", "mean RF r").stat.mean, 0.65, 1e-12);
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{1}, stretch", "", "mean centre error (px)")),
            "2.00 ± 0.71 (n=2)");
  // One-hot's true keys are null: n/a, beside its model ratio.
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{1}, one-hot", "", "median true ratio")),
            "n/a (no value)");
  EXPECT_EQ(markdown_cell(cell_at(b, "CAE-FR_{1}, one-hot", "", "median model ratio")),
            "3.00 (n=1)");
  EXPECT_FALSE(cell_at(b, "CAE-FR_{1}, stretch", "", "median model ratio").best);  // no bold
  const std::string csv = render_csv(t);
  // Full precision: the mean as summarize computes it, the sum in seed order over n.
  EXPECT_NE(csv.find(fmt::format("table11,Region 3 (virtual),\"CAE-FR_1, stretch\",median true "
                                 "ratio,virtual:3,cae,fr,1,1,1,all,stretch,median_true_ratio,{},",
                                 (1.2 + 1.4) / 2)),
            std::string::npos)
      << csv;
}

// Every file of a report, by its path relative to the output folder.
std::map<std::string, std::string> report_files(const ReportOutput& out) {
  std::map<std::string, std::string> files;
  for (const auto& f : out.files) {
    files[fs::relative(f, out.out_dir).string()] = read_bytes(f);
  }
  return files;
}

TEST_F(ReportDecodeMei, ThePaperTablesFiguresAndCurvesAreUnchangedByThem) {
  TempDir plain_dir, out;
  const fs::path plain = make_fixture(plain_dir.path());
  const auto with = load_report_data(*db_), without = load_report_data(plain);
  const auto tables_with = build_tables(with), tables_without = build_tables(without);
  ASSERT_EQ(tables_without.size(), 7u);  // no decode or mei job: no Table 9, 10 or 11
  ASSERT_EQ(tables_with.size(), 10u);
  for (std::size_t i = 0; i < tables_without.size(); ++i) {
    EXPECT_EQ(render_markdown({tables_with[i]}, ""), render_markdown({tables_without[i]}, ""))
        << tables_without[i].id;
    EXPECT_EQ(render_csv(tables_with[i]), render_csv(tables_without[i])) << tables_without[i].id;
  }
  EXPECT_EQ(render_markdown({jobs_table(with, 1000)}, ""),
            render_markdown({jobs_table(without, 1000)}, ""));

  ReportOptions a, b;
  a.out_dir = out.path() / "with";
  b.out_dir = out.path() / "without";
  const auto files_with = report_files(write_report(*db_, a));
  const auto files_without = report_files(write_report(plain, b));
  for (const auto& [name, bytes] : files_without) {
    if (name == "tables.md" || name == "tables.tex" || name == "report.html") continue;
    ASSERT_TRUE(files_with.count(name)) << name;
    EXPECT_EQ(files_with.at(name), bytes) << name;
  }
  // The text files hold the paper's tables as before, the new ones after them.
  const std::string& tex = files_with.at("tables.tex");
  EXPECT_EQ(tex.rfind(files_without.at("tables.tex"), 0), 0u);
  const std::string& md_without = files_without.at("tables.md");
  const std::string body = md_without.substr(md_without.find("\n## Table 2:"));
  const std::string paper_part = body.substr(0, body.find("\n## Figures"));
  EXPECT_NE(files_with.at("tables.md").find(paper_part + "\n## Table 9:"), std::string::npos);
  for (const char* name :
       {"table9.csv", "table10.csv", "table11.csv", "figures/decoding-virtual-3-cae-fr-1.png",
        "figures/synthesis-virtual-3-cae-fr-1-stretch.png"}) {
    EXPECT_TRUE(files_with.count(name)) << name;
    EXPECT_FALSE(files_without.count(name)) << name;
  }
}

TEST_F(ReportDecodeMei, FiguresArePngsOfTheExpectedSize) {
  const auto data = load_report_data(*db_);
  const auto figures = build_figures(data);
  std::vector<std::string> names;
  for (const auto& f : figures) {
    if (f.name.rfind("decoding-", 0) == 0 || f.name.rfind("synthesis-", 0) == 0)
      names.push_back(f.name);
  }
  // One per model (and objective) with a finished job; CAE-FR_3's only job is pending.
  EXPECT_EQ(names,
            (Strings{"decoding-virtual-1-cae-fr-1", "decoding-virtual-3-cae",
                     "decoding-virtual-3-cae-fr-1", "decoding-virtual-3-cae-fr-2",
                     "decoding-virtual-3-cae-fr-2-significant-neurons",
                     "synthesis-region2-cae-fr-1-stretch", "synthesis-virtual-3-cae-fr-1-one-hot",
                     "synthesis-virtual-3-cae-fr-1-stretch"}));
  auto find = [&](const std::string& name) -> const Figure& {
    for (const auto& f : figures) {
      if (f.name == name) return f;
    }
    throw std::runtime_error("no figure " + name);
  };
  // Decoding: 3 test images, 5 rows, as Figure 2's grid (62 px of row letters, 100 px a cell).
  const Figure& d = find("decoding-virtual-3-cae-fr-1");
  EXPECT_EQ(d.mime, "image/png");
  const Decoded png = decode_png(d.bytes);
  EXPECT_EQ(png.width, 62 + 3 * 100);
  EXPECT_EQ(png.height, 4 + 5 * 100);
  auto at = [&](const Decoded& p, int x, int y) {
    return p.pixels[std::size_t(y) * std::size_t(p.width) + std::size_t(x)];
  };
  const int x0 = 62;
  EXPECT_EQ(at(png, x0, 4), 0);           // (a) the ramp starts at -1
  EXPECT_EQ(at(png, x0 + 95, 4), 255);    // and ends at 1
  EXPECT_EQ(at(png, x0, 104 + 10), 191);  // (b) the autoencoder: 0.5
  EXPECT_EQ(at(png, x0, 304 + 10), 128);  // (d) decoded: 0
  EXPECT_EQ(at(png, x0, 404 + 10), 64);   // (e) the pixel baseline: -0.5
  // (c) 5 responses 0..4 in a 3 x 3 grid of 32 px cells, row by row: black to white, each
  // framed in grey; the grid's four unused cells stay white.
  EXPECT_EQ(at(png, x0 + 5, 204 + 5), 0);              // neuron 0
  EXPECT_EQ(at(png, x0 + 64 + 5, 204 + 5), 128);       // neuron 2: half the largest
  EXPECT_EQ(at(png, x0 + 32 + 5, 204 + 32 + 5), 255);  // neuron 4: the largest
  EXPECT_EQ(at(png, x0 + 31, 204 + 5), 160);           // neuron 0's frame
  EXPECT_EQ(at(png, x0 + 32, 204 + 32), 160);          // neuron 4's
  EXPECT_EQ(at(png, x0 + 64 + 5, 204 + 32 + 5), 255);  // unused
  EXPECT_NE(d.caption.find("the 5 neurons' trial-averaged responses"), std::string::npos)
      << d.caption;
  EXPECT_NE(d.caption.find("Decode job d-r3-cae-fr1-s0 (seed 0) of training job r3-cae-fr1-s0."),
            std::string::npos)
      << d.caption;
  // Synthesis: three neurons, their images above their true fields.
  const Figure& s = find("synthesis-virtual-3-cae-fr-1-stretch");
  const Decoded grid = decode_png(s.bytes);
  EXPECT_EQ(grid.width, 62 + 3 * 100);
  EXPECT_EQ(grid.height, 4 + 2 * 100);
  EXPECT_EQ(at(grid, x0 + 10, 4 + 10), 0);          // neuron 3's image: -1
  EXPECT_EQ(at(grid, x0 + 100 + 10, 4 + 10), 128);  // neuron 0's: 0
  EXPECT_EQ(at(grid, x0 + 200 + 10, 4 + 10), 255);  // neuron 4's: 1
  // The field (31 x 31 at 3 px, 1 px in): grey at 0, white at its centre.
  EXPECT_EQ(at(grid, x0 + 10, 104 + 10), 128);
  EXPECT_EQ(at(grid, x0 + 1 + 15 * 3 + 1, 104 + 1 + 15 * 3 + 1), 255);
  EXPECT_NE(s.caption.find("neuron 3 (model ratio 1.80, true ratio 1.20, RF r 0.60)"),
            std::string::npos)
      << s.caption;
  // Without true fields (one-hot stored none): one row.
  const Decoded onehot = decode_png(find("synthesis-virtual-3-cae-fr-1-one-hot").bytes);
  EXPECT_EQ(onehot.height, 4 + 100);
  EXPECT_NE(
      find("synthesis-virtual-3-cae-fr-1-one-hot").caption.find("no true receptive fields stored"),
      std::string::npos);
}

TEST_F(ReportDecodeMei, AMissingArtifactIsOneNoteNotACrash) {
  const auto figures = build_figures(load_report_data(*db_));
  auto find = [&](const std::string& name) -> const Figure& {
    for (const auto& f : figures) {
      if (f.name == name) return f;
    }
    throw std::runtime_error("no figure " + name);
  };
  // CAE-FR_2's decode_figure was recorded but its file is gone: crossed out, and why.
  const Figure& d = find("decoding-virtual-3-cae-fr-2");
  const Decoded png = decode_png(d.bytes);
  EXPECT_EQ(png.width, 62 + 100);  // one crossed-out column
  EXPECT_EQ(png.pixels[std::size_t(4 + 10) * std::size_t(png.width) + 62 + 10], 128);
  EXPECT_EQ(png.pixels[std::size_t(4 + 11) * std::size_t(png.width) + 62 + 10], 215);
  EXPECT_NE(d.caption.find("(a) the test image: crossed out, no readable decode_figure"),
            std::string::npos)
      << d.caption;
  EXPECT_NE(d.caption.find(" Unreadable: /nonexistent/daenr/d-r3-cae-fr2-s0-decode_figure.npy: no "
                           "such file"),
            std::string::npos)
      << d.caption;
  EXPECT_EQ(d.caption.find('\n'), std::string::npos);
  // A file of another shape: the same, naming the shape expected.
  const Figure& sig = find("decoding-virtual-3-cae-fr-2-significant-neurons");
  EXPECT_NE(sig.caption.find(fmt::format(
                " Unreadable: {}: the decode_figure artifact's shape is not (4, K, 1, 32, 32).",
                (dir_->path() / "d-r3-cae-fr2-sig-s0-decode_figure.npy").string())),
            std::string::npos)
      << sig.caption;
  // A job that stored nothing: its cells crossed out, the caption says so.
  EXPECT_NE(find("decoding-virtual-1-cae-fr-1").caption.find("no decode_figure stored"),
            std::string::npos);
  const Figure& s = find("synthesis-region2-cae-fr-1-stretch");
  EXPECT_NE(s.caption.find("crossed out: no readable mei_images"), std::string::npos) << s.caption;
  EXPECT_NE(s.caption.find("Unreadable: /nonexistent/daenr/m-rec-fr1-s0-mei_images.npy"),
            std::string::npos)
      << s.caption;
  EXPECT_EQ(decode_png(s.bytes).width, 62 + 3 * 100);  // its three neurons, crossed out
}

TEST_F(ReportDecodeMei, EveryOutputAndTheTerminalShowTheNewTables) {
  TempDir out;
  ReportOptions options;
  options.out_dir = out.path() / "r";
  const auto result = write_report(*db_, options);
  const std::string md = read_bytes(result.out_dir / "tables.md");
  for (const char* heading : {"\n## Table 9: ", "\n## Table 10: ", "\n## Table 11: ",
                              "\n### Region 3 (virtual): 50 test images"}) {
    EXPECT_NE(md.find(heading), std::string::npos) << heading;
  }
  EXPECT_NE(
      md.find(
          "- [Decoding: CAE-FR_1, Region 3 (virtual)](figures/decoding-virtual-3-cae-fr-1.png)"),
      std::string::npos);
  EXPECT_NE(md.find("Besides these training jobs, 11 decode jobs (9 done, 1 failed, 1 not "
                    "finished) and 4 MEI jobs (4 done, 0 failed, 0 not finished)"),
            std::string::npos);
  const std::string tex = read_bytes(result.out_dir / "tables.tex");
  EXPECT_NE(tex.find("\\label{tab:daenr-table9-2}"), std::string::npos);
  EXPECT_NE(tex.find("\\label{tab:daenr-table11-1}"), std::string::npos);
  EXPECT_TRUE(fs::exists(result.out_dir / "table10.csv"));
  const std::string html = read_bytes(result.html);
  for (const char* id : {"table9", "table10", "table11", "decoding-virtual-3-cae-fr-1",
                         "synthesis-virtual-3-cae-fr-1-stretch"}) {
    EXPECT_NE(html.find(fmt::format("id=\"{}\"", id)), std::string::npos) << id;
  }
  std::size_t images = 0;
  for (auto at = html.find("<img src=\"data:"); at != std::string::npos;
       at = html.find("<img src=\"data:", at + 1)) {
    ++images;
  }
  EXPECT_EQ(images, 9u + 8u);  // the fixture's 6 figures and 3 curves; 5 decoding, 3 synthesis
  // The terminal: the new tables, and the Jobs table of the training jobs only.
  EXPECT_NE(result.terminal.find("\n## Table 9: "), std::string::npos);
  EXPECT_NE(result.terminal.find("\n## Table 11: "), std::string::npos);
  const auto jobs_at = result.terminal.find("\n## Jobs: ");
  ASSERT_NE(jobs_at, std::string::npos);
  const std::string jobs_section =
      result.terminal.substr(jobs_at, result.terminal.find("\n## Table 2: ") - jobs_at);
  EXPECT_EQ(jobs_section.find("| d-r"), std::string::npos) << jobs_section;
  EXPECT_EQ(jobs_section.find("| m-r"), std::string::npos) << jobs_section;
  TempDir plain_dir;
  const auto plain = load_report_data(make_fixture(plain_dir.path()));
  const std::string terminal = render_terminal(plain, build_tables(plain));
  EXPECT_EQ(terminal.find("Table 9"), std::string::npos);
  EXPECT_EQ(terminal.find("Besides"), std::string::npos);
}

TEST(ReportDecodeMeiLabels, AKindTheReportDoesNotKnowIsLeftOut) {
  TempDir dir;
  const auto db = dir.path() / "kinds.sqlite";
  {
    storage::Store store(db);
    const auto sweep = store.insert_sweep("kinds", "spec", 0);
    Planned j = job("x", "virtual:3", "cae", "fr", 2, 1, 1, 0);
    auto labels = nlohmann::json::parse(labels_json(j));
    std::vector<storage::NewJob> jobs;
    labels["kind"] = "train";  // written out: a training job as before
    jobs.push_back({"explicit-train", "{}", labels.dump(), ""});
    labels["kind"] = "render";
    jobs.push_back({"unknown-kind", "{}", labels.dump(), ""});
    labels["kind"] = "decode";  // no parent
    jobs.push_back({"orphan-decode", "{}", labels.dump(), ""});
    labels["kind"] = "mei";
    labels["parent"] = "x";
    labels["objective"] = "maximise";
    jobs.push_back({"bad-objective", "{}", labels.dump(), ""});
    store.insert_jobs(sweep, jobs, 0);
  }
  const auto data = load_report_data(db);
  ASSERT_EQ(data.jobs.size(), 1u);
  EXPECT_EQ(data.jobs[0].id, "explicit-train");
  EXPECT_TRUE(data.decode_jobs.empty());
  EXPECT_TRUE(data.mei_jobs.empty());
  EXPECT_EQ(data.unlabelled, 3);
}

}  // namespace
}  // namespace daenr::reports
