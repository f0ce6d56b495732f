#pragma once
// The paper's Tables 2-6, rebuilt from whatever a database holds, and Table 7
// (not in the paper): each DAE-NR variant against its baseline, paired over
// seeds. A table is format-free here; render.h writes it as Markdown, LaTeX,
// CSV or HTML. docs/reports.md describes each table and its rules.
//
// Text in labels, headers and notes uses one piece of markup that every
// renderer understands: "_{...}" is a subscript (CAE-FR_{2}); and the symbols
// ↓ ↑ ± α β Δ ✓ × − ≤ are written as each format writes them.

#include <cstdint>
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

/// Tables 2, 3, 4, 5, 6 and 7, in that order.
std::vector<Table> build_tables(const ReportData& data);

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

/// A number as the tables write it: fixed decimals, never "-0.000".
std::string format_number(double value, int decimals);

}  // namespace daenr::reports
