#include "models/bn_elu_kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "models/simd_clones.h"
#include "models/vec_math.h"

namespace daenr::models::kernels {

namespace {

// Sums are taken in kLanes independent float lanes per plane, added into double per plane in
// lane order: the lanes vectorise without reassociating anything, so the result is the same
// on every ISA and thread count.
constexpr int kLanes = 16;

// Both sides computed and one selected: a branch would stop the loop from vectorising.
[[gnu::always_inline]] inline float elu(float z) {
  const float negative = exp_nonpositive_inline(std::min(z, 0.0f)) - 1.0f;
  return z > 0.0f ? z : negative;
}

[[gnu::always_inline]] inline double sum_plane(const float* x, int64_t n) {
  float lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lane[j] += x[i + j];
  }
  double s = 0;
  for (int j = 0; j < kLanes; ++j) s += lane[j];
  for (; i < n; ++i) s += x[i];
  return s;
}

[[gnu::always_inline]] inline double squared_deviation_plane(const float* x, int64_t n, float mean) {
  float lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float d = x[i + j] - mean;
      lane[j] += d * d;
    }
  }
  double s = 0;
  for (int j = 0; j < kLanes; ++j) s += lane[j];
  for (; i < n; ++i) {
    const double d = x[i] - mean;
    s += d * d;
  }
  return s;
}

// Sums of dz and dz * xhat over a plane, dz = g * elu'(z).
[[gnu::always_inline]] inline void gradient_sums_plane(const float* g, const float* x, const float* y, int64_t n, float mean,
                         float invstd, double& sum_dz, double& sum_dz_xhat) {
  float a[kLanes] = {}, b[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float yy = y[i + j];
      const float dz = g[i + j] * (yy > 0.0f ? 1.0f : yy + 1.0f);
      a[j] += dz;
      b[j] += dz * ((x[i + j] - mean) * invstd);
    }
  }
  for (int j = 0; j < kLanes; ++j) {
    sum_dz += a[j];
    sum_dz_xhat += b[j];
  }
  for (; i < n; ++i) {
    const float dz = g[i] * (y[i] > 0.0f ? 1.0f : y[i] + 1.0f);
    sum_dz += dz;
    sum_dz_xhat += dz * ((x[i] - mean) * invstd);
  }
}

// Blocked maps (batch, channels / 16, plane, 16): the 16 channels of a block sit side by side,
// one lane each, so every loop below runs over the lanes. A channel's sum is taken in float
// over one plane, in position order, and the planes are added in double in batch order: a
// fixed order whatever the ISA or the split of the blocks between threads.
constexpr int64_t kL = kBlockLanes;

// The blocked kernels' sums over a plane run in kChains independent chains of lanes (position
// i goes to chain i % kChains, the tail to chain 0), joined pairwise in a fixed order: one
// chain made every addition wait for the one before (four cycles of latency for a vector add),
// which left the passes at a quarter of what the cache delivers where the maps fit in it
// (batch 32). The order is set here, not by the compiler, so it is the same on every ISA.
constexpr int kChains = 4;

