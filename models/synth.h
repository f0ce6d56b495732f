#pragma once
// Simulated V1 ("virtual regions"): the embedded default data. Deterministic
// from a seed. Stimuli are dead-leaves images (occluding discs with power-law
// radii: a ~1/f amplitude spectrum, like natural images); neurons are simple
// cells (rectified Gabor) and complex cells (Gabor energy) with
// trial-to-trial noise, calibrated to the real regions in
// shared/data/antolik2016/STATS.md.

#include <cstdint>
#include <filesystem>

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

/// Simulates one region. Images are 31x31 with grey levels / 1e6 as in the real
/// files; responses are non-negative reals, about half exactly zero. The
/// training responses are single trials; test_responses is the mean of test_raw.
/// rf_centres holds each neuron's true receptive-field centre (row, col).
RawRegion simulate_region(const VirtualRegionSpec& spec, std::uint64_t seed);

/// Writes the three virtual regions to out/region{1,2,3}/ in the Antolík layout
/// (plus rf_centres.npy), so that load_antolik_region reads them back.
void write_virtual_regions(const std::filesystem::path& out, std::uint64_t seed);

}  // namespace daenr::models
