// The decode kind (job/kind.h): images from neural responses, through a trained autoencoder.
// A ridge map from the responses to the autoencoder's code is fitted on the training split
// (its ridge chosen on the validation split), and the test images are decoded from their
// trial-averaged responses and from each single trial. Two baselines come from the same job:
// the autoencoder's own reconstruction (the ceiling: a perfect map to the code) and a ridge
// map from the responses straight to the pixels (no autoencoder). docs/decode-mei.md.

#include <fmt/format.h>

#include "models/data.h"
#include "models/decode.h"
#include "models/metrics.h"
#include "models/npy.h"
#include "worker/gradient_reducer.h"
#include "worker/job_kind.h"
#include "worker/parent.h"
#include "worker/trainer.h"

namespace daenr::worker {

namespace fs = std::filesystem;

namespace {

torch::Tensor codes_of(models::DaeNr& model, const torch::Tensor& images, const torch::Device& device) {
  return in_batches(images, device, [&](const torch::Tensor& x) { return model->code(x).to(torch::kDouble); });
}

torch::Tensor decode_codes(models::DaeNr& model, const torch::Tensor& codes, const torch::Device& device) {
  return in_batches(codes, device, [&](const torch::Tensor& c) { return model->decode_code(c.to(torch::kFloat)); });
}

struct ImageScores {
  double mse = 0, psnr = 0, ssim = 0, pixel_r = 0, top1 = 0, top5 = 0;
  ImageScores& operator+=(const ImageScores& o) {
    mse += o.mse, psnr += o.psnr, ssim += o.ssim, pixel_r += o.pixel_r, top1 += o.top1, top5 += o.top5;
    return *this;
  }
  ImageScores& operator/=(double n) {
    mse /= n, psnr /= n, ssim /= n, pixel_r /= n, top1 /= n, top5 /= n;
    return *this;
  }
};

// The image metrics of decoded test images against the true ones (both (T, 1, 32, 32) on
// [-1, 1]): docs/metrics.md's MSE, PSNR and SSIM, the mean pixel correlation, and
// identification among the T test images.
ImageScores score(const torch::Tensor& decoded, const torch::Tensor& truth) {
  ImageScores s;
  const auto d = decoded.to(torch::kFloat).clamp(-1, 1);
  s.mse = models::mse(d, truth);
  s.psnr = models::psnr(s.mse);
  s.ssim = models::ssim(d, truth);
  s.pixel_r = models::pixel_correlation(d, truth).mean().item<double>();
  const auto id = models::identify(d, truth);
  s.top1 = id.top1;
  s.top5 = id.top5;
  return s;
}

nlohmann::ordered_json to_json(const ImageScores& s) {
  return {{"mse", s.mse}, {"psnr", s.psnr}, {"ssim", s.ssim}, {"pixel_r", s.pixel_r}, {"top1", s.top1}, {"top5", s.top5}};
}

torch::Tensor flat(const torch::Tensor& images) { return images.reshape({images.size(0), -1}).to(torch::kDouble); }

class DecodeRunner final : public JobKindRunner {
 public:
  job::JobKind kind() const override { return job::JobKind::kDecode; }

  job::Outcome run(const KindContext& ctx) const override {
    const auto& settings = ctx.decode;
    auto parent = load_parent(ctx);
    const auto& data = parent.data;
    const auto device = parent.device;
    auto& model = parent.model;
    torch::NoGradGuard no_grad;

    // Responses -> code, on the training split; the ridge is the validation split's choice.
    const auto x_train = data.train_responses.to(torch::kDouble);
    const auto x_val = data.val_responses.to(torch::kDouble);
    const auto x_test = data.test_responses.to(torch::kDouble);
    const auto code_fit = models::fit_ridge(x_train, codes_of(model, data.train_images, device), x_val,
                                            codes_of(model, data.val_images, device), settings.ridges);
    const auto decoded = decode_codes(model, models::predict(code_fit, x_test), device);
    // The ceiling: the autoencoder's own reconstruction, as if the map to the code were perfect.
    const auto reconstructed = decode_codes(model, codes_of(model, data.test_images, device), device);
    // The baseline without an autoencoder: responses straight to pixels.
    const auto pixel_fit = models::fit_ridge(x_train, flat(data.train_images), x_val, flat(data.val_images),
                                             settings.ridges);
    const auto pixels = models::predict(pixel_fit, x_test).to(torch::kFloat).reshape(data.test_images.sizes());

    const auto& truth = data.test_images;
    nlohmann::ordered_json methods;
    const auto from_responses = score(decoded, truth);
    methods["responses"] = to_json(from_responses);
    int64_t trials = 0;
    if (settings.single_trials && data.test_raw.defined() && data.test_raw.numel() > 0) {
      // Each single trial decoded alone, its scores averaged over the trials.
      trials = data.test_raw.size(0);
      ImageScores sum;
      for (int64_t t = 0; t < trials; ++t) {
        const auto x = data.test_raw[t].to(torch::kDouble);
        sum += score(decode_codes(model, models::predict(code_fit, x), device), truth);
      }
      sum /= static_cast<double>(trials);
      methods["trials"] = to_json(sum);
    }
    methods["autoencoder"] = to_json(score(reconstructed, truth));
    methods["pixels"] = to_json(score(pixels, truth));

    const auto n_test = truth.size(0);
    job::Outcome out;
    out.status = job::Outcome::Status::kDone;
    out.job_id = ctx.job_id;
    out.metrics = nlohmann::ordered_json{
        {"kind", "decode"},
        {"parent", ctx.parent_id},
        {"ridge", {{"code", code_fit.relative_ridge}, {"pixels", pixel_fit.relative_ridge}}},
        {"test_images", n_test},
        {"trials", trials},
        {"chance", {{"top1", 1.0 / n_test}, {"top5", std::min(1.0, 5.0 / n_test)}}},
        {"methods", methods},
        {"settings", job::to_json(settings)}}
                      .dump();
    out.mse = from_responses.mse;
    out.psnr = from_responses.psnr;
    out.ssim = from_responses.ssim;
    out.neurons = data.test_responses.size(1);
    if (ctx.artifact_dir.empty()) return out;

    // The talk's figure: test images, their reconstruction, the responses, the decoding.
    const int64_t k = std::min<int64_t>(settings.figure_images, n_test);
    const auto figure = ctx.artifact_dir / (ctx.job_id + "-decode.npy");
    const auto responses = ctx.artifact_dir / (ctx.job_id + "-decode-responses.npy");
    if (ctx.writer()) {
      auto first = [&](const torch::Tensor& t) { return t.slice(0, 0, k).to(torch::kFloat).clamp(-1, 1); };
      models::write_npy(figure, torch::stack({first(truth), first(reconstructed), first(decoded), first(pixels)}));
      models::write_npy(responses, data.test_responses.slice(0, 0, k).to(torch::kFloat));
    }
    out.artifacts.push_back({"decode_figure", fs::absolute(figure).string()});
    out.artifacts.push_back({"decode_responses", fs::absolute(responses).string()});
    return out;
  }
};

}  // namespace

const JobKindRunner& decode_runner() {
  static const DecodeRunner runner;
  return runner;
}

}  // namespace daenr::worker
