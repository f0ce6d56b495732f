#include "models/blocked_conv.h"

#include <atomic>
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <utility>

#include "models/error.h"
#include "models/passes.h"

#ifdef DAENR_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace daenr::models {

bool is_blocked(const torch::Tensor& x) {
  return x.dim() == 5 && x.size(4) == kChannelBlock && x.is_contiguous();
}

namespace {

torch::Tensor from_blocked_native(const torch::Tensor& x) {
  return x.permute({0, 1, 4, 2, 3})
      .reshape({x.size(0), x.size(1) * kChannelBlock, x.size(2), x.size(3)});
}

// The copy on oneDNN's reorder where this build has it (below), else LibTorch's.
torch::Tensor from_blocked_fast(const torch::Tensor& x);

}  // namespace

torch::Tensor from_blocked(const torch::Tensor& x) {
  if (!is_blocked(x)) throw ModelError("from_blocked: not a blocked map (B, C/16, H, W, 16)");
  if (x.device().is_cpu() && x.scalar_type() == torch::kFloat) return from_blocked_fast(x);
  return from_blocked_native(x);
}

torch::Tensor to_blocked(const torch::Tensor& x) {
  if (x.dim() != 4 || x.size(1) % kChannelBlock != 0) {
    throw ModelError(
        fmt::format("to_blocked: expected (B, C, H, W) with C a multiple of {}", kChannelBlock));
  }
  return x.view({x.size(0), x.size(1) / kChannelBlock, kChannelBlock, x.size(2), x.size(3)})
      .permute({0, 1, 3, 4, 2})
      .contiguous();
}

#ifdef DAENR_HAVE_DNNL

bool blocked_conv_available() {
  return true;
}

namespace {

using dnnl::memory;
using Tag = dnnl::memory::format_tag;
constexpr auto kF32 = dnnl::memory::data_type::f32;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One convolution shape's primitives, made once (oneDNN compiles its kernels when a primitive
// is made) and kept for the process: a run has a handful of shapes (the training batch, a
// last partial batch, the evaluation batch).
struct ConvPrimitives {
  memory::desc src, dst, user_weights, bias;
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::convolution_backward_data::primitive_desc data_pd;
  dnnl::convolution_backward_weights::primitive_desc weights_pd;
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data backward_data;
  dnnl::convolution_backward_weights backward_weights;
};

// B, IC, OC, H, W, and the intra-op thread count. oneDNN divides a primitive's work for the
// thread count it was made with and keeps that division: a primitive made on one thread runs on
// one thread ever after, and the weight gradient, summed over the batch in per-thread parts,
// keeps that thread count's bits. Without the count in the key, a worker that ran a one-thread
// job and then a two-thread job gave the second one thread's speed and one thread's results,
// not the two-thread results a fresh process gives (measured: 111 against 83 ms for 20 steps
// of h1's convolution at batch 64, and a different weight gradient in the 7th digit).
using ConvKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int>;

std::atomic<std::size_t> primitives_made{0};  // convolutions' and reorders', for tests

std::unique_ptr<ConvPrimitives> make_primitives(const ConvKey& key) {
  const auto [b, ic, oc, h, w, threads] = key;
  auto& engine = cpu_engine();
  auto p = std::make_unique<ConvPrimitives>();
  p->src = memory::desc({b, ic, h, w}, kF32, ic % kChannelBlock == 0 ? Tag::nChw16c : Tag::nchw);
  p->dst = memory::desc({b, oc, (h + 1) / 2, (w + 1) / 2}, kF32, Tag::nChw16c);
  p->user_weights = memory::desc({oc, ic, 3, 3}, kF32, Tag::oihw);
  p->bias = memory::desc({oc}, kF32, Tag::x);
  const memory::desc any_weights({oc, ic, 3, 3}, kF32, Tag::any);
  const memory::dims strides = {2, 2}, padding = {1, 1};
  const auto algorithm = dnnl::algorithm::convolution_direct;
  p->forward_pd = dnnl::convolution_forward::primitive_desc(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algorithm, p->src,
                                      any_weights, p->bias, p->dst, strides, padding, padding),
      engine);
  p->data_pd = dnnl::convolution_backward_data::primitive_desc(
      dnnl::convolution_backward_data::desc(algorithm, p->src, any_weights, p->dst, strides,
                                            padding, padding),
      engine, p->forward_pd);
  p->weights_pd = dnnl::convolution_backward_weights::primitive_desc(
      dnnl::convolution_backward_weights::desc(algorithm, p->src, any_weights, p->bias, p->dst,
                                               strides, padding, padding),
      engine, p->forward_pd);
  p->forward = dnnl::convolution_forward(p->forward_pd);
  p->backward_data = dnnl::convolution_backward_data(p->data_pd);
  p->backward_weights = dnnl::convolution_backward_weights(p->weights_pd);
  return p;
}

