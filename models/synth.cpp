#include "models/synth.h"

#include <boost/math/distributions/gamma.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <numbers>
#include <random>

#include "models/error.h"
#include "models/npy.h"

namespace daenr::models {

namespace {


// Independent random streams of one region, so that e.g. the neuron count can
// change without changing the images.
enum Stream : std::uint64_t { kTrainImages = 1, kTestImages, kNeurons, kTrainTrials, kTestTrials };

std::mt19937_64 stream(std::uint64_t seed, int region, Stream s) {
  // SplitMix64 of (seed, region, stream): unrelated seeds for unrelated streams.
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(region) * 0xBF58476D1CE4E5B9ULL +
                    s * 0x94D049BB133111EBULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return std::mt19937_64(z ^ (z >> 31));
}

// Dead leaves (Matheron; Lee, Mumford & Huang 2001): opaque discs of uniform
// random grey dropped on the image, the first ones in front. Radii follow
// p(r) ~ r^-3 on [1, 24] px, which gives the ~1/f^2 power spectrum (1/f
// amplitude) of natural images and their occlusion edges. Grey levels are
// integers 0..255, so the mean (~128) and contrast (std ~72) match the real
// test images (114-126 / 68-76).
torch::Tensor dead_leaves(int n, std::mt19937_64& rng) {
  constexpr double r_min = 1.0, r_max = 24.0;
  constexpr int max_discs = 2000;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<int> grey(0, 255);
  auto images = torch::empty({n, kDataPixels}, torch::kDouble);
  auto* out = images.data_ptr<double>();
  std::vector<int> canvas(kDataPixels);
  for (int i = 0; i < n; ++i) {
    std::fill(canvas.begin(), canvas.end(), -1);
    int uncovered = kDataPixels;
    for (int d = 0; d < max_discs && uncovered > 0; ++d) {
      // Inverse CDF of the r^-3 density.
      const double u = unit(rng);
      const double r = 1.0 / std::sqrt(1.0 / (r_min * r_min) - u * (1.0 / (r_min * r_min) - 1.0 / (r_max * r_max)));
      const double cy = -r + unit(rng) * (kDataSide + 2 * r);
      const double cx = -r + unit(rng) * (kDataSide + 2 * r);
      const int value = grey(rng);
      const int y0 = std::max(0, static_cast<int>(std::floor(cy - r)));
      const int y1 = std::min(kDataSide - 1, static_cast<int>(std::ceil(cy + r)));
      const int x0 = std::max(0, static_cast<int>(std::floor(cx - r)));
      const int x1 = std::min(kDataSide - 1, static_cast<int>(std::ceil(cx + r)));
      for (int y = y0; y <= y1; ++y) {
        for (int x = x0; x <= x1; ++x) {
          int& px = canvas[y * kDataSide + x];
          if (px < 0 && (y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r) {
            px = value;
            --uncovered;
          }
        }
      }
    }
    const int background = grey(rng);
    for (int p = 0; p < kDataPixels; ++p) {
      // Grey levels / 1e6, exactly as the real files store them.
      out[static_cast<int64_t>(i) * kDataPixels + p] = (canvas[p] < 0 ? background : canvas[p]) / 1e6;
    }
  }
  return images;
}

// Zero-mean, unit-norm Gabor filter on the 31x31 grid.
std::vector<double> gabor(double cy, double cx, double sigma, double wavelength, double theta,
                          double phase, double aspect) {
  std::vector<double> g(kDataPixels);
  double mean = 0;
  for (int y = 0; y < kDataSide; ++y) {
    for (int x = 0; x < kDataSide; ++x) {
      const double xr = (x - cx) * std::cos(theta) + (y - cy) * std::sin(theta);
      const double yr = -(x - cx) * std::sin(theta) + (y - cy) * std::cos(theta);
      const double v = std::exp(-(xr * xr + aspect * aspect * yr * yr) / (2 * sigma * sigma)) *
                       std::cos(2 * std::numbers::pi * xr / wavelength + phase);
      g[y * kDataSide + x] = v;
      mean += v;
    }
  }
  mean /= kDataPixels;
  double norm = 0;
  for (auto& v : g) {
    v -= mean;
    norm += v * v;
  }
  norm = std::sqrt(norm);
  for (auto& v : g) v /= norm;
  return g;
}

// Per-region trial noise, chosen so that the simulated single-trial oracle r
// and split-half reliability fall near the real regions' (STATS.md).
struct NoiseModel {
  double gain_shape;  // trial gain ~ Gamma(k, 1/k): multiplicative variability
  double additive;    // sd of additive Gaussian noise
};

NoiseModel noise_for(int region) {
  switch (region) {
    case 1: return {1.0, 1.05};
    case 2: return {0.9, 1.2};
    default: return {0.9, 1.15};
  }
}

}  // namespace

VirtualRegionSpec virtual_region_spec(int region) {
  VirtualRegionSpec s;
  s.region = region;
  switch (region) {
    case 1: s.neurons = 103, s.train_images = 1800, s.repeats = 10; break;
    case 2: s.neurons = 55, s.train_images = 1260, s.repeats = 8; break;
    case 3: s.neurons = 102, s.train_images = 1800, s.repeats = 12; break;
    default: throw ModelError(fmt::format("no virtual region {} (expected 1, 2 or 3)", region));
  }
  return s;
}

namespace {

void check_sizes(const VirtualRegionSpec& spec) {
  if (spec.neurons < 1 || spec.train_images < 1 || spec.test_images < 1 || spec.repeats < 1) {
    throw ModelError(fmt::format("virtual region sizes must be positive (neurons {}, train images {}, "
                                 "test images {}, repeats {})",
                                 spec.neurons, spec.train_images, spec.test_images, spec.repeats));
  }
}

torch::Tensor train_images(const VirtualRegionSpec& spec, std::uint64_t seed) {
  auto rng = stream(seed, spec.region, kTrainImages);
  return dead_leaves(spec.train_images, rng);
}

// Standard normal density and distribution function.
double phi(double z) { return std::exp(-0.5 * z * z) / std::sqrt(2 * std::numbers::pi); }
double Phi(double z) { return 0.5 * std::erfc(-z / std::numbers::sqrt2); }

}  // namespace

VirtualNeurons::VirtualNeurons(const VirtualRegionSpec& spec, std::uint64_t seed)
    : VirtualNeurons(spec, seed, (check_sizes(spec), train_images(spec, seed))) {}

VirtualNeurons::VirtualNeurons(const VirtualRegionSpec& spec, std::uint64_t seed, const torch::Tensor& train)
    : region_(spec.region) {
  check_sizes(spec);
  // Receptive fields. Centres stay in the central 17x17 pixels so that the
  // Gabor envelope (sigma 2-4 px) lies mostly inside the image.
  const int m = spec.neurons;
  auto rng = stream(seed, spec.region, kNeurons);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto uniform = [&](double lo, double hi) { return lo + (hi - lo) * unit(rng); };
  std::normal_distribution<double> normal(0.0, 1.0);
  even_.resize(m), odd_.resize(m), complex_.resize(m), amplitude_.resize(m);
  centres_ = torch::empty({m, 2}, torch::kDouble);
  auto centres_a = centres_.accessor<double, 2>();
  for (int n = 0; n < m; ++n) {
    const double cy = uniform(7, 23), cx = uniform(7, 23);
    const double sigma = uniform(2, 4), wavelength = uniform(2.5, 4) * sigma;
    const double theta = uniform(0, std::numbers::pi), phase = uniform(0, 2 * std::numbers::pi);
    const double aspect = uniform(0.6, 1.0);
    complex_[n] = unit(rng) < spec.complex_fraction;
    amplitude_[n] = 0.9 * std::exp(0.35 * normal(rng));  // neurons differ in gain
    even_[n] = gabor(cy, cx, sigma, wavelength, theta, phase, aspect);
    odd_[n] = gabor(cy, cx, sigma, wavelength, theta, phase + std::numbers::pi / 2, aspect);
    centres_a[n][0] = cy;
    centres_a[n][1] = cx;
  }
  // Simple cells keep their zero point (the sign of the linear drive matters);
  // complex cells are centred on their mean energy. Both are scaled by their
  // standard deviation over the training images.
  const auto train_drive = drive(train);
  centre_.assign(m, 0.0), scale_.assign(m, 0.0);
  const int64_t n_train = spec.train_images;
  for (int n = 0; n < m; ++n) {
    double sum = 0, sum_sq = 0;
    for (int64_t i = 0; i < n_train; ++i) sum += train_drive[i * m + n];
    const double mean = sum / n_train;
    for (int64_t i = 0; i < n_train; ++i) sum_sq += (train_drive[i * m + n] - mean) * (train_drive[i * m + n] - mean);
    centre_[n] = complex_[n] ? mean : 0.0;
    scale_[n] = std::max(std::sqrt(sum_sq / std::max<int64_t>(1, n_train - 1)), 1e-12);
  }
}

// Drive on images in contrast units (grey / 255 - 0.5). Simple cells: linear
// filter; complex cells: energy of a quadrature pair. Plain loops in a fixed
// order, not LibTorch's parallel kernels: the data must not depend on the
// thread count of the process that simulates it.
std::vector<double> VirtualNeurons::drive(const torch::Tensor& images) const {
  if (images.dim() != 2 || images.size(1) != kDataPixels) {
    throw ModelError(fmt::format("virtual neurons: expected images of shape (n, {}), got ({})", kDataPixels,
                                 fmt::join(images.sizes(), ", ")));
  }
  const auto rows = images.to(torch::kDouble).contiguous();
  const int m = size();
  const int64_t count = rows.size(0);
  const auto* x = rows.data_ptr<double>();
  std::vector<double> out(static_cast<std::size_t>(count) * m);
  std::vector<double> c(kDataPixels);
  for (int64_t i = 0; i < count; ++i) {
    for (int p = 0; p < kDataPixels; ++p) c[p] = x[i * kDataPixels + p] * (1e6 / 255.0) - 0.5;
    for (int n = 0; n < m; ++n) {
      double lin = 0, quad = 0;
      for (int p = 0; p < kDataPixels; ++p) {
        lin += c[p] * even_[n][p];
        quad += c[p] * odd_[n][p];
      }
      out[i * m + n] = complex_[n] ? std::sqrt(lin * lin + quad * quad) : lin;
    }
  }
  return out;
}

// Each drive is standardised over the training images so that one threshold
// and gain shape every neuron's rate: rate = A * relu(z)^1.2.
torch::Tensor VirtualNeurons::rate_from_drive(const std::vector<double>& d) const {
  const int m = size();
  auto out = torch::empty({static_cast<int64_t>(d.size()) / m, m}, torch::kDouble);
  auto* o = out.data_ptr<double>();
  for (std::size_t k = 0; k < d.size(); ++k) {
    const int n = static_cast<int>(k % m);
    o[k] = amplitude_[n] * std::pow(std::max(0.0, (d[k] - centre_[n]) / scale_[n]), 1.2);
  }
  return out;
}

torch::Tensor VirtualNeurons::rates(const torch::Tensor& images) const { return rate_from_drive(drive(images)); }

torch::Tensor VirtualNeurons::expected(const torch::Tensor& images) const {
  const NoiseModel noise = noise_for(region_);
  // Quantiles of the gain G ~ Gamma(k, 1/k) at the midpoints of 512 equal-probability bins.
  constexpr int kBins = 512;
  boost::math::gamma_distribution<double> gain(noise.gain_shape, 1.0 / noise.gain_shape);
  std::vector<double> g(kBins);
  for (int b = 0; b < kBins; ++b) g[b] = boost::math::quantile(gain, (b + 0.5) / kBins);
  auto out = rates(images);
  auto* o = out.data_ptr<double>();
  const double sd = noise.additive;
  for (int64_t k = 0; k < out.numel(); ++k) {
    // Given G = g the trial is relu(mu + sd eps) with mu = rate g - 0.3, whose mean is
    // mu Phi(mu / sd) + sd phi(mu / sd).
    double sum = 0;
    for (double gb : g) {
      const double mu = o[k] * gb - 0.3;
      sum += mu * Phi(mu / sd) + sd * phi(mu / sd);
    }
    o[k] = sum / kBins;
  }
  return out;
}

torch::Tensor VirtualNeurons::filters() const {
  const int m = size();
  auto out = torch::empty({m, 2, kDataPixels}, torch::kDouble);
  auto a = out.accessor<double, 3>();
  for (int n = 0; n < m; ++n) {
    for (int p = 0; p < kDataPixels; ++p) a[n][0][p] = even_[n][p], a[n][1][p] = odd_[n][p];
  }
  return out;
}

torch::Tensor VirtualNeurons::complex_cells() const {
  auto out = torch::empty({size()}, torch::kBool);
  for (int n = 0; n < size(); ++n) out[n] = static_cast<bool>(complex_[n]);
  return out;
}

namespace {

// One region from its neurons (simulate_region, write_virtual_regions).
RawRegion simulate_with(const VirtualRegionSpec& spec, std::uint64_t seed, const VirtualNeurons& neurons,
                        torch::Tensor train) {
  RawRegion r;
  r.train_inputs = std::move(train);
  {
    auto rng = stream(seed, spec.region, kTestImages);
    r.test_inputs = dead_leaves(spec.test_images, rng);
  }
  r.rf_centres = neurons.centres().clone();
  r.rf_filters = neurons.filters();
  const auto train_rate = neurons.rates(r.train_inputs);
  const auto test_rate = neurons.rates(r.test_inputs);
  r.test_expected = neurons.expected(r.test_inputs);

  // One trial: relu(rate * G + sd * eps - 0.3), G ~ Gamma(k, 1/k), eps ~ N(0, 1).
  // The offset makes weak drive silent: about half of all responses are 0.
  const NoiseModel noise = noise_for(spec.region);
  auto trials = [&](const torch::Tensor& rates, std::mt19937_64& trial_rng) {
    std::gamma_distribution<double> gain(noise.gain_shape, 1.0 / noise.gain_shape);
    std::normal_distribution<double> eps(0.0, noise.additive);
    auto out = torch::empty_like(rates);
    const auto* in = rates.data_ptr<double>();
    auto* o = out.data_ptr<double>();
    for (int64_t i = 0; i < rates.numel(); ++i) {
      o[i] = std::max(0.0, in[i] * gain(trial_rng) + eps(trial_rng) - 0.3);
    }
    return out;
  };
  const int m = spec.neurons;
  {
    auto trial_rng = stream(seed, spec.region, kTrainTrials);
    r.train_responses = trials(train_rate, trial_rng);
  }
  {
    auto trial_rng = stream(seed, spec.region, kTestTrials);
    r.test_raw = torch::empty({spec.repeats, spec.test_images, m}, torch::kDouble);
    for (int k = 0; k < spec.repeats; ++k) r.test_raw[k].copy_(trials(test_rate, trial_rng));
  }
  // The trial average, summed in a fixed order (see above).
  r.test_responses = torch::zeros({spec.test_images, m}, torch::kDouble);
  for (int k = 0; k < spec.repeats; ++k) r.test_responses += r.test_raw[k];
  r.test_responses /= static_cast<double>(spec.repeats);
  return r;
}

}  // namespace

RawRegion simulate_region(const VirtualRegionSpec& spec, std::uint64_t seed) {
  check_sizes(spec);
  auto train = train_images(spec, seed);
  const VirtualNeurons neurons(spec, seed, train);
  return simulate_with(spec, seed, neurons, std::move(train));
}

void write_virtual_regions(const std::filesystem::path& out, std::uint64_t seed) {
  for (int region = 1; region <= 3; ++region) {
    const auto dir = out / fmt::format("region{}", region);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw DataError(fmt::format("{}: cannot create: {}", dir.string(), ec.message()));
    const auto spec = virtual_region_spec(region);
    auto train = train_images(spec, seed);
    const VirtualNeurons neurons(spec, seed, train);
    const auto r = simulate_with(spec, seed, neurons, std::move(train));
    write_npy(dir / "training_inputs.npy", r.train_inputs);
    write_npy(dir / "training_set.npy", r.train_responses);
    write_npy(dir / "validation_inputs.npy", r.test_inputs);
    write_npy(dir / "validation_set.npy", r.test_responses);
    write_npy(dir / "raw_validation_set.npy", r.test_raw);
    write_npy(dir / "rf_centres.npy", r.rf_centres);
    write_npy(dir / "noiseless_validation_set.npy", r.test_expected);
    write_npy(dir / "rf_filters.npy", r.rf_filters);
    write_npy(dir / "complex_cells.npy", neurons.complex_cells().to(torch::kDouble));
  }
}

}  // namespace daenr::models
