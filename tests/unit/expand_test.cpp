// Sweep expansion: which jobs a spec makes, in which order, with which
// configuration, and ids that change exactly when a job's result can.

#include "tests/support/region_files.h"
#include "tests/support/error_of.h"
#include "sweeps/expand.h"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "models/data.h"
#include "models/error.h"
#include "job/hash.h"
#include "models/npy.h"
#include "models/synth.h"
#include "sweeps/spec.h"
#include "tests/support/temp_dir.h"

namespace daenr::sweeps {
namespace {

using daenr::testing::tiny_region;
using daenr::testing::write_region;

using daenr::testing::error_of;

namespace fs = std::filesystem;
using job::AutoencoderKind;
using job::ReadoutKind;
using testing::TempDir;

std::vector<JobSpec> jobs_of(const std::string& text, const fs::path& base_dir = "/") {
  return expand(parse_sweep_spec(text, "s.toml", base_dir));
}

std::vector<std::string> ids_of(const std::vector<JobSpec>& jobs) {
  std::vector<std::string> ids;
  for (const auto& j : jobs) ids.push_back(j.id);
  return ids;
}

std::string expand_error(const std::string& text) {
  return error_of<SpecError>([&] { jobs_of(text); });
}

// "cae-fr_2 a=1 b=1 seed 0 all": a job's labels, to compare orders and sets.
std::string label(const JobSpec& j) {
  const auto& l = j.labels;
  return fmt::format("{} {}-{}_{} a={} b={} seed {} {}", l.region, job::to_string(l.autoencoder),
                     job::to_string(l.readout), l.layer, l.alpha, l.beta, l.seed,
                     to_string(l.neurons));
}

std::vector<std::string> labels_of(const std::vector<JobSpec>& jobs) {
  std::vector<std::string> out;
  for (const auto& j : jobs) out.push_back(label(j));
  return out;
}

// Every id of `before` is in `after`, with the same labels.
void expect_kept(const std::vector<JobSpec>& before, const std::vector<JobSpec>& after) {
  for (const auto& b : before) {
    auto it =
        std::find_if(after.begin(), after.end(), [&](const JobSpec& a) { return a.id == b.id; });
    ASSERT_NE(it, after.end()) << label(b) << " changed its id";
    EXPECT_EQ(label(*it), label(b));
  }
}

// A small region in the Antolík layout, as `daenr data synth` writes one
// (write_virtual_regions writes three full-size ones: seconds, not needed).
const std::string kSmall = R"(
[data]
regions = ["virtual:1"]
[axes]
layer = [1, 2]
autoencoder = ["cae", "vae"]
readout = ["fr", "fc"]
seeds = [0, 1]
[train]
max_steps = 40
)";

TEST(Expand, RunSettingsAreInNoJobsIdOrCanonicalForm) {
  // jobs_per_gpu, ranks_per_job and grace_signal say how the run computes its jobs, not what: a
  // spec with them has the same jobs, ids and canonical texts as one without.
  const std::string axes = "[data]\nregions = [\"virtual:1\"]\n[axes]\nlayer = [1, 2]\n";
  const auto plain = jobs_of(axes);
  const auto packed =
      jobs_of("jobs_per_gpu = 8\nranks_per_job = 2\ngrace_signal = \"ALRM\"\n" + axes);
  EXPECT_EQ(parse_sweep_spec("jobs_per_gpu = 8\n" + axes, "s.toml", "/").jobs_per_gpu, 8);
  EXPECT_FALSE(parse_sweep_spec(axes, "s.toml", "/").jobs_per_gpu.has_value());
  ASSERT_EQ(plain.size(), 2u);
  EXPECT_EQ(ids_of(packed), ids_of(plain));
  for (std::size_t i = 0; i < plain.size(); ++i) {
    const auto text = canonical_json(packed[i].config);
    EXPECT_EQ(text, canonical_json(plain[i].config));
    EXPECT_EQ(text.find("per_gpu"), std::string::npos);
  }
}

TEST(Expand, TheDefaultSpecIsOneJobWithTheJobFileDefaults) {
  const auto jobs = jobs_of("[data]\nregions = [\"virtual:3\"]\n");
  ASSERT_EQ(jobs.size(), 1u);
  auto expected = job::parse_job_config("data = \"virtual:3\"\n", "job.toml");
  EXPECT_EQ(canonical_json(jobs[0].config), canonical_json(expected));
  EXPECT_EQ(label(jobs[0]), "virtual:3 cae-fr_1 a=1 b=1 seed 0 all");
  EXPECT_EQ(jobs[0].depends_on, "");
  EXPECT_EQ(jobs[0].id.size(), 20u);
  EXPECT_EQ(jobs[0].id.find_first_not_of("0123456789abcdef"), std::string::npos);
}

// Ids are SHA-256 as everyone computes it (FIPS 180-2's test vectors), so that
// any tool can recompute one.
TEST(Expand, IdsUseStandardSha256) {
  EXPECT_EQ(job::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(job::Sha256().update("a").update("bc").hex(), job::sha256_hex("abc"));
  EXPECT_EQ(job::sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Expand, TheIdHashesConfigFingerprintNeuronSetAndCodeVersion) {
  const auto jobs = jobs_of("[data]\nregions = [\"virtual:2\"]\ndata_seed = 5\n");
  ASSERT_EQ(jobs.size(), 1u);
  const auto& j = jobs[0];
  EXPECT_EQ(j.data_fingerprint,
            job::sha256_hex(fmt::format("virtual:2 data_seed 5 code {}", kModelCodeVersion))
                .substr(0, 16));
  job::Sha256 h;
  h.update(canonical_json(j.config)).update("\n").update(j.data_fingerprint).update("\n");
  h.update("all").update("\n").update(kModelCodeVersion);
  EXPECT_EQ(j.id, h.hex().substr(0, 20));
}

// Expansion writes the canonical text by splicing the axis values into a
// template; each id must still hash exactly what job::to_json writes.
TEST(Expand, EveryIdHashesTheJobsFullCanonicalConfiguration) {
  TempDir dir;
  write_region(dir.path() / "region", tiny_region(5));
  const auto jobs = jobs_of(R"(
[data]
regions = ["virtual:2", "region"]
data_seed = 3
[axes]
layer = [1, 4]
autoencoder = ["vae", "none", "vqvae"]
readout = ["fm", "none"]
loss = [[0.25, 1e-3], [0, 2], [1.5, 0]]
seeds = [0, 12345678901]
neurons = ["all", "significant"]
[train]
learning_rate = 3e-4
[override.vae]
loss.kl_weight = 0.1
[override.h4]
model.fc_dropout = 0.3
[override.region."virtual:2"]
data_seed = 8
)",
                            dir.path());
  // Per region and seed: vae and vqvae with fm on 2 layers, all and
  // significant neurons (8); the CNN on 2 layers (4); two autoencoders alone (2).
  ASSERT_EQ(jobs.size(), 2u * 2u * (8u + 4u + 2u));
  for (const auto& j : jobs) {
    SCOPED_TRACE(label(j));
    auto canonical = job::to_json(j.config);
    if (j.labels.region == "region") canonical["data"] = "folder:" + j.data_fingerprint;
    job::Sha256 h;
    h.update(canonical.dump()).update("\n").update(j.data_fingerprint).update("\n");
    h.update(j.depends_on.empty() ? "all" : "significant of " + j.depends_on);
    h.update("\n").update(kModelCodeVersion);
    EXPECT_EQ(j.id, h.hex().substr(0, 20));
  }
}

TEST(Expand, ExpansionIsDeterministic) {
  const auto a = jobs_of(kSmall);
  const auto b = jobs_of(kSmall);
  ASSERT_EQ(a.size(), 16u);
  EXPECT_EQ(ids_of(a), ids_of(b));
  const auto ids = ids_of(a);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 16u);
}

TEST(Expand, OrderIsRegionLayerAutoencoderReadoutLossSeed) {
  const auto jobs = jobs_of(R"(
[data]
regions = ["virtual:2", "virtual:1"]
[axes]
layer = [2, 1]
autoencoder = ["vae", "cae"]
readout = ["fc", "fr"]
loss = [[1, 1], [1, 2]]
seeds = [1, 0]
)");
  ASSERT_EQ(jobs.size(), 64u);
  EXPECT_EQ(label(jobs[0]), "virtual:2 vae-fc_2 a=1 b=1 seed 1 all");
  EXPECT_EQ(label(jobs[1]), "virtual:2 vae-fc_2 a=1 b=1 seed 0 all");
  EXPECT_EQ(label(jobs[2]), "virtual:2 vae-fc_2 a=1 b=2 seed 1 all");
  EXPECT_EQ(label(jobs[4]), "virtual:2 vae-fr_2 a=1 b=1 seed 1 all");
  EXPECT_EQ(label(jobs[8]), "virtual:2 cae-fc_2 a=1 b=1 seed 1 all");
  EXPECT_EQ(label(jobs[16]), "virtual:2 vae-fc_1 a=1 b=1 seed 1 all");
  EXPECT_EQ(label(jobs[32]), "virtual:1 vae-fc_2 a=1 b=1 seed 1 all");
  EXPECT_EQ(label(jobs[63]), "virtual:1 cae-fr_1 a=1 b=2 seed 0 all");
}

TEST(Expand, AddingAValueToAnAxisKeepsEveryExistingId) {
  const auto before = jobs_of(kSmall);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = kSmall;
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return jobs_of(text.replace(at, from.size(), to));
  };
  const auto more_seeds = with("seeds = [0, 1]", "seeds = [0, 1, 2]");
  EXPECT_EQ(more_seeds.size(), 24u);
  expect_kept(before, more_seeds);
  const auto more_layers = with("layer = [1, 2]", "layer = [4, 1, 2]");
  EXPECT_EQ(more_layers.size(), 24u);
  expect_kept(before, more_layers);
  const auto more_regions =
      with("regions = [\"virtual:1\"]", "regions = [\"virtual:1\", \"virtual:3\"]");
  EXPECT_EQ(more_regions.size(), 32u);
  expect_kept(before, more_regions);
  const auto more_readouts =
      with("readout = [\"fr\", \"fc\"]", "readout = [\"fm\", \"fr\", \"fc\"]");
  EXPECT_EQ(more_readouts.size(), 24u);
  expect_kept(before, more_readouts);
  // A new loss with its baseline: the old jobs stay as they were.
  const auto baselines = with("readout = [\"fr\", \"fc\"]",
                              "readout = [\"fr\", \"fc\", \"none\"]\nloss = [[1, 1], [1, 0]]");
  EXPECT_EQ(baselines.size(), 16u + 4u);  // + cae and vae without a readout, two seeds
  expect_kept(before, baselines);
}

