#include "reports/figures.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <png.h>
#include <set>
#include <sstream>

#include "job/model_config.h"
#include "job/error.h"
#include "job/npy.h"
#include "reports/index.h"
#include "reports/render.h"
#include "reports/stats.h"
#include "reports/tables.h"

namespace daenr::reports {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- .npy, PNG

NpyArray read_npy_floats(const fs::path& path) {
  try {
    job::NpyArray a = job::read_npy(path);
    std::vector<float> values = a.to_floats();  // before the shape is moved out: it counts them
    return {std::move(a.shape), std::move(values)};
  } catch (const job::DataError& e) {
    throw ReportError(e.what());
  }
}

namespace {

void png_append(png_structp png, png_bytep data, png_size_t length) {
  auto* out = static_cast<std::string*>(png_get_io_ptr(png));
  out->append(reinterpret_cast<const char*>(data), length);
}

void png_flush(png_structp) {}

void png_warn(png_structp, png_const_charp) {}

// libpng reports errors by longjmp; nothing with a destructor lives between
// the setjmp and the calls, so the jump skips no C++ cleanup.
bool write_png(png_structp png, png_infop info, int width, int height, const uint8_t* pixels) {
  if (setjmp(png_jmpbuf(png))) return false;
  // No time or text chunks: the same pixels always give the same bytes.
  png_set_IHDR(png, info, png_uint_32(width), png_uint_32(height), 8, PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, 9);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y) {
    png_write_row(png, const_cast<png_bytep>(pixels + std::size_t(y) * std::size_t(width)));
  }
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

std::string encode_png_gray(int width, int height, const std::vector<uint8_t>& pixels) {
  if (width <= 0 || height <= 0 || pixels.size() != std::size_t(width) * std::size_t(height)) {
    throw ReportError(
        fmt::format("PNG encoder: {} pixels for {}x{}", pixels.size(), width, height));
  }
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, png_warn);
  if (!png) throw ReportError("PNG encoder: out of memory");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    throw ReportError("PNG encoder: out of memory");
  }
  png_set_write_fn(png, &out, png_append, png_flush);
  const bool ok = write_png(png, info, width, height, pixels.data());
  png_destroy_write_struct(&png, &info);
  if (!ok) throw ReportError("PNG encoder: libpng failed");
  return out;
}

