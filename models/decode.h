#pragma once
// Decoding images from neural responses: a ridge regression from responses (n, P) to an
// autoencoder's code (n, Q), fitted in closed form for a whole grid of ridges at once and
// chosen on a validation split, and the image-identification score of decoded images.
// Everything is float64 on the CPU and deterministic (no random draw anywhere). Bad shapes or
// values throw DataError with one line naming the argument.

#include <vector>

#include <torch/torch.h>

namespace daenr::models {

/// A fitted ridge regression y = (x - x_mean) weights + y_mean.
struct RidgeFit {
  torch::Tensor weights;  ///< (P, Q) float64
  torch::Tensor x_mean;   ///< (P) float64: the training inputs' mean (the intercept's centring)
  torch::Tensor y_mean;   ///< (Q) float64: the training targets' mean (the intercept)
  /// The chosen ridge lambda on the covariance scale: weights = (C + lambda I)^-1 Xc^T Yc / n
  /// with C = Xc^T Xc / n, i.e. (Xc^T Xc + n lambda I)^-1 Xc^T Yc (Xc, Yc centred, n rows).
  double ridge = 0;
  double relative_ridge = 0;    ///< the grid value chosen: ridge / the mean eigenvalue of C
  std::vector<double> val_mse;  ///< validation MSE (mean over all elements) per grid value, in
                                ///< the grid's order
};

/// Fits ridge regressions of y_train (n, Q) on x_train (n, P) for every relative ridge of the
/// grid and keeps the one with the least validation MSE on (x_val, y_val) (ties: the larger
/// ridge). A relative ridge r means lambda = r * trace(C) / P, the mean eigenvalue of the
/// centred training inputs' covariance C = Xc^T Xc / n, so one grid suits responses of any
/// scale. One SVD of Xc serves the whole grid; directions with a zero singular value get zero
/// weight, so r = 0 is the minimum-norm least-squares fit. Inputs of any floating type are
/// computed in float64. Throws DataError for inputs that are not 2-D, mismatched rows or
/// columns, fewer than 2 training rows, no validation row, an empty grid or a negative or
/// non-finite grid value, and non-finite data.
RidgeFit fit_ridge(const torch::Tensor& x_train, const torch::Tensor& y_train,
                   const torch::Tensor& x_val, const torch::Tensor& y_val,
                   const std::vector<double>& relative_ridges);

/// (m, Q) float64 predictions for inputs x (m, P). Throws DataError when P differs from the fit's.
torch::Tensor predict(const RidgeFit& fit, const torch::Tensor& x);

/// Pearson r over pixels between image a_i and b_i, per image: a and b hold n images of any
/// equal shape (n, ...). (n) float64. An image whose pixel standard deviation is below 1e-9
/// (a constant image) gives r = 0. Throws DataError for differing shapes or an empty image.
torch::Tensor pixel_correlation(const torch::Tensor& a, const torch::Tensor& b);

/// (n, m) float64: entry (i, j) is the pixel correlation of a_i with b_j, as in
/// pixel_correlation, for a (n, ...) and b (m, ...) with the same number of pixels per image.
torch::Tensor correlation_matrix(const torch::Tensor& a, const torch::Tensor& b);

/// Image identification from decoded images: the shares of decoded images whose own true
/// image is among the k truth images they correlate with best.
struct Identification {
  double top1 = 0, top5 = 0;
};

/// decoded_i is ranked by how many truth images j != i correlate with it at least as well as
/// truth_i does (ties, correlations within 1e-12, count against it: a tie with another image is
/// not a hit); a hit at k is a
/// rank below k. With n <= 5 images every decoded image is a top-5 hit. decoded and truth are
/// (n, ...) of the same shape, n >= 2; else DataError.
Identification identify(const torch::Tensor& decoded, const torch::Tensor& truth);

}  // namespace daenr::models
