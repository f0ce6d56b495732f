// .npy files, the Antolík layout, preprocessing, and the simulated regions.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/region_files.h"
#include "tests/support/error_of.h"
#include "models/data.h"
#include "tests/support/temp_dir.h"
#include "models/error.h"
#include "models/npy.h"
#include "models/synth.h"

namespace daenr::models {
namespace {

using daenr::testing::tiny_region;
using daenr::testing::write_region;

using daenr::testing::error_of;

namespace fs = std::filesystem;

using daenr::testing::TempDir;

// Writes raw bytes: a hand-made .npy with the given header text.
void write_raw_npy(const fs::path& p, int major, const std::string& header, const std::string& data) {
  std::ofstream out(p, std::ios::binary);
  out.write("\x93NUMPY", 6);
  out.put(static_cast<char>(major));
  out.put(0);
  std::string h = header;
  const std::size_t prefix = major == 1 ? 10 : 12;
  h.append((64 - (prefix + h.size() + 1) % 64) % 64, ' ');
  h.push_back('\n');
  const auto len = static_cast<uint32_t>(h.size());
  out.put(static_cast<char>(len & 0xff));
  out.put(static_cast<char>((len >> 8) & 0xff));
  if (major != 1) {
    out.put(static_cast<char>((len >> 16) & 0xff));
    out.put(static_cast<char>(len >> 24));
  }
  out << h << data;
}

std::string doubles(std::initializer_list<double> v) {
  return std::string(reinterpret_cast<const char*>(std::data(v)), v.size() * sizeof(double));
}

TEST(Npy, RoundTripsFloat32AndFloat64OfAnyRank) {
  TempDir dir;
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    for (auto shape : {std::vector<int64_t>{5}, {3, 4}, {2, 3, 4}, {0, 7}}) {
      auto t = torch::randn(shape, torch::TensorOptions().dtype(dtype));
      write_npy(dir.path() / "a.npy", t);
      auto back = read_npy(dir.path() / "a.npy");
      EXPECT_EQ(back.scalar_type(), dtype);
      EXPECT_EQ(back.sizes(), t.sizes());
      EXPECT_TRUE(torch::equal(back, t));
    }
  }
  // numpy aligns the data to 64 bytes; so do we.
  write_npy(dir.path() / "b.npy", torch::zeros({2, 2}, torch::kDouble));
  EXPECT_EQ((fs::file_size(dir.path() / "b.npy") - 32) % 64, 0u);
}

TEST(Npy, ReadsHandWrittenVersion1And2Files) {
  TempDir dir;
  write_raw_npy(dir.path() / "v1.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                doubles({1.5, -2, 3}));
  auto v1 = read_npy(dir.path() / "v1.npy");
  EXPECT_TRUE(torch::equal(v1, torch::tensor({1.5, -2.0, 3.0}, torch::kDouble)));
  write_raw_npy(dir.path() / "v2.npy", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1), }",
                doubles({4, 5}));
  auto v2 = read_npy(dir.path() / "v2.npy");
  EXPECT_EQ(v2.sizes(), torch::IntArrayRef({2, 1}));
  EXPECT_EQ(v2[1][0].item<double>(), 5.0);
}

