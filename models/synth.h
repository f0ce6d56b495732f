#pragma once
// Simulated V1 ("virtual regions"): the embedded default data. Deterministic
// from a seed. Stimuli are dead-leaves images (occluding discs with power-law
// radii: a ~1/f amplitude spectrum, like natural images); neurons are simple
// cells (rectified Gabor) and complex cells (Gabor energy) with
// trial-to-trial noise, calibrated to the real regions in
// shared/data/antolik2016/STATS.md.

#include <cstdint>
#include <filesystem>
#include <vector>

#include "models/data.h"

namespace daenr::models {

struct VirtualRegionSpec {
  int region = 1;            ///< 1..3, the real region it imitates
  int neurons = 103;         ///< M
  int train_images = 1800;   ///< N
  int test_images = 50;      ///< T
  int repeats = 10;          ///< R trials per test image
  double complex_fraction = 0.5;  ///< share of complex (energy-model) cells
};

/// The calibrated spec of virtual region 1, 2 or 3 (counts as in STATS.md).
/// Throws ModelError for any other number.
VirtualRegionSpec virtual_region_spec(int region);

/// The simulated neurons of one region as a function of any image: receptive fields drawn from
/// the region's seed and calibrated on its training images, exactly those simulate_region uses.
/// Simple cells respond to one Gabor filter, complex cells to the energy of a quadrature pair;
/// rate = A * relu((drive - c) / s)^1.2, and one trial is relu(rate * G + eps - 0.3) with
/// G ~ Gamma(k, 1/k) and eps ~ N(0, sd^2) (k, sd per region).
class VirtualNeurons {
 public:
  VirtualNeurons(const VirtualRegionSpec& spec, std::uint64_t seed);
  /// The same neurons, calibrated on the region's training images given by the caller (those
  /// simulate_region draws), so that they are not drawn twice.
  VirtualNeurons(const VirtualRegionSpec& spec, std::uint64_t seed, const torch::Tensor& train_images);
  int size() const { return static_cast<int>(amplitude_.size()); }
  /// Noiseless rates (n, M) float64 for images (n, 961) in the files' units (grey / 1e6).
  torch::Tensor rates(const torch::Tensor& images) const;
  /// The expected single-trial response E[relu(rate G + eps - 0.3)] (n, M) float64: what the
  /// trial average tends to with infinitely many repeats. Gaussian part in closed form, the
  /// gain by the midpoint rule over 512 quantiles of its Gamma distribution.
  torch::Tensor expected(const torch::Tensor& images) const;
  /// (M, 2, 961) float64: each neuron's filter pair, zero-mean and unit-norm on the 31x31 grid
  /// (index 0 the even Gabor, the simple cell's filter; 1 the odd one, used by complex cells).
  torch::Tensor filters() const;
  /// (M, 2) float64: each filter's centre (row, col) on the 31x31 grid.
  const torch::Tensor& centres() const { return centres_; }
  /// (M) bool: complex (energy-model) cells.
  torch::Tensor complex_cells() const;

 private:
  std::vector<double> drive(const torch::Tensor& images) const;
  torch::Tensor rate_from_drive(const std::vector<double>& d) const;

  int region_ = 1;
  std::vector<std::vector<double>> even_, odd_;
  std::vector<bool> complex_;
  std::vector<double> amplitude_, centre_, scale_;
  torch::Tensor centres_;
};

/// Simulates one region. Images are 31x31 with grey levels / 1e6 as in the real
/// files; responses are non-negative reals, about half exactly zero. The
/// training responses are single trials; test_responses is the mean of test_raw.
/// rf_centres holds each neuron's true receptive-field centre (row, col), test_expected the
/// noiseless expected test responses and rf_filters the filters (VirtualNeurons).
RawRegion simulate_region(const VirtualRegionSpec& spec, std::uint64_t seed);

/// Writes the three virtual regions to out/region{1,2,3}/ in the Antolík layout
/// plus the ground truth (rf_centres.npy, noiseless_validation_set.npy, rf_filters.npy,
/// complex_cells.npy), so that load_antolik_region reads them back.
void write_virtual_regions(const std::filesystem::path& out, std::uint64_t seed);

}  // namespace daenr::models
