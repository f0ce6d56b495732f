// The mei kind (job/kind.h): images that drive chosen neurons, by gradient ascent through a
// finished training job's model (models/mei.h). Neurons are optimised a chunk at a time, and
// the job checkpoints after each chunk: a job stopped or killed between chunks resumes with
// the chunks it finished, and ends with the same images as an uninterrupted run (each
// neuron's random draws depend on the seed and the neuron alone).
//
// Scores (docs/decode-mei.md): the model's response (or softmax share) for the best
// synthesised image against the best natural image's; on a simulated region, where each
// neuron is known, also its true response to the two, and how the image matches its true
// receptive field.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "models/error.h"
#include "models/mei.h"
#include "models/npy.h"
#include "models/synth.h"
#include "worker/gradient_reducer.h"
#include "worker/job_kind.h"
#include "worker/parent.h"
#include "worker/trainer.h"

namespace daenr::worker {

namespace fs = std::filesystem;

namespace {

// The chosen neurons, as columns of the parent's neurons.
std::vector<int64_t> chosen_neurons(const job::MeiSettings& s, const std::vector<double>& parent_r, int64_t m) {
  std::vector<int64_t> out;
  if (s.all) {
    out.resize(static_cast<std::size_t>(m));
    std::iota(out.begin(), out.end(), 0);
  } else if (!s.list.empty()) {
    for (auto n : s.list) {
      if (n >= m) {
        throw models::DataError(
            fmt::format("mei.neurons: neuron {} does not exist: the model predicts {} neurons (0..{})", n, m, m - 1));
      }
      out.push_back(n);
    }
  } else {
    // The best-predicted, by the parent's test correlation (a neuron without one last).
    if (static_cast<int64_t>(parent_r.size()) != m) {
      throw models::DataError(fmt::format("mei.neurons = \"best:{}\" needs the parent's test r of each of its {} "
                                          "neurons, and it has {}",
                                          s.best, m, parent_r.size()));
    }
    out.resize(static_cast<std::size_t>(m));
    std::iota(out.begin(), out.end(), 0);
    auto key = [&](int64_t n) { return std::isfinite(parent_r[n]) ? parent_r[n] : -2.0; };
    std::stable_sort(out.begin(), out.end(), [&](int64_t a, int64_t b) { return key(a) > key(b); });
    out.resize(std::min<std::size_t>(out.size(), static_cast<std::size_t>(s.best)));
  }
  return out;
}

// The model's responses to images (n, 1, 32, 32), in batches, without autograd.
// Targets per model call in a gradient step, every start of theirs together (models/mei.h).
// A GPU takes a whole chunk at once: its kernels are launched per call, and small batches leave
// it idle. A CPU core is fastest with about 8 images per call (bench/README.md, "MEI
// synthesis": 1.3-1.5x one target's starts per call and 1.9-2.2x a whole chunk of 16 or 103
// neurons per call), which keeps a call's activations in its cache. A resumed job groups its
// targets as the first run did (the chunk is a job setting), so its images are the same bits.
constexpr int kCpuImagesPerCall = 8;

int64_t targets_per_call(const torch::Device& device, int starts) {
  if (device.is_cuda()) return 0;  // all
  return std::max(1, kCpuImagesPerCall / std::max(1, starts));
}

torch::Tensor predict_all(models::DaeNr& model, const torch::Tensor& images, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  return in_batches(images, device, [&](const torch::Tensor& x) {
    return model->forward(x, false, true).prediction.to(torch::kDouble);
  });
}

// The job's progress between chunks.
struct Progress {
  int64_t chunks_done = 0;
  torch::Tensor images, objective;  // of the neurons done, in order
};

void save_progress(const fs::path& path, const std::string& job_id, const Progress& p) {
  write_atomically(path, [&](const fs::path& tmp) {
    torch::serialize::OutputArchive a;
    a.write("job", c10::IValue(job_id));
    a.write("chunks_done", c10::IValue(p.chunks_done));
    a.write("images", p.images);
    a.write("objective", p.objective);
    a.save_to(tmp.string());
  });
}

Progress load_progress(const fs::path& path, const std::string& job_id) {
  Progress p;
  if (path.empty() || !fs::exists(path)) return p;
  try {
    torch::serialize::InputArchive a;
    a.load_from(path.string());
    c10::IValue v;
    a.read("job", v);
    if (v.toStringRef() != job_id) {
      throw CheckpointError(fmt::format("{}: written by another job ({})", path.string(), v.toStringRef()));
    }
    a.read("chunks_done", v);
    p.chunks_done = v.toInt();
    a.read("images", p.images);
    a.read("objective", p.objective);
  } catch (const c10::Error&) {
    throw CheckpointError(fmt::format("{}: not a readable checkpoint", path.string()));
  }
  return p;
}

double median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

class MeiRunner final : public JobKindRunner {
 public:
  job::JobKind kind() const override { return job::JobKind::kMei; }