namespace {

std::string fixed(double v) {
  std::string s = fmt::format("{:.1f}", v);
  return s == "-0.0" ? "0.0" : s;
}

// ---------------------------------------------------------------- Figure 2

constexpr int kSide = 32, kScale = 3, kGap = 4;

// Row letters "(a)" ... "(z)" beside Figure 2's rows, as in the paper: a 5x7
// bitmap font of the few glyphs needed, so that the PNG needs no font library.
const std::map<char, std::array<const char*, 7>>& glyphs() {
  static const std::map<char, std::array<const char*, 7>> g = {
      {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
      {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
      {'a', {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"}},
      {'b', {"#....", "#....", "####.", "#...#", "#...#", "#...#", "####."}},
      {'c', {".....", ".....", ".###.", "#....", "#....", "#....", ".###."}},
      {'d', {"....#", "....#", ".####", "#...#", "#...#", "#...#", ".####"}},
      {'e', {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}},
      {'f', {"..##.", ".#...", "####.", ".#...", ".#...", ".#...", ".#..."}},
      {'g', {".....", ".####", "#...#", "#...#", ".####", "....#", ".###."}},
      {'h', {"#....", "#....", "####.", "#...#", "#...#", "#...#", "#...#"}},
      {'i', {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."}},
      {'j', {"...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."}},
      {'k', {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."}},
      {'l', {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
      {'m', {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#"}},
      {'n', {".....", ".....", "####.", "#...#", "#...#", "#...#", "#...#"}},
      {'o', {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."}},
      {'p', {".....", "####.", "#...#", "#...#", "####.", "#....", "#...."}},
      {'q', {".....", ".####", "#...#", "#...#", ".####", "....#", "....#"}},
      {'r', {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."}},
      {'s', {".....", ".....", ".####", "#....", ".###.", "....#", "####."}},
      {'t', {".#...", ".#...", "####.", ".#...", ".#...", ".#..#", "..##."}},
      {'u', {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"}},
      {'v', {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
      {'w', {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."}},
      {'x', {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"}},
      {'y', {".....", "#...#", "#...#", "#...#", ".####", "....#", ".###."}},
      {'z', {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"}},
  };
  return g;
}

constexpr int kGlyphScale = 3;
constexpr int kLabelWidth = 3 * 6 * kGlyphScale + 2 * kGap;  // "(a)" and a margin each side

Figure figure2(const JobIndex& index, const std::string& region) {
  struct Line {
    std::string label;
    const JobRecord* job = nullptr;
    std::optional<NpyArray> images;
    std::string missing;  // why there is no row of images
  };
  std::vector<Line> lines;
  std::vector<std::string> problems;
  auto add = [&](const std::string& ro, int layer) {
    const auto pairs = index.pairs("cae", ro, true);
    for (const auto& pair : index.pairs_at("cae", ro, true, layer)) {
      Line line;
      line.label = model_label("cae", ro, layer, pairs, pair);
      const auto jobs = index.jobs(region, "cae", ro, layer, pair);
      // The lowest seed whose reconstructions can be read (jobs are in seed order).
      for (const auto* j : jobs) {
        if (j->state != "done" || j->reconstructions.empty()) continue;
        try {
          auto a = read_npy_floats(j->reconstructions);
          if (a.shape.size() != 5 || a.shape[0] != 2 || a.shape[2] != 1 || a.shape[3] != kSide ||
              a.shape[4] != kSide || a.shape[1] < 1) {
            throw ReportError(
                fmt::format("{}: shape is not (2, k, 1, 32, 32)", j->reconstructions.string()));
          }
          line.job = j;
          line.images = std::move(a);
          break;
        } catch (const ReportError& e) {
          problems.push_back(e.what());
        }
      }
      if (!line.job) {
        auto done = [](const JobRecord* j) { return j->state == "done"; };
        auto stored = [](const JobRecord* j) {
          return j->state == "done" && !j->reconstructions.empty();
        };
        line.missing = jobs.empty()                                   ? "no job"
                       : !std::any_of(jobs.begin(), jobs.end(), done) ? "no finished job"
                       : !std::any_of(jobs.begin(), jobs.end(), stored)
                           ? "no reconstructions stored"
                           : "no readable reconstructions";
      }
      lines.push_back(std::move(line));
    }
  };
  add("none", 0);
  for (int layer = 1; layer <= 4; ++layer) add("fr", layer);

  const Line* source = nullptr;
  int64_t k = 10;
  for (const auto& l : lines) {
    if (l.images) {
      if (!source) source = &l;
      k = std::min<int64_t>(k, l.images->shape[1]);
    }
  }
  const int cell = kSide * kScale;
  const int rows = 1 + int(lines.size());
  const int width = kLabelWidth + int(k) * (cell + kGap);
  const int height = kGap + rows * (cell + kGap);
  std::vector<uint8_t> pixels(std::size_t(width) * std::size_t(height), 255);

  auto draw_letter = [&](int row) {
    if (row >= 26) return;
    const std::string text = fmt::format("({})", char('a' + row));
    const int y0 = kGap + row * (cell + kGap) + (cell - 7 * kGlyphScale) / 2;
    for (std::size_t i = 0; i < text.size(); ++i) {
      const auto& glyph = glyphs().at(text[i]);
      const int x0 = kGap + int(i) * 6 * kGlyphScale;
      for (int gy = 0; gy < 7 * kGlyphScale; ++gy) {
        for (int gx = 0; gx < 5 * kGlyphScale; ++gx) {
          if (glyph[std::size_t(gy / kGlyphScale)][gx / kGlyphScale] != '#') continue;
          pixels[std::size_t(y0 + gy) * std::size_t(width) + std::size_t(x0 + gx)] = 0;
        }
      }
    }
  };
  for (int r = 0; r < rows; ++r) draw_letter(r);

  // Images on [-1, 1] to 0..255, each pixel a kScale x kScale block.
  auto draw = [&](int row, int col, const float* image) {
    const int x0 = kLabelWidth + col * (cell + kGap), y0 = kGap + row * (cell + kGap);
    for (int y = 0; y < cell; ++y) {
      for (int x = 0; x < cell; ++x) {
        uint8_t v;
        if (image) {
          const float f = image[(y / kScale) * kSide + x / kScale];
          const double g = std::isfinite(f) ? std::clamp((double(f) + 1) / 2, 0.0, 1.0) : 0.0;
          v = static_cast<uint8_t>(std::lround(g * 255));
        } else {
          v = (x == y || x == cell - 1 - y) ? 128 : 215;  // a grey square crossed out: missing
        }
        pixels[std::size_t(y0 + y) * std::size_t(width) + std::size_t(x0 + x)] = v;
      }
    }
  };
  const std::size_t plane = kSide * kSide;
  for (int64_t c = 0; c < k; ++c) {
    draw(0, int(c), source ? source->images->values.data() + std::size_t(c) * plane : nullptr);
    for (std::size_t r = 0; r < lines.size(); ++r) {
      const auto& l = lines[r];
      // Index 1 of the artifact holds the reconstructions, after the shape[1] test images.
      draw(int(r) + 1, int(c),
           l.images ? l.images->values.data() +
                          (std::size_t(l.images->shape[1]) + std::size_t(c)) * plane
                    : nullptr);
    }
  }

  Figure f;
  f.name = "figure2-" + region_slug(region);
  f.title = fmt::format("Figure 2: {}", region_title(region));
  std::string rows_text =
      fmt::format("(a) the first {} test images{}", k,
                  source ? fmt::format(" (stored by job {})", source->job->id) : ", none stored");
  char letter = 'b';
  for (const auto& l : lines) {
    rows_text += fmt::format("; ({}) {}", letter++, l.label);
    rows_text += l.job ? fmt::format(" (seed {}, job {})", l.job->labels.seed, l.job->id)
                       : fmt::format(": crossed out, {}", l.missing);
  }
  f.caption =
      fmt::format("Test images and their reconstructions, from top to bottom: {}.", rows_text);
  if (!problems.empty())
    f.caption += " Unreadable: " + problems.front() +
                 (problems.size() > 1 ? fmt::format(" (and {} more).", problems.size() - 1) : ".");
  f.mime = "image/png";
  f.bytes = encode_png_gray(width, height, pixels);
  return f;
}

// ---------------------------------------------------------------- Figures 3, 4

struct Palette {
  const char* dark;
  const char* light;
};

Palette palette(const std::string& ae) {
  if (ae == "none") return {"#1f4e9c", "#a9c4ec"};
  if (ae == "cae") return {"#b2182b", "#f4b0b0"};
  if (ae == "vae") return {"#1b7837", "#acdca6"};
  return {"#6a3d9a", "#d4c2e6"};
}

struct Bar {
  std::string label;
  std::string ae;
  bool gap_before = false;
  int64_t jobs = 0, done = 0, n = 0;          // n: done jobs with per-neuron counts
  double significant = 0, insignificant = 0;  // means over those n
};

Bar make_bar(const std::string& label, const std::string& ae,
             const std::vector<const JobRecord*>& jobs) {
  Bar b;
  b.label = label;
  b.ae = ae;
  double sig = 0, insig = 0;
  for (const auto* j : jobs) {
    ++b.jobs;
    if (j->state != "done") continue;
    ++b.done;
    if (!j->significant || !j->neurons) continue;
    ++b.n;
    sig += double(*j->significant);
    insig += double(*j->neurons - *j->significant);
  }
  if (b.n > 0) {
    b.significant = sig / double(b.n);
    b.insignificant = insig / double(b.n);
  }
  return b;
}

std::string count_text(double v) {
  return v == std::floor(v) ? fmt::format("{:.0f}", v) : fmt::format("{:.1f}", v);
}

// Horizontal stacked bars: significant (dark) then insignificant (light).
std::string bar_chart_svg(const std::string& title, const std::vector<Bar>& bars) {
  const double label_w = 210, bar_w = 360, text_w = 250, row_h = 22, top = 56, gap_h = 10;
  double max_total = 0;
  for (const auto& b : bars) max_total = std::max(max_total, b.significant + b.insignificant);
  if (max_total <= 0) max_total = 1;
  double height = top + 30;
  for (const auto& b : bars) height += row_h + (b.gap_before ? gap_h : 0);
  const double width = label_w + bar_w + text_w;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
      "{1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{0}\" height=\"{1}\" "
      "fill=\"white\"/>\n"
      "<text x=\"8\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{2}</text>\n",
      fixed(width), fixed(height), svg_text(title));
  // Legend: dark = significant, light = insignificant.
  s += fmt::format(
      "<rect x=\"8\" y=\"30\" width=\"12\" height=\"12\" fill=\"#555555\"/><text x=\"24\" "
      "y=\"40\">significant "
      "(p ≤ 0.05, r &gt; 0)</text>\n<rect x=\"200\" y=\"30\" width=\"12\" height=\"12\" "
      "fill=\"#cccccc\"/>"
      "<text x=\"216\" y=\"40\">insignificant; mean over seeds</text>\n");
  double y = top;
  for (const auto& b : bars) {
    if (b.gap_before) y += gap_h;
    const auto p = palette(b.ae);
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", fixed(label_w - 8),
                     fixed(y + row_h * 0.68), svg_text(b.label));
    std::string text;
    if (b.n > 0) {
      const double ws = bar_w * b.significant / max_total, wi = bar_w * b.insignificant / max_total;
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n",
                       fixed(label_w), fixed(y + 3), fixed(ws), fixed(row_h - 6), p.dark);
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n",
                       fixed(label_w + ws), fixed(y + 3), fixed(wi), fixed(row_h - 6), p.light);
      text = fmt::format("{} of {} significant (n={}{})", count_text(b.significant),
                         count_text(b.significant + b.insignificant), b.n,
                         b.n == b.jobs ? "" : fmt::format(" of {}", b.jobs));
    } else {
      text = b.jobs == 0   ? "no job"
             : b.done == 0 ? fmt::format("0 of {} done", b.jobs)
                           : "no per-neuron results";
    }
    s += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", fixed(label_w + bar_w + 8),
                     fixed(y + row_h * 0.68), svg_text(text));
    y += row_h;
  }
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#333333\"/>\n",
                   fixed(label_w), fixed(top), fixed(y));
  s += "</svg>\n";
  return s;
}

Figure svg_figure(const std::string& name, const std::string& title, const std::string& caption,
                  const std::vector<Bar>& bars) {
  Figure f;
  f.name = name;
  f.title = title;
  f.caption = caption;
  f.mime = "image/svg+xml";
  f.bytes = bar_chart_svg(title, bars);
  return f;
}

Figure figure3(const JobIndex& index, const std::string& region) {
  std::vector<Bar> bars;
  const auto cnn = index.pairs("none", "fr", true), cae = index.pairs("cae", "fr", true);
  for (int layer = 1; layer <= 4; ++layer) {
    bool first = layer > 1;
    for (const auto* family : {&cnn, &cae}) {
      const std::string ae = family == &cnn ? "none" : "cae";
      for (const auto& pair : index.pairs_at(ae, "fr", true, layer)) {
        bars.push_back(make_bar(model_label(ae, "fr", layer, *family, pair), ae,
                                index.jobs(region, ae, "fr", layer, pair)));
        bars.back().gap_before = first;
        first = false;
      }
    }
  }
  return svg_figure(
      "figure3-" + region_slug(region), fmt::format("Figure 3: {}", region_title(region)),
      "Significant (dark) and insignificant (light) neurons of CNN-FR_{i} (blue, no reconstruction "
      "loss) and CAE-FR_{i} (red), all neurons fitted; mean over finished seeds.",
      bars);
}

Figure figure4(const JobIndex& index, const std::string& region) {
  std::vector<Bar> bars;
  for (const auto& ro : job::readout_names()) {
    bool first = ro != "fr";
    for (const auto& ae : job::autoencoder_names(true)) {
      const auto pairs = index.pairs(ae, ro, true);
      for (int layer = 1; layer <= 4; ++layer) {
        for (const auto& pair : pairs) {
          const auto jobs = index.jobs(region, ae, ro, layer, pair);
          if (jobs.empty()) continue;  // only models that the region has jobs of
          bars.push_back(make_bar(model_label(ae, ro, layer, pairs, pair), ae, jobs));
          bars.back().gap_before = first;
          first = false;
        }
      }
    }
  }
  std::string caption =
      "Significant (dark) and insignificant (light) neurons of every model with a readout that "
      "the region has jobs of, all neurons fitted; CNN blue, CAE red, VAE green, VQ-VAE purple; "
      "mean over finished seeds.";
  if (bars.empty()) caption += " The region has no job of a model with a readout.";
  return svg_figure("figure4-" + region_slug(region),
                    fmt::format("Figure 4: {}", region_title(region)), caption, bars);
}


// ---------------------------------------------------------------- Figure 5: RF centres

// Figure `number` of one region as SVG: "figure5-virtual-3", "Figure 5: Region 3 (virtual)".
Figure region_svg(int number, const std::string& region, std::string caption, std::string svg) {
  Figure f;
  f.name = fmt::format("figure{}-{}", number, region_slug(region));
  f.title = fmt::format("Figure {}: {}", number, region_title(region));
  f.caption = std::move(caption);
  f.mime = "image/svg+xml";
  f.bytes = std::move(svg);
  return f;
}

// The finished job with the lowest seed that has both true and recovered centres.
const JobRecord* first_with_centres(const std::vector<const JobRecord*>& jobs) {
  for (const auto* j : jobs) {
    if (j->state == "done" && !j->rf_true.empty()) return j;
  }
  return nullptr;
}

// Figure 5 (not in the paper): for each model with an FR or FM readout in a region with ground
// truth, each neuron's true receptive-field centre (black dot) joined to the centre its readout
// mask recovered (red dot), on the 31x31 image. Null when the region has no such job.
std::optional<Figure> figure5(const JobIndex& index, const std::string& region) {
  struct Panel {
    std::string label;
    const JobRecord* job;
  };
  std::vector<Panel> panels;
  for (const std::string ro : {"fr", "fm"}) {
    for (const auto& ae : job::autoencoder_names(true)) {
      const auto pairs = index.pairs(ae, ro, true);
      for (int layer = 1; layer <= 4; ++layer) {
        for (const auto& pair : pairs) {
          if (const auto* j = first_with_centres(index.jobs(region, ae, ro, layer, pair))) {
            panels.push_back({model_label(ae, ro, layer, pairs, pair), j});
          }
        }
      }
    }
  }
  if (panels.empty()) return std::nullopt;
  const double cell = 6, side = 31 * cell, pad = 14, head = 34, label_h = 30;
  const int per_row = 4;
  const int rows = (static_cast<int>(panels.size()) + per_row - 1) / per_row;
  const double width = pad + per_row * (side + pad);
  const double height = head + rows * (side + label_h + pad);
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"8\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{2}</text>\n"
      "<circle cx=\"{3}\" cy=\"14\" r=\"3\" fill=\"#000000\"/><text x=\"{4}\" y=\"18\">true centre</text>"
      "<circle cx=\"{5}\" cy=\"14\" r=\"3\" fill=\"#d62728\"/><text x=\"{6}\" y=\"18\">recovered (readout peak)</text>\n",
      fixed(width), fixed(height), svg_text(fmt::format("Figure 5: {}", region_title(region))),
      fixed(width - 290), fixed(width - 283), fixed(width - 200), fixed(width - 193));
  std::string caption =
      "Receptive-field centres of the simulated neurons (black) and the peaks of the readout masks "
      "mapped back to the 31x31 image (red), joined by a line; one finished job per model (the lowest "
      "seed):";
  for (std::size_t i = 0; i < panels.size(); ++i) {
    const auto& p = panels[i];
    const double x0 = pad + static_cast<double>(i % per_row) * (side + pad);
    const double y0 = head + static_cast<double>(i / per_row) * (side + label_h + pad);
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#f4f4f4\" stroke=\"#888888\"/>\n",
                     fixed(x0), fixed(y0), fixed(side), fixed(side));
    auto X = [&](double col) { return x0 + (col + 0.5) * cell; };
    auto Y = [&](double row) { return y0 + (row + 0.5) * cell; };
    const auto& t = p.job->rf_true;
    const auto& r = p.job->rf_recovered;
    for (std::size_t n = 0; n < t.size(); ++n) {
      s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#d62728\" stroke-opacity=\"0.5\"/>\n",
                       fixed(X(t[n][1])), fixed(Y(t[n][0])), fixed(X(r[n][1])), fixed(Y(r[n][0])));
    }
    for (std::size_t n = 0; n < t.size(); ++n) {
      s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"1.8\" fill=\"#000000\"/>\n", fixed(X(t[n][1])),
                       fixed(Y(t[n][0])));
      s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"1.8\" fill=\"#d62728\"/>\n", fixed(X(r[n][1])),
                       fixed(Y(r[n][0])));
    }
    const std::string error = p.job->rf_error ? fmt::format("{:.2f} px", *p.job->rf_error) : "n/a";
    s += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", fixed(x0), fixed(y0 + side + 13), svg_text(p.label));
    s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555555\">seed {}, mean error {}</text>\n", fixed(x0),
                     fixed(y0 + side + 26), p.job->labels.seed, error);
    caption += fmt::format("{} {} (seed {}, job {}, mean error {})", i == 0 ? "" : ";", p.label,
                           p.job->labels.seed, p.job->id, error);
  }
  s += "</svg>\n";
  return region_svg(5, region, caption + ".", std::move(s));
}

// ---------------------------------------------------------------- Figure 6: the trade-off

// Figure 6 (not in the paper): for each model with a readout and a decoder that has jobs at more
// than one beta / alpha in a region, MSE and PCC against beta / alpha (log axis), mean ± sd over
// finished seeds, with its two baselines (the autoencoder alone, beta = 0, and the CNN with the
// same readout and layer, alpha = 0) as dashed lines. Null when no model has such a sweep.
std::optional<Figure> figure6(const JobIndex& index, const std::string& region) {
  struct Point {
    double ratio, mean, sd;
    int64_t n;
  };
  auto summary = [](const std::vector<const JobRecord*>& jobs, bool pcc) -> std::optional<Point> {
    std::vector<double> v;
    for (const auto* j : jobs) {
      if (j->state != "done") continue;
      const auto x = pcc ? j->mean_r : j->mse;
      if (x && std::isfinite(*x)) v.push_back(*x);
    }
    if (v.empty()) return std::nullopt;
    const auto s = summarize(v);
    return Point{0, s.mean, s.n > 1 ? s.sd : 0.0, s.n};
  };
  struct Curve {
    std::string label;
    std::vector<Point> mse, pcc;
    std::optional<Point> ae_base, cnn_base;
  };
  std::vector<Curve> curves;
  for (const auto& ae : job::autoencoder_names()) {
    for (const auto& ro : job::readout_names()) {
      const auto pairs = index.pairs(ae, ro, true);
      for (int layer = 1; layer <= 4; ++layer) {
        Curve c;
        c.label = model_name(ae, ro, layer);
        for (const auto& pair : pairs) {
          if (!pair || pair->first <= 0) continue;
          const auto jobs = index.jobs(region, ae, ro, layer, pair);
          const double ratio = pair->second / pair->first;
          if (auto m = summary(jobs, false)) m->ratio = ratio, c.mse.push_back(*m);
          if (auto m = summary(jobs, true)) m->ratio = ratio, c.pcc.push_back(*m);
        }
        if (c.mse.size() < 2 && c.pcc.size() < 2) continue;
        for (const auto& pair : index.pairs(ae, "none", true)) {
          if (!c.ae_base) c.ae_base = summary(index.jobs(region, ae, "none", 0, pair), false);
        }
        for (const auto& pair : index.pairs("none", ro, true)) {
          if (!c.cnn_base) c.cnn_base = summary(index.jobs(region, "none", ro, layer, pair), true);
        }
        curves.push_back(std::move(c));
      }
    }
  }
  if (curves.empty()) return std::nullopt;
  const double pw = 330, ph = 200, left = 58, gap = 70, top = 40, bottom = 44, row_gap = 30;
  const double width = left + 2 * pw + gap + 20;
  const double height = top + static_cast<double>(curves.size()) * (ph + bottom + row_gap);
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"8\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{2}</text>\n",
      fixed(width), fixed(height), svg_text(fmt::format("Figure 6: {}", region_title(region))));
  std::string caption =
      "The α/β trade-off: test MSE (left) and PCC (right) against β/α on a log axis, mean ± sample sd "
      "over finished seeds (n beside each point); dashed: the autoencoder alone (β = 0, left) and the "
      "CNN with the same readout and layer (α = 0, right). Models:";
  for (std::size_t ci = 0; ci < curves.size(); ++ci) {
    const auto& c = curves[ci];
    const double y0 = top + static_cast<double>(ci) * (ph + bottom + row_gap);
    caption += fmt::format("{} {}", ci == 0 ? "" : ",", c.label);
    for (int panel = 0; panel < 2; ++panel) {
      const auto& pts = panel == 0 ? c.mse : c.pcc;
      const auto& base = panel == 0 ? c.ae_base : c.cnn_base;
      const double x0 = left + panel * (pw + gap);
      double lo = 0, hi = 0, rmin = 0, rmax = 0;
      bool any = false;
      auto extend = [&](double v) {
        if (!any) lo = hi = v, any = true;
        lo = std::min(lo, v), hi = std::max(hi, v);
      };
      for (std::size_t i = 0; i < pts.size(); ++i) {
        extend(pts[i].mean - pts[i].sd), extend(pts[i].mean + pts[i].sd);
        const double lr = std::log10(pts[i].ratio);
        if (i == 0) rmin = rmax = lr;
        rmin = std::min(rmin, lr), rmax = std::max(rmax, lr);
      }
      if (base) extend(base->mean);
      if (!any || pts.empty()) continue;
      if (hi == lo) hi += 0.5, lo -= 0.5;
      const double padv = 0.08 * (hi - lo);
      lo -= padv, hi += padv;
      if (rmax == rmin) rmax += 0.5, rmin -= 0.5;
      auto X = [&](double ratio) { return x0 + 10 + (std::log10(ratio) - rmin) / (rmax - rmin) * (pw - 20); };
      auto Y = [&](double v) { return y0 + (hi - v) / (hi - lo) * ph; };
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888888\"/>\n",
                       fixed(x0), fixed(y0), fixed(pw), fixed(ph));
      s += fmt::format("<text x=\"{}\" y=\"{}\" font-weight=\"bold\">{} {}</text>\n", fixed(x0), fixed(y0 - 6),
                       svg_text(c.label), panel == 0 ? "MSE↓" : "PCC↑");
      s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.4g}</text>\n", fixed(x0 - 4),
                       fixed(y0 + 8), hi);
      s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.4g}</text>\n", fixed(x0 - 4),
                       fixed(y0 + ph), lo);
      s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">β/α</text>\n", fixed(x0 + pw / 2),
                       fixed(y0 + ph + 32));
      if (base) {
        s += fmt::format(
            "<line x1=\"{0}\" y1=\"{2}\" x2=\"{1}\" y2=\"{2}\" stroke=\"#555555\" stroke-dasharray=\"5,3\"/>"
            "<text x=\"{3}\" y=\"{4}\" fill=\"#555555\" text-anchor=\"end\">{5} (n={6})</text>\n",
            fixed(x0), fixed(x0 + pw), fixed(Y(base->mean)), fixed(x0 + pw - 4), fixed(Y(base->mean) - 4),
            panel == 0 ? "autoencoder alone" : "CNN alone", base->n);
      }
      std::string line;
      for (const auto& p : pts) {
        line += fmt::format("{}{},{}", line.empty() ? "" : " ", fixed(X(p.ratio)), fixed(Y(p.mean)));
        s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#d62728\"/>\n",
                         fixed(X(p.ratio)), fixed(Y(p.mean - p.sd)), fixed(Y(p.mean + p.sd)));
        s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"#d62728\"/>\n", fixed(X(p.ratio)),
                         fixed(Y(p.mean)));
        s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{:g}</text>\n", fixed(X(p.ratio)),
                         fixed(y0 + ph + 14), p.ratio);
      }
      s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n", line);
    }
  }
  s += "</svg>\n";
  return region_svg(6, region, caption + ".", std::move(s));
}

// ---------------------------------------------------------------- curves

std::string curve_svg(const JobRecord& job, const std::string& title) {
  const double w = 420, h = 250, left = 62, right = 12, top = 34, bottom = 36;
  double xmin = 0, xmax = 0, ymin = 0, ymax = 0;
  bool any = false;
  for (const auto& p : job.curve) {
    for (double v : {p.train_loss, p.val_loss}) {
      if (!std::isfinite(v)) continue;
      if (!any) {
        ymin = ymax = v;
        xmin = xmax = double(p.step);
        any = true;
      }
      ymin = std::min(ymin, v);
      ymax = std::max(ymax, v);
      xmin = std::min(xmin, double(p.step));
      xmax = std::max(xmax, double(p.step));
    }
  }
  if (ymax == ymin) {
    ymax += 0.5;
    ymin -= 0.5;
  }
  if (xmax == xmin) xmax = xmin + 1;
  const double pad = 0.05 * (ymax - ymin);
  ymin -= pad;
  ymax += pad;
  auto X = [&](double step) { return left + (step - xmin) / (xmax - xmin) * (w - left - right); };
  auto Y = [&](double v) { return top + (ymax - v) / (ymax - ymin) * (h - top - bottom); };

  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
      "{1}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{0}\" height=\"{1}\" "
      "fill=\"white\"/>\n"
      "<text x=\"6\" y=\"15\" font-size=\"12\" font-weight=\"bold\">{2}</text>\n",
      fixed(w), fixed(h), svg_text(title));
  s += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888888\"/>\n",
      fixed(left), fixed(top), fixed(w - left - right), fixed(h - top - bottom));
  // Axis ends: the first and last step, the loss range.
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", fixed(left),
                   fixed(h - bottom + 14), count_text(xmin));
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", fixed(w - right),
                   fixed(h - bottom + 14), count_text(xmax));
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n",
                   fixed((left + w - right) / 2), fixed(h - 8));
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.4g}</text>\n", fixed(left - 4),
                   fixed(top + 4), ymax);
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.4g}</text>\n", fixed(left - 4),
                   fixed(h - bottom), ymin);
  // The second phase (after the learning rate is halved) starts at the dotted line.
  for (std::size_t i = 1; i < job.curve.size(); ++i) {
    if (job.curve[i].phase != job.curve[i - 1].phase) {
      const double x = X(double(job.curve[i].step));
      s += fmt::format(
          "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#999999\" "
          "stroke-dasharray=\"2,3\"/>\n",
          fixed(x), fixed(top), fixed(h - bottom));
    }
  }
  auto polyline = [&](bool train, const char* colour, const char* dash) {
    std::string points;
    for (const auto& p : job.curve) {
      const double v = train ? p.train_loss : p.val_loss;
      if (!std::isfinite(v)) continue;
      points +=
          fmt::format("{}{},{}", points.empty() ? "" : " ", fixed(X(double(p.step))), fixed(Y(v)));
    }
    if (points.empty()) return;
    s += fmt::format(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"{}/>\n", points,
        colour, dash);
    if (points.find(' ') == std::string::npos) {  // one point: a dot
      const auto comma = points.find(',');
      s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"2.5\" fill=\"{}\"/>\n",
                       points.substr(0, comma), points.substr(comma + 1), colour);
    }
  };
  polyline(true, "#1f77b4", "");
  polyline(false, "#d62728", " stroke-dasharray=\"5,3\"");
  s += fmt::format(
      "<line x1=\"{0}\" y1=\"26\" x2=\"{1}\" y2=\"26\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>"
      "<text x=\"{2}\" y=\"29\">train</text>\n"
      "<line x1=\"{3}\" y1=\"26\" x2=\"{4}\" y2=\"26\" stroke=\"#d62728\" stroke-width=\"1.5\" "
      "stroke-dasharray=\"5,3\"/><text x=\"{5}\" y=\"29\">validation</text>\n",
      fixed(w - 190), fixed(w - 170), fixed(w - 166), fixed(w - 120), fixed(w - 100),
      fixed(w - 96));
  s += "</svg>\n";
  return s;
}

