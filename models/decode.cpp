#include "models/decode.h"

#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join
#include <limits>

#include "models/error.h"

namespace daenr::models {

namespace {

constexpr double kTieTolerance = 1e-12;

torch::Tensor as_matrix(const torch::Tensor& t, const char* what, const char* function) {
  if (!t.defined() || t.dim() != 2) {
    throw DataError(fmt::format("{}: {} must be a 2-D (rows, columns) tensor, found shape {}",
                                function, what, shape_string(t)));
  }
  auto d = t.to(torch::kCPU, torch::kDouble).contiguous();
  if (!torch::isfinite(d).all().item<bool>()) {
    throw DataError(fmt::format("{}: {} contains NaN or infinite values", function, what));
  }
  return d;
}

// Rows of (n, ...) images as unit-norm, zero-mean (n, pixels) float64 vectors, so that a dot
// product of two rows is their Pearson r. A constant row stays zero (r = 0 with anything):
// its correlation is undefined and 0 is what "no resemblance" should score.
torch::Tensor standardised_rows(const torch::Tensor& images) {
  auto rows = images.to(torch::kCPU, torch::kDouble).reshape({images.size(0), -1});
  const int64_t pixels = rows.size(1);
  auto centred = rows - rows.mean(1, true);
  auto norm = centred.square().sum(1, true).sqrt();
  const auto constant = norm / std::sqrt(static_cast<double>(pixels)) < 1e-9;
  return torch::where(constant, torch::zeros_like(centred), centred / norm.clamp_min(1e-300));
}

void require_images(const torch::Tensor& t, const char* what, const char* function) {
  if (!t.defined() || t.dim() < 2 || t.numel() == 0) {
    throw DataError(
        fmt::format("{}: {} must hold images (n, ...) with at least one pixel, "
                    "found shape {}",
                    function, what, shape_string(t)));
  }
}

}  // namespace

RidgeFit fit_ridge(const torch::Tensor& x_train, const torch::Tensor& y_train,
                   const torch::Tensor& x_val, const torch::Tensor& y_val,
                   const std::vector<double>& relative_ridges) {
  constexpr const char* kFn = "fit_ridge";
  const auto x = as_matrix(x_train, "x_train", kFn);
  const auto y = as_matrix(y_train, "y_train", kFn);
  const auto xv = as_matrix(x_val, "x_val", kFn);
  const auto yv = as_matrix(y_val, "y_val", kFn);
  const int64_t n = x.size(0), p = x.size(1), q = y.size(1);
  if (y.size(0) != n) {
    throw DataError(fmt::format("{}: x_train has {} rows but y_train has {}", kFn, n, y.size(0)));
  }
  if (n < 2) {
    throw DataError(fmt::format("{}: {} training row{}; a centred fit needs at least 2", kFn, n,
                                n == 1 ? "" : "s"));
  }
  if (xv.size(1) != p) {
    throw DataError(fmt::format("{}: x_val has {} columns but x_train has {}", kFn, xv.size(1), p));
  }
  if (yv.size(1) != q) {
    throw DataError(fmt::format("{}: y_val has {} columns but y_train has {}", kFn, yv.size(1), q));
  }
  if (yv.size(0) != xv.size(0)) {
    throw DataError(
        fmt::format("{}: x_val has {} rows but y_val has {}", kFn, xv.size(0), yv.size(0)));
  }
  if (xv.size(0) < 1) throw DataError(fmt::format("{}: no validation rows", kFn));
  if (relative_ridges.empty()) throw DataError(fmt::format("{}: the ridge grid is empty", kFn));
  for (double r : relative_ridges) {
    if (!std::isfinite(r) || r < 0) {
      throw DataError(fmt::format("{}: ridge {} in the grid is not a finite value >= 0", kFn, r));
    }
  }

  RidgeFit fit;
  fit.x_mean = x.mean(0);
  fit.y_mean = y.mean(0);
  const auto xc = x - fit.x_mean;
  const auto yc = y - fit.y_mean;
  // Xc = U diag(s) V^T turns every ridge's solve into a rescaling of the same projections:
  // W(lambda) = V diag(s / (s^2 + n lambda)) U^T Yc, so the grid costs one SVD.
  auto [u, s, vh] = torch::linalg::svd(xc, /*full_matrices=*/false, c10::nullopt);
  const auto projected = u.t().matmul(yc);                   // (r, Q) U^T Yc
  const auto val_coords = (xv - fit.x_mean).matmul(vh.t());  // (m, r) validation inputs in V
  const double s_max = s.numel() > 0 ? s.max().item<double>() : 0.0;
  // Singular values at rounding level belong to directions the data does not span; without a
  // ridge (r = 0) they would divide by ~0, so they get no weight (the pseudo-inverse's rule).
  const double tol =
      static_cast<double>(std::max(n, p)) * std::numeric_limits<double>::epsilon() * s_max;
  const auto keep = s > tol;
  // Mean eigenvalue of C = Xc^T Xc / n: trace(C) / P = sum(s^2) / (n P).
  const double mean_eigenvalue = s.square().sum().item<double>() / static_cast<double>(n * p);

  auto factors = [&](double lambda) {
    const auto f = s / (s.square() + static_cast<double>(n) * lambda);
    return torch::where(keep, f, torch::zeros_like(f));
  };

  double best_mse = std::numeric_limits<double>::infinity();
  double best_relative = -1;
  for (double relative : relative_ridges) {
    const double lambda = relative * mean_eigenvalue;
    const auto prediction = (val_coords * factors(lambda)).matmul(projected) + fit.y_mean;
    const double mse = (prediction - yv).square().mean().item<double>();
    fit.val_mse.push_back(mse);
    // Ties go to the larger ridge: the same validation error with smaller weights is the
    // safer fit (it moves less where the validation set says nothing).
    if (mse < best_mse || (mse == best_mse && relative > best_relative)) {
      best_mse = mse;
      best_relative = relative;
    }
  }
  fit.relative_ridge = best_relative;
  fit.ridge = best_relative * mean_eigenvalue;
  fit.weights = vh.t().matmul(factors(fit.ridge).unsqueeze(1) * projected).contiguous();
  return fit;
}

torch::Tensor predict(const RidgeFit& fit, const torch::Tensor& x) {
  const auto d = as_matrix(x, "x", "predict");
  if (d.size(1) != fit.weights.size(0)) {
    throw DataError(fmt::format("predict: x has {} columns but the fit has {} inputs", d.size(1),
                                fit.weights.size(0)));
  }
  return (d - fit.x_mean).matmul(fit.weights) + fit.y_mean;
}

torch::Tensor pixel_correlation(const torch::Tensor& a, const torch::Tensor& b) {
  require_images(a, "a", "pixel_correlation");
  require_images(b, "b", "pixel_correlation");
  if (a.sizes() != b.sizes()) {
    throw DataError(
        fmt::format("pixel_correlation: a has shape {} but b has {}", shape_string(a), shape_string(b)));
  }
  // Rounding can put |r| a few ulps above 1; a correlation never is.
  return (standardised_rows(a) * standardised_rows(b)).sum(1).clamp(-1.0, 1.0);
}

torch::Tensor correlation_matrix(const torch::Tensor& a, const torch::Tensor& b) {
  require_images(a, "a", "correlation_matrix");
  require_images(b, "b", "correlation_matrix");
  if (a.numel() / a.size(0) != b.numel() / b.size(0)) {
    throw DataError(fmt::format("correlation_matrix: images of a {} and b {} differ in pixels",
                                shape_string(a), shape_string(b)));
  }
  return standardised_rows(a).matmul(standardised_rows(b).t()).clamp(-1.0, 1.0);
}

Identification identify(const torch::Tensor& decoded, const torch::Tensor& truth) {
  require_images(decoded, "decoded", "identify");
  require_images(truth, "truth", "identify");
  if (decoded.sizes() != truth.sizes()) {
    throw DataError(fmt::format("identify: decoded has shape {} but truth has {}",
                                shape_string(decoded), shape_string(truth)));
  }
  const int64_t n = decoded.size(0);
  if (n < 2) {
    throw DataError(fmt::format("identify: {} image; identification needs at least 2", n));
  }
  const auto r = correlation_matrix(decoded, truth);
  const auto own = r.diagonal().unsqueeze(1);
  // Every j with r_ij >= r_ii counts, the diagonal itself once: subtract it. Correlations
  // within 1e-12 of each other are ties: a product's rounding (which depends on where in the
  // image the pixels lie) must not decide a hit.
  const auto rank = (r >= own - kTieTolerance).sum(1) - 1;
  Identification out;
  out.top1 = (rank < 1).to(torch::kDouble).mean().item<double>();
  out.top5 = (rank < 5).to(torch::kDouble).mean().item<double>();
  return out;
}

}  // namespace daenr::models
