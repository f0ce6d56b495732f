// The job contract's shared text helpers (job/text.h) and model names (job/model_config.h).
#include <gtest/gtest.h>

#include "job/error.h"
#include "job/model_config.h"
#include "job/text.h"

namespace daenr::job {
namespace {

TEST(JobText, FirstLineStopsAtTheFirstNewline) {
  EXPECT_EQ(first_line("one\ntwo\nthree"), "one");
  EXPECT_EQ(first_line("only"), "only");
  EXPECT_EQ(first_line("\nafter"), "");
  EXPECT_EQ(first_line(""), "");
}

TEST(JobText, EditDistanceCountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);  // k->s, e->i, +g
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("layer", "layer"), 0u);
  EXPECT_EQ(edit_distance("layres", "layers"), 2u);  // a transposition is two edits
}

TEST(JobText, DidYouMeanSuggestsOnlyNearMissesAndTheFirstOfEqualOnes) {
  const std::vector<std::string> names = {"batch_size", "max_steps", "patience"};
  EXPECT_EQ(did_you_mean("max_step", names), " (did you mean 'max_steps'?)");
  EXPECT_EQ(did_you_mean("patiense", names, "train."), " (did you mean 'train.patience'?)");
  EXPECT_EQ(did_you_mean("learning_rate", names), "");  // far from every name: no guess
  // Two names at distance 1: the first wins, whatever order a set would iterate in.
  EXPECT_EQ(nearest("cat", {"bat", "car"}), "bat");
  EXPECT_EQ(nearest("cat", {"car", "bat"}), "car");
}

TEST(JobModelConfig, NamesRoundTripAndUnknownNamesAreConfigErrors) {
  for (const auto kind : all_autoencoders()) EXPECT_EQ(parse_autoencoder(to_string(kind)), kind);
  for (const auto kind : all_readouts()) EXPECT_EQ(parse_readout(to_string(kind)), kind);
  EXPECT_EQ(all_autoencoders().size(), 4u);
  EXPECT_EQ(all_readouts().size(), 4u);
  try {
    parse_autoencoder("vq-vae");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "unknown autoencoder 'vq-vae' (expected cae, vae, vqvae or none)");
  }
  EXPECT_THROW(parse_readout("FR"), ConfigError);  // names are lower case, as in specs
}

}  // namespace
}  // namespace daenr::job