// ---------------------------------------------------------------- the talk's figures

// A white greyscale picture laid out as Figure 2: a column of row letters, then cells of
// kSide x kSide pixels, each drawn kScale times larger, kGap apart.
class Grid {
 public:
  static constexpr int kCell = kSide * kScale;

  Grid(int columns, int rows)
      : width_(kLabelWidth + columns * (kCell + kGap)),
        height_(kGap + rows * (kCell + kGap)),
        pixels_(std::size_t(width_) * std::size_t(height_), 255) {
    for (int r = 0; r < rows && r < 26; ++r) letter(r);
  }

  int x0(int column) const { return kLabelWidth + column * (kCell + kGap); }
  int y0(int row) const { return kGap + row * (kCell + kGap); }

  void set(int x, int y, uint8_t v) {
    pixels_[std::size_t(y) * std::size_t(width_) + std::size_t(x)] = v;
  }

  // An image of side x side values (side <= kSide), each pixel a kScale block, centred in its
  // cell; `grey` maps a value to 0..1.
  template <typename Grey>
  void image(int row, int column, const float* values, int side, Grey grey) {
    const int offset = (kCell - side * kScale) / 2;
    for (int y = 0; y < side * kScale; ++y) {
      for (int x = 0; x < side * kScale; ++x) {
        const double g = grey(values[(y / kScale) * side + x / kScale]);
        set(x0(column) + offset + x, y0(row) + offset + y,
            static_cast<uint8_t>(std::lround(g * 255)));
      }
    }
  }