TEST(Expand, IdsChangeWithWhatDeterminesAResultAndNothingElse) {
  const auto base = ids_of(jobs_of(kSmall));
  auto ids_with = [&](const std::string& from, const std::string& to) {
    std::string text = kSmall;
    return ids_of(jobs_of(text.replace(text.find(from), from.size(), to)));
  };
  // Cosmetic: name, description, comments, key order, spelling.
  EXPECT_EQ(ids_with("[data]", "name = \"other\"\ndescription = \"words\"\n[data]"), base);
  EXPECT_EQ(ids_with("[train]", "# a comment\n[train] # another"), base);
  EXPECT_EQ(ids_with("layer = [1, 2]", "layer = [\"h1\", \"h2\"]"), base);
  EXPECT_EQ(ids_with("[axes]", "[axes]\nloss = [[1.0, 1.0]]"), base);
  {
    const std::string reordered = R"(
[train]
max_steps = 40
[axes]
seeds = [0, 1]
readout = ["fr", "fc"]
autoencoder = ["cae", "vae"]
layer = [1, 2]
[data]
regions = ["virtual:1"]
)";
    EXPECT_EQ(ids_of(jobs_of(reordered)), base);
  }
  // A setting equal to its default is the default.
  EXPECT_EQ(ids_with("[train]", "[model]\nwidth = 32\n[train]"), base);

  // What a result depends on: every id changes.
  auto all_differ = [&](const std::vector<std::string>& ids) {
    ASSERT_EQ(ids.size(), base.size());
    for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_NE(ids[i], base[i]) << i;
  };
  all_differ(ids_with("max_steps = 40", "max_steps = 41"));
  all_differ(ids_with("[train]", "[model]\nwidth = 8\n[train]"));
  all_differ(ids_with("[train]", "[model]\nlatent = 50\n[train]"));
  all_differ(ids_with("[data]", "val_fraction = 0.25\n[data]"));
  all_differ(ids_with("regions = [\"virtual:1\"]", "regions = [\"virtual:1\"]\ndata_seed = 2"));
  all_differ(ids_with("regions = [\"virtual:1\"]", "regions = [\"virtual:2\"]"));
}

