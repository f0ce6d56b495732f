// Job configuration: defaults, overrides, and every error pinned to its message.

#include <gtest/gtest.h>

#include "tests/support/error_of.h"
#include "job/config.h"

namespace daenr::job {
namespace {

using daenr::testing::error_of;

std::string config_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return error_of<ConfigError>([&] { apply_overrides(text, "job.toml", overrides); });
}

TEST(JobConfig, DefaultsAreThePapersSettings) {
  const auto c = parse_job_config("", "job.toml");
  EXPECT_EQ(c.model.autoencoder, job::AutoencoderKind::kCae);
  EXPECT_EQ(c.model.readout, job::ReadoutKind::kFr);
  EXPECT_EQ(c.model.width, 32);
  EXPECT_EQ(c.model.latent, 100);
  EXPECT_EQ(c.model.codebook_size, 32);
  EXPECT_DOUBLE_EQ(c.model.commitment, 0.25);
  EXPECT_DOUBLE_EQ(c.train.learning_rate, 1e-3);
  EXPECT_EQ(c.train.patience, 1000);
  EXPECT_EQ(c.train.phases, 2);
  EXPECT_DOUBLE_EQ(c.train.lr_decay, 0.5);
  EXPECT_DOUBLE_EQ(c.val_fraction, 0.2);
  EXPECT_DOUBLE_EQ(c.loss.kl_weight, 1.0 / 1024);
}

TEST(JobConfig, ParsesEverySection) {
  const auto c = parse_job_config(R"(
data = "virtual:3"
seed = 7
[model]
autoencoder = "vqvae"
readout = "fm"
layer = 3
[loss]
alpha = 1
beta = 0.5
[train]
batch_size = 32
max_steps = 100
validate_every = 10
patience = 20
)",
                                  "job.toml");
  EXPECT_EQ(c.data, "virtual:3");
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(c.model.autoencoder, job::AutoencoderKind::kVqVae);
  EXPECT_EQ(c.model.readout, job::ReadoutKind::kFm);
  EXPECT_EQ(c.model.layer, 3);
  EXPECT_DOUBLE_EQ(c.loss.alpha, 1.0);  // an integer where a number is expected
  EXPECT_DOUBLE_EQ(c.loss.beta, 0.5);
  EXPECT_EQ(c.train.batch_size, 32);
}

TEST(JobConfig, OverridesTakeDottedKeysAndBareWords) {
  const auto c = apply_overrides("[model]\nlayer = 2\n", "job.toml",
                                 {"model.layer=4", "model.readout=fc", "train.max_steps=9",
                                  "data=virtual:2"});
  EXPECT_EQ(c.model.layer, 4);
  EXPECT_EQ(c.model.readout, job::ReadoutKind::kFc);
  EXPECT_EQ(c.train.max_steps, 9);
  EXPECT_EQ(c.data, "virtual:2");
}

TEST(JobConfig, ErrorsNameTheFileLineKeyAndProblem) {
  EXPECT_EQ(config_error("[model]\nlayr = 2\n"),
            "job.toml:2:1: model.layr: unknown key (did you mean 'model.layer'?)");
  EXPECT_EQ(config_error("[model]\nlayer = 5\n"), "job.toml:2:9: model.layer: must be 1..4 (h1..h4), got 5");
  EXPECT_EQ(config_error("[model]\nlayer = \"2\"\n"),
            "job.toml:2:9: model.layer: expected an integer, got a string");
  EXPECT_EQ(config_error("[model]\nautoencoder = \"ae\"\n"),
            "job.toml:2:15: model.autoencoder: unknown autoencoder 'ae' (expected cae, vae, vqvae "
            "or none)");
  EXPECT_EQ(config_error("[loss]\nbeta = -1.0\n"), "job.toml:2:8: loss.beta: must be >= 0, got -1");
  EXPECT_EQ(config_error("[loss]\nbeta = nan\n"), "job.toml:2:8: loss.beta: must be finite, got nan");
  EXPECT_EQ(config_error("[train]\ndevice = \"tpu\"\n"),
            "job.toml:2:10: train.device: expected \"cpu\" or \"cuda[:K]\", got \"tpu\"");
  EXPECT_EQ(config_error("model = 3\n"), "job.toml:1:9: model: expected a table, got an integer");
  EXPECT_EQ(config_error("sed = 3\n"), "job.toml:1:1: sed: unknown key (did you mean 'seed'?)");
  EXPECT_EQ(config_error("colour = 3\n"), "job.toml:1:1: colour: unknown key");
  EXPECT_EQ(config_error("[model\n").substr(0, 13), "job.toml:1:7:");
  EXPECT_EQ(config_error("seed = -1\n"), "job.toml:1:8: seed: must not be negative, got -1");
}