  // A grey square crossed out, as Figure 2 marks what is missing.
  void crossed(int row, int column) {
    for (int y = 0; y < kCell; ++y) {
      for (int x = 0; x < kCell; ++x)
        set(x0(column) + x, y0(row) + y, (x == y || x == kCell - 1 - y) ? 128 : 215);
    }
  }

  std::string png() const { return encode_png_gray(width_, height_, pixels_); }

 private:
  void letter(int row) {
    const std::string text = fmt::format("({})", char('a' + row));
    const int top = y0(row) + (kCell - 7 * kGlyphScale) / 2;
    for (std::size_t i = 0; i < text.size(); ++i) {
      const auto& glyph = glyphs().at(text[i]);
      const int left = kGap + int(i) * 6 * kGlyphScale;
      for (int gy = 0; gy < 7 * kGlyphScale; ++gy) {
        for (int gx = 0; gx < 5 * kGlyphScale; ++gx) {
          if (glyph[std::size_t(gy / kGlyphScale)][gx / kGlyphScale] == '#')
            set(left + gx, top + gy, 0);
        }
      }
    }
  }

  int width_, height_;
  std::vector<uint8_t> pixels_;
};

// Images on [-1, 1], black to white, as in Figure 2.
double image_grey(float v) {
  return std::isfinite(v) ? std::clamp((double(v) + 1) / 2, 0.0, 1.0) : 0.0;
}

