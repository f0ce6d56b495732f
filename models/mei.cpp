#include "models/mei.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join
#include <limits>

#include "models/data.h"
#include "models/error.h"

namespace daenr::models {

namespace {

// The model sees 32x32 images (the data's 31x31, resized by prepare); MEIs are optimised at 32.
constexpr int kMeiSide = 32;
constexpr int64_t kMeiPixels = kMeiSide * kMeiSide;

// SplitMix64's finaliser: a bijective mix whose outputs for neighbouring inputs look
// independent, so that (seed, target, start, step) can address random draws directly. A
// draw then depends on its own address only, never on how many draws other images made
// before it (which a shared generator would make depend on the batch).
std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Distinct salts keep a start's noise and its shifts apart even where their counters meet.
constexpr std::uint64_t kNoiseSalt = 0x6E6F697365ULL;   // "noise"
constexpr std::uint64_t kJitterSalt = 0x6A69747465ULL;  // "jitte"

std::uint64_t image_key(std::uint64_t seed, int64_t target, int64_t start) {
  return mix64(mix64(mix64(seed) ^ static_cast<std::uint64_t>(target)) ^
               static_cast<std::uint64_t>(start));
}

// Symmetric reflection about the edges (the edge pixel repeated: ... 1 0 | 0 1 ... n-1 | n-1
// n-2 ...), folded as often as needed so that any kernel radius works on any side.
int fold(int i, int n) {
  const int period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

// Normalised Gaussian weights at offsets -radius..radius, radius = ceil(3 sigma).
std::vector<double> gaussian_kernel(double sigma) {
  const int radius = std::max(1, static_cast<int>(std::ceil(3 * sigma)));
  std::vector<double> w(2 * radius + 1);
  double total = 0;
  for (int k = -radius; k <= radius; ++k) {
    w[k + radius] = std::exp(-0.5 * k * k / (sigma * sigma));
    total += w[k + radius];
  }
  for (auto& v : w) v /= total;
  return w;
}

// Separable blur of one side x side image with reflected edges. Plain loops in a fixed order:
// an image's result cannot depend on the other images of a batch.
void blur(const double* in, double* out, int side, const std::vector<double>& kernel) {
  const int radius = static_cast<int>(kernel.size() / 2);
  std::vector<double> rows(static_cast<size_t>(side) * side);
  for (int r = 0; r < side; ++r) {
    for (int c = 0; c < side; ++c) {
      double s = 0;
      for (int k = -radius; k <= radius; ++k)
        s += kernel[k + radius] * in[r * side + fold(c + k, side)];
      rows[r * side + c] = s;
    }
  }
  for (int r = 0; r < side; ++r) {
    for (int c = 0; c < side; ++c) {
      double s = 0;
      for (int k = -radius; k <= radius; ++k)
        s += kernel[k + radius] * rows[fold(r + k, side) * side + c];
      out[r * side + c] = s;
    }
  }
}

// Puts one image at mean `level` and pixel std `contrast`, inside [lo, hi]. Centre and scale
// first, clamp last: the range is a hard bound (the pixel values images can take), while the
// mean and contrast are what makes neurons comparable, so they are restored as far as the range
// allows. A clamp lowers the contrast (and moves the mean when the clipping is lopsided), so the
// centre-scale-clamp round is repeated until the clamped image has the mean and contrast (to
// 1e-9 of the contrast), at most 50 times: the fixed point is clamp(level' + a (x - m)), where
// a peaked MEI (a small bright blob) has its peak flattened at lo or hi and the rest stretched
// to make up the contrast. Only a contrast out of reach in the range (near (hi - lo) / 2) stops
// short of it. A constant image has no contrast to scale and becomes uniform at `level`.
void project(double* v, int64_t n, double level, double contrast, double lo, double hi) {
  const double tol = 1e-9 * contrast;
  for (int round = 0; round < 50; ++round) {
    double mean = 0;
    for (int64_t p = 0; p < n; ++p) mean += v[p];
    mean /= static_cast<double>(n);
    double var = 0;
    bool inside = true;
    for (int64_t p = 0; p < n; ++p) {
      var += (v[p] - mean) * (v[p] - mean);
      inside = inside && v[p] >= lo && v[p] <= hi;
    }
    const double sd = std::sqrt(var / static_cast<double>(n));
    if (!(sd > 1e-12)) {
      std::fill(v, v + n, level);
      return;
    }
    if (inside && std::abs(mean - level) <= tol && std::abs(sd - contrast) <= tol) return;
    const double a = contrast / sd;
    for (int64_t p = 0; p < n; ++p) v[p] = std::clamp(level + a * (v[p] - mean), lo, hi);
  }
}

void validate(const std::vector<int64_t>& targets, const MeiOptions& o) {
  const auto& s = o.settings;
  auto bad = [](const std::string& what) { throw ModelError("synthesise: " + what); };
  if (targets.empty()) bad("no target neurons");
  for (auto t : targets) {
    if (t < 0) bad(fmt::format("target neuron {} is negative", t));
  }
  if (s.starts < 1) bad(fmt::format("mei.starts = {}; expected >= 1", s.starts));
  if (s.steps < 0) bad(fmt::format("mei.steps = {}; expected >= 0", s.steps));
  if (o.targets_per_call < 0) {
    bad(fmt::format("targets_per_call = {}; expected >= 0 (0: all)", o.targets_per_call));
  }
  if (!(s.step_size > 0) || !std::isfinite(s.step_size)) {
    bad(fmt::format("mei.step_size = {}; expected > 0", s.step_size));
  }
  if (!(s.blur_start >= 0) || !(s.blur_end >= 0) || !std::isfinite(s.blur_start) ||
      !std::isfinite(s.blur_end)) {
    bad(fmt::format("mei.blur_start = {}, mei.blur_end = {}; expected >= 0", s.blur_start,
                    s.blur_end));
  }
  if ((s.blur_start == 0) != (s.blur_end == 0)) {
    bad(
        fmt::format("mei.blur_start = {}, mei.blur_end = {}; both 0 (no blur) or both > 0 (a "
                    "geometric decay cannot reach or leave 0)",
                    s.blur_start, s.blur_end));
  }
  if (s.jitter < 0 || s.jitter >= kMeiSide) {
    bad(fmt::format("mei.jitter = {}; expected 0..{}", s.jitter, kMeiSide - 1));
  }
  if (!(o.contrast > 0) || !std::isfinite(o.contrast)) {
    bad(fmt::format("contrast = {}; expected > 0", o.contrast));
  }
  if (!(o.lo < o.hi)) bad(fmt::format("range [{}, {}] is empty", o.lo, o.hi));
  if (!(o.mean_level > o.lo && o.mean_level < o.hi)) {
    bad(fmt::format("mean_level = {} is outside the range ({}, {})", o.mean_level, o.lo, o.hi));
  }
}

// The responses as (B, N) with every target a column, else a one-line ModelError.
void check_responses(const torch::Tensor& a, int64_t batch, const std::vector<int64_t>& targets,
                     const char* function) {
  if (!a.defined() || a.dim() != 2 || a.size(0) != batch) {
    throw ModelError(fmt::format("{}: responses of {} images have shape {}; expected ({}, N)",
                                 function, batch, shape_string(a), batch));
  }
  for (auto t : targets) {
    if (t < 0 || t >= a.size(1)) {
      throw ModelError(fmt::format("{}: target neuron {} does not exist (the responses have {})",
                                   function, t, a.size(1)));
    }
  }
}

// objective[b][k] for targets[k] of row b, in float64 with plain loops (a row's value depends
// on that row alone). The softmax share is exp(a_t - max) / sum exp(a_j - max): the max keeps
// exp from overflowing for large responses.
void row_objectives(const torch::Tensor& responses, const std::vector<int64_t>& targets,
                    job::MeiObjective objective, bool per_row, double* out) {
  const auto a = responses.detach().to(torch::kCPU, torch::kDouble).contiguous();
  const int64_t rows = a.size(0), n = a.size(1);
  const double* pa = a.data_ptr<double>();
  const int64_t k_count = static_cast<int64_t>(targets.size());
  for (int64_t b = 0; b < rows; ++b) {
    const double* row = pa + b * n;
    double max = -std::numeric_limits<double>::infinity(), total = 0;
    if (objective == job::MeiObjective::kOneHot) {
      for (int64_t j = 0; j < n; ++j) max = std::max(max, row[j]);
      for (int64_t j = 0; j < n; ++j) total += std::exp(row[j] - max);
    }
    auto value = [&](int64_t t) {
      return objective == job::MeiObjective::kOneHot ? std::exp(row[t] - max) / total : row[t];
    };
    if (per_row) {
      out[b] = value(targets[b]);
    } else {
      for (int64_t k = 0; k < k_count; ++k) out[b * k_count + k] = value(targets[k]);
    }
  }
}

// The least-squares inverse (31, 32) of prepare()'s bilinear 31 -> 32 resize along one axis
// (align_corners = false): the resize is R (32, 31) per axis, Y = R X R^T, and pinv(R) Y
// pinv(R)^T returns X exactly for any Y in its range, and otherwise the 31x31 image whose
// resize is nearest Y: the file image the model would see as Y. R has full column rank, its
// singular values in [0.25, 1.02]: the smallest belongs to pixel-alternating patterns where the
// two grids are half a pixel apart (mid-image), which the resize damps to a quarter, so such
// a pattern in Y comes back up to 4x stronger per axis. MEIs, built from blurred gradients,
// carry little of it. Built from the same interpolate call prepare uses, so it cannot drift
// from it.
torch::Tensor inverse_resize_matrix() {
  namespace F = torch::nn::functional;
  const auto impulses = torch::eye(kDataSide, torch::kDouble).reshape({kDataSide, 1, kDataSide});
  const auto upsampled = F::interpolate(impulses, F::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{kMeiSide})
                                                      .mode(torch::kLinear)
                                                      .align_corners(false));
  const auto r = upsampled.reshape({kDataSide, kMeiSide}).t();  // (32, 31): column i = impulse i
  return torch::linalg::pinv(r);
}

// Model images (n, 1, 32, 32) -> (n, 31, 31) float64 on the same [-1, 1] scale.
torch::Tensor to_grid31(const torch::Tensor& images32, const char* function) {
  if (!images32.defined() || images32.dim() != 4 || images32.size(1) != 1 ||
      images32.size(2) != kMeiSide || images32.size(3) != kMeiSide) {
    throw ModelError(fmt::format("{}: expected images (n, 1, 32, 32), found shape {}", function,
                                 shape_string(images32)));
  }
  const auto p = inverse_resize_matrix();
  const auto y = images32.detach().to(torch::kCPU, torch::kDouble).reshape({-1, kMeiSide, kMeiSide});
  return p.matmul(y).matmul(p.t());
}

torch::Tensor one_image31(const torch::Tensor& image32, const char* function) {
  if (!image32.defined() || image32.numel() != kMeiPixels ||
      (image32.dim() != 3 && image32.dim() != 4)) {
    throw ModelError(
        fmt::format("{}: expected one image (1, 32, 32) or (1, 1, 32, 32), found "
                    "shape {}",
                    function, image32.defined() ? shape_string(image32) : "undefined"));
  }
  return to_grid31(image32.reshape({1, 1, kMeiSide, kMeiSide}), function).reshape({kDataSide, kDataSide});
}

// Pearson r of two equally long float64 vectors; 0 when either is constant.
double pearson(const torch::Tensor& a, const torch::Tensor& b) {
  const auto ac = a - a.mean();
  const auto bc = b - b.mean();
  const double na = ac.norm().item<double>(), nb = bc.norm().item<double>();
  const double scale = std::sqrt(static_cast<double>(a.numel()));
  if (na / scale < 1e-12 || nb / scale < 1e-12) return 0.0;
  return std::clamp((ac * bc).sum().item<double>() / (na * nb), -1.0, 1.0);
}

}  // namespace

MeiResult synthesise(const ResponseFunction& responses, const std::vector<int64_t>& targets,
                     const MeiOptions& options) {
  validate(targets, options);
  const auto& s = options.settings;
  const int64_t k_count = static_cast<int64_t>(targets.size());
  const int64_t starts = s.starts;
  const int64_t batch = k_count * starts;
  // Row b = k * starts + start holds target k's start `start`.
  std::vector<std::uint64_t> keys(batch);
  std::vector<int64_t> row_target(batch);
  for (int64_t k = 0; k < k_count; ++k) {
    for (int64_t st = 0; st < starts; ++st) {
      keys[k * starts + st] = image_key(s.seed, targets[k], st);
      row_target[k * starts + st] = targets[k];
    }
  }

  auto images = torch::empty({batch, 1, kMeiSide, kMeiSide}, torch::kFloat);
  float* pixels = images.data_ptr<float>();
  std::vector<double> work(kMeiPixels), blurred(kMeiPixels);
  auto store = [&](int64_t b) {
    for (int64_t p = 0; p < kMeiPixels; ++p) pixels[b * kMeiPixels + p] = static_cast<float>(work[p]);
  };
  // White noise has no structure to bias the ascent; held at the target mean and contrast from
  // the start so the first steps move it in the space it stays in.
  for (int64_t b = 0; b < batch; ++b) {
    auto gen = at::detail::createCPUGenerator(mix64(keys[b] ^ kNoiseSalt));
    const auto noise = torch::randn({kMeiPixels}, gen, torch::TensorOptions().dtype(torch::kDouble));
    std::copy_n(noise.data_ptr<double>(), kMeiPixels, work.begin());
    project(work.data(), kMeiPixels, options.mean_level, options.contrast, options.lo, options.hi);
    store(b);
  }

  const auto target_index = torch::tensor(row_target, torch::kLong).reshape({batch, 1});
  // The rows `responses` sees at once: targets_per_call targets' starts (the last group may
  // be smaller), or all of them.
  const int64_t per_call =
      options.targets_per_call > 0 ? std::min(options.targets_per_call, k_count) : k_count;
  std::vector<std::pair<int64_t, int64_t>> groups;
  for (int64_t k = 0; k < k_count; k += per_call) {
    groups.emplace_back(k * starts, std::min(k + per_call, k_count) * starts);
  }
  const int jitter = s.jitter;
  const double step = s.step_size * options.contrast;
  for (int t = 0; t < s.steps; ++t) {
    // A circular shift as a gather: differentiable, so the gradient reaches the unshifted image
    // (shifted back) through autograd, and each image can have its own shift in one batch.
    auto index = torch::empty({batch, kMeiPixels}, torch::kLong);
    int64_t* pi = index.data_ptr<int64_t>();
    for (int64_t b = 0; b < batch; ++b) {
      int dy = 0, dx = 0;
      if (jitter > 0) {
        const std::uint64_t h = mix64(keys[b] ^ mix64(kJitterSalt + static_cast<std::uint64_t>(t)));
        const auto span = static_cast<std::uint64_t>(2 * jitter + 1);
        dy = static_cast<int>(h % span) - jitter;
        dx = static_cast<int>((h >> 32) % span) - jitter;
      }
      for (int r = 0; r < kMeiSide; ++r) {
        for (int c = 0; c < kMeiSide; ++c) {
          pi[b * kMeiPixels + r * kMeiSide + c] =
              ((r - dy + kMeiSide) % kMeiSide) * kMeiSide + (c - dx + kMeiSide) % kMeiSide;
        }
      }
    }
    torch::Tensor grad;
    {
      torch::AutoGradMode enable(true);
      std::vector<torch::Tensor> leaves, objectives;
      for (const auto& [begin, end] : groups) {
        const int64_t rows = end - begin;
        auto x = images.slice(0, begin, end).detach().requires_grad_(true);
        auto shifted = x.reshape({rows, kMeiPixels})
                           .gather(1, index.slice(0, begin, end))
                           .reshape({rows, 1, kMeiSide, kMeiSide});
        auto a = responses(shifted);
        check_responses(a, rows, targets, "synthesise");
        if (!a.requires_grad()) {
          throw ModelError(
              "synthesise: the responses do not depend differentiably on the images "
              "(computed under NoGradGuard, or detached?)");
        }
        // The one-hot share's gradient is taken through its logarithm: grad log p = grad p / p
        // points the same way for each image, and the step is normalised per image, so the
        // step is the same, while p underflowing in float32 for a silent target cannot zero it.
        const auto per_image = s.objective == job::MeiObjective::kOneHot
                                   ? torch::log_softmax(a.to(torch::kDouble), 1)
                                   : a;
        objectives.push_back(
            per_image.gather(1, target_index.slice(0, begin, end).to(a.device())).sum());
        leaves.push_back(x);
      }
      // One backward pass for every group: each image's gradient is its own objective's (the
      // objectives are summed, and no image enters another's).
      const auto total = torch::stack(objectives).sum();
      const auto grads = torch::autograd::grad({total}, leaves, /*grad_outputs=*/{},
                                               /*retain_graph=*/false, /*create_graph=*/false,
                                               /*allow_unused=*/true);
      std::vector<torch::Tensor> parts;
      for (size_t g = 0; g < grads.size(); ++g) {
        parts.push_back(grads[g].defined() ? grads[g].detach().to(torch::kCPU, torch::kFloat)
                                           : torch::zeros_like(leaves[g]).detach());
      }
      grad = torch::cat(parts).contiguous();
    }
    // Blur first, at a scale that shrinks over the steps: coarse structure is found first and
    // finer detail is allowed later, which keeps high-frequency patterns the model is blind to
    // (or over-sensitive to) from taking over the image.
    std::vector<double> kernel;
    if (s.blur_start > 0) {
      const double frac = s.steps > 1 ? static_cast<double>(t) / (s.steps - 1) : 0.0;
      kernel = gaussian_kernel(s.blur_start * std::pow(s.blur_end / s.blur_start, frac));
    }
    const float* pg = grad.data_ptr<float>();
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t p = 0; p < kMeiPixels; ++p) work[p] = pg[b * kMeiPixels + p];
      if (!kernel.empty()) {
        blur(work.data(), blurred.data(), kMeiSide, kernel);
        work.swap(blurred);
      }
      // Divided by its RMS, a step's RMS is step_size x contrast, as MeiSettings documents it
      // ("in units of the image's RMS contrast"); a mean-absolute normalisation would make the
      // step grow with the gradient's sparsity (twice as large for a compact receptive field).
      double sum_sq = 0;
      for (int64_t p = 0; p < kMeiPixels; ++p) sum_sq += work[p] * work[p];
      const double rms = std::sqrt(sum_sq / static_cast<double>(kMeiPixels));
      // A zero gradient (a rectified neuron that this shift silences) leaves the image where it
      // is; the next shift may wake it.
      const double scale = rms > 0 ? step / rms : 0.0;
      for (int64_t p = 0; p < kMeiPixels; ++p) {
        work[p] = static_cast<double>(pixels[b * kMeiPixels + p]) + scale * work[p];
      }
      project(work.data(), kMeiPixels, options.mean_level, options.contrast, options.lo, options.hi);
      store(b);
    }
  }

  std::vector<double> final_values(batch);
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> parts;
    for (const auto& [begin, end] : groups) {
      auto a = responses(images.slice(0, begin, end));
      check_responses(a, end - begin, targets, "synthesise");
      parts.push_back(a.detach().to(torch::kCPU, torch::kDouble));
    }
    row_objectives(torch::cat(parts), row_target, s.objective, /*per_row=*/true,
                   final_values.data());
  }
  MeiResult result;
  result.start_objectives = torch::tensor(final_values, torch::kDouble).reshape({k_count, starts});
  result.objective = torch::empty({k_count}, torch::kDouble);
  std::vector<int64_t> best_rows(k_count);
  for (int64_t k = 0; k < k_count; ++k) {
    int64_t best = 0;
    for (int64_t st = 1; st < starts; ++st) {
      if (final_values[k * starts + st] > final_values[k * starts + best]) best = st;
    }
    best_rows[k] = k * starts + best;
    result.objective[k] = final_values[k * starts + best];
  }
  result.images = images.index_select(0, torch::tensor(best_rows, torch::kLong)).contiguous();
  return result;
}

