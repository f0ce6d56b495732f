// The simulated regions: deterministic, and calibrated to the real regions'
// statistics in shared/data/antolik2016/STATS.md. The statistics are computed
// here with plain tensor code, independent of models/metrics.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "models/data.h"
#include "models/error.h"
#include "models/npy.h"
#include "models/synth.h"
#include "tests/support/temp_dir.h"

namespace daenr::models {
namespace {

namespace fs = std::filesystem;

// Pearson r per column of two (T, M) tensors.
torch::Tensor columnwise_r(torch::Tensor a, torch::Tensor b) {
  a = a - a.mean(0);
  b = b - b.mean(0);
  auto denom = torch::sqrt((a * a).sum(0) * (b * b).sum(0));
  return torch::where(denom > 1e-12, (a * b).sum(0) / denom.clamp_min(1e-12), torch::zeros_like(denom));
}

TEST(Synth, SameSeedSameRegionOtherSeedOtherRegion) {
  auto spec = virtual_region_spec(2);
  const auto a = simulate_region(spec, 4), b = simulate_region(spec, 4), c = simulate_region(spec, 5);
  EXPECT_TRUE(torch::equal(a.train_inputs, b.train_inputs));
  EXPECT_TRUE(torch::equal(a.train_responses, b.train_responses));
  EXPECT_TRUE(torch::equal(a.test_raw, b.test_raw));
  EXPECT_TRUE(torch::equal(a.rf_centres, b.rf_centres));
  EXPECT_FALSE(torch::equal(a.train_inputs, c.train_inputs));
  EXPECT_FALSE(torch::equal(a.train_responses, c.train_responses));
  // The thread count of the simulating process changes nothing.
  const int threads = torch::get_num_threads();
  torch::set_num_threads(threads == 1 ? 2 : 1);
  const auto d = simulate_region(spec, 4);
  torch::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(a.train_responses, d.train_responses));
  EXPECT_TRUE(torch::equal(a.test_responses, d.test_responses));
  // Fewer neurons leave the images unchanged (independent random streams).
  spec.neurons = 10;
  EXPECT_TRUE(torch::equal(simulate_region(spec, 4).train_inputs, a.train_inputs));
}

TEST(Synth, ShapesAndScaleFollowTheRealFiles) {
  for (int region = 1; region <= 3; ++region) {
    const auto spec = virtual_region_spec(region);
    const auto r = simulate_region(spec, 1);
    EXPECT_EQ(r.train_inputs.sizes(), torch::IntArrayRef({spec.train_images, 961}));
    EXPECT_EQ(r.train_responses.sizes(), torch::IntArrayRef({spec.train_images, spec.neurons}));
    EXPECT_EQ(r.test_inputs.sizes(), torch::IntArrayRef({50, 961}));
    EXPECT_EQ(r.test_raw.sizes(), torch::IntArrayRef({spec.repeats, 50, spec.neurons}));
    EXPECT_TRUE(torch::allclose(r.test_responses, r.test_raw.mean(0)));
    EXPECT_EQ(r.rf_centres.sizes(), torch::IntArrayRef({spec.neurons, 2}));
    // Grey levels / 1e6: integers 0..255 after multiplying back.
    auto grey = r.train_inputs * 1e6;
    EXPECT_TRUE(torch::allclose(grey, grey.round(), 0, 1e-6));
    EXPECT_GE(grey.min().item<double>(), 0);
    EXPECT_LE(grey.max().item<double>(), 255 + 1e-6);
    const double mean = grey.mean().item<double>(), sd = grey.std(1).mean().item<double>();
    EXPECT_GT(mean, 105);
    EXPECT_LT(mean, 140);
    EXPECT_GT(sd, 55);
    EXPECT_LT(sd, 85);
    EXPECT_GE(r.train_responses.min().item<double>(), 0);
  }
  EXPECT_EQ(virtual_region_spec(1).neurons, 103);
  EXPECT_EQ(virtual_region_spec(2).neurons, 55);
  EXPECT_EQ(virtual_region_spec(3).repeats, 12);
  EXPECT_THROW(virtual_region_spec(4), ModelError);
}

TEST(Synth, StimuliHaveANaturalPowerSpectrum) {
  // Natural images: power falls as ~1/f^2 (amplitude ~1/f). Fit the log-log
  // slope of the radially averaged power of 200 images between 0.05 and 0.45
  // cycles per pixel.
  auto spec = virtual_region_spec(1);
  spec.train_images = 200;
  auto x = simulate_region(spec, 1).train_inputs.reshape({200, 31, 31});
  x = x - x.mean({1, 2}, true);
  auto power = torch::fft::fft2(x).abs().pow(2).mean(0);
  auto f = torch::fft::fftfreq(31, 1.0, torch::kDouble);
  auto radius = torch::sqrt(f.unsqueeze(1).pow(2) + f.unsqueeze(0).pow(2));
  auto mask = (radius > 0.05) & (radius < 0.45);
  auto lx = torch::log(radius.masked_select(mask)), ly = torch::log(power.masked_select(mask));
  const auto slope = (((lx - lx.mean()) * (ly - ly.mean())).sum() / (lx - lx.mean()).pow(2).sum()).item<double>();
  EXPECT_GT(slope, -2.6);
  EXPECT_LT(slope, -1.4);
}

TEST(Synth, ResponsesAreCalibratedToTheRealRegions) {
  // STATS.md, regions 1/2/3: zero fraction 0.51/0.49/0.52; mean 0.56/0.60/0.69;
  // std 1.11/1.13/1.43; single-trial oracle r 0.40/0.33/0.37; split-half r
  // (Spearman-Brown) 0.71/0.58/0.70. The bands allow for a different seed.
  struct Band { double oracle_lo, oracle_hi, split_lo, split_hi; };
  const Band bands[] = {{0.30, 0.50, 0.60, 0.82}, {0.24, 0.43, 0.48, 0.72}, {0.27, 0.47, 0.60, 0.82}};
  for (int region = 1; region <= 3; ++region) {
    const auto r = simulate_region(virtual_region_spec(region), 1);
    const auto s = r.train_responses;
    const double zero = (s == 0).to(torch::kDouble).mean().item<double>();
    EXPECT_GT(zero, 0.40) << "region " << region;
    EXPECT_LT(zero, 0.60) << "region " << region;
    EXPECT_GT(s.mean().item<double>(), 0.4) << "region " << region;
    EXPECT_LT(s.mean().item<double>(), 0.9) << "region " << region;
    EXPECT_GT(s.std().item<double>(), 0.8) << "region " << region;
    EXPECT_LT(s.std().item<double>(), 1.8) << "region " << region;

    const auto raw = r.test_raw;
    const int64_t reps = raw.size(0);
    torch::Tensor oracle = torch::zeros({raw.size(2)}, torch::kDouble);
    for (int64_t k = 0; k < reps; ++k) {
      oracle += columnwise_r(raw[k], (raw.sum(0) - raw[k]) / double(reps - 1));
    }
    const double oracle_r = (oracle / double(reps)).mean().item<double>();
    auto half = columnwise_r(raw.slice(0, 0, reps, 2).mean(0), raw.slice(0, 1, reps, 2).mean(0));
    const double split = (2 * half / (1 + half)).mean().item<double>();
    const auto& b = bands[region - 1];
    EXPECT_GT(oracle_r, b.oracle_lo) << "region " << region;
    EXPECT_LT(oracle_r, b.oracle_hi) << "region " << region;
    EXPECT_GT(split, b.split_lo) << "region " << region;
    EXPECT_LT(split, b.split_hi) << "region " << region;
    RecordProperty(fmt::format("region{}", region),
                   fmt::format("zero {:.3f} mean {:.3f} std {:.3f} oracle {:.3f} split-half {:.3f}", zero,
                               s.mean().item<double>(), s.std().item<double>(), oracle_r, split));
  }
}

TEST(Synth, TrueCentresDriveTheResponses) {
  // Where a neuron's responses rise with local contrast marks its receptive
  // field, for simple and complex cells alike (a linear spike-triggered average
  // misses complex cells). The response-weighted contrast map's peak must lie
  // near the recorded true centre: rf_centres describes the neurons that
  // produced the data.
  const auto r = simulate_region(virtual_region_spec(3), 2);
  auto x = r.train_inputs.reshape({-1, 31, 31});
  x = (x - x.mean(0)) / x.std(0);
  auto s = r.train_responses - r.train_responses.mean(0);
  auto contrast = torch::einsum("nm,nhw->mhw", {s, x.pow(2)});
  int close = 0;
  for (int64_t n = 0; n < contrast.size(0); ++n) {
    const auto flat = contrast[n].argmax().item<int64_t>();
    const double dr = flat / 31 - r.rf_centres[n][0].item<double>();
    const double dc = flat % 31 - r.rf_centres[n][1].item<double>();
    if (std::sqrt(dr * dr + dc * dc) <= 5) ++close;
  }
  RecordProperty("close", close);
  EXPECT_GE(close, 0.65 * contrast.size(0));
}

TEST(Synth, WrittenRegionsReadBackExactly) {
  daenr::testing::TempDir tmp;
  const auto dir = tmp.path() / "synth";
  write_virtual_regions(dir, 3);
  for (int region = 1; region <= 3; ++region) {
    const auto back = load_antolik_region(dir / fmt::format("region{}", region));
    const auto mem = simulate_region(virtual_region_spec(region), 3);
    EXPECT_TRUE(torch::equal(back.train_inputs, mem.train_inputs));
    EXPECT_TRUE(torch::equal(back.train_responses, mem.train_responses));
    EXPECT_TRUE(torch::equal(back.test_raw, mem.test_raw));
    EXPECT_TRUE(torch::equal(back.rf_centres, mem.rf_centres));
    EXPECT_EQ(fingerprint(back), fingerprint(mem));
  }
  // An unwritable place is named.
  try {
    write_virtual_regions("/proc/daenr-cannot-write", 1);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("/proc/daenr-cannot-write/region1: cannot create", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace daenr::models
