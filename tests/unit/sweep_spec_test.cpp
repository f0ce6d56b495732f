// Sweep specs: defaults, every axis, rules and overrides, and every bad spec in
// tests/data/specs/bad pinned to its message.

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/error_of.h"
#include "sweeps/expand.h"
#include "sweeps/spec.h"
#include "tests/support/temp_dir.h"
#include "job/toml_reader.h"

namespace daenr::sweeps {
namespace {

using daenr::testing::error_of;

namespace fs = std::filesystem;
using job::AutoencoderKind;
using job::ReadoutKind;
using testing::TempDir;

SweepSpec parse(const std::string& text) {
  return parse_sweep_spec(text, "s.toml", "/nonexistent-base");
}

std::string spec_error(const std::string& text) {
  return error_of<SpecError>([&] { parse(text); });
}

const std::string kRegion = "[data]\nregions = [\"virtual:1\"]\n";

TEST(SweepSpec, GraceSignalIsARunSettingCheckedLikeTheFlag) {
  EXPECT_FALSE(parse(kRegion).grace_signal.has_value());
  EXPECT_EQ(*parse("grace_signal = \"sigalrm\"\n" + kRegion).grace_signal, "ALRM");
  EXPECT_EQ(*parse("grace_signal = \"USR1\"\n" + kRegion).grace_signal, "USR1");
  EXPECT_EQ(spec_error("grace_signal = \"KILL\"\n" + kRegion),
            "s.toml:1:16: grace_signal: 'KILL': cannot be caught, so the run could not checkpoint; "
            "use USR2 (the "
            "default), USR1 or ALRM");
  EXPECT_EQ(spec_error("grace_signal = \"HUP\"\n" + kRegion).substr(0, 60),
            "s.toml:1:16: grace_signal: 'HUP': not a grace signal daenr h");
  // In no job id: Expand.RunSettingsAreInNoJobsIdOrCanonicalForm.
}

// The threads a run's processes ask for, known before any job runs (worker/cpu_share.h).
TEST(SweepSpec, MostThreadsIsTheLargestTrainThreadsOfTheBaseAndItsOverrides) {
  EXPECT_EQ(parse(kRegion).most_threads(), 1);
  EXPECT_EQ(parse(kRegion + "[train]\nthreads = 2\n").most_threads(), 2);
  const std::string two_models = kRegion + "[axes]\nautoencoder = [\"cae\", \"vae\"]\n";
  EXPECT_EQ(parse(two_models + "[train]\nthreads = 2\n[override.vae]\ntrain.threads = 4\n")
                .most_threads(),
            4);
  EXPECT_EQ(parse(two_models + "[train]\nthreads = 3\n[override.vae]\ntrain.threads = 1\n")
                .most_threads(),
            3);
  EXPECT_EQ(parse(two_models + "[override.cae]\ntrain.threads = 2\n").most_threads(), 2);
}

TEST(SweepSpec, DefaultsAreOneJobOfTheReadmeModel) {
  const auto s = parse("[data]\nregions = [\"virtual:3\"]\n");
  EXPECT_EQ(s.name, "s");  // the file's stem
  EXPECT_EQ(s.source, "s.toml");
  EXPECT_EQ(s.regions, std::vector<std::string>{"virtual:3"});
  EXPECT_EQ(s.region_paths, std::vector<std::string>{"virtual:3"});
  EXPECT_EQ(s.data_seed, 1u);
  EXPECT_EQ(s.layers, std::vector<int>{1});
  EXPECT_EQ(s.autoencoders, std::vector<AutoencoderKind>{AutoencoderKind::kCae});
  EXPECT_EQ(s.readouts, std::vector<ReadoutKind>{ReadoutKind::kFr});
  EXPECT_EQ(s.losses, (std::vector<std::pair<double, double>>{{1.0, 1.0}}));
  EXPECT_EQ(s.seeds, std::vector<std::uint64_t>{0});
  EXPECT_EQ(s.neurons, std::vector<Neurons>{Neurons::kAll});
  EXPECT_TRUE(s.include.empty());
  EXPECT_TRUE(s.exclude.empty());
  EXPECT_TRUE(s.overrides.empty());
  EXPECT_TRUE(s.base.empty());
}

TEST(SweepSpec, ReadsEveryAxisInTheOrderWritten) {
  const auto s = parse(R"(
name = "table2"
description = "every axis"
[data]
regions = ["virtual:2", "virtual:1"]
data_seed = 4
[axes]
layer = [3, "h1"]
autoencoder = ["vqvae", "cae", "vae", "none"]
readout = ["fm", "fr", "fc", "none"]
loss = [[1, 1], [0, 2.5], [0.5, 0]]
seeds = [7, 0]
neurons = ["insignificant", "all", "significant"]
)");
  EXPECT_EQ(s.name, "table2");
  EXPECT_EQ(s.regions, (std::vector<std::string>{"virtual:2", "virtual:1"}));
  EXPECT_EQ(s.data_seed, 4u);
  EXPECT_EQ(s.layers, (std::vector<int>{3, 1}));
  EXPECT_EQ(s.autoencoders,
            (std::vector<AutoencoderKind>{AutoencoderKind::kVqVae, AutoencoderKind::kCae,
                                          AutoencoderKind::kVae, AutoencoderKind::kNone}));
  EXPECT_EQ(s.readouts, (std::vector<ReadoutKind>{ReadoutKind::kFm, ReadoutKind::kFr,
                                                  ReadoutKind::kFc, ReadoutKind::kNone}));
  EXPECT_EQ(s.losses, (std::vector<std::pair<double, double>>{{1, 1}, {0, 2.5}, {0.5, 0}}));
  EXPECT_EQ(s.seeds, (std::vector<std::uint64_t>{7, 0}));
  EXPECT_EQ(s.neurons,
            (std::vector<Neurons>{Neurons::kInsignificant, Neurons::kAll, Neurons::kSignificant}));
}

TEST(SweepSpec, ALossTableExpandsToEveryPairOfItsProduct) {
  const auto s = parse(kRegion + R"(
[axes]
autoencoder = ["cae", "none"]
readout = ["fr", "none"]
loss = [{alpha = 1, beta = [0, 0.1, 10]}, [0, 1], {alpha = [2, 4], beta = 1}]
)");
  EXPECT_EQ(s.losses, (std::vector<std::pair<double, double>>{
                          {1, 0}, {1, 0.1}, {1, 10}, {0, 1}, {2, 1}, {4, 1}}));
  // Each pair is remembered where its table was written, for the "in no job" errors.
  EXPECT_EQ(s.written_at.at("axes.loss=[1, 10]"), s.written_at.at("axes.loss=[1, 0]"));
  EXPECT_NE(s.written_at.at("axes.loss=[1, 10]"), s.written_at.at("axes.loss=[0, 1]"));
  // The same pair twice, in a table or as a pair, is a duplicate.
  EXPECT_EQ(spec_error(kRegion + "[axes]\nloss = [[1, 1], {alpha = 1, beta = [0.5, 1]}]\n"),
            "s.toml:4:17: axes.loss: duplicate value [1, 1]");
  EXPECT_EQ(spec_error(kRegion + "[axes]\nloss = [{alpha = 1, beta = [1, 2]}, [1.0, 2]]\n"),
            "s.toml:4:37: axes.loss: duplicate value [1, 2]");
  EXPECT_EQ(spec_error(kRegion + "[axes]\nloss = [{alpha = 1, gamma = 2}]\n"),
            "s.toml:4:29: axes.loss: a loss table has keys alpha and beta, got 'gamma'");
  EXPECT_EQ(spec_error(kRegion + "[axes]\nloss = [{alpha = 1}]\n"),
            "s.toml:4:9: axes.loss: a loss table needs beta (a number or an array)");
  EXPECT_EQ(spec_error(kRegion + "[axes]\nloss = [{alpha = 1, beta = []}]\n"),
            "s.toml:4:28: axes.loss: beta is an empty array");
  EXPECT_EQ(spec_error(kRegion + "[axes]\nloss = [{alpha = 1, beta = [-1]}]\n"),
            "s.toml:4:29: axes.loss: beta must be >= 0, got -1");
}

TEST(SweepSpec, RemembersWhereEachAxisValueIsWritten) {
  const auto s = parse(
      "[data]\nregions = [\"virtual:1\"]\n[axes]\nlayer = [1, \"h3\"]\n"
      "loss = [[1, 1], [1.0, 0]]\n");
  EXPECT_EQ(s.written_at.at("data.regions=virtual:1"), "s.toml:2:12");
  EXPECT_EQ(s.written_at.at("axes.layer=3"), "s.toml:4:13");
  EXPECT_EQ(s.written_at.at("axes.loss=[1, 0]"), "s.toml:5:17");
}

TEST(SweepSpec, SharedSettingsAreAJobTableWithoutTheAxes) {
  const auto s = parse("val_fraction = 0.3\n" + kRegion + R"(
[model]
width = 4
[loss]
kl_weight = 0.5
[train]
max_steps = 40
)");
  const auto c = job::job_config_from_table(s.base, "s.toml");
  EXPECT_DOUBLE_EQ(c.val_fraction, 0.3);
  EXPECT_EQ(c.model.width, 4);
  EXPECT_DOUBLE_EQ(c.loss.kl_weight, 0.5);
  EXPECT_EQ(c.train.max_steps, 40);
  EXPECT_EQ(s.base.size(), 4u);
}

TEST(SweepSpec, OverridesNameAnAxisValueShortOrInFull) {
  const auto s = parse(R"(
[data]
regions = ["virtual:1", "virtual:2"]
[axes]
layer = [1, 2]
autoencoder = ["cae", "vae"]
readout = ["fr", "fc"]
loss = [[1, 1], [1, 0.5]]
seeds = [0, 3]
[override.vae]
loss.kl_weight = 0.1
[override.h2]
train.max_steps = 7
[override.fc]
train.device = "cuda:99"
[override.seed.3]
train.batch_size = 8
[override.region."virtual:2"]
data_seed = 9
[override.beta."0.5"]
train.patience = 500
[override.layer.1]
train.lr_decay = 0.25
)");
  ASSERT_EQ(s.overrides.size(), 7u);
  std::vector<std::string> got;
  for (const auto& o : s.overrides) {
    got.push_back(fmt::format("{} {}={} {}", o.name, to_string(o.axis), o.value, o.at));
  }
  // TOML tables are ordered by key, not as written.
  EXPECT_EQ(got, (std::vector<std::string>{
                     "override.beta.0.5 beta=0.5 s.toml:20:16",
                     "override.fc readout=fc s.toml:14:11",
                     "override.h2 layer=2 s.toml:12:11",
                     "override.layer.1 layer=1 s.toml:22:17",
                     "override.region.virtual:2 region=virtual:2 s.toml:18:18",
                     "override.seed.3 seed=3 s.toml:16:16",
                     "override.vae autoencoder=vae s.toml:10:11",
                 }));
  const auto& vae = s.overrides.back();
  EXPECT_DOUBLE_EQ(vae.settings["loss"]["kl_weight"].value_or(0.0), 0.1);
}

TEST(SweepSpec, RulesMatchOnEveryConditionAndAnyListedValue) {
  const auto s = parse(R"(
[data]
regions = ["virtual:1"]
[axes]
layer = [1, 2, 3]
autoencoder = ["cae", "vae"]
loss = [[1, 1], [0.5, 1]]
[[exclude]]
autoencoder = "vae"
layer = ["h2", 3]
[[include]]
alpha = 0.5
)");
  ASSERT_EQ(s.exclude.size(), 1u);
  ASSERT_EQ(s.include.size(), 1u);
  const auto& rule = s.exclude[0];
  ASSERT_EQ(rule.conditions.size(), 2u);
  EXPECT_EQ(rule.conditions[1].second, (std::vector<std::string>{"2", "3"}));  // "h2" is 2
  Labels l;
  l.region = "virtual:1";
  l.autoencoder = AutoencoderKind::kVae;
  l.layer = 2;
  EXPECT_TRUE(rule.matches(l));
  l.layer = 1;
  EXPECT_FALSE(rule.matches(l));
  l.layer = 3;
  l.autoencoder = AutoencoderKind::kCae;
  EXPECT_FALSE(rule.matches(l));
  l.alpha = 0.5;
  EXPECT_TRUE(s.include[0].matches(l));
  l.alpha = 1;
  EXPECT_FALSE(s.include[0].matches(l));
}

TEST(SweepSpec, TheSameSpecWrittenDifferentlyParsesTheSame) {
  // Key order, comments, "h2" for 2 and 1.0 for 1 change nothing.
  const auto a = parse(
      "[data]\nregions = [\"virtual:1\"]\n[axes]\nlayer = [2]\nloss = [[1, 1]]\n"
      "[train]\nmax_steps = 9\npatience = 60\n");
  const auto b = parse(
      "# a comment\n[train]\npatience = 60 # and another\nmax_steps = 9\n"
      "[axes]\nloss = [[1.0, 1.0]]\nlayer = [\"h2\"]\n[data]\n"
      "regions = [\"virtual:1\"]\n");
  EXPECT_EQ(a.layers, b.layers);
  EXPECT_EQ(a.losses, b.losses);
  EXPECT_EQ(job::to_json(job::job_config_from_table(a.base, "a")).dump(),
            job::to_json(job::job_config_from_table(b.base, "b")).dump());
}

TEST(SweepSpec, DataFoldersAreRelativeToTheSpec) {
  TempDir dir;
  fs::create_directories(dir.path() / "data" / "region1");
  std::ofstream(dir.path() / "sweep.toml") << "[data]\nregions = [\"data/region1\"]\n";
  const auto s = load_sweep_spec(dir.path() / "sweep.toml");
  EXPECT_EQ(s.name, "sweep");
  EXPECT_EQ(s.regions, std::vector<std::string>{"data/region1"});
  EXPECT_EQ(s.region_paths,
            std::vector<std::string>{fs::weakly_canonical(dir.path() / "data/region1").string()});
  // One folder spelt twice is one region, written twice.
  std::ofstream(dir.path() / "twice.toml")
      << "[data]\nregions = [\"data/region1\", \"./data/../data/region1\"]\n";
  try {
    load_sweep_spec(dir.path() / "twice.toml");
    ADD_FAILURE() << "no error";
  } catch (const SpecError& e) {
    EXPECT_EQ(std::string(e.what()),
              fmt::format("{}:2:28: data.regions: duplicate value {}",
                          (dir.path() / "twice.toml").string(), s.region_paths[0]));
  }
}

TEST(SweepSpec, AMissingFileIsNamed) {
  try {
    load_sweep_spec("/nonexistent/sweep.toml");
    ADD_FAILURE() << "no error";
  } catch (const SpecError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/sweep.toml: cannot open the sweep spec");
  }
}

TEST(SweepSpec, ErrorsInTextNameTheSourceLineAndKey) {
  EXPECT_EQ(spec_error(kRegion + "[axes]\nseeds = [1, 1]\n"),
            "s.toml:4:13: axes.seeds: duplicate value 1");
  EXPECT_EQ(spec_error(kRegion + "[train]\nmax_steps = -3\n"),
            "s.toml:4:13: train.max_steps: must be in [1, 1073741824], got -3");
  // A check across keys points at the key it names or at that key's table.
  EXPECT_EQ(spec_error(kRegion + "[train]\npatience = 10\n"),
            "s.toml:3:1: train.validate_every: 50 exceeds train.patience 10");
  EXPECT_EQ(spec_error(kRegion + "[train]\nvalidate_every = 20\n"
                               "[axes]\nautoencoder = [\"cae\", \"vae\"]\n"
                               "[override.vae]\ntrain.patience = 10\n"),
            "s.toml:4:18: train.validate_every: 20 exceeds train.patience 10 (in override.vae)");
}

// Every file in tests/data/specs/bad holds one mistake and, on its first line,
// "# expect: LINE:COLUMN: ..." : the message that `daenr sweep plan` must give
// (load_sweep_spec, or expand for a mistake only expansion can see), after
// the file's path.
TEST(SweepSpec, EveryBadSpecInTheCorpusGetsItsOneLineMessage) {
  const fs::path dir = fs::path(DAENR_SOURCE_DIR) / "tests/data/specs/bad";
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".toml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 80u);
  const std::regex located(R"(^.*\.toml:\d+:\d+: .+$)");
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    std::ifstream in(file);
    std::string first;
    std::getline(in, first);
    const std::string prefix = "# expect: ";
    ASSERT_EQ(first.rfind(prefix, 0), 0u) << "the first line must be '# expect: ...'";
    const std::string expected = first.substr(prefix.size());
    std::string message = "(no error)";
    try {
      expand(load_sweep_spec(file));
    } catch (const SpecError& e) {
      message = e.what();
    }
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_TRUE(std::regex_match(message, located)) << message;
    EXPECT_EQ(message.rfind(file.string() + ":", 0), 0u) << message;
    EXPECT_NE(message.find(file.filename().string() + ":" + expected), std::string::npos)
        << "message:  " << message << "\nexpected: " << expected;
  }
}

}  // namespace
}  // namespace daenr::sweeps
