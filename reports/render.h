#pragma once
// Writes tables (tables.h) as Markdown, LaTeX (booktabs), CSV and HTML, each
// deterministic: the same tables give the same bytes.

#include <string>
#include <vector>

#include "reports/tables.h"

namespace daenr::reports {

/// Text in a format, from the tables' markup ("_{2}" a subscript; ↓ ↑ ± α β
/// Δ ✓ × − ≤ as the format writes them).
std::string plain_text(const std::string& marked);  ///< "CAE-FR_2": Markdown, CSV
std::string latex_text(const std::string& marked);  ///< "CAE-FR$_{2}$", specials escaped
std::string html_text(const std::string& marked);   ///< "CAE-FR<sub>2</sub>", escaped
/// SVG <text> content: the subscript a lowered, smaller <tspan>; escaped.
std::string svg_text(const std::string& marked);

/// A cell as the format writes it: "0.043 ± 0.002 (n=3)", the mean in bold
/// when best; "n/a (no job)" and the like for a cell without a value.
std::string markdown_cell(const Cell& cell);
std::string latex_cell(const Cell& cell);
std::string html_cell(const Cell& cell);

/// Every table, each as a heading, one Markdown table per block (columns
/// padded for a terminal) and its notes as a list. `preamble` (Markdown)
/// comes first.
std::string render_markdown(const std::vector<Table>& tables, const std::string& preamble);

/// Every table as a `table` float with booktabs rules (needs \usepackage{booktabs, amssymb,
/// graphicx}), for \input into a paper.
std::string render_latex(const std::vector<Table>& tables, const std::string& source);

/// One table in tidy form (Table::csv_header, csv_rows), RFC 4180 quoting.
std::string render_csv(const Table& table);

/// One table as an HTML fragment (<section> with a heading, tables, notes).
std::string render_html_table(const Table& table);

}  // namespace daenr::reports