[[gnu::always_inline]] inline float join_chains(const float (&acc)[kChains][kL], int64_t l) {
  return (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
}

// Adds sum_i term(i, l) over a plane's positions i to out[l], for each lane l, in those chains.
template <class Term>
[[gnu::always_inline]] inline void add_chained_plane_sums(int64_t plane, const Term& term,
                                                          double (&out)[kL]) {
  float acc[kChains][kL] = {};
  int64_t i = 0;
  for (; i + kChains <= plane; i += kChains) {
    for (int u = 0; u < kChains; ++u) {
      for (int64_t l = 0; l < kL; ++l) acc[u][l] += term(i + u, l);
    }
  }
  for (; i < plane; ++i) {
    for (int64_t l = 0; l < kL; ++l) acc[0][l] += term(i, l);
  }
  for (int64_t l = 0; l < kL; ++l) out[l] += join_chains(acc, l);
}

[[gnu::always_inline]] inline const float* block_plane(const float* x, NchwShape s, int64_t b,
                                                       int64_t block) {
  return x + ((b * (s.channels / kL) + block) * s.plane) * kL;
}

[[gnu::always_inline]] inline void bn_elu_forward_blocked(const float* x, const float* gamma,
                                                          const float* beta, double eps,
                                                          NchwShape s, int64_t c0, int64_t c1,
                                                          float* y, float* mean, float* var) {
  const double count = static_cast<double>(s.batch * s.plane);
  for (int64_t block = c0 / kL; block < c1 / kL; ++block) {
    double total[kL] = {}, deviation[kL] = {};
    for (int64_t b = 0; b < s.batch; ++b) {
      const float* xp = block_plane(x, s, b, block);
      add_chained_plane_sums(
          s.plane,
          [&](int64_t i, int64_t l) __attribute__((always_inline)) { return xp[i * kL + l]; },
          total);
    }
    float m[kL], scale[kL], shift[kL];
    for (int64_t l = 0; l < kL; ++l) m[l] = static_cast<float>(total[l] / count);
    for (int64_t b = 0; b < s.batch; ++b) {
      const float* xp = block_plane(x, s, b, block);
      add_chained_plane_sums(
          s.plane,
          [&](int64_t i, int64_t l) __attribute__((always_inline)) {
            const float d = xp[i * kL + l] - m[l];
            return d * d;
          },
          deviation);
    }
    for (int64_t l = 0; l < kL; ++l) {
      const int64_t c = block * kL + l;
      const double v = deviation[l] / count;
      mean[c] = m[l];
      var[c] = static_cast<float>(v);
      scale[l] = static_cast<float>(gamma[c] / std::sqrt(v + eps));
      shift[l] = beta[c] - m[l] * scale[l];
    }
    for (int64_t b = 0; b < s.batch; ++b) {
      const float* xp = block_plane(x, s, b, block);
      float* yp = y + (xp - x);
      for (int64_t i = 0; i < s.plane; ++i) {
        for (int64_t l = 0; l < kL; ++l) yp[i * kL + l] = elu(xp[i * kL + l] * scale[l] + shift[l]);
      }
    }
  }
}

// Where a block's three maps (g, x, y over the batch) outgrow this many bytes, they no longer
// stay in a core's cache between the backward kernel's two passes, and the kernel is bound by
// memory: it then reads y in neither pass, recomputing elu'(z) = exp(z) for z <= 0 from x (z =
// x * scale + shift) in the first and keeping dz in dx for the second, 5 map passes instead of
// 7. Where they fit, the exponential costs more than the passes it saves. Measured alone on
// one core (a Xeon with 2 MB of L2 per core; bench/README.md, "BatchNorm + ELU backward"):
// h1 at batch 64 (3 MB a block) 0.36 against 0.51 ms, at batch 32 (1.5 MB) 0.12 against 0.18;
// h2 at batch 32 (384 KB) 0.054 against 0.041, slower. A fixed size, not the machine's cache:
// results then do not depend on which machine ran them.
constexpr int64_t kRecomputeAboveBytes = 512 * 1024;

template <bool kRecompute>
[[gnu::always_inline]] inline void bn_elu_backward_blocked(const float* g, const float* x,
                                                           const float* y, const float* gamma,
                                                           const float* beta, const float* mean,
                                                           const float* var, double eps,
                                                           NchwShape s, int64_t c0, int64_t c1,
                                                           float* dx, float* dgamma, float* dbeta) {
  const double count = static_cast<double>(s.batch * s.plane);
  for (int64_t block = c0 / kL; block < c1 / kL; ++block) {
    float m[kL], invstd[kL], k[kL], mean_dz[kL], mean_dz_xhat[kL], scale[kL], shift[kL];
    for (int64_t l = 0; l < kL; ++l) {
      const int64_t c = block * kL + l;
      m[l] = mean[c];
      invstd[l] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var[c]) + eps));
      scale[l] = gamma[c] * invstd[l];
      shift[l] = beta[c] - m[l] * scale[l];
    }
    // dz = g * elu'(z): from y (1 where y > 0, y + 1 elsewhere), or from x.
    const auto dz_at = [&](int64_t e, int64_t l) __attribute__((always_inline)) {
      if constexpr (kRecompute) {
        const float z = x[e] * scale[l] + shift[l];
        return g[e] * (z > 0.0f ? 1.0f : exp_nonpositive_inline(std::min(z, 0.0f)));
      } else {
        const float yy = y[e];
        return g[e] * (yy > 0.0f ? 1.0f : yy + 1.0f);
      }
    };
    double sum_dz[kL] = {}, sum_dz_xhat[kL] = {};
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t o = block_plane(x, s, b, block) - x;
      float a[kChains][kL] = {}, c[kChains][kL] = {};
      const auto add = [&](int u, int64_t i) __attribute__((always_inline)) {
        for (int64_t l = 0; l < kL; ++l) {
          const int64_t e = o + i * kL + l;
          const float dz = dz_at(e, l);
          if constexpr (kRecompute) dx[e] = dz;
          a[u][l] += dz;
          c[u][l] += dz * ((x[e] - m[l]) * invstd[l]);
        }
      };
      int64_t i = 0;
      for (; i + kChains <= s.plane; i += kChains) {
        for (int u = 0; u < kChains; ++u) add(u, i + u);
      }
      for (; i < s.plane; ++i) add(0, i);
      for (int64_t l = 0; l < kL; ++l) {
        sum_dz[l] += join_chains(a, l);
        sum_dz_xhat[l] += join_chains(c, l);
      }
    }
    for (int64_t l = 0; l < kL; ++l) {
      const int64_t c = block * kL + l;
      dgamma[c] = static_cast<float>(sum_dz_xhat[l]);
      dbeta[c] = static_cast<float>(sum_dz[l]);
      k[l] = gamma[c] * invstd[l];
      mean_dz[l] = static_cast<float>(sum_dz[l] / count);
      mean_dz_xhat[l] = static_cast<float>(sum_dz_xhat[l] / count);
    }
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t o = block_plane(x, s, b, block) - x;
      for (int64_t i = 0; i < s.plane; ++i) {
        for (int64_t l = 0; l < kL; ++l) {
          const int64_t e = o + i * kL + l;
          const float dz = kRecompute ? dx[e] : dz_at(e, l);
          const float xhat = (x[e] - m[l]) * invstd[l];
          dx[e] = k[l] * (dz - mean_dz[l] - xhat * mean_dz_xhat[l]);
        }
      }
    }
  }
}

}  // namespace