// The hand count of the README's baselines: autoencoder {cae, none} x readout
// {fr, none} x loss {(1,1), (0,1), (1,0)} x layer {1, 2} has 24 combinations,
// of which CAE-FR_1, CAE-FR_2, CNN-FR_1, CNN-FR_2 (alpha = 0) and one CAE
// without a readout (beta = 0; no layer, so once) are models.
TEST(Expand, BaselinesFollowTheBuiltInRules) {
  const auto jobs = jobs_of(R"(
[data]
regions = ["virtual:1"]
[axes]
layer = [1, 2]
autoencoder = ["cae", "none"]
readout = ["fr", "none"]
loss = [[1, 1], [0, 1], [1, 0]]
)");
  EXPECT_EQ(labels_of(jobs), (std::vector<std::string>{
                                 "virtual:1 cae-fr_1 a=1 b=1 seed 0 all",
                                 "virtual:1 cae-none_0 a=1 b=0 seed 0 all",
                                 "virtual:1 none-fr_1 a=0 b=1 seed 0 all",
                                 "virtual:1 cae-fr_2 a=1 b=1 seed 0 all",
                                 "virtual:1 none-fr_2 a=0 b=1 seed 0 all",
                             }));
  const auto& cae = jobs[1].config;
  EXPECT_EQ(cae.model.readout, ReadoutKind::kNone);
  EXPECT_EQ(cae.model.layer, 1);  // the configuration's default; the label says 0
  EXPECT_DOUBLE_EQ(cae.loss.beta, 0.0);
  const auto& cnn = jobs[4].config;
  EXPECT_EQ(cnn.model.autoencoder, AutoencoderKind::kNone);
  EXPECT_EQ(cnn.model.layer, 2);
  EXPECT_DOUBLE_EQ(cnn.loss.alpha, 0.0);
}