  job::Outcome run(const KindContext& ctx) const override {
    const auto& s = ctx.mei;
    auto parent = load_parent(ctx);
    auto& model = parent.model;
    const auto& data = parent.data;
    for (auto& p : model->parameters()) p.set_requires_grad(false);  // gradients of the image only
    const int64_t m = data.test_responses.size(1);
    const auto targets = chosen_neurons(s, ctx.inputs.parent_r, m);

    // Every image is held to the test images' mean level and RMS contrast, in the valid range.
    models::MeiOptions options;
    options.settings = s;
    const auto test = data.test_images.to(torch::kDouble).reshape({data.test_images.size(0), -1});
    options.mean_level = test.mean().item<double>();
    options.contrast = test.std(1).mean().item<double>();
    options.targets_per_call = targets_per_call(parent.device, s.starts);
    auto responses = [&](const torch::Tensor& x) {
      return model->forward(x.to(parent.device), false, true).prediction.to(torch::kCPU);
    };

    // Chunks of neurons, a checkpoint after each.
    const int64_t chunk = s.neurons_per_chunk;
    const int64_t chunks = (static_cast<int64_t>(targets.size()) + chunk - 1) / chunk;
    Progress progress = load_progress(ctx.checkpoint, ctx.job_id);
    // Every rank of a group reads the checkpoint before any writes the next one (a collective
    // is the barrier): a rank that started late would otherwise find its leader's newer
    // checkpoint, skip a chunk, and leave the others waiting in the chunk's collective.
    if (ctx.reducer != nullptr) ctx.reducer->any(false);
    if (progress.chunks_done > chunks) {
      throw CheckpointError(fmt::format("{}: holds {} chunks of a job that has {}", ctx.checkpoint.string(),
                                        progress.chunks_done, chunks));
    }
    while (progress.chunks_done < chunks) {
      const auto begin = targets.begin() + progress.chunks_done * chunk;
      const auto end = targets.begin() + std::min<int64_t>((progress.chunks_done + 1) * chunk, targets.size());
      const auto result = models::synthesise(responses, std::vector<int64_t>(begin, end), options);
      const auto images = result.images.to(torch::kFloat).cpu();
      const auto objective = result.objective.to(torch::kDouble).cpu();
      progress.images = progress.images.defined() ? torch::cat({progress.images, images}) : images;
      progress.objective = progress.objective.defined() ? torch::cat({progress.objective, objective}) : objective;
      ++progress.chunks_done;
      if (ctx.writer() && !ctx.checkpoint.empty()) save_progress(ctx.checkpoint, ctx.job_id, progress);
      bool stop = ctx.should_stop && ctx.should_stop(static_cast<int>(progress.chunks_done));
      if (ctx.reducer != nullptr) stop = ctx.reducer->any(stop);
      if (stop && progress.chunks_done < chunks) {
        job::Outcome stopped;
        stopped.status = job::Outcome::Status::kPreempted;
        stopped.job_id = ctx.job_id;
        return stopped;
      }
    }
    return finish(ctx, parent, targets, progress);
  }

