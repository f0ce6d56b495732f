#include "reports/report.h"

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <unistd.h>

#include "reports/render.h"

namespace daenr::reports {

namespace fs = std::filesystem;

namespace {

// Written beside the target and renamed into place: a reader never sees half
// a file, and a failed run leaves the previous report whole.
void write_file(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + fmt::format(".tmp{}", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw ReportError(fmt::format("{}: cannot write ({})", path.string(), std::strerror(errno)));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw ReportError(fmt::format("{}: cannot write ({})", path.string(), std::strerror(errno)));
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw ReportError(fmt::format("{}: cannot write ({})", path.string(), ec.message()));
  }
}

void make_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw ReportError(fmt::format("{}: cannot create the output folder ({})", dir.string(),
                                  ec ? ec.message() : "a file is in the way"));
  }
}

std::string extension(const Figure& f) {
  return f.mime == "image/png" ? "png" : "svg";
}

struct Counts {
  int64_t total = 0, done = 0, failed = 0, unfinished = 0;
};

Counts count(const std::vector<JobRecord>& jobs) {
  Counts c;
  for (const auto& j : jobs) {
    ++c.total;
    if (j.state == "done")
      ++c.done;
    else if (j.state == "failed")
      ++c.failed;
    else
      ++c.unfinished;
  }
  return c;
}

Counts count(const ReportData& data) {
  return count(data.jobs);
}

// The decode and mei jobs, which the counts above leave out, and the tables that are theirs;
// empty without them, so that the paper's report reads as before.
std::string decode_mei_summary(const ReportData& data) {
  std::vector<std::string> parts;
  auto describe = [&](const std::vector<JobRecord>& jobs, const char* kind) {
    if (jobs.empty()) return;
    const Counts c = count(jobs);
    parts.push_back(fmt::format("{} {} job{} ({} done, {} failed, {} not finished)", c.total, kind,
                                c.total == 1 ? "" : "s", c.done, c.failed, c.unfinished));
  };
  describe(data.decode_jobs, "decode");
  describe(data.mei_jobs, "MEI");
  if (parts.empty()) return "";
  const bool decode = !data.decode_jobs.empty(), mei = !data.mei_jobs.empty();
  return fmt::format(
      " Besides these training jobs, {}, which work on trained models: {} the talk's, not in the "
      "paper.",
      parts.size() == 2 ? parts[0] + " and " + parts[1] : parts[0],
      decode && mei ? "Tables 9 and 10 (decoding) and 11 (synthesis) and their figures are"
      : decode      ? "Tables 9 and 10 (decoding) and their figures are"
                    : "Table 11 (synthesis) and its figures are");
}