TEST(Expand, IncludeAndExcludeSelectJobs) {
  // [[exclude]]: any rule removes a job; a rule needs all its conditions.
  auto jobs = jobs_of(kSmall + R"(
[[exclude]]
autoencoder = "vae"
readout = "fc"
[[exclude]]
layer = 2
seed = 1
)");
  // 16, less vae-fc (4), less layer 2 seed 1 (4), plus vae-fc_2 seed 1 counted twice.
  EXPECT_EQ(jobs.size(), 16u - 4u - 4u + 1u);
  for (const auto& j : jobs) {
    EXPECT_FALSE(j.labels.autoencoder == AutoencoderKind::kVae &&
                 j.labels.readout == ReadoutKind::kFc)
        << label(j);
    EXPECT_FALSE(j.labels.layer == 2 && j.labels.seed == 1) << label(j);
  }
  // [[include]]: a job must match some rule; a list matches any of its values.
  jobs = jobs_of(kSmall + R"(
[[include]]
readout = ["fc"]
seed = 0
[[include]]
autoencoder = "vae"
layer = "h1"
readout = "fr"
seed = [1]
)");
  EXPECT_EQ(labels_of(jobs), (std::vector<std::string>{
                                 "virtual:1 cae-fc_1 a=1 b=1 seed 0 all",
                                 "virtual:1 vae-fr_1 a=1 b=1 seed 1 all",
                                 "virtual:1 vae-fc_1 a=1 b=1 seed 0 all",
                                 "virtual:1 cae-fc_2 a=1 b=1 seed 0 all",
                                 "virtual:1 vae-fc_2 a=1 b=1 seed 0 all",
                             }));
  // Excluding a job keeps the ids of the others.
  expect_kept(jobs, jobs_of(kSmall));
}

