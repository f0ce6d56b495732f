#include "reports/render.h"

#include <algorithm>
#include <fmt/format.h>
#include <utility>

namespace daenr::reports {

namespace {

// Splits marked text into runs: plain text and subscripts ("_{...}").
template <typename Plain, typename Sub>
std::string convert(const std::string& marked, Plain plain, Sub sub) {
  std::string out;
  std::size_t i = 0;
  while (i < marked.size()) {
    const auto open = marked.find("_{", i);
    const auto close = open == std::string::npos ? std::string::npos : marked.find('}', open + 2);
    if (close == std::string::npos) {
      out += plain(marked.substr(i));
      break;
    }
    out += plain(marked.substr(i, open - i));
    out += sub(marked.substr(open + 2, close - open - 2));
    i = close + 1;
  }
  return out;
}

std::string replace_all(std::string s,
                        const std::vector<std::pair<std::string, std::string>>& map) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    bool hit = false;
    for (const auto& [from, to] : map) {
      if (s.compare(i, from.size(), from) == 0) {
        out += to;
        i += from.size();
        hit = true;
        break;
      }
    }
    if (!hit) out += s[i++];
  }
  return out;
}

std::string latex_plain(const std::string& s) {
  static const std::vector<std::pair<std::string, std::string>> map = {{"\\", "\\textbackslash{}"},
                                                                       {"&", "\\&"},
                                                                       {"%", "\\%"},
                                                                       {"$", "\\$"},
                                                                       {"#", "\\#"},
                                                                       {"_", "\\_"},
                                                                       {"{", "\\{"},
                                                                       {"}", "\\}"},
                                                                       {"~", "\\textasciitilde{}"},
                                                                       {"^", "\\textasciicircum{}"},
                                                                       {"↓", "$\\downarrow$"},
                                                                       {"↑", "$\\uparrow$"},
                                                                       {"±", "$\\pm$"},
                                                                       {"α", "$\\alpha$"},
                                                                       {"β", "$\\beta$"},
                                                                       {"Δ", "$\\Delta$"},
                                                                       {"✓", "\\checkmark{}"},
                                                                       {"×", "$\\times$"},
                                                                       {"−", "$-$"},
                                                                       {"≤", "$\\leq$"},
                                                                       {"σ", "$\\sigma$"},
                                                                       {"√", "$\\surd$"}};
  return replace_all(s, map);
}

std::string html_plain(const std::string& s) {
  static const std::vector<std::pair<std::string, std::string>> map = {
      {"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}};
  return replace_all(s, map);
}

std::string markdown_escape(const std::string& s) {
  static const std::vector<std::pair<std::string, std::string>> map = {
      {"\\", "\\\\"}, {"|", "\\|"}, {"*", "\\*"}, {"`", "\\`"}, {"<", "&lt;"}};
  return replace_all(s, map);
}

// The parts of a stat cell, for every format: the mean (bold when best) and the rest.
struct CellParts {
  std::string mean;    // empty when the cell has no value
  std::string spread;  // " ± 0.002" or empty
  std::string count;   // "(n=3)" or "n/a (no job)"
};

CellParts parts(const Cell& c) {
  CellParts p;
  if (c.stat.n == 0) {
    if (c.jobs == 0)
      p.count = "n/a (no job)";
    else if (c.done == 0)
      p.count = fmt::format("n/a (0 of {} done)", c.jobs);
    else
      p.count = "n/a (no value)";
    return p;
  }
  p.mean = format_number(c.stat.mean, c.decimals);
  if (c.stat.n > 1) p.spread = " ± " + format_number(c.stat.sd, c.decimals);
  p.count = c.stat.n == c.jobs ? fmt::format(" (n={})", c.stat.n)
                               : fmt::format(" (n={} of {})", c.stat.n, c.jobs);
  return p;
}

// Display width of UTF-8 text: its code points (every symbol used is one column wide).
std::size_t width(const std::string& s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char ch) { return (ch & 0xC0) != 0x80; }));
}

std::string pad(const std::string& s, std::size_t w) {
  return s + std::string(w - std::min(w, width(s)), ' ');
}

