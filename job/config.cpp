#include "job/config.h"

#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "job/toml_reader.h"

namespace daenr::job {

JobConfig job_config_from_table(const toml::table& root, const std::string& source,
                                const Overridden& overridden) {
  JobConfig c;
  TableReader top(root, "", source, overridden);
  top.read("data", c.data);
  top.read("data_seed", c.data_seed);
  top.read("seed", c.seed);
  top.read("val_fraction", c.val_fraction);
  top.require_range("val_fraction", c.val_fraction, 0.01, 0.9);

  if (const auto* t = top.sub_table("model")) {
    TableReader r(*t, "model.", source, overridden);
    std::string ae = to_string(c.model.autoencoder);
    std::string ro = to_string(c.model.readout);
    r.read("autoencoder", ae);
    r.read("readout", ro);
    try {
      c.model.autoencoder = parse_autoencoder(ae);
    } catch (const ConfigError& e) {
      r.fail(*t->get("autoencoder"), "autoencoder", e.what());
    }
    try {
      c.model.readout = parse_readout(ro);
    } catch (const ConfigError& e) {
      r.fail(*t->get("readout"), "readout", e.what());
    }
    r.read("layer", c.model.layer);
    r.require_range("layer", c.model.layer, 1, 4, "must be 1..4 (h1..h4)");
    r.read("width", c.model.width);
    r.require_range("width", c.model.width, 1, 1024);
    r.read("latent", c.model.latent);
    r.require_range("latent", c.model.latent, 1, 1 << 16);
    r.read("codebook_size", c.model.codebook_size);
    r.require_range("codebook_size", c.model.codebook_size, 1, 1 << 16);
    r.read("fc_dropout", c.model.fc_dropout);
    r.require_range("fc_dropout", c.model.fc_dropout, 0.0, 0.99);
    r.reject_unknown();
  }
  if (const auto* t = top.sub_table("loss")) {
    TableReader r(*t, "loss.", source, overridden);
    const double inf = std::numeric_limits<double>::max();
    r.read("alpha", c.loss.alpha);
    r.require_range("alpha", c.loss.alpha, 0.0, inf, "must be >= 0");
    r.read("beta", c.loss.beta);
    r.require_range("beta", c.loss.beta, 0.0, inf, "must be >= 0");
    r.read("kl_weight", c.loss.kl_weight);
    r.require_range("kl_weight", c.loss.kl_weight, 0.0, inf, "must be >= 0");
    std::string reduction = to_string(c.loss.reconstruction);
    r.read("reconstruction", reduction);
    try {
      c.loss.reconstruction = parse_reduction(reduction);
    } catch (const ConfigError& e) {
      r.fail(*t->get("reconstruction"), "reconstruction", e.what());
    }
    r.read("commitment", c.model.commitment);
    r.require_range("commitment", c.model.commitment, 0.0, inf, "must be >= 0");
    r.read("readout_l1", c.model.readout_l1);
    r.require_range("readout_l1", c.model.readout_l1, 0.0, inf, "must be >= 0");
    r.read("fc_l2", c.model.fc_l2);
    r.require_range("fc_l2", c.model.fc_l2, 0.0, inf, "must be >= 0");
    r.reject_unknown();
  }
  if (const auto* t = top.sub_table("train")) {
    TableReader r(*t, "train.", source, overridden);
    auto& tr = c.train;
    r.read("batch_size", tr.batch_size);
    r.require_range("batch_size", tr.batch_size, 1, 1 << 20);
    r.read("learning_rate", tr.learning_rate);
    r.require_range("learning_rate", tr.learning_rate, 1e-12, 10.0);
    r.read("validate_every", tr.validate_every);
    r.require_range("validate_every", tr.validate_every, 1, 1 << 30);
    r.read("patience", tr.patience);
    r.require_range("patience", tr.patience, 1, 1 << 30);
    r.read("phases", tr.phases);
    r.require_range("phases", tr.phases, 1, 100);
    r.read("lr_decay", tr.lr_decay);
    r.require_range("lr_decay", tr.lr_decay, 1e-6, 1.0);
    r.read("max_steps", tr.max_steps);
    r.require_range("max_steps", tr.max_steps, 1, 1 << 30);
    r.read("threads", tr.threads);
    r.require_range("threads", tr.threads, 1, 1024);
    r.read("device", tr.device);
    if (tr.device != "cpu" && tr.device.rfind("cuda", 0) != 0) {
      r.fail(*t->get("device"), "device",
             fmt::format("expected \"cpu\" or \"cuda[:K]\", got \"{}\"", tr.device));
    }
    r.read("checkpoint_every", tr.checkpoint_every);
    r.require_range("checkpoint_every", tr.checkpoint_every, 0, 1 << 30);
    r.reject_unknown();
  }
  top.reject_unknown();
  validate(c, source);
  return c;
}

void validate(const JobConfig& c, const std::string& source) {
  const bool ae = c.model.autoencoder != AutoencoderKind::kNone;
  const bool ro = c.model.readout != ReadoutKind::kNone;
  auto fail = [&](const std::string& msg) {
    throw ConfigError(fmt::format("{}: {}", source, msg));
  };
  if (!ae && !ro) fail("model: autoencoder and readout are both \"none\": nothing to train");
  // A weight of zero with its head present would train parameters that no loss
  // reaches; a head without its weight is the same mistake the other way round.
  auto check_head = [&](const char* weight_key, double weight, const char* head_key,
                        const std::string& head, const char* baseline) {
    if (head != "none" && weight == 0) {
      fail(
          fmt::format("loss.{}: is 0 but model.{} is \"{}\"; use {} = \"none\" for the {} baseline",
                      weight_key, head_key, head, head_key, baseline));
    }
    if (head == "none" && weight != 0) {
      fail(fmt::format("loss.{}: is {} but model.{} is \"none\"; set {} = 0", weight_key, weight,
                       head_key, weight_key));
    }
  };
  check_head("alpha", c.loss.alpha, "autoencoder", to_string(c.model.autoencoder), "readout-only");
  check_head("beta", c.loss.beta, "readout", to_string(c.model.readout), "autoencoder-only");
  if (c.train.validate_every > c.train.patience) {
    fail(fmt::format("train.validate_every: {} exceeds train.patience {}", c.train.validate_every,
                     c.train.patience));
  }
}

JobConfig parse_job_config(const std::string& text, const std::string& source) {
  return job_config_from_table(parse_toml(text, source), source, {});
}

JobConfig apply_overrides(const std::string& text, const std::string& source,
                          const std::vector<std::string>& overrides) {
  auto root = parse_toml(text, source);
  Overridden overridden;
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ConfigError(fmt::format("--set '{}': expected key=value", o));
    }
    const std::string key = o.substr(0, eq), value = o.substr(eq + 1);
    overridden[key] = fmt::format("--set '{}'", o);
    const std::string name = fmt::format("--set '{}'", o);
    toml::table overlay;
    try {
      overlay = toml::parse(fmt::format("{} = {}", key, value), name);
    } catch (const toml::parse_error&) {
      // A bare word such as vae is not TOML; take it as a string.
      try {
        overlay = toml::parse(fmt::format("{} = \"{}\"", key, value), name);
      } catch (const toml::parse_error& e) {
        throw ConfigError(fmt::format("{}: {}", name, e.description()));
      }
    }
    merge(root, overlay);
  }
  return job_config_from_table(root, source, overridden);
}

