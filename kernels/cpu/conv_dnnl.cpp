#include "kernels/cpu/conv_dnnl.h"

#include <omp.h>

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/conv.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace kernels::cpu::dnnl_conv {
namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}

// oneDNN's view of a geometry: logical dims in its (N, C, H, W) / (O, I, H, W) order, memory
// in ours (NHWC activations, OHWI weights), dilation counted from 0, padding per side.
struct Shapes {
  dnnl::memory::desc src, dst, weights, bias, any_weights;
  dims strides, dilates, pad_l, pad_r;
};
Shapes shapes(const ConvGeom& g) {
  Shapes s;
  s.src = dnnl::memory::desc({g.N, g.C, g.H, g.W}, dt::f32, tag::nhwc);
  s.dst = dnnl::memory::desc({g.N, g.K, g.Ho, g.Wo}, dt::f32, tag::nhwc);
  s.weights = dnnl::memory::desc({g.K, g.C, g.kh, g.kw}, dt::f32, tag::ohwi);
  s.any_weights = dnnl::memory::desc({g.K, g.C, g.kh, g.kw}, dt::f32, tag::any);
  s.bias = dnnl::memory::desc({g.K}, dt::f32, tag::x);
  s.strides = {g.sh, g.sw};
  s.dilates = {g.dh - 1, g.dw - 1};
  // Zero padding on both sides, as ours (oneDNN derives the same output size from it).
  s.pad_l = {g.ph, g.pw};
  s.pad_r = {g.ph, g.pw};
  return s;
}

dnnl::convolution_forward::primitive_desc forward_pd(const Shapes& s, bool bias, bool training) {
  const dnnl::prop_kind prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  const dnnl::convolution_forward::desc d =
      bias ? dnnl::convolution_forward::desc(prop, dnnl::algorithm::convolution_direct, s.src, s.any_weights, s.bias,
                                             s.dst, s.strides, s.dilates, s.pad_l, s.pad_r)
           : dnnl::convolution_forward::desc(prop, dnnl::algorithm::convolution_direct, s.src, s.any_weights, s.dst,
                                             s.strides, s.dilates, s.pad_l, s.pad_r);
  return dnnl::convolution_forward::primitive_desc(d, engine());
}

// oneDNN's direct kernels (jit:avx2, jit_1x1:avx2 here; brg:avx512_core and the like on CPUs
// with AVX-512) beat im2col + OpenBLAS at our shapes; where it has none (dilated convs often,
// some filter gradients) it falls back to its own im2col + GEMM ("x64:gemm:jit"), slower than
// ours here, or to reference loops ("ref:any"): those passes run on im2col instead. Measured
// per pass on the synthetic model's shapes (bench/results/2026-12-07-onednn-conv.md).
bool is_direct(const dnnl::primitive_desc_base& pd) {
  const std::string impl = pd.impl_info_str();
  return impl.find("gemm") == std::string::npos && impl.rfind("ref", 0) != 0;
}

// What one geometry keeps: for each pass oneDNN runs, its primitive and the reorders of the
// weights into and out of the layout it chose.
struct Forward {
  bool direct = false;
  dnnl::convolution_forward prim;
  dnnl::memory::desc weights;  // the layout the kernel reads
  dnnl::reorder to_weights;    // ours -> that layout (empty when they are the same)
};
struct Backward {
  bool data_direct = false, filter_direct = false;
  dnnl::convolution_backward_data data;
  dnnl::memory::desc data_weights;
  dnnl::reorder to_data_weights;
  dnnl::convolution_backward_weights filter;
  dnnl::memory::desc filter_grad;
  dnnl::reorder from_filter_grad;  // its layout -> ours
};

// A primitive splits its work among the OpenMP threads there were when it was built, and
// keeps that count: the thread count is part of the key (set_threads between rows of a
// benchmark, or a trainer's train.threads).
using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int64_t, int, int>;
Key key(const ConvGeom& g, int flags) {
  return Key{g.N, g.H, g.W, g.C, g.K, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, flags, omp_get_max_threads()};
}

