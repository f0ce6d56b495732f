#pragma once
// The paper's Tables 2-6, rebuilt from whatever a database holds, and Tables 7
// and 8 (not in the paper): each DAE-NR variant against its baseline, paired
// over seeds, and the simulated regions' ground truth. Where the database holds
// decode or mei jobs, the talk's Tables 9-11 follow (decoding, its paired test,
// synthesis). A table is format-free here; render.h writes it as Markdown,
// LaTeX, CSV or HTML. docs/reports.md describes each table and its rules.
//
// Text in labels, headers and notes uses one piece of markup that every
// renderer understands: "_{...}" is a subscript (CAE-FR_{2}); and the symbols
// ↓ ↑ ± α β Δ ✓ × − ≤ are written as each format writes them.

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "reports/data.h"
#include "reports/index.h"
#include "reports/stats.h"

namespace daenr::reports {

struct Cell {
  enum class Kind { kText, kStat };
  Kind kind = Kind::kText;
  std::string text;  ///< kText: the whole cell
  /// kStat: the mean and sd over the done jobs that have a value.
  Summary stat;
  int64_t jobs = 0;  ///< jobs behind the cell, in any state
  int64_t done = 0;  ///< of which done
  int decimals = 3;
  int64_t failed = 0;  ///< of which failed
  bool best = false;   ///< the best of its group (bold)
  /// A value shown again in another column (Table 5's baseline in every layer h_i): on its own
  /// it keeps no column in a compact table, or a CAE in Table 5 would keep all four layers.
  bool repeated = false;
  /// kStat: what the cell is, for the tidy CSV (region, autoencoder, readout,
  /// layer, alpha, beta, neurons, metric).
  std::vector<std::string> keys;

  static Cell text_cell(std::string text) {
    Cell c;
    c.text = std::move(text);
    return c;
  }
};

/// A header spanning `span` data columns (e.g. "Region 1" over MSE, PSNR, SSIM).
struct HeaderGroup {
  std::string label;
  int span = 1;
};

struct Row {
  std::string label;
  std::vector<Cell> cells;
};

/// One grid of a table; Tables 3 and 5 have one block per region.
struct Block {
  std::string subtitle;             ///< e.g. "Region 3 (virtual)"; empty for a one-block table
  std::string row_header;                 ///< header of the label column
  std::vector<HeaderGroup> groups;  ///< optional header row above `columns`
  std::vector<std::string> columns;
  std::vector<Row> rows;
};

struct Table {
  std::string id;       ///< "table2" ... "table7": file names and anchors
  std::string name;     ///< "Table 2"
  std::string caption;  ///< what it shows, one sentence
  std::vector<Block> blocks;
  std::vector<std::string> notes;  ///< footnotes: definitions, failed and unfinished jobs
  /// The same content in tidy form, one row per cell (or per comparison).
  std::vector<std::string> csv_header;
  std::vector<std::vector<std::string>> csv_rows;
};

/// Tables 2 to 8, in that order; then Tables 9 and 10 when the database holds decode jobs and
/// Table 11 when it holds mei jobs (build_decode_mei_tables).
std::vector<Table> build_tables(const ReportData& data);

/// The talk's tables (not in the paper), only those whose jobs the database holds: Table 9,
/// decoding the test images from the neurons (a block per region, a row per model); Table 10,
/// each DAE-NR variant's decoding against its plain autoencoder's, paired over seeds; Table 11,
/// synthesised images (a block per region, a row per model and objective).
std::vector<Table> build_decode_mei_tables(const ReportData& data);

/// Marks the best value among cells (lower or higher) as the table shows it: values equal to
/// the decimals shown are all marked, as a reader would. Cells without a value are skipped.
void mark_best(const std::vector<Cell*>& cells, bool lower_is_better);

/// Decode or mei jobs (ReportData::decode_jobs, mei_jobs) as Tables 9-11 and the talk's figures
/// take them: one group per region, parent model, loss pair, neuron set and (mei) objective,
/// the groups in report order, each group's jobs in seed order.
struct ModelJobs {
  std::string label;  ///< the row's label: "CAE-FR_{2}", "CAE-FR_{2} (α=1, β=0.5), one-hot"
  std::vector<const JobRecord*> jobs;
};
std::vector<ModelJobs> group_by_model(const std::vector<JobRecord>& jobs);

/// The footnotes on the jobs behind a table: the failed ones listed (the first ten, with their
/// errors), the unfinished ones counted, or that the table has none. `used` must hold jobs of
/// one vector of ReportData, whose order (by address) is the report's.
void add_job_notes(Table& table, const std::set<const JobRecord*>& used);

/// A paired test as Tables 7 and 10 write it: Δ ("0.012 ± 0.004"), t, p and the reading
/// ("better (p ≤ 0.05)", "no evidence (p > 0.05)", "n/a (one seed)", ...). `no_pair` is the
/// reading when n is 0.
struct PairedText {
  std::string diff, t, p, reading;
};
PairedText paired_text(const PairedTest& test, int decimals, bool lower_is_better,
                       const std::string& no_pair);

/// The tables as `daenr report` prints them on a terminal, where the paper's full grids of a
/// small sweep are mostly "n/a (no job)" (a 4-job sweep fills one row of Table 5's 12 x 12).
/// The files keep the full layouts; see compact_tables.
struct CompactTables {
  std::vector<Table> tables;          ///< the tables that hold a job, trimmed
  std::vector<std::string> left_out;  ///< the names ("Table 3") of those that hold none
  bool trimmed = false;               ///< a row, column or block was left out of a table shown
};

/// Keeps, of each table, the blocks and rows with at least one job behind a cell, and the
/// columns (with their header groups) where one of those rows has a job that is not a repeated
/// value (Cell::repeated); a row whose only jobs are repeated keeps its first such column group.
/// A table of text cells only (Table 7) is kept whole when it has a row. Notes are kept.
CompactTables compact_tables(const std::vector<Table>& tables);

/// "Jobs": one row per job (up to `limit`, in report order) with its region, seed, state and
/// test metrics (MSE, PSNR, SSIM, PCC, significant neurons), for the terminal: what a sweep of
/// a few jobs is about, before the tables summarise them over seeds.
Table jobs_table(const ReportData& data, std::size_t limit);

/// A number as the CSV files write it: full precision (the shortest text that reads back exactly).
std::string csv_number(double v);

/// A number as the tables write it: fixed decimals, never "-0.000".
std::string format_number(double value, int decimals);

}  // namespace daenr::reports