// A model without a readout has no layer: it is kept if the rules let it
// through on any layer of the axis, and a layer override never reaches it.
TEST(Expand, ALayerRuleReachesABaselineOnlyOnEveryLayer) {
  const std::string spec = R"(
[data]
regions = ["virtual:1"]
[axes]
layer = [1, 2]
readout = ["fr", "none"]
loss = [[1, 1], [1, 0]]
[override.h1]
train.max_steps = 9
)";
  auto jobs = jobs_of(spec + "[[exclude]]\nlayer = 1\nreadout = \"none\"\n");
  EXPECT_EQ(labels_of(jobs), (std::vector<std::string>{"virtual:1 cae-fr_1 a=1 b=1 seed 0 all",
                                                       "virtual:1 cae-fr_2 a=1 b=1 seed 0 all",
                                                       "virtual:1 cae-none_0 a=1 b=0 seed 0 all"}));
  EXPECT_EQ(expand_error(spec + "[[exclude]]\nlayer = [1, 2]\nreadout = \"none\"\n"),
            "s.toml:7:17: axes.loss: [1, 0] is in no job: every job with it is excluded by "
            "[[include]] / [[exclude]]");
  jobs = jobs_of(spec);
  EXPECT_EQ(labels_of(jobs), (std::vector<std::string>{"virtual:1 cae-fr_1 a=1 b=1 seed 0 all",
                                                       "virtual:1 cae-none_0 a=1 b=0 seed 0 all",
                                                       "virtual:1 cae-fr_2 a=1 b=1 seed 0 all"}));
  EXPECT_EQ(jobs[0].config.train.max_steps, 9);
  EXPECT_EQ(jobs[1].config.train.max_steps, 20000);
  EXPECT_EQ(jobs[2].config.train.max_steps, 20000);
}

TEST(Expand, OverridesReachExactlyTheJobsWithTheirValue) {
  const std::string overrides = R"(
[override.vae]
loss.kl_weight = 0.1
[override.h2]
train.max_steps = 7
[override.fc]
train.device = "cuda:99"
[override.seed.1]
model.width = 8
)";
  const auto plain = jobs_of(kSmall);
  const auto jobs = jobs_of(kSmall + overrides);
  ASSERT_EQ(jobs.size(), 16u);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const auto& l = jobs[i].labels;
    const auto& c = jobs[i].config;
    SCOPED_TRACE(label(jobs[i]));
    const bool vae = l.autoencoder == AutoencoderKind::kVae;
    const bool h2 = l.layer == 2;
    const bool fc = l.readout == ReadoutKind::kFc;
    const bool seed1 = l.seed == 1;
    EXPECT_DOUBLE_EQ(c.loss.kl_weight, vae ? 0.1 : 1.0 / 1024);
    EXPECT_EQ(c.train.max_steps, h2 ? 7 : 40);
    EXPECT_EQ(c.train.device, fc ? "cuda:99" : "cpu");
    EXPECT_EQ(c.model.width, seed1 ? 8 : 32);
    // Everything else is the spec's [train] and the defaults.
    EXPECT_EQ(c.train.batch_size, 64);
    EXPECT_EQ(label(jobs[i]), label(plain[i]));
    // Only the jobs an override reaches get a new id.
    EXPECT_EQ(jobs[i].id == plain[i].id, !vae && !h2 && !fc && !seed1);
  }
}

TEST(Expand, OverridesMergeIntoTheSharedTablesKeyByKey) {
  const auto jobs = jobs_of(R"(
[data]
regions = ["virtual:1", "virtual:2"]
data_seed = 3
[axes]
loss = [[1, 1], [1, 0.5]]
[train]
max_steps = 40
patience = 100
[override.region."virtual:2"]
data_seed = 9
[override.beta."0.5"]
train.patience = 50
)");
  ASSERT_EQ(jobs.size(), 4u);
  EXPECT_EQ(label(jobs[3]), "virtual:2 cae-fr_1 a=1 b=0.5 seed 0 all");
  EXPECT_EQ(jobs[0].config.data_seed, 3u);
  EXPECT_EQ(jobs[2].config.data_seed, 9u);
  EXPECT_EQ(jobs[0].config.train.patience, 100);
  EXPECT_EQ(jobs[1].config.train.patience, 50);
  EXPECT_EQ(jobs[3].config.train.patience, 50);
  EXPECT_EQ(jobs[3].config.train.max_steps, 40);  // [train] kept beside the override's key
  EXPECT_NE(jobs[0].data_fingerprint, jobs[2].data_fingerprint);
}