// Kept primitives, at most kKeptGeometries per pass kind: a run sees a few dozen (its layers at
// its crop, eval's window sizes); predict on images of many sizes would otherwise grow them
// without end. Past the limit a cache starts again empty.
constexpr size_t kKept = kKeptGeometries;
std::mutex g_mutex;  // guards the caches and the weight buffer below (convs run one at a time)
std::map<Key, std::unique_ptr<Forward>> g_forward;
std::map<Key, std::unique_ptr<Backward>> g_backward;
std::vector<float> g_weights;  // reordered weights (or the filter gradient before its reorder)

dnnl::reorder reorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  if (from == to) return {};
  return dnnl::reorder(dnnl::reorder::primitive_desc(engine(), from, engine(), to));
}

// A geometry oneDNN cannot build a primitive for runs on im2col, as one it has no direct kernel for.
template <class F> void build_or_fall_back(bool& direct, F&& build) {
  try {
    build();
  } catch (const dnnl::error&) {
    direct = false;
  }
}

const Forward& forward_entry(const ConvGeom& g, bool bias, bool training) {
  const Key k = key(g, int(bias) | int(training) << 1);
  if (g_forward.size() >= kKept && !g_forward.count(k)) g_forward.clear();
  std::unique_ptr<Forward>& e = g_forward[k];
  if (!e) {
    e = std::make_unique<Forward>();
    Forward& f = *e;
    build_or_fall_back(f.direct, [&] {
      const Shapes s = shapes(g);
      auto pd = forward_pd(s, bias, training);
      f.direct = is_direct(pd);
      if (f.direct) {
        f.prim = dnnl::convolution_forward(pd);
        f.weights = pd.weights_desc();
        f.to_weights = reorder(s.weights, f.weights);
      }
    });
  }
  return *e;
}

const Backward& backward_entry(const ConvGeom& g) {
  const Key k = key(g, 0);
  if (g_backward.size() >= kKept && !g_backward.count(k)) g_backward.clear();
  std::unique_ptr<Backward>& e = g_backward[k];
  if (!e) {
    e = std::make_unique<Backward>();
    Backward& b = *e;
    const Shapes s = shapes(g);
    build_or_fall_back(b.data_direct, [&] {
      const dnnl::convolution_backward_data::primitive_desc pd(
          dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, s.src, s.any_weights, s.dst,
                                                s.strides, s.dilates, s.pad_l, s.pad_r),
          engine(), forward_pd(s, false, true));
      b.data_direct = is_direct(pd);
      if (b.data_direct) {
        b.data = dnnl::convolution_backward_data(pd);
        b.data_weights = pd.weights_desc();
        b.to_data_weights = reorder(s.weights, b.data_weights);
      }
    });
    build_or_fall_back(b.filter_direct, [&] {
      const dnnl::convolution_backward_weights::primitive_desc pd(
          dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, s.src, s.any_weights, s.dst,
                                                   s.strides, s.dilates, s.pad_l, s.pad_r),
          engine(), forward_pd(s, false, true));
      b.filter_direct = is_direct(pd);
      if (b.filter_direct) {
        b.filter = dnnl::convolution_backward_weights(pd);
        b.filter_grad = pd.diff_weights_desc();
        b.from_filter_grad = reorder(b.filter_grad, s.weights);
      }
    });
  }
  return *e;
}

// The weights as the kernel reads them: ours when the layouts agree, else reordered into the
// shared buffer.
dnnl::memory weights_for(const dnnl::memory::desc& want, const dnnl::reorder& reorder, const Shapes& s,
                         const float* w) {
  dnnl::memory ours(s.weights, engine(), const_cast<float*>(w));
  if (!reorder) return ours;
  g_weights.resize(want.get_size() / sizeof(float) + 1);
  dnnl::memory theirs(want, engine(), g_weights.data());
  reorder.execute(stream(), ours, theirs);
  return theirs;
}

template <class F>
void guarded(const char* what, F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("oneDNN ") + what + ": " + e.what());
  }
}

}  // namespace