const ConvPrimitives& primitives(const ConvKey& key) {
  static std::mutex mutex;
  static std::map<ConvKey, std::unique_ptr<ConvPrimitives>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[key];
  if (!slot) {
    slot = make_primitives(key);
    ++primitives_made;
  }
  return *slot;
}

memory wrap(const memory::desc& desc, const torch::Tensor& t) {
  return memory(desc, cpu_engine(), t.data_ptr());
}

// `user` (a tensor in the user's layout) as memory in `desc`: itself when the layouts agree,
// else a reorder into `buffer` (allocated here, kept alive by the caller).
memory in_layout(dnnl::stream& stream, const memory::desc& user_desc, const torch::Tensor& user,
                 const memory::desc& desc, torch::Tensor& buffer) {
  auto user_memory = wrap(user_desc, user);
  if (desc == user_desc) return user_memory;
  buffer = torch::empty({static_cast<int64_t>(desc.get_size() / sizeof(float))}, user.options());
  auto converted = wrap(desc, buffer);
  dnnl::reorder(user_memory, converted).execute(stream, user_memory, converted);
  return converted;
}

ConvKey key_of(const torch::Tensor& x, const torch::Tensor& weight) {
  const bool blocked = is_blocked(x);
  return {x.size(0),      blocked ? x.size(1) * kChannelBlock : x.size(1),
          weight.size(0), x.size(2),
          x.size(3),      at::get_num_threads()};
}

}  // namespace

torch::Tensor passes::conv3x3s2_forward(const torch::Tensor& x, const torch::Tensor& weight,
                                        const torch::Tensor& bias) {
  const auto key = key_of(x, weight);
  const auto& p = primitives(key);
  const auto [b, ic, oc, h, w, threads] = key;
  auto y =
      torch::empty({b, oc / kChannelBlock, (h + 1) / 2, (w + 1) / 2, kChannelBlock}, x.options());
  dnnl::stream stream(cpu_engine());
  torch::Tensor weight_buffer;
  auto weights =
      in_layout(stream, p.user_weights, weight, p.forward_pd.weights_desc(), weight_buffer);
  p.forward.execute(stream, {{DNNL_ARG_SRC, wrap(p.src, x)},
                             {DNNL_ARG_WEIGHTS, weights},
                             {DNNL_ARG_BIAS, wrap(p.bias, bias)},
                             {DNNL_ARG_DST, wrap(p.dst, y)}});
  stream.wait();
  return y;
}

