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

/// A number as the tables write it: fixed decimals, never "-0.000".
std::string format_number(double value, int decimals);

}  // namespace daenr::reports