std::string markdown_block(const Block& block) {
  std::vector<std::vector<std::string>> grid;
  std::vector<std::string> header = {markdown_escape(plain_text(block.row_header))};
  // Markdown has one header row: a group's label goes before each of its columns.
  std::vector<std::string> group_of(block.columns.size());
  std::size_t c = 0;
  for (const auto& g : block.groups) {
    for (int k = 0; k < g.span && c < group_of.size(); ++k) group_of[c++] = g.label;
  }
  for (std::size_t i = 0; i < block.columns.size(); ++i) {
    const std::string label =
        group_of[i].empty() ? block.columns[i] : group_of[i] + " " + block.columns[i];
    header.push_back(markdown_escape(plain_text(label)));
  }
  grid.push_back(header);
  for (const auto& row : block.rows) {
    std::vector<std::string> line = {markdown_escape(plain_text(row.label))};
    for (const auto& cell : row.cells) line.push_back(markdown_cell(cell));
    grid.push_back(line);
  }
  std::vector<std::size_t> widths(header.size(), 3);
  for (const auto& line : grid) {
    for (std::size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], width(line[i]));
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& line) {
    out += "|";
    for (std::size_t i = 0; i < line.size(); ++i) out += " " + pad(line[i], widths[i]) + " |";
    out += "\n";
  };
  emit(grid[0]);
  out += "|";
  for (std::size_t w : widths) out += std::string(w + 2, '-') + "|";
  out += "\n";
  for (std::size_t r = 1; r < grid.size(); ++r) emit(grid[r]);
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

}  // namespace

std::string plain_text(const std::string& marked) {
  return convert(
      marked, [](const std::string& s) { return s; }, [](const std::string& s) { return "_" + s; });
}

std::string latex_text(const std::string& marked) {
  // Straight double quotes become TeX's opening and closing quotes, in turn.
  std::string quoted;
  bool open = true;
  for (char c : marked) {
    if (c == '"') {
      quoted += open ? "``" : "''";
      open = !open;
    } else {
      quoted += c;
    }
  }
  return convert(quoted, latex_plain,
                 [](const std::string& s) { return "$_{" + latex_plain(s) + "}$"; });
}

std::string html_text(const std::string& marked) {
  return convert(marked, html_plain,
                 [](const std::string& s) { return "<sub>" + html_plain(s) + "</sub>"; });
}

std::string svg_text(const std::string& marked) {
  return convert(marked, html_plain, [](const std::string& s) {
    return "<tspan baseline-shift=\"sub\" font-size=\"75%\">" + html_plain(s) + "</tspan>";
  });
}

std::string markdown_cell(const Cell& cell) {
  if (cell.kind == Cell::Kind::kText) return markdown_escape(plain_text(cell.text));
  const auto p = parts(cell);
  if (p.mean.empty()) return p.count;
  return (cell.best ? "**" + p.mean + "**" : p.mean) + p.spread + p.count;
}

std::string latex_cell(const Cell& cell) {
  if (cell.kind == Cell::Kind::kText) return latex_text(cell.text);
  const auto p = parts(cell);
  if (p.mean.empty()) return latex_text(p.count);
  return (cell.best ? "\\textbf{" + p.mean + "}" : p.mean) + latex_text(p.spread + p.count);
}

std::string html_cell(const Cell& cell) {
  if (cell.kind == Cell::Kind::kText) return html_text(cell.text);
  const auto p = parts(cell);
  if (p.mean.empty()) return "<span class=\"na\">" + html_text(p.count) + "</span>";
  return (cell.best ? "<b>" + p.mean + "</b>" : p.mean) + html_text(p.spread) + "<small>" +
         html_text(p.count) + "</small>";
}

std::string render_markdown(const std::vector<Table>& tables, const std::string& preamble) {
  std::string out = preamble;
  for (const auto& t : tables) {
    out += fmt::format("\n## {}: {}\n", t.name, markdown_escape(plain_text(t.caption)));
    if (t.blocks.empty()) out += "\n(No region in the database.)\n";
    for (const auto& block : t.blocks) {
      if (!block.subtitle.empty())
        out += fmt::format("\n### {}\n", markdown_escape(plain_text(block.subtitle)));
      out += '\n';
      out += markdown_block(block);
    }
    if (!t.notes.empty()) out += "\n";
    for (const auto& note : t.notes) out += "- " + markdown_escape(plain_text(note)) + "\n";
  }
  return out;
}