constexpr const char* kStyle = R"css(
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { padding: 0.2em 0.6em; text-align: right; white-space: nowrap; }
thead th { border-bottom: 1px solid #444; text-align: center; }
tbody th, td.text { text-align: left; font-weight: normal; }
table { border-top: 2px solid #222; border-bottom: 2px solid #222; }
td small { color: #777; }
.na { color: #999; }
.scroll { overflow-x: auto; }
.notes { font-size: 0.8em; color: #444; }
figure { margin: 1em 0; }
figcaption { font-size: 0.85em; color: #444; max-width: 900px; }
.curves { display: flex; flex-wrap: wrap; gap: 0.5em; }
.curves figure { margin: 0; width: 420px; }
#broken { background: #fdd; border: 1px solid #c00; padding: 0.5em; }
)css";

// Runs once the page has loaded: every <img> must have decoded to a picture.
constexpr const char* kCheckScript = R"js(
window.addEventListener('load', function () {
  var images = document.images, broken = 0;
  for (var i = 0; i < images.length; i++) {
    if (!(images[i].complete && images[i].naturalWidth > 0)) broken++;
  }
  document.documentElement.setAttribute('data-images', String(images.length));
  document.documentElement.setAttribute('data-broken-images', String(broken));
  if (broken > 0) {
    var note = document.getElementById('broken');
    note.textContent = broken + ' of ' + images.length + ' images did not render.';
    note.hidden = false;
  }
});
)js";

std::string figure_html(const Figure& f) {
  return fmt::format(
      "<figure id=\"{}\"><img src=\"data:{};base64,{}\" alt=\"{}\"><figcaption><b>{}.</b> "
      "{}</figcaption></figure>\n",
      f.name, f.mime, base64(f.bytes), html_text(plain_text(f.title)), html_text(f.title),
      html_text(f.caption));
}

}  // namespace

std::string base64(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 |
                       uint8_t(bytes[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string markdown_preamble(const ReportData& data) {
  const Counts c = count(data);
  std::string out = fmt::format("# DAE-NR report: {}\n\n", data.source);
  out += fmt::format("{} job{}: {} done, {} failed, {} not finished", c.total,
                     c.total == 1 ? "" : "s", c.done, c.failed, c.unfinished);
  if (!data.sweep.empty()) out += fmt::format(" (sweep {})", data.sweep);
  out += ".";
  if (data.unlabelled > 0) {
    out += fmt::format(" {} job{} without the sweep runner's labels left out.", data.unlabelled,
                       data.unlabelled == 1 ? "" : "s");
  }
  out +=
      " Tables 2-6 are the paper's, regenerated from this database; Tables 7 and 8 are not in the "
      "paper. "
      "docs/reports.md says how each is made.";
  out += decode_mei_summary(data) + "\n";
  return out;
}

std::string render_terminal(const ReportData& data, const std::vector<Table>& tables) {
  const CompactTables compact = compact_tables(tables);
  std::vector<Table> shown;
  if (!data.jobs.empty()) shown.push_back(jobs_table(data, kTerminalJobs));
  shown.insert(shown.end(), compact.tables.begin(), compact.tables.end());
  std::string out = render_markdown(shown, markdown_preamble(data));
  if (!compact.left_out.empty()) {
    std::string names;
    for (std::size_t i = 0; i < compact.left_out.size(); ++i) {
      // "Table 3", "Table 6" -> "Tables 3, 6"
      const std::string& name = compact.left_out[i];
      const std::string number = name.rfind("Table ", 0) == 0 ? name.substr(6) : name;
      names += (i == 0 ? "" : ", ") + number;
    }
    out += compact.left_out.size() == 1
               ? fmt::format("\nTable {} not shown: no jobs for it.\n", names)
               : fmt::format("\nTables {} not shown: no jobs for them.\n", names);
  }
  if (compact.trimmed || !compact.left_out.empty()) {
    out += fmt::format(
        "{}Rows and columns without a job are left out here; the report's files "
        "keep the paper's full layouts.\n",
        compact.left_out.empty() ? "\n" : "");
  }
  return out;
}

std::string render_html(const ReportData& data, const std::vector<Table>& tables,
                        const std::vector<Figure>& figures, const std::vector<Figure>& curves) {
  const Counts c = count(data);
  std::string out = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>DAE-NR report: {0}</title>\n<style>{1}</style>\n</head>\n<body>\n"
      "<p id=\"broken\" hidden></p>\n<h1>DAE-NR report: {0}</h1>\n",
      html_text(data.source), kStyle);
  out += fmt::format(
      "<p>{} jobs: {} done, {} failed, {} not finished{}.{} Tables 2-6 are the paper's, "
      "regenerated from this database; Tables 7 and 8 are not in the paper "
      "(docs/reports.md).{}</p>\n",
      c.total, c.done, c.failed, c.unfinished,
      data.sweep.empty() ? "" : " (sweep " + html_text(data.sweep) + ")",
      data.unlabelled > 0 ? fmt::format(" {} jobs without labels left out.", data.unlabelled) : "",
      html_text(decode_mei_summary(data)));
  out += "<nav><p>";
  for (const auto& t : tables) out += fmt::format("<a href=\"#{}\">{}</a> · ", t.id, t.name);
  out += "<a href=\"#figures\">Figures</a> · <a href=\"#curves\">Training curves</a></p></nav>\n";
  for (const auto& t : tables) out += render_html_table(t);
  out += "<section id=\"figures\">\n<h2>Figures</h2>\n";
  if (figures.empty()) out += "<p class=\"na\">No region in the database.</p>\n";
  for (const auto& f : figures) out += figure_html(f);
  out += "</section>\n<section id=\"curves\">\n<h2>Training curves</h2>\n";
  if (curves.empty()) out += "<p class=\"na\">No job has a stored training curve.</p>\n";
  std::string group;
  bool open = false;
  for (const auto& f : curves) {
    if (!open || f.group != group) {
      if (open) out += "</div>\n";
      group = f.group;
      out += fmt::format("<h3>{}</h3>\n<div class=\"curves\">\n", html_text(group));
      open = true;
    }
    out += figure_html(f);
  }
  if (open) out += "</div>\n";
  out += fmt::format("</section>\n<script>{}</script>\n</body>\n</html>\n", kCheckScript);
  return out;
}

ReportOutput write_report(const fs::path& db, const ReportOptions& options) {
  const ReportData data = load_report_data(db, options.sweep);
  const auto tables = build_tables(data);
  const auto figures = build_figures(data);
  const auto curves = build_curves(data);

  ReportOutput result;
  result.out_dir = options.out_dir.empty() ? fs::path(db.string() + ".report") : options.out_dir;
  result.html = options.html.empty() ? result.out_dir / "report.html" : options.html;
  make_dir(result.out_dir);
  make_dir(result.out_dir / "figures");
  make_dir(result.out_dir / "curves");
  if (result.html.has_parent_path()) make_dir(result.html.parent_path());

  std::string figure_links = "\n## Figures\n\n";
  for (const auto& f : figures) {
    // Captions (which may name files on this machine) are in the HTML report.
    figure_links +=
        fmt::format("- [{}](figures/{}.{})\n", plain_text(f.title), f.name, extension(f));
  }
  figure_links += fmt::format("- Training curves: {} job{} in curves/ (one SVG per job).\n",
                              curves.size(), curves.size() == 1 ? "" : "s");
  result.markdown = render_markdown(tables, markdown_preamble(data));
  result.terminal = render_terminal(data, tables);

  auto write = [&](const fs::path& path, const std::string& bytes) {
    write_file(path, bytes);
    result.files.push_back(path);
  };
  if (options.markdown) write(result.out_dir / "tables.md", result.markdown + figure_links);
  if (options.latex) write(result.out_dir / "tables.tex", render_latex(tables, data.source));
  if (options.csv) {
    for (const auto& t : tables) write(result.out_dir / (t.id + ".csv"), render_csv(t));
  }
  for (const auto& f : figures)
    write(result.out_dir / "figures" / (f.name + "." + extension(f)), f.bytes);
  for (const auto& f : curves) write(result.out_dir / "curves" / (f.name + ".svg"), f.bytes);
  write(result.html, render_html(data, tables, figures, curves));
  return result;
}

}  // namespace daenr::reports