JobConfig load_job_config(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("{}: cannot open the job configuration", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_job_config(ss.str(), path.string());
}

nlohmann::ordered_json to_json(const JobConfig& c) {
  nlohmann::ordered_json j;
  j["data"] = c.data;
  j["data_seed"] = c.data_seed;
  j["seed"] = c.seed;
  j["val_fraction"] = c.val_fraction;
  j["model"] = {{"autoencoder", to_string(c.model.autoencoder)},
                {"readout", to_string(c.model.readout)},
                {"layer", c.model.layer},
                {"width", c.model.width},
                {"latent", c.model.latent},
                {"codebook_size", c.model.codebook_size},
                {"fc_dropout", c.model.fc_dropout}};
  j["loss"] = {{"alpha", c.loss.alpha},
               {"beta", c.loss.beta},
               {"kl_weight", c.loss.kl_weight},
               {"commitment", c.model.commitment},
               {"readout_l1", c.model.readout_l1},
               {"fc_l2", c.model.fc_l2}};
  // The reduction enters the canonical form only where it changes the loss: with a decoder,
  // and when it is the paper's sum. The per-pixel mean was daenr's only form before the
  // setting existed, so configurations that keep it, and models without a decoder, keep
  // their job ids (docs/sweep-spec.md, Job ids).
  if (c.model.autoencoder != AutoencoderKind::kNone && c.loss.reconstruction == Reduction::kSum) {
    j["loss"]["reconstruction"] = "sum";
  }
  const auto& t = c.train;
  j["train"] = {{"batch_size", t.batch_size},
                {"learning_rate", t.learning_rate},
                {"validate_every", t.validate_every},
                {"patience", t.patience},
                {"phases", t.phases},
                {"lr_decay", t.lr_decay},
                {"max_steps", t.max_steps},
                {"threads", t.threads},
                {"device", t.device},
                {"checkpoint_every", t.checkpoint_every}};
  return j;
}

nlohmann::ordered_json resolved_json(const JobConfig& c) {
  auto j = to_json(c);
  j["loss"]["reconstruction"] = to_string(c.loss.reconstruction);
  return j;
}

}  // namespace daenr::job
