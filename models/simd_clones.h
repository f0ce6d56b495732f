#pragma once
// DAENR_CLONES: compile a function for AVX-512, AVX2 and baseline x86-64, chosen at load
// time. daenr's plain-C++ kernels (bn_elu_kernels.cpp, readout_kernels.cpp) are loops written
// so that GCC vectorises them (independent lanes, no calls, no branches), and the Debian
// toolchain's default target has only SSE2.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DAENR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DAENR_CLONES
#endif
