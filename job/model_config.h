#pragma once
// What a job says about its model and loss, without LibTorch: the autoencoder and readout
// kinds with their names, the model's sizes, the loss weights. models/ builds the networks
// from these (and re-exports them under daenr::models); sweeps/, storage/ and reports/ read
// them without compiling LibTorch.

#include <string>
#include <vector>

namespace daenr::job {

enum class AutoencoderKind { kNone, kCae, kVae, kVqVae };
enum class ReadoutKind { kNone, kFr, kFc, kFm };

/// "cae", "vae", "vqvae", "none" <-> AutoencoderKind; throws ConfigError on others.
AutoencoderKind parse_autoencoder(const std::string& name);
std::string to_string(AutoencoderKind kind);
/// "fr", "fc", "fm", "none" <-> ReadoutKind; throws ConfigError on others.
ReadoutKind parse_readout(const std::string& name);
std::string to_string(ReadoutKind kind);

/// The paper's names: "CAE", "VAE", "VQ-VAE", "CNN" (no autoencoder: the readout-only
/// baseline); "FR", "FC", "FM", "" (no readout). The one table of display names: reports and
/// progress lines build "CAE-FR_2" from it.
std::string display_name(AutoencoderKind kind);
std::string display_name(ReadoutKind kind);

/// Every kind, in the paper's order: the one list that parsing, suggestions and reports use.
const std::vector<AutoencoderKind>& all_autoencoders();
const std::vector<ReadoutKind>& all_readouts();

/// Spec names from those lists, for the reports' rows and columns: the autoencoders with a
/// decoder ("cae", "vae", "vqvae"), with "none" (the readout-only CNN) first when asked, as the
/// paper's tables list it; the readouts ("fr", "fc", "fm").
std::vector<std::string> autoencoder_names(bool none_first = false);
std::vector<std::string> readout_names();

struct ModelConfig {
  AutoencoderKind autoencoder = AutoencoderKind::kCae;
  ReadoutKind readout = ReadoutKind::kFr;
  int layer = 1;             ///< the readout's input h_i, 1..4
  int width = 32;            ///< channels of h1; h_i has width * 2^(i-1)
  int latent = 100;          ///< CAE / VAE latent size
  int codebook_size = 32;    ///< VQ-VAE codes (K); code dimension = channels of h4
  double fc_dropout = 0.5;   ///< FC readout dropout before the linear map
  double readout_l1 = 0.03;  ///< FR / FM sparsity: lambda * sum_n |w_s[n]|_1 |w_f[n]|_1
  double fc_l2 = 0.01;       ///< FC readout: l2 * sum W^2
  double commitment = 0.25;  ///< VQ-VAE commitment weight
  int neurons = 0;           ///< N, set from the data
};

/// How the reconstruction term reduces over an image's pixels. The paper's Eq. 4 and 7 write a
/// squared L2 norm, the sum over the pixels (kSum, the default); kMean is the per-pixel mean,
/// which weights reconstruction 1/(pixels) as much at the same alpha (1/1024 for 32x32).
enum class Reduction { kSum, kMean };
/// "sum", "mean" <-> Reduction; throws ConfigError on others.
Reduction parse_reduction(const std::string& name);
std::string to_string(Reduction reduction);

struct LossWeights {
  double alpha = 1.0;             ///< reconstruction
  double beta = 1.0;              ///< Poisson
  double kl_weight = 1.0 / 1024;  ///< VAE KL, relative to the per-pixel MSE (see docs/models.md)
  Reduction reconstruction = Reduction::kSum;
};

}  // namespace daenr::job
