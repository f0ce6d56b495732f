#include "models/data.h"

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join

#include <cmath>

#include "models/error.h"
#include "job/hash.h"
#include "models/npy.h"
#include "models/synth.h"

namespace daenr::models {

namespace fs = std::filesystem;

namespace {


[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw DataError(fmt::format("{}: {}", file.string(), what));
}


torch::Tensor load_checked(const fs::path& file, int64_t rank) {
  auto t = read_npy(file).to(torch::kDouble);
  if (t.dim() != rank) {
    fail(file, fmt::format("expected a {}-D array, found shape {}", rank, shape_string(t)));
  }
  if (!torch::isfinite(t).all().item<bool>()) {
    const auto bad = (~torch::isfinite(t)).sum().item<int64_t>();
    fail(file, fmt::format("contains {} NaN or infinite value{}", bad, bad == 1 ? "" : "s"));
  }
  return t;
}

// Responses are spike counts or rates: the Poisson loss s_hat - s log s_hat has no minimum for
// s < 0, so such a file would train on nonsense without a word.
void require_non_negative(const fs::path& file, const torch::Tensor& t) {
  const auto negative = (t < 0).sum().item<int64_t>();
  if (negative > 0) {
    fail(file, fmt::format("{} negative response{} (of {}); responses must be >= 0 for the Poisson loss",
                           negative, negative == 1 ? "" : "s", t.numel()));
  }
}

}  // namespace

RawRegion load_antolik_region(const fs::path& dir) {
  if (!fs::is_directory(dir)) {
    fail(dir, "no such region folder (expected training_inputs.npy, training_set.npy, "
              "validation_inputs.npy, validation_set.npy)");
  }
  const auto train_inputs = dir / "training_inputs.npy";
  if (!fs::exists(train_inputs)) {
    fail(train_inputs,
         "missing: the training images are not in this folder (the partial copy in "
         "shared/data/antolik2016 lacks them; the full data set is PLOS Comput Biol supporting "
         "file S1, doi:10.1371/journal.pcbi.1004927.s001)");
  }
  RawRegion r;
  r.train_inputs = load_checked(train_inputs, 2);
  r.train_responses = load_checked(dir / "training_set.npy", 2);
  r.test_inputs = load_checked(dir / "validation_inputs.npy", 2);
  r.test_responses = load_checked(dir / "validation_set.npy", 2);
  if (fs::exists(dir / "raw_validation_set.npy")) r.test_raw = load_checked(dir / "raw_validation_set.npy", 3);
  if (fs::exists(dir / "rf_centres.npy")) r.rf_centres = load_checked(dir / "rf_centres.npy", 2);
  if (fs::exists(dir / "noiseless_validation_set.npy")) {
    r.test_expected = load_checked(dir / "noiseless_validation_set.npy", 2);
  }
  if (fs::exists(dir / "rf_filters.npy")) r.rf_filters = load_checked(dir / "rf_filters.npy", 3);
  require_non_negative(dir / "training_set.npy", r.train_responses);
  require_non_negative(dir / "validation_set.npy", r.test_responses);
  if (r.test_raw.defined()) require_non_negative(dir / "raw_validation_set.npy", r.test_raw);

  if (r.train_inputs.size(1) != kDataPixels) {
    fail(train_inputs, fmt::format("expected {} columns (31x31 images), found shape {}", kDataPixels,
                                   shape_string(r.train_inputs)));
  }
  if (r.test_inputs.size(1) != kDataPixels) {
    fail(dir / "validation_inputs.npy", fmt::format("expected {} columns (31x31 images), found shape {}",
                                                    kDataPixels, shape_string(r.test_inputs)));
  }
  if (r.train_responses.size(0) != r.train_inputs.size(0)) {
    fail(dir / "training_set.npy",
         fmt::format("{} rows of responses for {} training images in training_inputs.npy",
                     r.train_responses.size(0), r.train_inputs.size(0)));
  }
  const int64_t neurons = r.train_responses.size(1);
  if (r.test_responses.size(0) != r.test_inputs.size(0) || r.test_responses.size(1) != neurons) {
    fail(dir / "validation_set.npy",
         fmt::format("shape {} does not match {} test images and {} neurons",
                     shape_string(r.test_responses), r.test_inputs.size(0), neurons));
  }
  if (r.test_raw.defined() &&
      (r.test_raw.size(1) != r.test_inputs.size(0) || r.test_raw.size(2) != neurons)) {
    fail(dir / "raw_validation_set.npy",
         fmt::format("shape {} does not match (repeats, {}, {})", shape_string(r.test_raw),
                     r.test_inputs.size(0), neurons));
  }
  if (r.rf_centres.defined() && (r.rf_centres.size(0) != neurons || r.rf_centres.size(1) != 2)) {
    fail(dir / "rf_centres.npy",
         fmt::format("shape {} does not match ({}, 2)", shape_string(r.rf_centres), neurons));
  }
  if (r.test_expected.defined() && (r.test_expected.size(0) != r.test_inputs.size(0) ||
                                    r.test_expected.size(1) != neurons)) {
    fail(dir / "noiseless_validation_set.npy",
         fmt::format("shape {} does not match {} test images and {} neurons", shape_string(r.test_expected),
                     r.test_inputs.size(0), neurons));
  }
  if (r.rf_filters.defined() &&
      (r.rf_filters.size(0) != neurons || r.rf_filters.size(1) != 2 || r.rf_filters.size(2) != kDataPixels)) {
    fail(dir / "rf_filters.npy",
         fmt::format("shape {} does not match ({}, 2, {})", shape_string(r.rf_filters), neurons, kDataPixels));
  }
  return r;
}

RawRegion load_source(const std::string& source, std::uint64_t data_seed) {
  const std::string prefix = "virtual:";
  if (source.rfind(prefix, 0) == 0) {
    const std::string k = source.substr(prefix.size());
    if (k != "1" && k != "2" && k != "3") {
      throw DataError(fmt::format("data \"{}\": no such virtual region (expected virtual:1, "
                                  "virtual:2 or virtual:3)",
                                  source));
    }
    return simulate_region(virtual_region_spec(std::stoi(k)), data_seed);
  }
  return load_antolik_region(source);
}

RawRegion select_neurons(const RawRegion& region, const std::vector<int64_t>& neurons) {
  const int64_t m = region.train_responses.size(1);
  if (neurons.empty()) throw DataError("neuron selection is empty: no neuron to fit");
  for (auto n : neurons) {
    if (n < 0 || n >= m) throw DataError(fmt::format("neuron {} does not exist (the region has {})", n, m));
  }
  const auto idx = torch::tensor(neurons, torch::kLong);
  RawRegion out = region;
  out.train_responses = region.train_responses.index_select(1, idx);
  out.test_responses = region.test_responses.index_select(1, idx);
  if (region.test_raw.defined()) out.test_raw = region.test_raw.index_select(2, idx);
  if (region.rf_centres.defined()) out.rf_centres = region.rf_centres.index_select(0, idx);
  if (region.test_expected.defined()) out.test_expected = region.test_expected.index_select(1, idx);
  if (region.rf_filters.defined()) out.rf_filters = region.rf_filters.index_select(0, idx);
  return out;
}

std::string fingerprint(const RawRegion& region) {
  job::Sha256 h;
  auto add = [&](const char* name, const torch::Tensor& t) {
    h.update(name);
    if (!t.defined()) {
      h.update("-");
      return;
    }
    const auto c = t.to(torch::kDouble).contiguous();
    for (auto d : c.sizes()) h.update(fmt::format("{},", d));
    h.update(c.data_ptr(), c.nbytes());
  };
  add("train_inputs", region.train_inputs);
  add("train_responses", region.train_responses);
  add("test_inputs", region.test_inputs);
  add("test_responses", region.test_responses);
  add("test_raw", region.test_raw);
  // The ground truth of a simulated region's folder enters only where it exists, so that the
  // fingerprints (and job ids) of recordings stay what they were before it could be read.
  if (region.test_expected.defined()) add("test_expected", region.test_expected);
  return h.hex().substr(0, 16);
}

torch::Tensor resize_31_to_32(const torch::Tensor& rows) {
  namespace F = torch::nn::functional;
  auto images = rows.to(torch::kFloat).reshape({-1, 1, 31, 31});
  return F::interpolate(images, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{32, 32})
                                    .mode(torch::kBilinear)
                                    .align_corners(false));
}