torch::Tensor objective_values(const torch::Tensor& responses, const std::vector<int64_t>& targets,
                               job::MeiObjective objective) {
  if (!responses.defined() || responses.dim() != 2) {
    throw ModelError(fmt::format("objective_values: responses must be (B, N), found shape {}",
                                 responses.defined() ? shape_string(responses) : "undefined"));
  }
  check_responses(responses, responses.size(0), targets, "objective_values");
  auto out =
      torch::empty({responses.size(0), static_cast<int64_t>(targets.size())}, torch::kDouble);
  row_objectives(responses, targets, objective, /*per_row=*/false, out.data_ptr<double>());
  return out;
}

torch::Tensor to_file_units(const torch::Tensor& images32, double pixel_min, double pixel_max) {
  if (!(pixel_max > pixel_min)) {
    throw ModelError(fmt::format("to_file_units: pixel_max = {} is not above pixel_min = {}",
                                 pixel_max, pixel_min));
  }
  const auto x = to_grid31(images32, "to_file_units");
  return ((x + 1.0) * 0.5 * (pixel_max - pixel_min) + pixel_min).reshape({-1, kDataSide * kDataSide});
}

double rf_correlation(const torch::Tensor& image32, const torch::Tensor& filters,
                      bool complex_cell) {
  if (!filters.defined() || filters.dim() != 2 || filters.size(0) != 2 ||
      filters.size(1) != kDataSide * kDataSide) {
    throw ModelError(fmt::format("rf_correlation: expected a filter pair (2, 961), found shape {}",
                                 filters.defined() ? shape_string(filters) : "undefined"));
  }
  const auto x = one_image31(image32, "rf_correlation").reshape({-1});
  const auto f = filters.detach().to(torch::kCPU, torch::kDouble);
  const double even = pearson(x, f[0]);
  if (!complex_cell) return even;
  const double odd = pearson(x, f[1]);
  return std::sqrt(even * even + odd * odd);
}

std::array<double, 2> image_centre(const torch::Tensor& image32) {
  const auto x = one_image31(image32, "image_centre").contiguous();
  const auto dev = x - x.mean();
  auto energy = dev.square().contiguous();
  if (!(energy.max().item<double>() > 1e-24)) {
    throw ModelError("image_centre: the image is constant; it has no centre");
  }
  // Sigma 1 px: enough to make the median a baseline of the local energy rather than of single
  // pixels, small against a receptive field (sigma 2-4 px), so the centroid barely moves.
  auto smooth = torch::empty_like(energy);
  blur(energy.data_ptr<double>(), smooth.data_ptr<double>(), kDataSide, gaussian_kernel(1.0));
  auto weight = (smooth - smooth.reshape({-1}).median()).clamp_min(0.0);
  if (!(weight.sum().item<double>() > 0)) weight = smooth;  // a uniform map: no floor to remove
  const auto rows = torch::arange(kDataSide, torch::kDouble).unsqueeze(1);
  const auto cols = torch::arange(kDataSide, torch::kDouble).unsqueeze(0);
  const double total = weight.sum().item<double>();
  return {(weight * rows).sum().item<double>() / total,
          (weight * cols).sum().item<double>() / total};
}

}  // namespace daenr::models
