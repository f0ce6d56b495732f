// The job kinds' contract without LibTorch: the [decode] / [mei] tables of a sweep spec (every
// bad value pinned to its message), the expansion into decode and mei jobs (ids, order,
// parents, filters), and the one outcome shape's wire form.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "tests/support/error_of.h"
#include "job/outcome.h"
#include "sweeps/expand.h"
#include "sweeps/spec.h"

namespace daenr::sweeps {
namespace {

using daenr::testing::error_of;

const std::string kQuick = R"(
[data]
regions = ["virtual:3"]
[axes]
layer = [2]
autoencoder = ["cae"]
readout = ["fr", "none"]
loss = [[1.0, 1.0], [1.0, 0.0]]
seeds = [0, 1]
)";

SweepSpec parse_spec(const std::string& text) { return parse_sweep_spec(text, "s.toml", "/nonexistent-base"); }

std::string kind_error(const std::string& text) {
  return error_of<SpecError>([&] { expand(parse_spec(text)); });
}

std::vector<JobSpec> of_kind(const std::vector<JobSpec>& jobs, job::JobKind kind) {
  std::vector<JobSpec> out;
  for (const auto& j : jobs) {
    if (j.kind == kind) out.push_back(j);
  }
  return out;
}

TEST(JobKinds, DefaultsOfTheDecodeAndMeiTables) {
  const auto s = parse_spec(kQuick + "[decode]\n[mei]\n");
  ASSERT_TRUE(s.decode && s.mei);
  EXPECT_EQ(s.decode->settings.ridges.size(), 7u);
  EXPECT_TRUE(s.decode->settings.single_trials);
  EXPECT_EQ(s.mei->objectives, std::vector<job::MeiObjective>{job::MeiObjective::kStretch});
  EXPECT_EQ(s.mei->settings.best, 8);
  EXPECT_FALSE(s.mei->settings.all);
  EXPECT_FALSE(parse_spec(kQuick).decode.has_value());
}

TEST(JobKinds, ReadsEveryMeiKey) {
  const auto s = parse_spec(kQuick + R"([mei]
readouts = "fr"
neurons = [4, 1, 7]
objective = ["stretch", "onehot"]
starts = 2
steps = 30
step_size = 0.25
blur_start = 3
blur_end = 1
jitter = 1
seed = 9
neurons_per_chunk = 2
)");
  const auto& m = *s.mei;
  EXPECT_EQ(m.filter.readouts, std::vector<std::string>{"fr"});
  EXPECT_EQ(m.settings.list, (std::vector<std::int64_t>{4, 1, 7}));
  EXPECT_EQ(m.settings.best, 0);
  EXPECT_EQ(m.objectives.size(), 2u);
  EXPECT_EQ(m.settings.starts, 2);
  EXPECT_EQ(m.settings.steps, 30);
  EXPECT_DOUBLE_EQ(m.settings.step_size, 0.25);
  EXPECT_DOUBLE_EQ(m.settings.blur_start, 3);
  EXPECT_DOUBLE_EQ(m.settings.blur_end, 1);
  EXPECT_EQ(m.settings.jitter, 1);
  EXPECT_EQ(m.settings.seed, 9u);
  EXPECT_EQ(m.settings.neurons_per_chunk, 2);
  EXPECT_TRUE(parse_spec(kQuick + "[mei]\nneurons = \"all\"\n").mei->settings.all);
  EXPECT_EQ(parse_spec(kQuick + "[mei]\nneurons = \"best:3\"\n").mei->settings.best, 3);
}

TEST(JobKinds, EveryBadValueIsOneLineNamingTheKey) {
  EXPECT_EQ(kind_error(kQuick + "[decode]\nridge = [1.0]\n"),
            "s.toml:11:1: decode.ridge: unknown key (did you mean 'decode.ridges'?)");
  EXPECT_EQ(kind_error(kQuick + "[decode]\nridges = [1.0, -2]\n"),
            "s.toml:11:10: decode.ridges: every ridge must be a positive number, got -2");
  EXPECT_EQ(kind_error(kQuick + "[decode]\nridges = []\n"), "s.toml:11:10: decode.ridges: must not be an empty list");
  EXPECT_EQ(kind_error(kQuick + "[decode]\nautoencoders = [\"cea\"]\n"),
            "s.toml:11:16: decode.autoencoders: unknown autoencoder 'cea' (expected cae, vae, vqvae or none)");
  EXPECT_EQ(kind_error(kQuick + "[mei]\nobjective = \"strech\"\n"),
            "s.toml:11:13: mei.objective: unknown objective 'strech' (did you mean 'stretch'?); expected stretch or "
            "onehot");
  EXPECT_EQ(kind_error(kQuick + "[mei]\nneurons = \"best:0\"\n"),
            "s.toml:11:11: mei.neurons: expected \"best:N\" with N >= 1, got \"best:0\"");
  EXPECT_EQ(kind_error(kQuick + "[mei]\nneurons = \"most\"\n"),
            "s.toml:11:11: mei.neurons: expected \"all\", \"best:N\" or a list of neuron indices, got \"most\"");
  EXPECT_EQ(kind_error(kQuick + "[mei]\nneurons = [1, 1]\n"), "s.toml:11:11: mei.neurons: lists a neuron twice");
  EXPECT_EQ(kind_error(kQuick + "[mei]\nsteps = 0\n"), "s.toml:11:9: mei.steps: must be in [1, 1000000], got 0");
  EXPECT_EQ(kind_error(kQuick + "[mei]\nblur_end = 0\n"),
            "s.toml:11:12: mei.blur_end: blur_start and blur_end are both 0 (no blur) or both positive");
  EXPECT_EQ(kind_error(kQuick + "[mei]\nobjective = [\"onehot\", \"onehot\"]\n"),
            "s.toml:11:13: mei.objective: names 'onehot' twice");
  // A filter that keeps no model is a mistake, not an empty set of jobs.
  EXPECT_EQ(kind_error(kQuick + "[mei]\nreadouts = [\"fc\"]\n"),
            "s.toml: mei: selects no trained model (an mei job needs a model with a readout, fitted to all "
            "neurons, that its filter keeps)");
  EXPECT_EQ(kind_error(kQuick + "[decode]\nlayers = [3]\n"),
            "s.toml: decode: selects no trained model (a decode job needs a model with an autoencoder, fitted "
            "to all neurons, that its filter keeps)");
}

TEST(JobKinds, ExpansionAddsDecodeAndMeiJobsAfterTrainingKeepingTrainingIds) {
  const auto plain = expand(parse_spec(kQuick));
  const auto jobs = expand(parse_spec(kQuick + "[decode]\n[mei]\nobjective = [\"stretch\", \"onehot\"]\n"));
  // The training jobs and their ids are the same with or without the jobs on them.
  const auto trained = of_kind(jobs, job::JobKind::kTrain);
  ASSERT_EQ(trained.size(), plain.size());
  for (std::size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(trained[i].id, plain[i].id);
  const auto decode = of_kind(jobs, job::JobKind::kDecode);
  const auto mei = of_kind(jobs, job::JobKind::kMei);
  EXPECT_EQ(decode.size(), 4u);  // every trained autoencoder: CAE-FR_2 and CAE, 2 seeds
  EXPECT_EQ(mei.size(), 4u);     // the CAE-FR_2 models, 2 seeds x 2 objectives
  // Every training job comes before every job on a trained model.
  const auto first_dependent = std::find_if(jobs.begin(), jobs.end(), [](const JobSpec& j) {
    return j.kind != job::JobKind::kTrain;
  });
  EXPECT_TRUE(std::all_of(first_dependent, jobs.end(), [](const JobSpec& j) { return j.kind != job::JobKind::kTrain; }));
  std::set<std::string> ids;
  for (const auto& j : jobs) ids.insert(j.id);
  EXPECT_EQ(ids.size(), jobs.size());
  for (const auto& d : decode) {
    const auto parent = std::find_if(trained.begin(), trained.end(), [&](const JobSpec& t) { return t.id == d.depends_on; });
    ASSERT_NE(parent, trained.end());
    EXPECT_EQ(d.labels.seed, parent->labels.seed);
    EXPECT_EQ(d.labels.readout, parent->labels.readout);
    EXPECT_EQ(job::to_json(d.config).dump(), job::to_json(parent->config).dump());
  }
  for (const auto& m : mei) EXPECT_EQ(m.labels.readout, job::ReadoutKind::kFr);
}

TEST(JobKinds, AnIdChangesWithItsSettingsAndItsParentAndNothingElse) {
  const auto base = of_kind(expand(parse_spec(kQuick + "[decode]\n")), job::JobKind::kDecode);
  const auto again = of_kind(expand(parse_spec(kQuick + "[decode]\nsingle_trials = true\n")), job::JobKind::kDecode);
  const auto other = of_kind(expand(parse_spec(kQuick + "[decode]\nsingle_trials = false\n")), job::JobKind::kDecode);
  ASSERT_EQ(base.size(), 4u);
  for (std::size_t i = 0; i < base.size(); ++i) {
    EXPECT_EQ(base[i].id, again[i].id);  // the default written out is the default
    EXPECT_NE(base[i].id, other[i].id);
  }
  // Filtering keeps the ids of the jobs it keeps.
  const auto seed1 = of_kind(expand(parse_spec(kQuick + "[decode]\nseeds = [1]\n")), job::JobKind::kDecode);
  ASSERT_EQ(seed1.size(), 2u);
  for (const auto& j : seed1) {
    EXPECT_EQ(j.labels.seed, 1u);
    EXPECT_TRUE(std::any_of(base.begin(), base.end(), [&](const JobSpec& b) { return b.id == j.id; }));
  }
  // A parent trained otherwise is another parent: new ids for its decode jobs too.
  const auto longer = of_kind(expand(parse_spec(kQuick + "[train]\nmax_steps = 7\n[decode]\n")), job::JobKind::kDecode);
  for (std::size_t i = 0; i < base.size(); ++i) EXPECT_NE(base[i].id, longer[i].id);
}

TEST(JobKinds, OutcomeWireFormIsLossless) {
  job::Outcome o;
  o.status = job::Outcome::Status::kDone;
  o.job_id = "abc";
  o.metrics = R"({"kind":"decode"})";
  o.mse = 0.1 + 0.2;  // not representable in few digits: must round-trip exactly
  o.ssim = 1.0 / 3.0;
  o.n_significant = 7;
  o.neurons = 9;
  o.steps = 1234;
  o.r = {0.5, -1e-300};
  o.p = {1e-17, 0.75};
  o.curve = {{50, 0, 1e-3, 1.0 / 7.0, 2.5}};
  o.artifacts = {{"model", "/x/abc-model.pt"}, {"decode_figure", "/x/abc-decode.npy"}};
  const auto back = job::outcome_from_json(nlohmann::json::parse(job::to_json(o).dump()));
  EXPECT_EQ(back.status, o.status);
  EXPECT_EQ(back.job_id, o.job_id);
  EXPECT_EQ(back.metrics, o.metrics);
  EXPECT_EQ(*back.mse, *o.mse);
  EXPECT_FALSE(back.psnr.has_value());
  EXPECT_EQ(*back.ssim, *o.ssim);
  EXPECT_EQ(*back.n_significant, 7);
  EXPECT_EQ(back.neurons, 9);
  EXPECT_EQ(back.steps, 1234);
  EXPECT_EQ(back.r, o.r);
  EXPECT_EQ(back.p, o.p);
  ASSERT_EQ(back.curve.size(), 1u);
  EXPECT_EQ(back.curve[0].train_loss, 1.0 / 7.0);
  EXPECT_EQ(back.artifacts, o.artifacts);

  job::Outcome failed;
  failed.job_id = "x";
  failed.error = "bad data";
  const auto f = job::outcome_from_json(job::to_json(failed));
  EXPECT_EQ(f.status, job::Outcome::Status::kFailed);
  EXPECT_EQ(f.error, "bad data");
  EXPECT_TRUE(f.metrics.empty());

  // A no-op job's outcome is its status and id alone on the wire (empty fields left out keep a
  // batch of 64 under Open MPI's eager limit), and reads back empty.
  job::Outcome bare;
  bare.status = job::Outcome::Status::kDone;
  bare.job_id = "0123456789abcdef0123";
  EXPECT_EQ(job::to_json(bare).dump(), R"({"job_id":"0123456789abcdef0123","status":"done"})");
  const auto b = job::outcome_from_json(job::to_json(bare));
  EXPECT_EQ(b.status, job::Outcome::Status::kDone);
  EXPECT_FALSE(b.mse.has_value());
  EXPECT_EQ(b.neurons, 0);
  EXPECT_TRUE(b.r.empty() && b.curve.empty() && b.artifacts.empty());
}

}  // namespace
}  // namespace daenr::sweeps