DAENR_CLONES float exp_nonpositive(float z) { return exp_nonpositive_inline(z); }

DAENR_CLONES void bn_elu_forward(const float* x, const float* gamma, const float* beta,
                                 double eps, NchwShape s, int64_t c0, int64_t c1, float* y,
                                 float* mean, float* var) {
  if (s.blocked) {
    bn_elu_forward_blocked(x, gamma, beta, eps, s, c0, c1, y, mean, var);
    return;
  }
  const int64_t stride = s.channels * s.plane;
  const double count = static_cast<double>(s.batch * s.plane);
  for (int64_t c = c0; c < c1; ++c) {
    const float* xc = x + c * s.plane;
    float* yc = y + c * s.plane;
    double total = 0;
    for (int64_t b = 0; b < s.batch; ++b) total += sum_plane(xc + b * stride, s.plane);
    const float m = static_cast<float>(total / count);
    double deviation = 0;
    for (int64_t b = 0; b < s.batch; ++b) {
      deviation += squared_deviation_plane(xc + b * stride, s.plane, m);
    }
    const double v = deviation / count;
    mean[c] = m;
    var[c] = static_cast<float>(v);
    const float scale = static_cast<float>(gamma[c] / std::sqrt(v + eps));
    const float shift = beta[c] - m * scale;
    for (int64_t b = 0; b < s.batch; ++b) {
      const float* xp = xc + b * stride;
      float* yp = yc + b * stride;
      for (int64_t i = 0; i < s.plane; ++i) yp[i] = elu(xp[i] * scale + shift);
    }
  }
}