void forward(const float* x, const float* w, const float* bias, float* y, const ConvGeom& g, bool relu,
             bool training) {
  if (g.out_pixels() == 0 || g.K == 0) return count_forward_launches(bias != nullptr, relu);
  std::unique_lock<std::mutex> lock(g_mutex);
  bool direct = false;
  guarded("convolution forward", [&] {
    const Forward& e = forward_entry(g, bias != nullptr, training);
    if (!(direct = e.direct)) return;
    const Shapes s = shapes(g);
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, dnnl::memory(s.src, engine(), const_cast<float*>(x))},
        {DNNL_ARG_WEIGHTS, weights_for(e.weights, e.to_weights, s, w)},
        {DNNL_ARG_DST, dnnl::memory(s.dst, engine(), y)}};
    if (bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(s.bias, engine(), const_cast<float*>(bias)));
    e.prim.execute(stream(), args);
    stream().wait();
  });
  lock.unlock();
  if (!direct) return conv2d_forward(x, w, bias, y, g, relu);
  count_forward_launches(bias != nullptr, relu);
  // oneDNN's ReLU post-op turns NaN into 0; ours keeps it, so a diverging run is seen.
  if (relu) relu_rows(y, g.K, 0, g.out_pixels());
}

void backward(const float* x, const float* w, const float* dy, float* dx, float* dw, const ConvGeom& g) {
  if (!dx && !dw) return;
  if (g.out_pixels() == 0 || g.K == 0) return conv2d_backward(x, w, dy, dx, dw, g);  // zero gradients
  std::unique_lock<std::mutex> lock(g_mutex);
  bool dx_done = false, dw_done = false;
  guarded("convolution backward", [&] {
    const Backward& e = backward_entry(g);
    const Shapes s = shapes(g);
    const dnnl::memory dy_mem(s.dst, engine(), const_cast<float*>(dy));
    if (dx && e.data_direct) {
      e.data.execute(stream(), {{DNNL_ARG_DIFF_DST, dy_mem},
                                {DNNL_ARG_WEIGHTS, weights_for(e.data_weights, e.to_data_weights, s, w)},
                                {DNNL_ARG_DIFF_SRC, dnnl::memory(s.src, engine(), dx)}});
      dx_done = true;
    }
    if (dw && e.filter_direct) {
      dnnl::memory ours(s.weights, engine(), dw);
      dnnl::memory grad = ours;
      if (e.from_filter_grad) {
        g_weights.resize(e.filter_grad.get_size() / sizeof(float) + 1);
        grad = dnnl::memory(e.filter_grad, engine(), g_weights.data());
      }
      e.filter.execute(stream(), {{DNNL_ARG_SRC, dnnl::memory(s.src, engine(), const_cast<float*>(x))},
                                  {DNNL_ARG_DIFF_DST, dy_mem},
                                  {DNNL_ARG_DIFF_WEIGHTS, grad}});
      if (e.from_filter_grad) e.from_filter_grad.execute(stream(), grad, ours);
      dw_done = true;
    }
    stream().wait();
  });
  lock.unlock();
  count_backward_launches(dx_done, dw_done);
  // The passes oneDNN has no direct kernel for (im2col counts its own launches).
  if ((dx && !dx_done) || (dw && !dw_done))
    conv2d_backward(x, w, dy, dx_done ? nullptr : dx, dw_done ? nullptr : dw, g);
}

bool direct(const ConvGeom& g, Pass pass, bool training) {
  if (g.out_pixels() == 0 || g.K == 0) return false;
  std::lock_guard<std::mutex> lock(g_mutex);
  bool r = false;
  guarded("convolution", [&] {
    if (pass == Pass::forward) r = forward_entry(g, false, training).direct;
    else r = pass == Pass::data ? backward_entry(g).data_direct : backward_entry(g).filter_direct;
  });
  return r;
}

void clear_cache() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_forward.clear();
  g_backward.clear();
  g_weights = {};
}

size_t cached_geometries() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_forward.size() + g_backward.size();
}

}  // namespace kernels::cpu::dnnl_conv
