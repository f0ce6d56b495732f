#pragma once
// Region data: the Antolík et al. 2016 layout on disk, the simulated "virtual"
// regions, and the paper's preprocessing into training / validation / test sets.

#include <cstdint>
#include <filesystem>
#include <string>

#include <torch/torch.h>

namespace daenr::models {

/// The data's images: 31x31, as the Antolík files hold them (the networks see them resized to
/// 32x32, resize_31_to_32).
constexpr int kDataSide = 31;
constexpr int kDataPixels = kDataSide * kDataSide;

/// One region exactly as stored (all float64, CPU).
struct RawRegion {
  torch::Tensor train_inputs;     ///< (N, 961): 31x31 images, row-major.
  torch::Tensor train_responses;  ///< (N, M) responses to train_inputs.
  torch::Tensor test_inputs;      ///< (T, 961): the 50 "validation" images.
  torch::Tensor test_responses;   ///< (T, M) trial-averaged responses.
  torch::Tensor test_raw;         ///< (R, T, M) single trials; undefined if absent.
  torch::Tensor rf_centres;       ///< (M, 2) true (row, col) at 31x31; simulated regions only.
  // Ground truth, known for simulated regions only (undefined for recordings):
  torch::Tensor test_expected;    ///< (T, M) each neuron's noiseless expected response E[trial]
  torch::Tensor rf_filters;       ///< (M, 2, 961) each neuron's true filter pair (see synth.h)
};

/// Loads `dir`/{training_inputs,training_set,validation_inputs,validation_set}.npy
/// and, when present, raw_validation_set.npy and the ground truth that `daenr data synth`
/// writes (rf_centres.npy, noiseless_validation_set.npy, rf_filters.npy). Checks shapes
/// (961 columns, matching row and neuron counts), finiteness, and that responses are >= 0
/// (the Poisson loss assumes s >= 0). Every error is a
/// DataError naming the file; a missing training_inputs.npy says that the partial
/// copy of the real data lacks it and where the full set comes from.
RawRegion load_antolik_region(const std::filesystem::path& dir);

/// Resolves a data source: "virtual:K" (K in 1..3) simulates virtual region K
/// from `data_seed` (see synth.h); anything else is a directory in the Antolík
/// layout (a region folder such as Data/region3).
RawRegion load_source(const std::string& source, std::uint64_t data_seed);

/// The region restricted to the given neurons (column indices, in that
/// order): responses, trials and RF centres. Throws DataError for an index out
/// of range or an empty selection.
RawRegion select_neurons(const RawRegion& region, const std::vector<int64_t>& neurons);

/// A content fingerprint of a region (hex SHA-256 prefix over shapes and bytes
/// of every array), so that a job id changes whenever its data does.
std::string fingerprint(const RawRegion& region);

/// The model-ready sets. Images are (n, 1, 32, 32) float32 in [-1, 1];
/// responses are (n, M) float32.
struct Dataset {
  torch::Tensor train_images, train_responses;  ///< the seeded 80% of the training file
  torch::Tensor val_images, val_responses;      ///< the held-out 20% (early stopping)
  torch::Tensor test_images, test_responses;    ///< the 50 test images, trial-averaged responses
  torch::Tensor test_raw;                       ///< (R, T, M) float32 or undefined
  torch::Tensor train_images31;  ///< (n, 31, 31) float32, the training split before resizing
  torch::Tensor rf_centres;      ///< copied from RawRegion (may be undefined)
  torch::Tensor test_expected;   ///< (T, M) float64 noiseless test responses, or undefined
  double pixel_min = 0, pixel_max = 0;  ///< the training range mapped to [-1, 1]
};

/// The paper's preprocessing: 31x31 -> 32x32 bilinear (align_corners=false),
/// intensities mapped to [-1, 1] with the min and max of the training file's
/// images (applied to the test images too), then a seeded 80/20 split of the
/// training images into train / validation (`val_fraction` of them, rounded).
Dataset prepare(const RawRegion& raw, std::uint64_t split_seed, double val_fraction = 0.2);

/// Bilinear resize of (n, 961) rows to (n, 1, 32, 32), align_corners=false.
torch::Tensor resize_31_to_32(const torch::Tensor& rows);

}  // namespace daenr::models