// A file-name-safe form of a label: "CAE-FR_{2}, one-hot" -> "cae-fr-2-one-hot".
std::string slug(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

// One artifact of a job, read and checked against its expected shape; on failure, why (the
// figure crosses its cells out and its caption says so, in one line).
std::optional<NpyArray> read_artifact(
    const fs::path& path, const char* kind,
    const std::function<bool(const std::vector<int64_t>&)>& shape_ok, const char* expected,
    std::vector<std::string>& problems) {
  if (path.empty()) return std::nullopt;
  try {
    auto a = read_npy_floats(path);
    if (!shape_ok(a.shape)) {
      throw ReportError(
          fmt::format("{}: the {} artifact's shape is not {}", path.string(), kind, expected));
    }
    return a;
  } catch (const ReportError& e) {
    problems.push_back(e.what());
    return std::nullopt;
  }
}

// The job a talk figure draws: the finished job with the lowest seed whose main artifact can
// be read, else the lowest finished one (whose missing cells are crossed out); null when no job
// of the model has finished.
template <typename Read>
const JobRecord* pick_job(const ModelJobs& group, Read read) {
  const JobRecord* first_done = nullptr;
  for (const auto* j : group.jobs) {
    if (j->state != "done") continue;
    if (!first_done) first_done = j;
    if (read(*j)) return j;
  }
  return first_done;
}

std::string unreadable(const std::vector<std::string>& problems) {
  if (problems.empty()) return "";
  return " Unreadable: " + problems.front() +
         (problems.size() > 1 ? fmt::format(" (and {} more).", problems.size() - 1) : ".");
}

constexpr int kDecodeColumns = 10;  // test images, as in Figure 2
constexpr int kMeiColumns = 16;     // neurons of a synthesis grid

bool decode_figure_shape(const std::vector<int64_t>& s) {
  return s.size() == 5 && s[0] == 4 && s[1] >= 1 && s[2] == 1 && s[3] == kSide && s[4] == kSide;
}

// The talk's decoding figure for one model: for the first K test images, (a) the image, (b)
// the autoencoder's reconstruction, (c) the neurons' responses to it, (d) the image decoded
// from them, (e) the pixel-ridge baseline.
std::optional<Figure> decoding_figure(const ModelJobs& group) {
  std::vector<std::string> problems;
  std::optional<NpyArray> images;
  const JobRecord* job = pick_job(group, [&](const JobRecord& j) {
    images = read_artifact(j.decode_figure, "decode_figure", decode_figure_shape,
                           "(4, K, 1, 32, 32)", problems);
    return images.has_value();
  });
  if (!job) return std::nullopt;
  const auto responses = read_artifact(
      job->decode_responses, "decode_responses",
      [](const std::vector<int64_t>& s) { return s.size() == 2 && s[0] >= 1 && s[1] >= 1; },
      "(K, M)", problems);

  const int64_t stored = images ? images->shape[1] : responses ? responses->shape[0] : 1;
  const int k = int(std::min<int64_t>(stored, kDecodeColumns));
  Grid grid(k, 5);
  const std::size_t plane = kSide * kSide;
  // Rows (a), (b), (d), (e) are indices 0, 1, 2, 3 of the artifact.
  const int index_of_row[] = {0, 1, -1, 2, 3};
  for (int row = 0; row < 5; ++row) {
    if (row == 2) continue;
    for (int c = 0; c < k; ++c) {
      if (!images || c >= images->shape[1]) {
        grid.crossed(row, c);
        continue;
      }
      const std::size_t at =
          (std::size_t(index_of_row[row]) * std::size_t(images->shape[1]) + std::size_t(c)) * plane;
      grid.image(row, c, images->values.data() + at, kSide, image_grey);
    }
  }
  // The responses: a square grid of M cells per image, black at 0 (or the lowest response, if
  // below) to white at the highest response shown, so that images compare by the same scale.
  std::string response_text;
  if (responses) {
    const int64_t m_all = responses->shape[1];
    const int cell = Grid::kCell;
    const int64_t m = std::min<int64_t>(m_all, int64_t(cell) * cell);
    const int side = int(std::ceil(std::sqrt(double(m))));
    const int size = std::max(1, cell / side);
    const int offset = (cell - side * size) / 2;
    const int shown = int(std::min<int64_t>(k, responses->shape[0]));
    double lo = 0, hi = -std::numeric_limits<double>::infinity();
    for (int c = 0; c < shown; ++c) {
      for (int64_t i = 0; i < m; ++i) {
        const double v = responses->values[std::size_t(c * m_all + i)];
        if (!std::isfinite(v)) continue;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    }
    for (int c = 0; c < k; ++c) {
      if (c >= shown) {
        grid.crossed(2, c);
        continue;
      }
      for (int64_t i = 0; i < m; ++i) {
        const double v = responses->values[std::size_t(c * m_all + i)];
        const double g = !std::isfinite(v) ? 0.0 : hi > lo ? (v - lo) / (hi - lo) : 0.5;
        const auto grey = static_cast<uint8_t>(std::lround(std::clamp(g, 0.0, 1.0) * 255));
        // Cells of 4 px or more get a grey frame, so that a white (the largest) response
        // stands out from the white around the grid.
        const bool framed = size >= 4;
        const int x = grid.x0(c) + offset + int(i % side) * size;
        const int y = grid.y0(2) + offset + int(i / side) * size;
        for (int dy = 0; dy < size; ++dy) {
          for (int dx = 0; dx < size; ++dx) {
            const bool edge = dx == 0 || dy == 0 || dx == size - 1 || dy == size - 1;
            grid.set(x + dx, y + dy, framed && edge ? 160 : grey);
          }
        }
      }
    }
    response_text = fmt::format(
        "the {} neurons' trial-averaged responses to it, a grid of cells in neuron order{} (row by "
        "row), black "
        "{} to white {} (the largest shown)",
        m_all, m < m_all ? fmt::format(" (the first {})", m) : "", format_number(lo, 2),
        std::isfinite(hi) ? format_number(hi, 2) : "n/a");
  } else {
    for (int c = 0; c < k; ++c) grid.crossed(2, c);
    response_text = fmt::format("the neurons' responses: crossed out, {}",
                                job->decode_responses.empty() ? "no decode_responses stored"
                                                              : "no readable decode_responses");
  }

  const auto& l = job->labels;
  Figure f;
  f.name = fmt::format("decoding-{}-{}", region_slug(l.region), slug(plain_text(group.label)));
  f.title = fmt::format("Decoding: {}, {}", group.label, region_title(l.region));
  const std::string images_text = images ? ""
                                  : job->decode_figure.empty()
                                      ? ": crossed out, no decode_figure stored"
                                      : ": crossed out, no readable decode_figure";
  f.caption = fmt::format(
      "From top to bottom, for the first {} test images: (a) the test image{}; (b) its "
      "reconstruction by the autoencoder; (c) {}; (d) the image decoded from those responses "
      "through the autoencoder; (e) the pixel-ridge baseline (no autoencoder). Decode job {} "
      "(seed {}) of training job {}.{}",
      k, images_text, response_text, job->id, l.seed, l.parent, unreadable(problems));
  f.mime = "image/png";
  f.bytes = grid.png();
  return f;
}

// The synthesis grid for one model and objective: (a) each chosen neuron's synthesised image,
// (b) below it the neuron's true receptive field, where the job stored them (simulated data).
std::optional<Figure> synthesis_figure(const ModelJobs& group) {
  std::vector<std::string> problems;
  std::optional<NpyArray> images;
  const JobRecord* job = pick_job(group, [&](const JobRecord& j) {
    images = read_artifact(
        j.mei_images, "mei_images",
        [](const std::vector<int64_t>& s) {
          return s.size() == 4 && s[0] >= 1 && s[1] == 1 && s[2] == kSide && s[3] == kSide;
        },
        "(K, 1, 32, 32)", problems);
    return images.has_value();
  });
  if (!job) return std::nullopt;
  constexpr int kRfSide = 31;
  const auto rf = read_artifact(
      job->mei_rf, "mei_rf",
      [](const std::vector<int64_t>& s) {
        return s.size() == 3 && s[0] >= 1 && s[1] == kRfSide && s[2] == kRfSide;
      },
      "(K, 31, 31)", problems);
  const bool rf_row = !job->mei_rf.empty();

  const int64_t chosen = images ? images->shape[0]
                         : rf   ? rf->shape[0]
                         : job->mei && !job->mei->neurons.empty()
                             ? int64_t(job->mei->neurons.size())
                             : 1;
  const int k = int(std::min<int64_t>(chosen, kMeiColumns));
  Grid grid(k, rf_row ? 2 : 1);
  for (int c = 0; c < k; ++c) {
    if (images && c < images->shape[0]) {
      grid.image(0, c, images->values.data() + std::size_t(c) * kSide * kSide, kSide, image_grey);
    } else {
      grid.crossed(0, c);
    }
    if (!rf_row) continue;
    if (!rf || c >= rf->shape[0]) {
      grid.crossed(1, c);
      continue;
    }
    // Each field on its own scale, grey at 0: its shape matters here, not its gain.
    const float* field = rf->values.data() + std::size_t(c) * kRfSide * kRfSide;
    double scale = 0;
    for (int i = 0; i < kRfSide * kRfSide; ++i) {
      if (std::isfinite(field[i])) scale = std::max(scale, std::abs(double(field[i])));
    }
    grid.image(1, c, field, kRfSide, [scale](float v) {
      if (!std::isfinite(v) || scale <= 0) return 0.5;
      return std::clamp(0.5 + 0.5 * double(v) / scale, 0.0, 1.0);
    });
  }

  std::string neurons;
  if (job->mei) {
    for (std::size_t i = 0; i < job->mei->neurons.size() && i < std::size_t(k); ++i) {
      const auto& n = job->mei->neurons[i];
      auto opt = [](const char* name, const std::optional<double>& v) {
        return v ? fmt::format(", {} {}", name, format_number(*v, 2)) : std::string();
      };
      neurons += fmt::format("{}neuron {} (model ratio {}{}{})", neurons.empty() ? "" : "; ",
                             n.neuron, n.model_ratio ? format_number(*n.model_ratio, 2) : "n/a",
                             opt("true ratio", n.true_ratio), opt("RF r", n.rf_corr));
    }
  }
  const auto& l = job->labels;
  Figure f;
  f.name = fmt::format("synthesis-{}-{}", region_slug(l.region), slug(plain_text(group.label)));
  f.title = fmt::format("Synthesised images: {}, {}", group.label, region_title(l.region));
  f.caption = fmt::format(
      "(a) The synthesised image of each chosen neuron{}{}, [-1, 1] black to white{}; {}. Left to "
      "right: {}. MEI job {} (seed {}) of training job {}.{}",
      chosen > k ? fmt::format(" (the first {} of {})", k, chosen) : "",
      l.objective == "onehot" ? " (one-hot: its softmax share of the population)"
                              : " (stretch: its predicted response)",
      images                    ? ""
      : job->mei_images.empty() ? ", crossed out: no mei_images stored"
                                : ", crossed out: no readable mei_images",
      !rf_row ? "no true receptive fields stored (a recording has none)"
      : rf ? "(b) below it, the neuron's true receptive field, grey at 0, white and black at its "
             "largest magnitude"
           : "(b) its true receptive field: crossed out, no readable mei_rf",
      neurons.empty() ? "no neurons recorded" : neurons, job->id, l.seed, l.parent,
      unreadable(problems));
  f.mime = "image/png";
  f.bytes = grid.png();
  return f;
}
}  // namespace

std::vector<Figure> build_figures(const ReportData& data) {
  std::vector<Figure> out;
  const JobIndex index(data);
  for (const auto& r : index.regions()) out.push_back(figure2(index, r));
  for (const auto& r : index.regions()) out.push_back(figure3(index, r));
  for (const auto& r : index.regions()) out.push_back(figure4(index, r));
  // Only where they have something to show: ground truth, and a sweep over beta / alpha.
  for (const auto& r : index.regions()) {
    if (auto f = figure5(index, r)) out.push_back(std::move(*f));
  }
  for (const auto& r : index.regions()) {
    if (auto f = figure6(index, r)) out.push_back(std::move(*f));
  }
  // The talk's figures, where the database holds decode or mei jobs: one per model (and
  // objective) with a finished job.
  for (const auto& g : group_by_model(data.decode_jobs)) {
    if (auto f = decoding_figure(g)) out.push_back(std::move(*f));
  }
  for (const auto& g : group_by_model(data.mei_jobs)) {
    if (auto f = synthesis_figure(g)) out.push_back(std::move(*f));
  }
  return out;
}

std::vector<Figure> build_curves(const ReportData& data) {
  std::vector<Figure> out;
  for (const auto& j : data.jobs) {
    if (j.curve.empty()) continue;
    const auto& l = j.labels;
    std::string model = model_name(l.autoencoder, l.readout, l.layer);
    if (l.neurons != "all") model += fmt::format(" ({} neurons)", l.neurons);
    Figure f;
    f.name = "curve-" + j.id;
    f.title = fmt::format("{}, seed {}", model, l.seed);
    f.caption = fmt::format(
        "{}, {}, seed {}, job {} ({}): training and validation loss at each "
        "validation point; the dotted line starts the second phase.",
        region_title(l.region), pair_text({l.alpha, l.beta}), l.seed, j.id, j.state);
    f.group = region_title(l.region);
    f.mime = "image/svg+xml";
    f.bytes = curve_svg(j, f.title);
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace daenr::reports
