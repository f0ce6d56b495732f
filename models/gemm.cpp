#include "models/gemm.h"

#include <fmt/format.h>

#include "models/error.h"

#ifdef DAENR_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

namespace daenr::models {

namespace {

void check_operand(const torch::Tensor& t, const char* name) {
  if (t.dim() != 2 || !t.is_contiguous() || t.scalar_type() != torch::kFloat ||
      !t.device().is_cpu()) {
    throw ModelError(
        fmt::format("sgemm: {} must be a contiguous 2-D float32 CPU tensor (got {}-D, {}, {}{})",
                    name, t.dim(), std::string(c10::toString(t.scalar_type())), t.device().str(),
                    t.is_contiguous() ? "" : ", not contiguous"));
  }
}

}  // namespace

void sgemm(const torch::Tensor& a, bool transpose_a, const torch::Tensor& b, bool transpose_b,
           torch::Tensor& c, float alpha, float beta) {
  check_operand(a, "a");
  check_operand(b, "b");
  check_operand(c, "c");
  const auto in = [](const torch::Tensor& t) {
    return Matrix{t.data_ptr<float>(), t.size(0), t.size(1)};
  };
  sgemm(in(a), transpose_a, in(b), transpose_b,
        OutMatrix{c.data_ptr<float>(), c.size(0), c.size(1)}, alpha, beta);
}

void sgemm(Matrix a, bool transpose_a, Matrix b, bool transpose_b, OutMatrix c, float alpha,
           float beta) {
  const int64_t m = transpose_a ? a.cols : a.rows;
  const int64_t k = transpose_a ? a.rows : a.cols;
  const int64_t kb = transpose_b ? b.cols : b.rows;
  const int64_t n = transpose_b ? b.rows : b.cols;
  if (k != kb || c.rows != m || c.cols != n) {
    throw ModelError(
        fmt::format("sgemm: op(a) is {}x{}, op(b) {}x{}, c {}x{}", m, k, kb, n, c.rows, c.cols));
  }
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: c = beta c, where beta 0 ignores what c held
    float* out = c.data;
    for (int64_t i = 0; i < m * n; ++i) out[i] = beta == 0.0f ? 0.0f : out[i] * beta;
    return;
  }
#ifdef DAENR_HAVE_DNNL
  // Row-major, so each leading dimension is the stored matrix's row length.
  const dnnl_status_t status =
      dnnl_sgemm(transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', m, n, k, alpha, a.data, a.cols,
                 b.data, b.cols, beta, c.data, c.cols);
  if (status != dnnl_success) {
    throw ModelError(fmt::format("sgemm: oneDNN's dnnl_sgemm failed with status {} ({}x{}x{})",
                                 static_cast<int>(status), m, n, k));
  }
#else
  // from_blob takes a mutable pointer; a and b are only read.
  const auto wrap = [](const auto& x) {
    return torch::from_blob(const_cast<float*>(x.data), {x.rows, x.cols});
  };
  auto out = wrap(c);
  const auto pa = transpose_a ? wrap(a).t() : wrap(a);
  const auto pb = transpose_b ? wrap(b).t() : wrap(b);
  out.addmm_(pa, pb, beta, alpha);
#endif
}

const char* sgemm_backend() {
#ifdef DAENR_HAVE_DNNL
  return "oneDNN";
#else
  return "LibTorch";
#endif
}

}  // namespace daenr::models
