#pragma once
// Evaluation metrics, defined exactly as in docs/metrics.md (from
// shared/design/MODELS.md). All functions take CPU or CUDA tensors and compute
// in float64.

#include <torch/torch.h>

namespace daenr::models {

/// Mean squared error over all elements (images on the [-1, 1] scale).
double mse(const torch::Tensor& x, const torch::Tensor& y);

/// PSNR in dB: 10 log10(R^2 / mse). R = 2 for images on [-1, 1].
double psnr(double mse_value, double data_range = 2.0);

/// SSIM per image (Wang et al. 2004) for (n, 1, H, W) images on [-1, 1]:
/// mapped to [0, 1]; Gaussian window 11x11, sigma 1.5; C1 = (0.01)^2,
/// C2 = (0.03)^2; population covariance; valid window; mean of the map.
/// Returns (n) float64.
torch::Tensor ssim_per_image(const torch::Tensor& x, const torch::Tensor& y);

/// Mean of ssim_per_image.
double ssim(const torch::Tensor& x, const torch::Tensor& y);

/// Pearson r per neuron (column) between (n, M) predictions and targets; 0 for a
/// neuron where either side has std < 1e-5. Returns (M) float64.
torch::Tensor pearson_per_neuron(const torch::Tensor& pred, const torch::Tensor& target);

/// Two-sided p-values of Pearson r with n samples: t = r sqrt((n-2)/(1-r^2)),
/// Student t with n-2 degrees of freedom. Returns (M) float64.
torch::Tensor pearson_p_values(const torch::Tensor& r, int n);

/// Neurons with p <= alpha and r > 0.
int count_significant(const torch::Tensor& r, const torch::Tensor& p, double alpha = 0.05);

/// How well the data can be predicted at all, from single trials (R, T, M).
struct NoiseCeiling {
  torch::Tensor oracle_r;      ///< (M) mean over repeats of r(trial, mean of the other trials)
  torch::Tensor split_half_r;  ///< (M) r(mean of even trials, mean of odd), Spearman-Brown corrected
  double mean_oracle_r = 0;
  double mean_split_half_r = 0;
};
NoiseCeiling noise_ceiling(const torch::Tensor& raw);

/// Fraction of explainable variance explained per neuron:
/// 1 - (MSE(pred, trials) - noise var) / (total var - noise var), where noise var
/// is the mean over images of the across-trial variance. (M) float64.
torch::Tensor feve(const torch::Tensor& pred, const torch::Tensor& raw);

/// Receptive-field centres from a spike-triggered average: z-score the images
/// (n, H, W), take the response-weighted sum per neuron, square its deviation
/// from its median, smooth with a Gaussian of `sigma` pixels and take the argmax.
/// Returns (M, 2) int64 (row, col) on the image grid.
torch::Tensor estimate_rf_centres(const torch::Tensor& images, const torch::Tensor& responses,
                                  double sigma = 5.0);

}  // namespace daenr::models
