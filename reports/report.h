#pragma once
// `daenr report`: the paper's tables (2-6, plus Table 7, the paired comparison
// the paper lacks, and Table 8, ground truth) and figures (2-6, training curves)
// regenerated from whatever a sweep database holds, complete or not; and, where
// it holds decode or mei jobs, the talk's decoding and synthesis tables (9-11)
// and figures. docs/reports.md describes
// every table and figure, the statistics and the outputs.
//
// Deterministic: the same database gives byte-identical files (no clock, no
// absolute paths; rows, columns and files in a fixed order).

#include <filesystem>
#include <string>
#include <vector>

#include "reports/data.h"
#include "reports/figures.h"
#include "reports/tables.h"

namespace daenr::reports {

struct ReportOptions {
  std::filesystem::path out_dir;  ///< default: <db>.report beside the database
  bool markdown = true;           ///< tables.md
  bool latex = true;              ///< tables.tex
  bool csv = true;                ///< table2.csv ... table7.csv
  std::filesystem::path html;     ///< default: <out_dir>/report.html
  std::string sweep;              ///< restrict to one sweep (name or id); empty: every job
};

struct ReportOutput {
  std::string markdown;  ///< the tables as Markdown, full layouts (tables.md without its figures)
  std::string terminal;  ///< what `daenr report` prints: render_terminal
  std::filesystem::path out_dir, html;
  std::vector<std::filesystem::path> files;  ///< everything written, the HTML last
};

/// Reads `db` and writes the report. Throws ReportError (one line) for a
/// database that cannot be read or an output that cannot be written.
ReportOutput write_report(const std::filesystem::path& db, const ReportOptions& options);

/// The Markdown heading and summary above the tables.
std::string markdown_preamble(const ReportData& data);

/// Jobs listed one by one on the terminal; a larger report lists the first ones and says so.
inline constexpr std::size_t kTerminalJobs = 50;

/// What `daenr report` prints, in Markdown: the preamble, each job's metrics (jobs_table), the
/// tables that hold a job with only their rows and columns that do (compact_tables), then one
/// line naming the tables left out ("Tables 3, 6 not shown: no jobs for them.") and one saying
/// that the files keep the full layouts, each where it applies.
std::string render_terminal(const ReportData& data, const std::vector<Table>& tables);

/// One self-contained HTML page: every table, figure and curve, images
/// inlined as data: URIs. A small script marks the page's root element with
/// data-images (the count) and data-broken-images (those that did not
/// render) once it has loaded, and shows a warning if any is broken.
std::string render_html(const ReportData& data, const std::vector<Table>& tables,
                        const std::vector<Figure>& figures, const std::vector<Figure>& curves);

/// Standard base64 with padding.
std::string base64(const std::string& bytes);

}  // namespace daenr::reports