TEST(Expand, NeuronSubsetsFollowAndDependOnTheAllNeuronsJob) {
  const auto jobs = jobs_of(R"(
[data]
regions = ["virtual:1"]
[axes]
readout = ["none", "fr"]
loss = [[1, 1], [1, 0]]
seeds = [0, 1]
neurons = ["significant", "insignificant", "all"]
)");
  // Per seed: the baseline (all neurons only), then CAE-FR_1 on all, significant
  // and insignificant neurons.
  EXPECT_EQ(labels_of(jobs), (std::vector<std::string>{
                                 "virtual:1 cae-none_0 a=1 b=0 seed 0 all",
                                 "virtual:1 cae-none_0 a=1 b=0 seed 1 all",
                                 "virtual:1 cae-fr_1 a=1 b=1 seed 0 all",
                                 "virtual:1 cae-fr_1 a=1 b=1 seed 0 significant",
                                 "virtual:1 cae-fr_1 a=1 b=1 seed 0 insignificant",
                                 "virtual:1 cae-fr_1 a=1 b=1 seed 1 all",
                                 "virtual:1 cae-fr_1 a=1 b=1 seed 1 significant",
                                 "virtual:1 cae-fr_1 a=1 b=1 seed 1 insignificant",
                             }));
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE(label(jobs[i]));
    if (jobs[i].labels.neurons == Neurons::kAll) {
      EXPECT_EQ(jobs[i].depends_on, "");
      continue;
    }
    // The model fitted to all neurons: same configuration, earlier.
    auto dep = std::find_if(jobs.begin(), jobs.end(),
                            [&](const JobSpec& j) { return j.id == jobs[i].depends_on; });
    ASSERT_NE(dep, jobs.end());
    EXPECT_LT(dep - jobs.begin(), static_cast<std::ptrdiff_t>(i));
    EXPECT_EQ(dep->labels.neurons, Neurons::kAll);
    EXPECT_EQ(dep->labels.seed, jobs[i].labels.seed);
    EXPECT_EQ(canonical_json(dep->config), canonical_json(jobs[i].config));
    EXPECT_NE(dep->id, jobs[i].id);
  }
  EXPECT_NE(jobs[3].id, jobs[4].id);
}

TEST(Expand, AFolderIsIdentifiedByItsContentNotItsPath) {
  TempDir dir;
  write_region(dir.path() / "a" / "region", tiny_region(5));
  fs::create_directories(dir.path() / "b" / "region");
  for (const auto& file : fs::directory_iterator(dir.path() / "a" / "region")) {
    fs::copy_file(file.path(), dir.path() / "b" / "region" / file.path().filename());
  }
  write_region(dir.path() / "c" / "region", tiny_region(6));
  const std::string axes = "[axes]\nlayer = [1, 2]\nseeds = [0, 1]\n";
  auto spec = [&](const std::string& folder) {
    return fmt::format("[data]\nregions = [\"{}/region\"]\n{}", folder, axes);
  };
  const auto a = jobs_of(spec("a"), dir.path());
  const auto b = jobs_of(spec("b"), dir.path());
  const auto c = jobs_of(spec("c"), dir.path());
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a[0].data_fingerprint,
            models::fingerprint(models::load_antolik_region(dir.path() / "a" / "region")));
  EXPECT_EQ(ids_of(a), ids_of(b));
  EXPECT_EQ(a[0].labels.region, "a/region");
  EXPECT_EQ(b[0].labels.region, "b/region");
  EXPECT_EQ(b[0].config.data, fs::weakly_canonical(dir.path() / "b" / "region").string());
  EXPECT_NE(a[0].data_fingerprint, c[0].data_fingerprint);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NE(a[i].id, c[i].id);
  // An absolute path to the same folder is the same region.
  const auto absolute = jobs_of(
      fmt::format("[data]\nregions = [\"{}\"]\n{}", (dir.path() / "a" / "region").string(), axes));
  EXPECT_EQ(ids_of(absolute), ids_of(a));
}

TEST(Expand, AVirtualRegionIsIdentifiedByItsNumberAndDataSeed) {
  auto fp = [](const std::string& data) { return jobs_of(data)[0].data_fingerprint; };
  const auto v1 = fp("[data]\nregions = [\"virtual:1\"]\n");
  EXPECT_EQ(v1, fp("[data]\nregions = [\"virtual:1\"]\ndata_seed = 1\n"));
  EXPECT_NE(v1, fp("[data]\nregions = [\"virtual:1\"]\ndata_seed = 2\n"));
  EXPECT_NE(v1, fp("[data]\nregions = [\"virtual:2\"]\n"));
  EXPECT_EQ(v1.size(), 16u);
}