Dataset prepare(const RawRegion& raw, std::uint64_t split_seed, double val_fraction) {
  const int64_t n = raw.train_inputs.size(0);
  const int64_t n_val = std::llround(static_cast<double>(n) * val_fraction);
  if (n_val < 1 || n - n_val < 1) {
    throw DataError(fmt::format("{} training images cannot be split {:.0f}/{:.0f}", n,
                                100 * (1 - val_fraction), 100 * val_fraction));
  }
  Dataset d;
  d.pixel_min = raw.train_inputs.min().item<double>();
  d.pixel_max = raw.train_inputs.max().item<double>();
  if (!(d.pixel_max > d.pixel_min)) {
    throw DataError("training images are constant: cannot map their range to [-1, 1]");
  }
  // The training file's range goes to [-1, 1]; the test images use the same map
  // (their own range is not consulted: that would leak test statistics).
  auto normalise = [&](const torch::Tensor& rows) {
    return (2.0 * (rows - d.pixel_min) / (d.pixel_max - d.pixel_min) - 1.0).to(torch::kFloat);
  };
  auto gen = at::detail::createCPUGenerator(split_seed);
  auto perm = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kLong));
  auto val_idx = std::get<0>(perm.slice(0, 0, n_val).sort());
  auto train_idx = std::get<0>(perm.slice(0, n_val).sort());

  const auto images = normalise(raw.train_inputs);
  const auto responses = raw.train_responses.to(torch::kFloat);
  d.train_images = resize_31_to_32(images.index_select(0, train_idx));
  d.val_images = resize_31_to_32(images.index_select(0, val_idx));
  d.train_responses = responses.index_select(0, train_idx);
  d.val_responses = responses.index_select(0, val_idx);
  d.train_images31 = images.index_select(0, train_idx).reshape({-1, 31, 31});
  d.test_images = resize_31_to_32(normalise(raw.test_inputs));
  d.test_responses = raw.test_responses.to(torch::kFloat);
  if (raw.test_raw.defined()) d.test_raw = raw.test_raw.to(torch::kFloat);
  d.rf_centres = raw.rf_centres;
  if (raw.test_expected.defined()) d.test_expected = raw.test_expected.to(torch::kDouble);
  return d;
}

std::string shape_string(const torch::Tensor& t) {
  return t.defined() ? fmt::format("({})", fmt::join(t.sizes(), ", ")) : "undefined";
}

}  // namespace daenr::models