passes::ConvGrads passes::conv3x3s2_backward(const torch::Tensor& x, const torch::Tensor& weight,
                                             const torch::Tensor& grad, bool want_x,
                                             bool want_params) {
  const auto& p = primitives(key_of(x, weight));
  auto g = grad.contiguous();
  dnnl::stream stream(cpu_engine());
  ConvGrads d;
  torch::Tensor weight_buffer, dweight_buffer;
  if (want_x) {
    d.x = torch::empty_like(x);
    auto weights =
        in_layout(stream, p.user_weights, weight, p.data_pd.weights_desc(), weight_buffer);
    p.backward_data.execute(stream, {{DNNL_ARG_DIFF_DST, wrap(p.dst, g)},
                                     {DNNL_ARG_WEIGHTS, weights},
                                     {DNNL_ARG_DIFF_SRC, wrap(p.src, d.x)}});
  }
  if (want_params) {
    d.weight = torch::empty_like(weight);
    d.bias = torch::empty({weight.size(0)}, weight.options());
    const auto& desc = p.weights_pd.diff_weights_desc();
    const bool direct = desc == p.user_weights;
    if (!direct) {
      dweight_buffer =
          torch::empty({static_cast<int64_t>(desc.get_size() / sizeof(float))}, weight.options());
    }
    auto diff_weights = wrap(desc, direct ? d.weight : dweight_buffer);
    p.backward_weights.execute(stream, {{DNNL_ARG_SRC, wrap(p.src, x)},
                                        {DNNL_ARG_DIFF_DST, wrap(p.dst, g)},
                                        {DNNL_ARG_DIFF_WEIGHTS, diff_weights},
                                        {DNNL_ARG_DIFF_BIAS, wrap(p.bias, d.bias)}});
    if (!direct) {
      auto user = wrap(p.user_weights, d.weight);
      dnnl::reorder(diff_weights, user).execute(stream, diff_weights, user);
    }
  }
  stream.wait();
  return d;
}

namespace {

struct BlockedConvFunction : public torch::autograd::Function<BlockedConvFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias) {
    ctx->save_for_backward({x, weight});
    return passes::conv3x3s2_forward(x, weight, bias);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const bool want_params = ctx->needs_input_grad(1) || ctx->needs_input_grad(2);
    auto d = passes::conv3x3s2_backward(saved[0], saved[1], grads[0], ctx->needs_input_grad(0),
                                        want_params);
    return {d.x, ctx->needs_input_grad(1) ? d.weight : torch::Tensor(),
            ctx->needs_input_grad(2) ? d.bias : torch::Tensor()};
  }
};

// The layout change between a blocked map and NCHW on oneDNN's JIT reorder, a vectorised
// transpose of 16-channel tiles. LibTorch's permute + contiguous copies element by element
// through TensorIterator: about 2% of the readout-only CNN's step each way at batch 32
// (perf, 2026-12-03). Primitives are made once per shape and direction, like the
// convolutions'. The result is the same copy, bit for bit.
// B, C, H, W, to NCHW, and the thread count (as for ConvKey: a reorder made on one thread
// would copy on one thread ever after; its result is the same copy either way).
using ReorderKey = std::tuple<int64_t, int64_t, int64_t, int64_t, bool, int>;

// The source and destination descriptions of a key's layout change.
std::pair<memory::desc, memory::desc> layout_descs(const ReorderKey& key) {
  const auto [b, c, h, w, to_nchw, threads] = key;
  const memory::desc blocked({b, c, h, w}, kF32, Tag::nChw16c), nchw({b, c, h, w}, kF32, Tag::nchw);
  return to_nchw ? std::pair{blocked, nchw} : std::pair{nchw, blocked};
}

const dnnl::reorder& layout_reorder(const ReorderKey& key) {
  static std::mutex mutex;
  static std::map<ReorderKey, std::unique_ptr<dnnl::reorder>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[key];
  if (!slot) {
    const auto [src, dst] = layout_descs(key);
    slot = std::make_unique<dnnl::reorder>(
        dnnl::reorder::primitive_desc(cpu_engine(), src, cpu_engine(), dst));
    ++primitives_made;
  }
  return *slot;
}

// Copies src (B, C, H, W as the key says, in the key's source layout) into dst.
void change_layout(const ReorderKey& key, const torch::Tensor& src, const torch::Tensor& dst) {
  const auto [src_desc, dst_desc] = layout_descs(key);
  auto from = wrap(src_desc, src);
  auto to = wrap(dst_desc, dst);
  dnnl::stream stream(cpu_engine());
  layout_reorder(key).execute(stream, from, to);
  stream.wait();
}

}  // namespace

