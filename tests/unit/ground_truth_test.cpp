// Ground truth of the simulated regions (docs/metrics.md): the noiseless expected responses
// against many simulated trials, true r at its extremes, the data's own true r against the
// number of repeats, receptive-field recovery against hand-computed positions, and the files
// `daenr data synth` writes. Also the refusal of negative responses.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>

#include "models/data.h"
#include "models/error.h"
#include "models/metrics.h"
#include "models/npy.h"
#include "models/synth.h"
#include "tests/support/temp_dir.h"

namespace daenr::models {
namespace {

namespace fs = std::filesystem;

VirtualRegionSpec small_region_spec(int repeats, int test_images = 50) {
  auto spec = virtual_region_spec(3);
  spec.neurons = 24;
  spec.train_images = 300;
  spec.test_images = test_images;
  spec.repeats = repeats;
  return spec;
}

TEST(GroundTruth, ExpectedResponseIsTheMeanOfManyTrials) {
  // 4000 simulated trials of 6 images: their mean must agree with the closed form within a few
  // standard errors for every image and neuron (a wrong noise model, offset or gain fails).
  const auto spec = small_region_spec(4000, 6);
  const auto r = simulate_region(spec, 11);
  ASSERT_TRUE(r.test_expected.defined());
  ASSERT_EQ(r.test_expected.sizes(), torch::IntArrayRef({6, spec.neurons}));
  const auto mean = r.test_raw.mean(0);
  const auto se = r.test_raw.std(0) / std::sqrt(4000.0) + 1e-3;
  const auto z = ((mean - r.test_expected).abs() / se);
  EXPECT_LT(z.max().item<double>(), 5.0) << "largest deviation in standard errors";
  // Silent cases are silent and driven ones are not: the expectation is not a constant.
  EXPECT_GT(r.test_expected.std().item<double>(), 0.1);
  EXPECT_GE(r.test_expected.min().item<double>(), 0.0);
}

TEST(GroundTruth, TrueRIsOneForTheTruthAndNearZeroShuffled) {
  const auto r = simulate_region(small_region_spec(10), 2);
  const auto truth = r.test_expected;
  EXPECT_NEAR(pearson_per_neuron(truth, truth).mean().item<double>(), 1.0, 1e-12);
  // The same responses assigned to other images: no relation left.
  const auto perm = torch::randperm(truth.size(0), at::detail::createCPUGenerator(5), torch::kLong);
  const double shuffled = pearson_per_neuron(truth.index_select(0, perm), truth).mean().item<double>();
  EXPECT_LT(std::abs(shuffled), 0.1);
}

TEST(GroundTruth, TheDataComeCloserToTheTruthWithMoreRepeats) {
  std::vector<double> data_true_r;
  for (int repeats : {1, 4, 16, 64}) {
    const auto r = simulate_region(small_region_spec(repeats), 3);
    data_true_r.push_back(pearson_per_neuron(r.test_responses, r.test_expected).mean().item<double>());
  }
  for (std::size_t i = 1; i < data_true_r.size(); ++i) {
    EXPECT_GT(data_true_r[i], data_true_r[i - 1]) << "repeats x4 at step " << i;
  }
  EXPECT_LT(data_true_r.front(), 0.8);  // one noisy trial is far from the truth
  EXPECT_GT(data_true_r.back(), 0.9);   // 64 come close
}

TEST(GroundTruth, VirtualNeuronsAreAFunctionOfAnyImage) {
  const auto spec = small_region_spec(5);
  const auto r = simulate_region(spec, 9);
  const VirtualNeurons neurons(spec, 9);
  // The same neurons as the region's: rates and expectations of its test images agree.
  EXPECT_TRUE(torch::equal(neurons.expected(r.test_inputs), r.test_expected));
  EXPECT_TRUE(torch::equal(neurons.centres(), r.rf_centres));
  EXPECT_TRUE(torch::equal(neurons.filters(), r.rf_filters));
  // A simple cell's preferred image is its own filter: it drives it more than any test image.
  const auto filters = neurons.filters();
  const auto complex = neurons.complex_cells();
  int simple = 0;
  for (int n = 0; n < neurons.size(); ++n) {
    if (complex[n].item<bool>()) continue;
    ++simple;
    // Full contrast (grey / 255 - 0.5 = +-0.5) in the filter's sign pattern, in file units.
    const auto contrast = torch::sign(filters[n][0]) * 0.5;
    const auto image = ((contrast + 0.5) * 255.0 / 1e6).unsqueeze(0);
    const double own = neurons.rates(image)[0][n].item<double>();
    const double best_natural = neurons.rates(r.test_inputs).select(1, n).max().item<double>();
    EXPECT_GT(own, best_natural) << "neuron " << n;
  }
  EXPECT_GT(simple, 3);
  EXPECT_THROW(neurons.rates(torch::zeros({2, 10}, torch::kDouble)), ModelError);
}

TEST(RfRecovery, ReadoutPeaksMapBackThroughTheLayerStride) {
  // h1: 16x16 grid; unit (3, 5) is centred on pixel (6, 10) of the 32x32 input, which lies at
  // (6.5 * 31/32 - 0.5, 10.5 * 31/32 - 0.5) on the 31x31 image.
  auto masks = torch::zeros({2, 256});
  masks[0][3 * 16 + 5] = 1.0;
  masks[1][0] = 0.5;  // the first of two equal peaks wins
  masks[1][17] = 0.5;
  const auto c1 = readout_peak_centres(masks, 1);
  EXPECT_DOUBLE_EQ(c1[0][0].item<double>(), 5.796875);
  EXPECT_DOUBLE_EQ(c1[0][1].item<double>(), 9.671875);
  EXPECT_DOUBLE_EQ(c1[1][0].item<double>(), -0.015625);
  // h4: 2x2 grid, stride 16: unit (1, 0) is centred on input pixel (16, 0).
  auto m4 = torch::zeros({1, 4});
  m4[0][2] = 3.0;
  const auto c4 = readout_peak_centres(m4, 4);
  EXPECT_DOUBLE_EQ(c4[0][0].item<double>(), 15.484375);
  EXPECT_DOUBLE_EQ(c4[0][1].item<double>(), -0.015625);
  EXPECT_THROW(readout_peak_centres(torch::zeros({1, 16}), 1), ModelError);
  EXPECT_THROW(readout_peak_centres(m4, 5), ModelError);
}

TEST(RfRecovery, DistancesMeanAndShareWithinTwoPixels) {
  const auto recovered = torch::tensor({0.0, 0.0, 3.0, 4.0, 1.0, 1.0}, torch::kDouble).reshape({3, 2});
  const auto truth = torch::tensor({0.0, 0.0, 0.0, 0.0, 1.0, 3.0}, torch::kDouble).reshape({3, 2});
  const auto rf = rf_recovery(recovered, truth);
  EXPECT_DOUBLE_EQ(rf.distance[1].item<double>(), 5.0);
  EXPECT_DOUBLE_EQ(rf.mean_distance, 7.0 / 3.0);
  EXPECT_DOUBLE_EQ(rf.within_2px, 2.0 / 3.0);
  EXPECT_THROW(rf_recovery(recovered, truth.slice(0, 0, 2)), ModelError);
}

TEST(GroundTruth, SynthWritesItAndTheLayoutReadsItBack) {
  testing::TempDir dir;
  write_virtual_regions(dir.path(), 4);
  for (int region = 1; region <= 3; ++region) {
    const auto folder = dir.path() / fmt::format("region{}", region);
    for (const char* f : {"noiseless_validation_set.npy", "rf_filters.npy", "rf_centres.npy", "complex_cells.npy"}) {
      EXPECT_TRUE(fs::exists(folder / f)) << folder / f;
    }
    const auto loaded = load_antolik_region(folder);
    const auto simulated = simulate_region(virtual_region_spec(region), 4);
    EXPECT_TRUE(torch::equal(loaded.test_expected, simulated.test_expected));
    EXPECT_TRUE(torch::equal(loaded.rf_filters, simulated.rf_filters));
    EXPECT_EQ(read_npy(folder / "complex_cells.npy").size(0), simulated.rf_centres.size(0));
  }
}

TEST(GroundTruth, NegativeResponsesAreRefusedNamingTheFileAndCount) {
  testing::TempDir dir;
  auto spec = small_region_spec(3);
  const auto r = simulate_region(spec, 1);
  write_npy(dir.path() / "training_inputs.npy", r.train_inputs);
  auto bad = r.train_responses.clone();
  bad[0][0] = -0.5;
  bad[7][3] = -2.0;
  write_npy(dir.path() / "training_set.npy", bad);
  write_npy(dir.path() / "validation_inputs.npy", r.test_inputs);
  write_npy(dir.path() / "validation_set.npy", r.test_responses);
  try {
    load_antolik_region(dir.path());
    FAIL() << "negative responses were accepted";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find((dir.path() / "training_set.npy").string()), std::string::npos) << what;
    EXPECT_NE(what.find("2 negative responses"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  // The same folder with the responses fixed loads, and without ground truth files has none.
  write_npy(dir.path() / "training_set.npy", r.train_responses);
  const auto ok = load_antolik_region(dir.path());
  EXPECT_FALSE(ok.test_expected.defined());
}

}  // namespace
}  // namespace daenr::models
