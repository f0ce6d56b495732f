#pragma once
// Evaluation metrics, defined exactly as in docs/metrics.md (from
// shared/design/MODELS.md). All functions take CPU or CUDA tensors and compute
// in float64; tensor results are contiguous float64 (int64 for RF centres) on
// the device of the first argument. Bad shapes throw ModelError.

#include <torch/torch.h>

namespace daenr::models {

/// Mean squared error over all elements (images on the [-1, 1] scale).
double mse(const torch::Tensor& x, const torch::Tensor& y);

/// PSNR in dB: 10 log10(R^2 / mse). R = 2 for images on [-1, 1]. mse == 0
/// (identical images) gives +infinity; a negative or NaN mse, or R <= 0, throws.
double psnr(double mse_value, double data_range = 2.0);

/// SSIM per image (Wang et al. 2004) for (n, 1, H, W) images on [-1, 1]:
/// mapped to [0, 1]; Gaussian window 11x11, sigma 1.5; C1 = (0.01)^2,
/// C2 = (0.03)^2; population covariance; valid window (a (H-10)x(W-10) map);
/// mean of the map. Returns (n) float64. Throws for differing shapes, a shape
/// other than (n, 1, H, W), or H or W below 11.
torch::Tensor ssim_per_image(const torch::Tensor& x, const torch::Tensor& y);

/// Mean of ssim_per_image.
double ssim(const torch::Tensor& x, const torch::Tensor& y);

/// Pearson r per neuron (column) between (n, M) predictions and targets; 0 for a
/// neuron where either side has population std < 1e-5. n >= 2. Returns (M) float64.
torch::Tensor pearson_per_neuron(const torch::Tensor& pred, const torch::Tensor& target);

/// Two-sided p-values of Pearson r with n samples: t = r sqrt((n-2)/(1-r^2)),
/// Student t with n-2 degrees of freedom. |r| >= 1 gives 0, NaN gives NaN.
/// n < 3 throws. Returns float64 of r's shape.
torch::Tensor pearson_p_values(const torch::Tensor& r, int n);

/// Neurons with p <= alpha and r > 0 (NaN counts as not significant).
int count_significant(const torch::Tensor& r, const torch::Tensor& p, double alpha = 0.05);

/// How well the data can be predicted at all, from single trials (R, T, M),
/// R >= 2 (else ModelError). Correlations as in pearson_per_neuron (constant
/// neurons give 0).
struct NoiseCeiling {
  torch::Tensor oracle_r;  ///< (M) mean over repeats of r(trial, mean of the other trials)
  /// (M) r(mean of even-indexed trials, mean of odd-indexed), Spearman-Brown
  /// corrected: 2r / (1 + r).
  torch::Tensor split_half_r;
  double mean_oracle_r = 0;
  double mean_split_half_r = 0;
};
NoiseCeiling noise_ceiling(const torch::Tensor& raw);

/// Fraction of explainable variance explained per neuron:
/// 1 - (MSE(pred, trials) - noise var) / (total var - noise var), where MSE is
/// over all R*T single trials, noise var is the mean over images of the
/// across-trial variance (unbiased, divisor R-1) and total var is the population
/// variance of all R*T single trials. 0 where total var - noise var <= 1e-10.
/// pred (T, M), raw (R, T, M) with R >= 2 (else ModelError). (M) float64.
torch::Tensor feve(const torch::Tensor& pred, const torch::Tensor& raw);

/// Receptive-field centres from a spike-triggered average: z-score the images
/// (n, H, W) per pixel over the images (population std; constant pixels -> 0),
/// take the response-weighted sum per neuron, square its deviation from its
/// median, smooth with a Gaussian of `sigma` pixels (radius ceil(3 sigma), zero
/// padding, same size) and take the argmax (first on ties).
/// Returns (M, 2) int64 (row, col) on the image grid.
torch::Tensor estimate_rf_centres(const torch::Tensor& images, const torch::Tensor& responses,
                                  double sigma = 5.0);

/// Where each neuron's spatial readout mask (N, S*S) peaks, mapped back to the 31x31 image grid
/// (row, col), for a readout on h_`layer` (S = 32 / 2^layer). Unit j of h_i (Conv k3 s2 p1,
/// i times) is centred on pixel 2^i j of the 32x32 input, whose centre lies at (2^i j + 0.5)
/// 31/32 - 0.5 on the 31x31 image (the bilinear resize, align_corners = false). Argmax, the
/// first on ties. Returns (N, 2) float64.
torch::Tensor readout_peak_centres(const torch::Tensor& masks, int layer);

/// Receptive-field recovery: the distance in image pixels between recovered and true centres
/// (both (N, 2) on the 31x31 grid).
struct RfRecovery {
  torch::Tensor distance;    ///< (N) float64, pixels
  double mean_distance = 0;  ///< mean over neurons
  double within_2px = 0;     ///< share of neurons with distance <= 2
};
RfRecovery rf_recovery(const torch::Tensor& recovered, const torch::Tensor& truth);

}  // namespace daenr::models