DAENR_CLONES void affine_elu(const float* x, const float* scale, const float* shift, NchwShape s,
                             int64_t c0, int64_t c1, float* y) {
  if (s.blocked) {
    for (int64_t block = c0 / kL; block < c1 / kL; ++block) {
      const float* a = scale + block * kL;
      const float* k = shift + block * kL;
      for (int64_t b = 0; b < s.batch; ++b) {
        const float* xp = block_plane(x, s, b, block);
        float* yp = y + (xp - x);
        for (int64_t i = 0; i < s.plane; ++i) {
          for (int64_t l = 0; l < kL; ++l) yp[i * kL + l] = elu(xp[i * kL + l] * a[l] + k[l]);
        }
      }
    }
    return;
  }
  const int64_t stride = s.channels * s.plane;
  for (int64_t c = c0; c < c1; ++c) {
    const float a = scale[c], k = shift[c];
    for (int64_t b = 0; b < s.batch; ++b) {
      const float* xp = x + c * s.plane + b * stride;
      float* yp = y + c * s.plane + b * stride;
      for (int64_t i = 0; i < s.plane; ++i) yp[i] = elu(xp[i] * a + k);
    }
  }
}

DAENR_CLONES void bn_elu_backward(const float* g, const float* x, const float* y,
                                  const float* gamma, const float* beta, const float* mean,
                                  const float* var, double eps, NchwShape s, int64_t c0, int64_t c1,
                                  float* dx, float* dgamma, float* dbeta) {
  if (s.blocked) {
    const int64_t block_bytes = 3 * s.batch * s.plane * kL * static_cast<int64_t>(sizeof(float));
    if (block_bytes > kRecomputeAboveBytes) {
      bn_elu_backward_blocked<true>(g, x, y, gamma, beta, mean, var, eps, s, c0, c1, dx, dgamma,
                                    dbeta);
    } else {
      bn_elu_backward_blocked<false>(g, x, y, gamma, beta, mean, var, eps, s, c0, c1, dx, dgamma,
                                     dbeta);
    }
    return;
  }
  const int64_t stride = s.channels * s.plane;
  const double count = static_cast<double>(s.batch * s.plane);
  for (int64_t c = c0; c < c1; ++c) {
    const int64_t offset = c * s.plane;
    const float m = mean[c];
    const float invstd = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var[c]) + eps));
    double sum_dz = 0, sum_dz_xhat = 0;
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t o = offset + b * stride;
      gradient_sums_plane(g + o, x + o, y + o, s.plane, m, invstd, sum_dz, sum_dz_xhat);
    }
    dgamma[c] = static_cast<float>(sum_dz_xhat);
    dbeta[c] = static_cast<float>(sum_dz);
    // dx = gamma invstd (dz - mean(dz) - xhat mean(dz xhat)).
    const float k = gamma[c] * invstd;
    const float mean_dz = static_cast<float>(sum_dz / count);
    const float mean_dz_xhat = static_cast<float>(sum_dz_xhat / count);
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t o = offset + b * stride;
      const float* gp = g + o;
      const float* xp = x + o;
      const float* yp = y + o;
      float* dp = dx + o;
      for (int64_t i = 0; i < s.plane; ++i) {
        const float yy = yp[i];
        const float dz = gp[i] * (yy > 0.0f ? 1.0f : yy + 1.0f);
        const float xhat = (xp[i] - m) * invstd;
        dp[i] = k * (dz - mean_dz - xhat * mean_dz_xhat);
      }
    }
  }
}

}  // namespace daenr::models::kernels
