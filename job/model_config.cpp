#include "job/model_config.h"

#include <fmt/format.h>

#include "job/error.h"

namespace daenr::job {

const std::vector<AutoencoderKind>& all_autoencoders() {
  static const std::vector<AutoencoderKind> kAll = {AutoencoderKind::kCae, AutoencoderKind::kVae,
                                                    AutoencoderKind::kVqVae,
                                                    AutoencoderKind::kNone};
  return kAll;
}

const std::vector<ReadoutKind>& all_readouts() {
  static const std::vector<ReadoutKind> kAll = {ReadoutKind::kFr, ReadoutKind::kFc,
                                                ReadoutKind::kFm, ReadoutKind::kNone};
  return kAll;
}

std::vector<std::string> autoencoder_names(bool none_first) {
  std::vector<std::string> out;
  if (none_first) out.push_back(to_string(AutoencoderKind::kNone));
  for (const auto kind : all_autoencoders()) {
    if (kind != AutoencoderKind::kNone) out.push_back(to_string(kind));
  }
  return out;
}

std::vector<std::string> readout_names() {
  std::vector<std::string> out;
  for (const auto kind : all_readouts()) {
    if (kind != ReadoutKind::kNone) out.push_back(to_string(kind));
  }
  return out;
}

std::string to_string(AutoencoderKind kind) {
  switch (kind) {
    case AutoencoderKind::kCae:
      return "cae";
    case AutoencoderKind::kVae:
      return "vae";
    case AutoencoderKind::kVqVae:
      return "vqvae";
    case AutoencoderKind::kNone:
      return "none";
  }
  return "?";
}

std::string to_string(ReadoutKind kind) {
  switch (kind) {
    case ReadoutKind::kFr:
      return "fr";
    case ReadoutKind::kFc:
      return "fc";
    case ReadoutKind::kFm:
      return "fm";
    case ReadoutKind::kNone:
      return "none";
  }
  return "?";
}

std::string display_name(AutoencoderKind kind) {
  switch (kind) {
    case AutoencoderKind::kCae: return "CAE";
    case AutoencoderKind::kVae: return "VAE";
    case AutoencoderKind::kVqVae: return "VQ-VAE";
    case AutoencoderKind::kNone: return "CNN";
  }
  return "?";
}

std::string display_name(ReadoutKind kind) {
  switch (kind) {
    case ReadoutKind::kFr: return "FR";
    case ReadoutKind::kFc: return "FC";
    case ReadoutKind::kFm: return "FM";
    case ReadoutKind::kNone: return "";
  }
  return "?";
}

AutoencoderKind parse_autoencoder(const std::string& name) {
  for (const auto kind : all_autoencoders()) {
    if (to_string(kind) == name) return kind;
  }
  throw ConfigError(
      fmt::format("unknown autoencoder '{}' (expected cae, vae, vqvae or none)", name));
}

ReadoutKind parse_readout(const std::string& name) {
  for (const auto kind : all_readouts()) {
    if (to_string(kind) == name) return kind;
  }
  throw ConfigError(fmt::format("unknown readout '{}' (expected fr, fc, fm or none)", name));
}

Reduction parse_reduction(const std::string& name) {
  if (name == "sum") return Reduction::kSum;
  if (name == "mean") return Reduction::kMean;
  throw ConfigError(fmt::format("unknown reduction '{}' (expected sum or mean)", name));
}

std::string to_string(Reduction reduction) {
  return reduction == Reduction::kSum ? "sum" : "mean";
}

}  // namespace daenr::job
