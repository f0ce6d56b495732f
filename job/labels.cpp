#include "job/labels.h"

namespace daenr::job {

std::string to_string(Neurons n) {
  switch (n) {
    case Neurons::kAll:
      return "all";
    case Neurons::kSignificant:
      return "significant";
    case Neurons::kInsignificant:
      return "insignificant";
  }
  return "?";
}

std::string to_string(Axis a) {
  switch (a) {
    case Axis::kRegion:
      return "region";
    case Axis::kLayer:
      return "layer";
    case Axis::kAutoencoder:
      return "autoencoder";
    case Axis::kReadout:
      return "readout";
    case Axis::kAlpha:
      return "alpha";
    case Axis::kBeta:
      return "beta";
    case Axis::kSeed:
      return "seed";
    case Axis::kNeurons:
      return "neurons";
  }
  return "?";
}

}  // namespace daenr::job