 private:
  job::Outcome finish(const KindContext& ctx, LoadedParent& parent, const std::vector<int64_t>& targets,
                      const Progress& progress) const {
    const auto& s = ctx.mei;
    const auto& data = parent.data;
    // The best natural image of each neuron, among the training (both splits) and test images.
    const auto natural = torch::cat({data.train_images, data.val_images, data.test_images});
    const auto natural_obj = models::objective_values(predict_all(parent.model, natural, parent.device), targets,
                                                      s.objective);  // (n, K)
    const auto best_natural = std::get<0>(natural_obj.max(0));

    // Ground truth where the neurons are known: a simulated region, as its seed draws them.
    std::optional<models::VirtualNeurons> truth;
    torch::Tensor true_best_natural, filters, complex, centres;
    std::vector<int64_t> original(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const auto t = targets[i];
      original[i] = ctx.inputs.neurons.empty() ? t : ctx.inputs.neurons[static_cast<std::size_t>(t)];
    }
    const auto& source = ctx.config.data;
    if (source.rfind("virtual:", 0) == 0) {
      const auto spec = models::virtual_region_spec(std::stoi(source.substr(8)));
      truth.emplace(spec, ctx.config.data_seed, parent.raw.train_inputs);
      const auto index = torch::tensor(original, torch::kLong);
      const auto all_natural = torch::cat({parent.raw.train_inputs, parent.raw.test_inputs});
      true_best_natural = std::get<0>(truth->expected(all_natural).index_select(1, index).max(0));
      filters = truth->filters().index_select(0, index);
      complex = truth->complex_cells().index_select(0, index);
      centres = truth->centres().index_select(0, index);
    }
    torch::Tensor true_synth;
    if (truth) {
      const auto file_units = models::to_file_units(progress.images, data.pixel_min, data.pixel_max);
      true_synth = truth->expected(file_units);  // (K, M all)
    }

    nlohmann::json neurons = nlohmann::json::array();
    std::vector<double> model_ratio, true_ratio, rf_corr, centre_error;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const auto k = static_cast<int64_t>(i);
      const double ratio = progress.objective[k].item<double>() / best_natural[k].item<double>();
      double t_ratio = std::nan(""), corr = std::nan(""), centre = std::nan("");
      if (truth) {
        t_ratio = true_synth[k][original[i]].item<double>() / true_best_natural[k].item<double>();
        corr = models::rf_correlation(progress.images[k], filters[k], complex[k].item<bool>());
        const auto c = models::image_centre(progress.images[k]);
        centre = std::hypot(c[0] - centres[k][0].item<double>(), c[1] - centres[k][1].item<double>());
      }
      model_ratio.push_back(ratio), true_ratio.push_back(t_ratio), rf_corr.push_back(corr);
      centre_error.push_back(centre);
      const auto t = static_cast<std::size_t>(targets[i]);
      neurons.push_back({{"neuron", targets[i]},
                         {"test_r", t < ctx.inputs.parent_r.size() ? number_or_null(ctx.inputs.parent_r[t])
                                                                   : nlohmann::json()},
                         {"model_ratio", number_or_null(ratio)},
                         {"true_ratio", number_or_null(t_ratio)},
                         {"rf_corr", number_or_null(corr)},
                         {"centre_error", number_or_null(centre)}});
    }
    auto mean = [](const std::vector<double>& v) {
      double sum = 0;
      int n = 0;
      for (double x : v) {
        if (std::isfinite(x)) sum += x, ++n;
      }
      return n ? sum / n : std::nan("");
    };
    double above = std::nan("");
    if (truth) {
      above = static_cast<double>(std::count_if(true_ratio.begin(), true_ratio.end(), [](double r) { return r > 1; })) /
              static_cast<double>(std::max<std::size_t>(1, true_ratio.size()));
    }
    job::Outcome out;
    out.status = job::Outcome::Status::kDone;
    out.job_id = ctx.job_id;
    out.neurons = static_cast<int64_t>(targets.size());
    out.metrics = nlohmann::ordered_json{
        {"kind", "mei"},
        {"parent", ctx.parent_id},
        {"objective", job::to_string(s.objective)},
        {"natural_images", natural.size(0)},
        {"neurons", neurons},
        {"summary",
         {{"median_model_ratio", number_or_null(median(model_ratio))},
          {"median_true_ratio", number_or_null(median(true_ratio))},
          {"share_true_above_1", number_or_null(above)},
          {"mean_rf_corr", number_or_null(mean(rf_corr))},
          {"mean_centre_error", number_or_null(mean(centre_error))}}},
        {"settings", job::to_json(s)}}
                      .dump();
    if (ctx.artifact_dir.empty()) return out;
    const auto images = ctx.artifact_dir / (ctx.job_id + "-mei.npy");
    if (ctx.writer()) models::write_npy(images, progress.images.to(torch::kFloat));
    out.artifacts.push_back({"mei_images", fs::absolute(images).string()});
    if (truth) {
      // The simple cell's filter (the even one), on the 31x31 grid, beside each image.
      const auto rf = ctx.artifact_dir / (ctx.job_id + "-mei-rf.npy");
      if (ctx.writer()) models::write_npy(rf, filters.select(1, 0).reshape({-1, 31, 31}).to(torch::kFloat));
      out.artifacts.push_back({"mei_rf", fs::absolute(rf).string()});
    }
    return out;
  }
};

}  // namespace

const JobKindRunner& mei_runner() {
  static const MeiRunner runner;
  return runner;
}

}  // namespace daenr::worker
