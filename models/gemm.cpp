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
  const int64_t m = transpose_a ? a.size(1) : a.size(0);
  const int64_t k = transpose_a ? a.size(0) : a.size(1);
  const int64_t kb = transpose_b ? b.size(1) : b.size(0);
  const int64_t n = transpose_b ? b.size(0) : b.size(1);
  if (k != kb || c.size(0) != m || c.size(1) != n) {
    throw ModelError(fmt::format("sgemm: op(a) is {}x{}, op(b) {}x{}, c {}x{}", m, k, kb, n,
                                 c.size(0), c.size(1)));
  }
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: c = beta c, where beta 0 ignores what c held
    if (beta == 0.0f) {
      c.zero_();
    } else {
      c.mul_(beta);
    }
    return;
  }
#ifdef DAENR_HAVE_DNNL
  // Row-major, so each leading dimension is the stored matrix's row length.
  const dnnl_status_t status = dnnl_sgemm(
      transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', m, n, k, alpha, a.data_ptr<float>(),
      a.size(1), b.data_ptr<float>(), b.size(1), beta, c.data_ptr<float>(), c.size(1));
  if (status != dnnl_success) {
    throw ModelError(fmt::format("sgemm: oneDNN's dnnl_sgemm failed with status {} ({}x{}x{})",
                                 static_cast<int>(status), m, n, k));
  }
#else
  const auto pa = transpose_a ? a.t() : a;
  const auto pb = transpose_b ? b.t() : b;
  c.addmm_(pa, pb, beta, alpha);
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