torch::Tensor passes::blocked_to_nchw(const torch::Tensor& x) {
  const int64_t b = x.size(0), c = x.size(1) * kChannelBlock, h = x.size(2), w = x.size(3);
  auto y = torch::empty({b, c, h, w}, x.options());
  change_layout({b, c, h, w, true, at::get_num_threads()}, x, y);
  return y;
}

torch::Tensor passes::nchw_to_blocked(const torch::Tensor& x) {
  auto g = x.contiguous();
  const int64_t b = g.size(0), c = g.size(1), h = g.size(2), w = g.size(3);
  auto gx = torch::empty({b, c / kChannelBlock, h, w, kChannelBlock}, g.options());
  change_layout({b, c, h, w, false, at::get_num_threads()}, g, gx);
  return gx;
}

namespace {

struct FromBlockedFunction : public torch::autograd::Function<FromBlockedFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& x) {
    return passes::blocked_to_nchw(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                 torch::autograd::variable_list grads) {
    return {passes::nchw_to_blocked(grads[0])};
  }
};

torch::Tensor from_blocked_fast(const torch::Tensor& x) { return FromBlockedFunction::apply(x); }

}  // namespace

torch::Tensor conv3x3s2_blocked(const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias) {
  const bool blocked = is_blocked(x);
  const bool image = x.dim() == 4 && x.is_contiguous() && x.size(1) < kChannelBlock;
  const int64_t ic = blocked ? x.size(1) * kChannelBlock : (image ? x.size(1) : -1);
  const auto is_cpu_float = [](const torch::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat;
  };
  if (ic < 0 || !is_cpu_float(x) || !is_cpu_float(weight) || !is_cpu_float(bias) ||
      weight.dim() != 4 || weight.size(1) != ic || weight.size(2) != 3 || weight.size(3) != 3 ||
      weight.size(0) % kChannelBlock != 0 || bias.numel() != weight.size(0)) {
    throw ModelError(fmt::format(
        "conv3x3s2_blocked: expected a blocked map or an NCHW image with fewer than {} channels "
        "and (OC, IC, 3, 3) float CPU weights with OC a multiple of {}; got x {} and weight {}",
        kChannelBlock, kChannelBlock, fmt::join(x.sizes(), "x"), fmt::join(weight.sizes(), "x")));
  }
  return BlockedConvFunction::apply(x, weight.contiguous(), bias.contiguous());
}

std::size_t blocked_primitives_made() {
  return primitives_made.load();
}

#else

std::size_t blocked_primitives_made() {
  return 0;
}

namespace {
torch::Tensor from_blocked_fast(const torch::Tensor& x) { return from_blocked_native(x); }
}  // namespace

bool blocked_conv_available() {
  return false;
}

torch::Tensor conv3x3s2_blocked(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  throw ModelError("conv3x3s2_blocked: this build has no oneDNN headers (libdnnl-dev)");
}

// Never reached: their callers check blocked_conv_available() first.
torch::Tensor passes::conv3x3s2_forward(const torch::Tensor&, const torch::Tensor&,
                                        const torch::Tensor&) {
  throw ModelError("conv3x3s2_forward: this build has no oneDNN headers (libdnnl-dev)");
}

passes::ConvGrads passes::conv3x3s2_backward(const torch::Tensor&, const torch::Tensor&,
                                             const torch::Tensor&, bool, bool) {
  throw ModelError("conv3x3s2_backward: this build has no oneDNN headers (libdnnl-dev)");
}

torch::Tensor passes::blocked_to_nchw(const torch::Tensor& x) {
  return from_blocked_native(x);
}

torch::Tensor passes::nchw_to_blocked(const torch::Tensor& x) {
  return to_blocked(x);
}

#endif

}  // namespace daenr::models
