#pragma once
// The paper's figures, rebuilt from a database: Figure 2 (test images and
// their reconstructions by the CAE and CAE-FR_1..4, a PNG per region), Figures
// 3 and 4 (significant and insignificant neurons per model, SVG bar charts per
// region), and each job's training curve (SVG). Where the database holds them, the talk's
// figures follow: a decoding figure per model with decode jobs (test images, the
// autoencoder's reconstructions, the neurons' responses, the images decoded from
// them and the pixel baseline) and a synthesis grid per model and objective with
// mei jobs (synthesised images above the neurons' true receptive fields), PNG.
// Deterministic bytes.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "reports/data.h"

namespace daenr::reports {

struct Figure {
  std::string name;     ///< file stem: "figure2-virtual-3", "curve-<job id>"
  std::string title;    ///< "Figure 2 (Region 3 (virtual))", markup as in tables.h
  std::string caption;  ///< what it shows, and what is missing from it
  std::string mime;     ///< "image/png" or "image/svg+xml"
  std::string bytes;    ///< the file's content
  std::string group;    ///< curves: the section they are listed under
};

/// Figures 2, 3 and 4 for every region, in that order, then Figures 5 and 6 where a region has
/// what they draw, then the decoding figures and synthesis grids ("decoding-<region>-<model>",
/// "synthesis-<region>-<model>-<objective>"), each from the model's finished job with the lowest
/// seed whose artifact can be read.
std::vector<Figure> build_figures(const ReportData& data);

/// One training curve (train and validation loss against the step) per job
/// that has one, in report order.
std::vector<Figure> build_curves(const ReportData& data);

/// A float array from a .npy file (little-endian float32 or float64, C order,
/// versions 1-3). Throws ReportError naming the file.
struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
NpyArray read_npy_floats(const std::filesystem::path& path);

/// An 8-bit greyscale PNG of `width` x `height` pixels, row-major.
std::string encode_png_gray(int width, int height, const std::vector<uint8_t>& pixels);

}  // namespace daenr::reports