std::string render_latex(const std::vector<Table>& tables, const std::string& source) {
  std::string out = fmt::format(
      "% DAE-NR tables from {}, written by `daenr report`.\n"
      "% Needs \\usepackage{{booktabs}}, \\usepackage{{amssymb}} and \\usepackage{{graphicx}}.\n",
      latex_plain(source));
  for (const auto& t : tables) {
    for (std::size_t b = 0; b < t.blocks.size(); ++b) {
      const Block& block = t.blocks[b];
      const std::size_t ncols = block.columns.size();
      out += "\n\\begin{table}[htbp]\n\\centering\n";
      std::string caption = t.caption;
      if (!block.subtitle.empty()) caption += ": " + block.subtitle;
      out += fmt::format("\\caption{{{}}}\n", latex_text(caption));
      out += fmt::format("\\label{{tab:daenr-{}{}}}\n", t.id,
                         t.blocks.size() > 1 ? fmt::format("-{}", b + 1) : "");
      // A table wider than the line (Tables 5 and 6 always are) is scaled down to it.
      out += "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%\n";
      out += fmt::format("\\begin{{tabular}}{{l{}}}\n\\toprule\n", std::string(ncols, 'c'));
      if (!block.groups.empty()) {
        std::string rules;
        std::size_t col = 2;
        for (const auto& g : block.groups) {
          out += fmt::format(" & \\multicolumn{{{}}}{{c}}{{{}}}", g.span, latex_text(g.label));
          rules += fmt::format(" \\cmidrule(lr){{{}-{}}}", col, col + g.span - 1);
          col += g.span;
        }
        out += " \\\\\n" + rules.substr(1) + "\n";
      }
      out += latex_text(block.row_header);
      for (const auto& c : block.columns) out += " & " + latex_text(c);
      out += " \\\\\n\\midrule\n";
      for (const auto& row : block.rows) {
        out += latex_text(row.label);
        for (const auto& cell : row.cells) out += " & " + latex_cell(cell);
        out += " \\\\\n";
      }
      out += "\\bottomrule\n\\end{tabular}";
      out += "}\n";
      if (b + 1 == t.blocks.size() && !t.notes.empty()) {
        out += "\n\\par\\smallskip\\footnotesize\n";
        for (const auto& note : t.notes) out += latex_text(note) + "\\par\n";
      }
      out += "\\end{table}\n";
    }
    if (t.blocks.empty()) {
      out += fmt::format("\n% {}: no region in the database.\n", t.name);
    }
  }
  return out;
}

std::string render_csv(const Table& table) {
  std::string out;
  auto line = [&](const std::vector<std::string>& fields) {
    for (std::size_t i = 0; i < fields.size(); ++i)
      out += (i ? "," : "") + csv_field(plain_text(fields[i]));
    out += "\n";
  };
  line(table.csv_header);
  for (const auto& row : table.csv_rows) line(row);
  return out;
}

std::string render_html_table(const Table& t) {
  std::string out =
      fmt::format("<section id=\"{}\">\n<h2>{}: {}</h2>\n", t.id, t.name, html_text(t.caption));
  if (t.blocks.empty()) out += "<p class=\"na\">No region in the database.</p>\n";
  for (const auto& block : t.blocks) {
    if (!block.subtitle.empty()) out += fmt::format("<h3>{}</h3>\n", html_text(block.subtitle));
    out += "<div class=\"scroll\"><table>\n<thead>\n";
    if (!block.groups.empty()) {
      out += "<tr><th></th>";
      for (const auto& g : block.groups)
        out += fmt::format("<th colspan=\"{}\">{}</th>", g.span, html_text(g.label));
      out += "</tr>\n";
    }
    out += "<tr><th>" + html_text(block.row_header) + "</th>";
    for (const auto& c : block.columns) out += "<th>" + html_text(c) + "</th>";
    out += "</tr>\n</thead>\n<tbody>\n";
    for (const auto& row : block.rows) {
      out += "<tr><th>" + html_text(row.label) + "</th>";
      for (const auto& cell : row.cells) {
        out += cell.kind == Cell::Kind::kText ? "<td class=\"text\">" : "<td>";
        out += html_cell(cell) + "</td>";
      }
      out += "</tr>\n";
    }
    out += "</tbody>\n</table></div>\n";
  }
  if (!t.notes.empty()) {
    out += "<ul class=\"notes\">\n";
    for (const auto& note : t.notes) out += "<li>" + html_text(note) + "</li>\n";
    out += "</ul>\n";
  }
  return out + "</section>\n";
}

}  // namespace daenr::reports