TEST(Npy, EveryBadFileGivesOneLineNamingIt) {
  TempDir dir;
  const auto p = dir.path() / "x.npy";
  const std::string s = p.string();
  EXPECT_EQ(error_of<DataError>([&] { read_npy(p); }), s + ": no such file");
  { std::ofstream(p) << "hello, this is not numpy"; }
  EXPECT_EQ(error_of<DataError>([&] { read_npy(p); }), s + ": not a .npy file (bad magic string)");
  write_raw_npy(p, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (1,), }", doubles({1}));
  EXPECT_EQ(error_of<DataError>([&] { read_npy(p); }),
            s + ": Fortran-order arrays are not supported (save with C order)");
  write_raw_npy(p, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", "abcd");
  EXPECT_EQ(error_of<DataError>([&] { read_npy(p); }), s + ": unsupported dtype '<i4' (expected '<f4' or '<f8')");
  write_raw_npy(p, 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }", doubles({1}));
  EXPECT_EQ(error_of<DataError>([&] { read_npy(p); }), s + ": unsupported dtype '>f8' (expected '<f4' or '<f8')");
  write_raw_npy(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", doubles({1, 2}));
  EXPECT_EQ(error_of<DataError>([&] { read_npy(p); }),
            s + ": truncated data: expected 48 bytes for shape (2, 3), found 16");
  write_raw_npy(p, 9, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", doubles({1}));
  EXPECT_EQ(error_of<DataError>([&] { read_npy(p); }), s + ": unsupported .npy format version 9.0");
  write_raw_npy(p, 1, "{'descr': '<f8', 'fortran_order': False, }", doubles({1}));
  EXPECT_EQ(error_of<DataError>([&] { read_npy(p); }), s + ": malformed .npy header: no 'shape'");
}

// A small region written in the Antolík layout.
TEST(AntolikLayout, LoadsWhatWasWritten) {
  TempDir dir;
  const auto r = tiny_region(5);
  write_region(dir.path(), r);
  const auto back = load_antolik_region(dir.path());
  EXPECT_TRUE(torch::equal(back.train_inputs, r.train_inputs));
  EXPECT_TRUE(torch::equal(back.test_raw, r.test_raw));
  EXPECT_FALSE(back.rf_centres.defined());
  // The folder holds no ground truth (a recording's files): the region without it.
  auto files_only = r;
  files_only.test_expected = torch::Tensor();
  files_only.rf_filters = torch::Tensor();
  EXPECT_EQ(fingerprint(back), fingerprint(files_only));
  EXPECT_NE(fingerprint(back), fingerprint(r));
}

TEST(AntolikLayout, InconsistentFilesAreNamed) {
  TempDir dir;
  const auto r = tiny_region(5);
  const auto d = dir.path();
  auto reset = [&] { write_region(d, r); };
  reset();
  write_npy(d / "training_set.npy", r.train_responses.slice(0, 0, 20));
  EXPECT_EQ(error_of<DataError>([&] { load_antolik_region(d); }),
            (d / "training_set.npy").string() +
                ": 20 rows of responses for 30 training images in training_inputs.npy");
  reset();
  auto bad = r.train_responses.clone();
  bad[3][1] = std::numeric_limits<double>::quiet_NaN();
  write_npy(d / "training_set.npy", bad);
  EXPECT_EQ(error_of<DataError>([&] { load_antolik_region(d); }),
            (d / "training_set.npy").string() + ": contains 1 NaN or infinite value");
  reset();
  write_npy(d / "training_inputs.npy", r.train_inputs.slice(1, 0, 900));
  EXPECT_EQ(error_of<DataError>([&] { load_antolik_region(d); }),
            (d / "training_inputs.npy").string() +
                ": expected 961 columns (31x31 images), found shape (30, 900)");
  reset();
  write_npy(d / "validation_set.npy", r.test_responses.slice(1, 0, 3));
  EXPECT_EQ(error_of<DataError>([&] { load_antolik_region(d); }),
            (d / "validation_set.npy").string() + ": shape (6, 3) does not match 6 test images and 4 neurons");
  reset();
  write_npy(d / "raw_validation_set.npy", r.test_raw.slice(1, 0, 5));
  EXPECT_EQ(error_of<DataError>([&] { load_antolik_region(d); }),
            (d / "raw_validation_set.npy").string() + ": shape (3, 5, 4) does not match (repeats, 6, 4)");
  reset();
  fs::remove(d / "validation_inputs.npy");
  EXPECT_EQ(error_of<DataError>([&] { load_antolik_region(d); }), (d / "validation_inputs.npy").string() + ": no such file");
  EXPECT_NE(error_of<DataError>([&] { load_antolik_region(d / "nope"); }).find("no such region folder"), std::string::npos);
  EXPECT_EQ(error_of<DataError>([&] { load_source("virtual:4", 1); }),
            "data \"virtual:4\": no such virtual region (expected virtual:1, virtual:2 or virtual:3)");
}

TEST(AntolikLayout, TheRealPartialCopyLoadsWithItsDocumentedShapes) {
  const fs::path root = DAENR_SHARED_DATA_DIR;
  if (!fs::exists(root / "region1")) GTEST_SKIP() << "the real data is not beside this checkout: " << root;
  struct Expect { int region; int64_t n, neurons, repeats; };
  for (auto e : {Expect{1, 1800, 103, 10}, Expect{2, 1260, 55, 8}, Expect{3, 1800, 102, 12}}) {
    const auto dir = root / fmt::format("region{}", e.region);
    EXPECT_EQ(read_npy(dir / "training_set.npy").sizes(), torch::IntArrayRef({e.n, e.neurons}));
    EXPECT_EQ(read_npy(dir / "validation_inputs.npy").sizes(), torch::IntArrayRef({50, 961}));
    EXPECT_EQ(read_npy(dir / "validation_set.npy").sizes(), torch::IntArrayRef({50, e.neurons}));
    auto raw = read_npy(dir / "raw_validation_set.npy");
    EXPECT_EQ(raw.sizes(), torch::IntArrayRef({e.repeats, 50, e.neurons}));
    // validation_set is the trial average (SOURCE.md: max difference < 3e-15).
    const double diff = (raw.mean(0) - read_npy(dir / "validation_set.npy")).abs().max().item<double>();
    EXPECT_LT(diff, 1e-12);
    // The training images are missing: the error says so and where to get them.
    const auto msg = error_of<DataError>([&] { load_antolik_region(dir); });
    EXPECT_EQ(msg.rfind((dir / "training_inputs.npy").string() + ": missing", 0), 0u) << msg;
    EXPECT_NE(msg.find("doi:10.1371/journal.pcbi.1004927.s001"), std::string::npos) << msg;
  }
}

TEST(Preprocessing, MapsTheTrainingRangeToMinusOneOneAndSplitsBySeed) {
  const auto r = tiny_region(5);
  const auto d = prepare(r, 11);
  EXPECT_EQ(d.train_images.sizes(), torch::IntArrayRef({24, 1, 32, 32}));
  EXPECT_EQ(d.val_images.sizes(), torch::IntArrayRef({6, 1, 32, 32}));
  EXPECT_EQ(d.test_images.sizes(), torch::IntArrayRef({6, 1, 32, 32}));
  EXPECT_EQ(d.train_responses.size(0) + d.val_responses.size(0), 30);
  // Before resizing, the training file's range maps onto [-1, 1].
  const double lo = r.train_inputs.min().item<double>(), hi = r.train_inputs.max().item<double>();
  EXPECT_DOUBLE_EQ(d.pixel_min, lo);
  EXPECT_DOUBLE_EQ(d.pixel_max, hi);
  EXPECT_GE(d.train_images31.min().item<float>(), -1.0f);
  EXPECT_LE(d.train_images31.max().item<float>(), 1.0f);
  // Every training image is a raw row mapped by 2 (x - lo) / (hi - lo) - 1, and
  // its responses are that raw row's responses.
  const auto mapped = (2 * (r.train_inputs - lo) / (hi - lo) - 1).to(torch::kFloat);
  EXPECT_FLOAT_EQ(mapped.min().item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(mapped.max().item<float>(), 1.0f);
  for (int64_t i = 0; i < d.train_images31.size(0); ++i) {
    auto diff = (mapped - d.train_images31[i].reshape({1, 961})).abs().amax(1);
    const auto j = diff.argmin().item<int64_t>();
    ASSERT_EQ(diff[j].item<float>(), 0.0f) << "training image " << i << " is no raw row";
    EXPECT_TRUE(torch::equal(d.train_responses[i], r.train_responses[j].to(torch::kFloat)));
  }
  const auto same = prepare(r, 11);
  EXPECT_TRUE(torch::equal(same.train_responses, d.train_responses));
  const auto other = prepare(r, 12);
  EXPECT_FALSE(torch::equal(other.train_responses, d.train_responses));
  // Train and validation are disjoint and together the whole file.
  auto rows = torch::cat({d.train_responses, d.val_responses}).to(torch::kDouble);
  auto sorted_a = std::get<0>(rows.sum(1).sort()), sorted_b = std::get<0>(r.train_responses.sum(1).sort());
  EXPECT_TRUE(torch::allclose(sorted_a, sorted_b, 1e-5, 1e-5));
}

TEST(Preprocessing, BilinearResizeKeepsConstantsAndOrder) {
  auto constant = torch::full({1, 961}, 0.25);
  EXPECT_TRUE(torch::allclose(resize_31_to_32(constant), torch::full({1, 1, 32, 32}, 0.25f)));
  // A horizontal ramp stays a non-decreasing ramp after resizing.
  auto ramp = torch::arange(31, torch::kDouble).repeat({31}).reshape({1, 961});
  auto out = resize_31_to_32(ramp)[0][0];
  EXPECT_TRUE((out.slice(1, 1) - out.slice(1, 0, 31) >= 0).all().item<bool>());
  EXPECT_NEAR(out[0][0].item<float>(), 0.0f, 1e-5);
  EXPECT_NEAR(out[0][31].item<float>(), 30.0f, 1e-5);
}

TEST(Preprocessing, SelectingNeuronsKeepsTheirColumnsInOrder) {
  const auto r = tiny_region(5);  // 4 neurons
  const auto s = select_neurons(r, {3, 1});
  EXPECT_EQ(s.train_responses.size(1), 2);
  EXPECT_TRUE(torch::equal(s.train_responses.select(1, 0), r.train_responses.select(1, 3)));
  EXPECT_TRUE(torch::equal(s.test_raw.select(2, 1), r.test_raw.select(2, 1)));
  EXPECT_TRUE(torch::equal(s.rf_centres[0], r.rf_centres[3]));
  EXPECT_TRUE(torch::equal(s.train_inputs, r.train_inputs));
  EXPECT_EQ(error_of<DataError>([&] { select_neurons(r, {4}); }), "neuron 4 does not exist (the region has 4)");
  EXPECT_EQ(error_of<DataError>([&] { select_neurons(r, {}); }), "neuron selection is empty: no neuron to fit");
}

TEST(Preprocessing, FingerprintChangesWithOneValue) {
  auto r = tiny_region(5);
  const auto before = fingerprint(r);
  r.train_responses[0][0] += 1e-9;
  EXPECT_NE(fingerprint(r), before);
  EXPECT_EQ(before.size(), 16u);
}

}  // namespace
}  // namespace daenr::models
