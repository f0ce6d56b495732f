#pragma once
// One matrix product for daenr's own autograd functions (the factorised readout), on the
// fastest single-precision GEMM the CPU has.
//
// Why not LibTorch's mm: on the CPU it calls the BLAS, and Debian 12's OpenBLAS 0.3.21 picks
// its kernels from a table of CPU models. A model it does not know (AMD Zen 5, this project's
// CI machine) gets the AVX2 "Haswell" kernels, half an AVX-512 core's width. oneDNN, which
// LibTorch already loads for its convolutions, chooses its GEMM kernels from the CPU's
// instruction-set flags, so it runs AVX-512 wherever AVX-512 is. Measured side by side on
// that CPU, one thread (bench/README.md, "oneDNN's sgemm"): 1.3-1.95x OpenBLAS on the
// readout's three products. It also threads over LibTorch's OpenMP pool, where daenr keeps
// OpenBLAS to one thread (worker::configure_threads).

#include <torch/torch.h>

namespace daenr::models {

/// c = alpha * op(a) * op(b) + beta * c, op(t) = t or its transpose. a, b and c are 2-D,
/// contiguous (row-major), float32 and on the CPU; c has op(a)'s rows and op(b)'s columns.
/// The result is the same for the same thread count (neither backend reduces across threads
/// in a varying order). Throws ModelError on any other input.
void sgemm(const torch::Tensor& a, bool transpose_a, const torch::Tensor& b, bool transpose_b,
           torch::Tensor& c, float alpha = 1.0f, float beta = 0.0f);

/// A row-major float matrix in memory daenr owns elsewhere: `rows` x `cols`, row r at
/// data + r * cols. The readout's inner loops pass pieces of their buffers this way: a
/// torch::Tensor per piece (narrow, view) cost several LibTorch operator calls per chunk,
/// about 170 a step of the readout-only CNN at batch 32, where each product takes tens of
/// microseconds.
struct Matrix {
  const float* data;
  int64_t rows, cols;
};
/// The same, written to: sgemm's c.
struct OutMatrix {
  float* data;
  int64_t rows, cols;
};

/// As above, on raw matrices (no device or type to check). Throws ModelError where the
/// shapes do not agree.
void sgemm(Matrix a, bool transpose_a, Matrix b, bool transpose_b, OutMatrix c, float alpha = 1.0f,
           float beta = 0.0f);

/// "oneDNN" when daenr was built with oneDNN's headers (DAENR_HAVE_DNNL), else "LibTorch"
/// (its BLAS through addmm): for benchmarks and logs.
const char* sgemm_backend();

}  // namespace daenr::models
