#include "models/metrics.h"

#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <limits>
#include <string>
#include <vector>

#include "models/error.h"

namespace daenr::models {

namespace F = torch::nn::functional;

namespace {

// Below this population standard deviation a neuron counts as constant, and its
// correlation is reported as 0 (MODELS.md, "Metrics").
constexpr double kConstantStd = 1e-5;
// FEVE is reported as 0 for a neuron whose explainable variance is at most this.
constexpr double kNoExplainableVar = kConstantStd * kConstantStd;
// A pixel whose std over the images is below this is constant for the STA.
constexpr double kConstantPixelStd = 1e-12;

// SSIM constants (Wang et al. 2004) for data on [0, 1].
constexpr int kSsimWindow = 11;
constexpr double kSsimSigma = 1.5;
constexpr double kSsimC1 = 0.01 * 0.01;
constexpr double kSsimC2 = 0.03 * 0.03;

std::string shape_of(const torch::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "(";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + ")";
}

void require_defined(const torch::Tensor& t, const char* what, const char* fn) {
  if (!t.defined()) throw ModelError(fmt::format("{}: {} is undefined", fn, what));
}

// A normalised 1-D Gaussian, taps at -radius..radius, float64 on `device`.
torch::Tensor gaussian_1d(int64_t radius, double sigma, torch::Device device) {
  auto i = torch::arange(-radius, radius + 1, torch::TensorOptions(torch::kDouble).device(device));
  auto g = torch::exp(-(i * i) / (2.0 * sigma * sigma));
  return g / g.sum();
}

}  // namespace

double mse(const torch::Tensor& x, const torch::Tensor& y) {
  require_defined(x, "x", "mse");
  require_defined(y, "y", "mse");
  if (x.sizes() != y.sizes()) {
    throw ModelError(fmt::format("mse: shapes differ: {} vs {}", shape_of(x), shape_of(y)));
  }
  if (x.numel() == 0) throw ModelError("mse: empty tensors");
  auto d = x.to(torch::kDouble) - y.to(torch::kDouble).to(x.device());
  return (d * d).mean().item<double>();
}

double psnr(double mse_value, double data_range) {
  if (std::isnan(mse_value) || mse_value < 0) {
    throw ModelError(fmt::format("psnr: mse must be >= 0, got {}", mse_value));
  }
  if (!(data_range > 0)) {
    throw ModelError(fmt::format("psnr: data range must be > 0, got {}", data_range));
  }
  // Identical images: the ratio is unbounded and PSNR is +infinity by convention.
  if (mse_value == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(data_range * data_range / mse_value);
}

torch::Tensor ssim_per_image(const torch::Tensor& x, const torch::Tensor& y) {
  require_defined(x, "x", "ssim");
  require_defined(y, "y", "ssim");
  if (x.sizes() != y.sizes()) {
    throw ModelError(fmt::format("ssim: shapes differ: {} vs {}", shape_of(x), shape_of(y)));
  }
  if (x.dim() != 4 || x.size(1) != 1) {
    throw ModelError(fmt::format("ssim: expected (n, 1, H, W) images, got {}", shape_of(x)));
  }
  if (x.size(0) == 0) throw ModelError("ssim: no images");
  if (x.size(2) < kSsimWindow || x.size(3) < kSsimWindow) {
    throw ModelError(fmt::format("ssim: images of {}x{} are smaller than the {}x{} window",
                                 x.size(2), x.size(3), kSsimWindow, kSsimWindow));
  }
  // [-1, 1] -> [0, 1], so that C1 and C2 are those of the paper for unit range.
  auto a = (x.to(torch::kDouble) + 1.0) / 2.0;
  auto b = (y.to(torch::kDouble).to(x.device()) + 1.0) / 2.0;
  auto g = gaussian_1d(kSsimWindow / 2, kSsimSigma, a.device());
  // The 2-D window is the outer product of normalised 1-D Gaussians, so it sums to 1.
  auto window = torch::outer(g, g).reshape({1, 1, kSsimWindow, kSsimWindow});

  // Weighted means over each window at VALID positions only: (n, 1, H, W) ->
  // (n, 1, H - 10, W - 10); no window reaches past the border.
  auto mu_a = F::conv2d(a, window);
  auto mu_b = F::conv2d(b, window);
  // Population (weighted) moments: E[x^2] - E[x]^2 under the window weights.
  auto var_a = F::conv2d(a * a, window) - mu_a * mu_a;
  auto var_b = F::conv2d(b * b, window) - mu_b * mu_b;
  auto cov_ab = F::conv2d(a * b, window) - mu_a * mu_b;

  auto map = ((2.0 * mu_a * mu_b + kSsimC1) * (2.0 * cov_ab + kSsimC2)) /
             ((mu_a * mu_a + mu_b * mu_b + kSsimC1) * (var_a + var_b + kSsimC2));
  return map.mean({1, 2, 3}).contiguous();
}

double ssim(const torch::Tensor& x, const torch::Tensor& y) {
  return ssim_per_image(x, y).mean().item<double>();
}

torch::Tensor pearson_per_neuron(const torch::Tensor& pred, const torch::Tensor& target) {
  require_defined(pred, "pred", "pearson");
  require_defined(target, "target", "pearson");
  if (pred.sizes() != target.sizes()) {
    throw ModelError(
        fmt::format("pearson: shapes differ: {} vs {}", shape_of(pred), shape_of(target)));
  }
  if (pred.dim() != 2) {
    throw ModelError(fmt::format("pearson: expected (n, M), got {}", shape_of(pred)));
  }
  if (pred.size(0) < 2) {
    throw ModelError(fmt::format("pearson: needs at least 2 samples, got {}", pred.size(0)));
  }
  auto p = pred.to(torch::kDouble);
  auto t = target.to(torch::kDouble).to(p.device());
  auto dp = p - p.mean(0, true);
  auto dt = t - t.mean(0, true);
  // Population standard deviations (divide by n); the 1/n cancels in r, and the
  // constant-neuron threshold is applied to these.
  auto sp = (dp * dp).mean(0).sqrt();
  auto st = (dt * dt).mean(0).sqrt();
  auto cov = (dp * dt).mean(0);
  auto constant = (sp < kConstantStd) | (st < kConstantStd);
  // Where either side is constant the division is replaced, not just masked, so
  // that no 0/0 is ever formed.
  auto denom = torch::where(constant, torch::ones_like(sp), sp * st);
  auto r = (cov / denom).clamp(-1.0, 1.0);
  return torch::where(constant, torch::zeros_like(r), r).contiguous();
}

torch::Tensor pearson_p_values(const torch::Tensor& r, int n) {
  require_defined(r, "r", "pearson_p_values");
  if (n < 3) {
    throw ModelError(fmt::format("pearson_p_values: needs n >= 3 samples, got {}", n));
  }
  auto rc = r.to(torch::kCPU, torch::kDouble).contiguous();
  auto out = torch::empty_like(rc);
  const double df = n - 2;
  const boost::math::students_t dist(df);
  const double* src = rc.data_ptr<double>();
  double* dst = out.data_ptr<double>();
  for (int64_t i = 0; i < rc.numel(); ++i) {
    const double v = src[i];
    if (std::isnan(v)) {
      dst[i] = std::numeric_limits<double>::quiet_NaN();  // a diverged prediction
    } else if (std::abs(v) >= 1.0) {
      dst[i] = 0.0;  // t is infinite
    } else {
      const double t = std::abs(v) * std::sqrt(df / (1.0 - v * v));
      dst[i] = std::min(1.0, 2.0 * boost::math::cdf(boost::math::complement(dist, t)));
    }
  }
  return out.to(r.device());
}

int count_significant(const torch::Tensor& r, const torch::Tensor& p, double alpha) {
  require_defined(r, "r", "count_significant");
  require_defined(p, "p", "count_significant");
  if (r.sizes() != p.sizes()) {
    throw ModelError(
        fmt::format("count_significant: shapes differ: {} vs {}", shape_of(r), shape_of(p)));
  }
  auto pp = p.to(r.device());
  return static_cast<int>(((pp <= alpha) & (r > 0)).sum().item<int64_t>());
}

NoiseCeiling noise_ceiling(const torch::Tensor& raw) {
  require_defined(raw, "raw", "noise_ceiling");
  if (raw.dim() != 3) {
    throw ModelError(
        fmt::format("noise_ceiling: expected (R, T, M) trials, got {}", shape_of(raw)));
  }
  const int64_t repeats = raw.size(0);
  if (repeats < 2) {
    throw ModelError(fmt::format("noise_ceiling: needs at least 2 repeats, got {}", repeats));
  }
  auto x = raw.to(torch::kDouble);
  auto total = x.sum(0);

  NoiseCeiling out;
  auto oracle = torch::zeros({x.size(2)}, x.options());
  for (int64_t k = 0; k < repeats; ++k) {
    auto others = (total - x[k]) / static_cast<double>(repeats - 1);
    oracle += pearson_per_neuron(x[k], others);
  }
  out.oracle_r = (oracle / static_cast<double>(repeats)).contiguous();

  using torch::indexing::None;
  using torch::indexing::Slice;
  auto even = x.index({Slice(0, None, 2)}).mean(0);
  auto odd = x.index({Slice(1, None, 2)}).mean(0);
  auto half = pearson_per_neuron(even, odd);
  // Spearman-Brown prophecy for doubling the number of trials. A constant neuron
  // has half == 0 and stays 0.
  out.split_half_r = (2.0 * half / (1.0 + half)).contiguous();

  out.mean_oracle_r = out.oracle_r.mean().item<double>();
  out.mean_split_half_r = out.split_half_r.mean().item<double>();
  return out;
}

torch::Tensor feve(const torch::Tensor& pred, const torch::Tensor& raw) {
  require_defined(pred, "pred", "feve");
  require_defined(raw, "raw", "feve");
  if (raw.dim() != 3 || pred.dim() != 2 || pred.size(0) != raw.size(1) ||
      pred.size(1) != raw.size(2)) {
    throw ModelError(fmt::format("feve: expected pred (T, M) and raw (R, T, M), got {} and {}",
                                 shape_of(pred), shape_of(raw)));
  }
  if (raw.size(0) < 2) {
    throw ModelError(fmt::format("feve: needs at least 2 repeats, got {}", raw.size(0)));
  }
  if (raw.size(1) < 1) throw ModelError("feve: no images");
  auto x = raw.to(torch::kDouble);
  auto p = pred.to(torch::kDouble).to(x.device());
  const int64_t m = x.size(2);
  // Noise: across-trial variance per image with Bessel's correction (unbiased, so
  // that a predictor of the true mean has expected MSE equal to it), averaged
  // over images.
  auto noise_var = x.var(0, /*unbiased=*/true).mean(0);
  // Total: population variance of all R*T single trials, i.e. the MSE of the
  // best constant predictor; any constant prediction then scores <= 0.
  auto total_var = x.reshape({-1, m}).var(0, /*unbiased=*/false);
  auto err = (x - p.unsqueeze(0)).pow(2).mean(std::vector<int64_t>{0, 1});
  auto explainable = total_var - noise_var;
  auto none_to_explain = explainable <= kNoExplainableVar;
  auto denom = torch::where(none_to_explain, torch::ones_like(explainable), explainable);
  auto f = 1.0 - (err - noise_var) / denom;
  return torch::where(none_to_explain, torch::zeros_like(f), f).contiguous();
}

torch::Tensor estimate_rf_centres(const torch::Tensor& images, const torch::Tensor& responses,
                                  double sigma) {
  require_defined(images, "images", "estimate_rf_centres");
  require_defined(responses, "responses", "estimate_rf_centres");
  if (images.dim() != 3 || responses.dim() != 2 || images.size(0) != responses.size(0)) {
    throw ModelError(
        fmt::format("estimate_rf_centres: expected images (n, H, W) and responses (n, M), got {} "
                    "and {}",
                    shape_of(images), shape_of(responses)));
  }
  if (images.size(0) < 2) {
    throw ModelError(
        fmt::format("estimate_rf_centres: needs at least 2 images, got {}", images.size(0)));
  }
  if (images.size(1) < 1 || images.size(2) < 1 || responses.size(1) < 1) {
    throw ModelError(fmt::format("estimate_rf_centres: empty images {} or responses {}",
                                 shape_of(images), shape_of(responses)));
  }
  if (!(sigma > 0) || !std::isfinite(sigma)) {
    throw ModelError(fmt::format("estimate_rf_centres: sigma must be > 0, got {}", sigma));
  }
  const int64_t n = images.size(0), h = images.size(1), w = images.size(2);
  const int64_t m = responses.size(1);
  auto img = images.to(torch::kDouble).reshape({n, h * w});
  auto resp = responses.to(torch::kDouble).to(img.device());

  // z-score each pixel over the images (population std); a pixel that never
  // changes carries no information and becomes 0 rather than 0/0.
  auto centred = img - img.mean(0, true);
  auto sd = (centred * centred).mean(0, true).sqrt();
  auto varying = sd >= kConstantPixelStd;
  auto z = torch::where(varying, centred / torch::where(varying, sd, torch::ones_like(sd)),
                        torch::zeros_like(centred));

  auto sta = resp.t().matmul(z);  // (M, H*W)
  auto median = sta.quantile(0.5, /*dim=*/1, /*keepdim=*/true);
  auto energy = (sta - median).pow(2).reshape({m, 1, h, w});

  // Separable Gaussian, radius ceil(3 sigma), 'same' output with zero padding.
  const auto radius = static_cast<int64_t>(std::ceil(3.0 * sigma));
  auto g = gaussian_1d(radius, sigma, img.device());
  auto smooth = F::conv2d(energy, g.reshape({1, 1, 2 * radius + 1, 1}),
                          F::Conv2dFuncOptions().padding({radius, 0}));
  smooth = F::conv2d(smooth, g.reshape({1, 1, 1, 2 * radius + 1}),
                     F::Conv2dFuncOptions().padding({0, radius}));

  auto flat = smooth.reshape({m, h * w}).argmax(1);
  return torch::stack({torch::div(flat, w, "floor"), flat.remainder(w)}, 1)
      .to(torch::kLong)
      .contiguous();
}

torch::Tensor readout_peak_centres(const torch::Tensor& masks, int layer) {
  if (layer < 1 || layer > 4) throw ModelError(fmt::format("readout_peak_centres: layer {} is not 1..4", layer));
  const int64_t side = 32 >> layer;
  if (masks.dim() != 2 || masks.size(1) != side * side) {
    throw ModelError(fmt::format("readout_peak_centres: masks of shape ({}) for h{} (expected (N, {}))",
                                 fmt::join(masks.sizes(), ", "), layer, side * side));
  }
  const auto peak = masks.detach().to(torch::kCPU).to(torch::kDouble).argmax(1);
  const auto row = torch::div(peak, side, "floor").to(torch::kDouble);
  const auto col = torch::remainder(peak, side).to(torch::kDouble);
  const double stride = static_cast<double>(1 << layer);
  auto to31 = [&](const torch::Tensor& j) { return (stride * j + 0.5) * (31.0 / 32.0) - 0.5; };
  return torch::stack({to31(row), to31(col)}, 1).contiguous();
}

RfRecovery rf_recovery(const torch::Tensor& recovered, const torch::Tensor& truth) {
  if (recovered.dim() != 2 || recovered.size(1) != 2 || !recovered.sizes().equals(truth.sizes())) {
    throw ModelError(fmt::format("rf_recovery: shapes ({}) and ({}) (expected equal (N, 2))",
                                 fmt::join(recovered.sizes(), ", "), fmt::join(truth.sizes(), ", ")));
  }
  RfRecovery out;
  const auto d = recovered.to(torch::kCPU).to(torch::kDouble) - truth.to(torch::kCPU).to(torch::kDouble);
  out.distance = d.pow(2).sum(1).sqrt().contiguous();
  if (out.distance.numel() > 0) {
    out.mean_distance = out.distance.mean().item<double>();
    out.within_2px = (out.distance <= 2.0).to(torch::kDouble).mean().item<double>();
  }
  return out;
}

}  // namespace daenr::models