TEST(Expand, AFolderIsReadOncePerCache) {
  TempDir dir;
  write_region(dir.path() / "region", tiny_region(5));
  FingerprintCache cache;
  const std::string source = (dir.path() / "region").string();
  const std::string first = cache.get(source, 1);
  TempDir::remove_tree(dir.path() / "region");
  EXPECT_EQ(cache.get(source, 1), first);
  FingerprintCache fresh;
  EXPECT_THROW(fresh.get(source, 1), models::DataError);
}

TEST(Expand, ValuesInNoJobAreErrorsThatSayWhy) {
  const std::string r = "[data]\nregions = [\"virtual:1\"]\n[axes]\n";
  EXPECT_EQ(expand_error(r + "autoencoder = [\"cae\", \"none\"]\n"),
            "s.toml:4:23: axes.autoencoder: \"none\" is in no job: autoencoder \"none\" (the "
            "readout-only baseline) needs a loss with alpha = 0");
  EXPECT_EQ(expand_error(r + "loss = [[0, 1]]\n"),
            "s.toml:4:9: axes.loss: [0, 1] is in no job: alpha = 0 needs autoencoder \"none\"");
  // A default written nowhere is blamed on the file.
  EXPECT_EQ(
      expand_error(r + "[[exclude]]\nseed = 0\n"),
      "s.toml: axes.loss: [1, 1] is in no job: every job with it is excluded by [[include]] / "
      "[[exclude]]");
  EXPECT_EQ(expand_error(r + "neurons = [\"all\", \"significant\"]\n[[exclude]]\nneurons = \"all\"\n"),
            "s.toml:4:19: axes.neurons: the significant job of cae-fr_1 virtual:1 seed 0 needs "
            "the same model fitted to all neurons, which the spec excludes");
}

// docs/sweep-spec.md ends with a complete example and the count of its jobs.
TEST(Expand, TheDocumentedExampleHasTheJobsItCounts) {
  std::ifstream in(fs::path(DAENR_SOURCE_DIR) / "docs/sweep-spec.md");
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto section = doc.find("## A complete example");
  ASSERT_NE(section, std::string::npos);
  const auto begin = doc.find("```toml\n", section);
  ASSERT_NE(begin, std::string::npos);
  const auto end = doc.find("```", begin + 8);
  const auto jobs = jobs_of(doc.substr(begin + 8, end - begin - 8));
  EXPECT_EQ(jobs.size(), 522u);
  EXPECT_NE(doc.find("522 jobs for three regions", end), std::string::npos);
  for (const auto& j : jobs) {
    SCOPED_TRACE(label(j));
    EXPECT_DOUBLE_EQ(j.config.loss.kl_weight,
                     j.labels.autoencoder == AutoencoderKind::kVae ? 0.0005 : 1.0 / 1024);
    EXPECT_DOUBLE_EQ(j.config.model.fc_l2, j.labels.readout == ReadoutKind::kFc ? 0.02 : 0.01);
    EXPECT_EQ(j.config.data_seed, j.labels.region == "virtual:3" ? 7u : 1u);
    EXPECT_FALSE(j.labels.readout == ReadoutKind::kFm && j.labels.layer == 4);
    if (j.labels.neurons == Neurons::kSignificant) {
      EXPECT_EQ(j.labels.autoencoder, AutoencoderKind::kCae);
    }
  }
}

TEST(Expand, TheKillSweepHas24Jobs) {
  const auto jobs =
      expand(load_sweep_spec(fs::path(DAENR_SOURCE_DIR) / "tests/data/kill-sweep.toml"));
  ASSERT_EQ(jobs.size(), 24u);
  for (const auto& j : jobs) {
    EXPECT_EQ(j.config.model.width, 4);
    EXPECT_EQ(j.config.train.max_steps, 40);
  }
  const auto ids = ids_of(jobs);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 24u);
}

}  // namespace
}  // namespace daenr::sweeps