TEST(JobConfig, HeadsAndWeightsMustAgree) {
  EXPECT_EQ(config_error("[loss]\nalpha = 0\n"),
            "job.toml: loss.alpha: is 0 but model.autoencoder is \"cae\"; use autoencoder = "
            "\"none\" for the readout-only baseline");
  EXPECT_EQ(config_error("[model]\nreadout = \"none\"\n"),
            "job.toml: loss.beta: is 1 but model.readout is \"none\"; set beta = 0");
  EXPECT_EQ(config_error("[model]\nreadout = \"none\"\nautoencoder = \"none\"\n[loss]\nalpha = 0\nbeta = 0\n"),
            "job.toml: model: autoencoder and readout are both \"none\": nothing to train");
  EXPECT_EQ(config_error("", {"train.validate_every=50", "train.patience=10"}),
            "job.toml: train.validate_every: 50 exceeds train.patience 10");
}

TEST(JobConfig, BadOverridesAreNamed) {
  EXPECT_EQ(config_error("", {"model.layer"}), "--set 'model.layer': expected key=value");
  EXPECT_EQ(config_error("", {"model.layer=7"}), "--set 'model.layer=7': model.layer: must be 1..4 (h1..h4), got 7");
  EXPECT_EQ(config_error("", {"model.lyer=2"}),
            "--set 'model.lyer=2': model.lyer: unknown key (did you mean 'model.layer'?)");
}

TEST(JobConfig, CanonicalJsonHasEveryKeyInAFixedOrder) {
  const auto a = to_json(parse_job_config("seed = 3\n[model]\nlayer = 2\n", "a.toml"));
  const auto b = to_json(parse_job_config("[model]\nlayer = 2\n[train]\n\n", "b.toml"));
  EXPECT_NE(a.dump(), b.dump());
  auto b2 = parse_job_config("[model]\nlayer = 2\n", "b.toml");
  b2.seed = 3;
  EXPECT_EQ(a.dump(), to_json(b2).dump());
  EXPECT_EQ(a.begin().key(), "data");
  EXPECT_EQ(a["model"]["layer"], 2);
}

TEST(JobConfig, ReconstructionIsSummedAsInThePaperUnlessAskedOtherwise) {
  EXPECT_EQ(parse_job_config("", "job.toml").loss.reconstruction, Reduction::kSum);
  EXPECT_EQ(parse_job_config("[loss]\nreconstruction = \"mean\"\n", "job.toml").loss.reconstruction,
            Reduction::kMean);
  EXPECT_EQ(config_error("[loss]\nreconstruction = \"max\"\n"),
            "job.toml:2:18: loss.reconstruction: unknown reduction 'max' (expected sum or mean)");
  EXPECT_EQ(config_error("[loss]\nreconstruction = 1\n"),
            "job.toml:2:18: loss.reconstruction: expected a string, got an integer");
}

TEST(JobConfig, TheReductionEntersTheCanonicalFormOnlyWhereItChangesTheLoss) {
  // The paper's sum with a decoder: in the canonical form (a new job id).
  const auto sum = to_json(parse_job_config("", "a.toml"));
  EXPECT_EQ(sum["loss"]["reconstruction"], "sum");
  // The per-pixel mean was the only form before the setting existed: its canonical form, and
  // so the ids of existing databases, must stay exactly what they were. This is the text the
  // code wrote before the key existed (worker/job_config.cpp at 87c050f).
  const auto mean = parse_job_config("[loss]\nreconstruction = \"mean\"\n", "b.toml");
  EXPECT_EQ(to_json(mean).dump(),
            R"({"data":"virtual:1","data_seed":1,"seed":0,"val_fraction":0.2,"model":{"autoencoder":"cae",)"
            R"("readout":"fr","layer":1,"width":32,"latent":100,"codebook_size":32,"fc_dropout":0.5},)"
            R"("loss":{"alpha":1.0,"beta":1.0,"kl_weight":0.0009765625,"commitment":0.25,"readout_l1":0.03,)"
            R"("fc_l2":0.01},"train":{"batch_size":64,"learning_rate":0.001,"validate_every":50,)"
            R"("patience":1000,"phases":2,"lr_decay":0.5,"max_steps":20000,"threads":1,"device":"cpu",)"
            R"("checkpoint_every":1}})");
  // Without a decoder there is no reconstruction to reduce: sum and mean are one job.
  const std::vector<std::string> cnn = {"model.autoencoder=none", "loss.alpha=0"};
  auto cnn_mean = cnn;
  cnn_mean.push_back("loss.reconstruction=mean");
  const auto a = to_json(apply_overrides("", "c.toml", cnn));
  EXPECT_EQ(a.dump(), to_json(apply_overrides("", "c.toml", cnn_mean)).dump());
  EXPECT_FALSE(a["loss"].contains("reconstruction"));
  // What a person reads always says which reduction the job uses.
  EXPECT_EQ(resolved_json(mean)["loss"]["reconstruction"], "mean");
  EXPECT_EQ(resolved_json(apply_overrides("", "c.toml", cnn))["loss"]["reconstruction"], "sum");
}

}  // namespace
}  // namespace daenr::job
