#include "semiseg/ops_sampler.h"

#include "core/dispatch.h"
#include "kernels/cpu/semiseg_sampler.h"
#include "kernels/cuda/semiseg_sampler.h"

#include <algorithm>
#include <map>
#include <vector>

namespace c3::semiseg {
namespace {

std::vector<int32_t> as_i32(const Tensor& t) {
  Tensor c = t.cpu();
  if (c.dtype() == DType::i32) return c.to_vector<int32_t>();
  auto v = c.to_vector<uint8_t>();
  return {v.begin(), v.end()};
}

// Appends n positions of `group` drawn without replacement (the first n of a permutation).
void draw(const std::vector<int32_t>& group, int64_t n, Generator& gen, std::vector<int32_t>& out) {
  if (n <= 0) return;
  const std::vector<int64_t> perm = gen.permutation(int64_t(group.size()));
  for (int64_t k = 0; k < n; ++k) out.push_back(group[size_t(perm[size_t(k)])]);
}

// One image's sample; positions are offset to rows of the whole batch.
void sample_image(const int32_t* y, const int32_t* p, int64_t hw, int64_t base, Generator& gen,
                  const SamplerOptions& o, std::vector<int32_t>& idx, std::vector<int32_t>& lab) {
  std::map<int32_t, std::pair<std::vector<int32_t>, std::vector<int32_t>>> classes;  // c -> (hard, easy)
  for (int64_t i = 0; i < hw; ++i) {
    if (y[i] == o.ignore_index || (o.skip_class0 && y[i] == 0)) continue;
    auto& g = classes[y[i]];
    (p[i] != y[i] ? g.first : g.second).push_back(int32_t(base + i));
  }
  for (auto& [c, g] : classes) {
    auto& [hard, easy] = g;
    const int64_t nh = int64_t(hard.size()), ne = int64_t(easy.size());
    if (nh + ne <= o.min_pixels) continue;
    const size_t before = idx.size();
    if (!o.hard_easy) {
      std::vector<int32_t> all = hard;
      all.insert(all.end(), easy.begin(), easy.end());
      std::sort(all.begin(), all.end());  // raster order, whatever the hardness
      draw(all, std::min<int64_t>(o.per_class, nh + ne), gen, idx);
    } else {
      int64_t take_h = std::min<int64_t>(o.hard, nh);
      const int64_t take_e = std::min<int64_t>(o.per_class - take_h, ne);
      take_h = std::min<int64_t>(o.per_class - take_e, nh);  // fill from the hard side
      draw(hard, take_h, gen, idx);
      draw(easy, take_e, gen, idx);
    }
    lab.insert(lab.end(), idx.size() - before, c);
  }
}

}  // namespace

AnchorSample sample_anchors(const Tensor& labels, const Tensor& pred, Generator& gen, const SamplerOptions& opt) {
  const char* op = "sample_anchors";
  for (const Tensor* t : {&labels, &pred})
    C3_CHECK(t->dtype() == DType::i32 || t->dtype() == DType::u8, op, ": label maps must be i32 or u8, got ",
             t->desc());
  C3_CHECK(labels.rank() == 3 && labels.shape() == pred.shape(), op, ": labels and predictions must be [N,h,w] of ",
           "the same shape, got ", labels.desc(), " and ", pred.desc());
  check_same_device(op, labels, pred);
  C3_CHECK(opt.per_class >= 1 && opt.hard >= 0 && opt.hard <= opt.per_class && opt.min_pixels >= 0, op,
           ": bad options per_class ", opt.per_class, ", hard ", opt.hard, ", min_pixels ", opt.min_pixels);
  C3_CHECK(labels.numel() <= INT32_MAX, op, ": too many positions for i32 indices: ", labels.desc());
  const std::vector<int32_t> y = as_i32(labels), p = as_i32(pred);
  for (size_t i = 0; i < y.size(); ++i)
    C3_CHECK(y[i] >= 0 || y[i] == opt.ignore_index, op, ": label ", y[i], " at position ", i,
             " is neither a class (>= 0) nor the ignore index ", opt.ignore_index);
  const int64_t N = labels.dim(0), hw = labels.dim(1) * labels.dim(2);
  std::vector<int32_t> idx, lab;
  for (int64_t n = 0; n < N; ++n) sample_image(y.data() + n * hw, p.data() + n * hw, hw, n * hw, gen, opt, idx, lab);
  const int64_t K = int64_t(idx.size());
  return {Tensor::from_vector(idx, {K}, labels.device()), Tensor::from_vector(lab, {K}, labels.device())};
}

AnchorRows sample_anchor_rows(const Tensor& labels, const Tensor& pred, int classes, uint64_t seed,
                              const SamplerOptions& opt) {
  const char* op = "sample_anchor_rows";
  for (const Tensor* t : {&labels, &pred}) check_dtype(op, *t, DType::i32);
  C3_CHECK(labels.rank() == 3 && labels.shape() == pred.shape(), op, ": labels and predictions must be [N,h,w] of ",
           "the same shape, got ", labels.desc(), " and ", pred.desc());
  check_same_device(op, labels, pred);
  C3_CHECK(opt.per_class >= 1 && opt.hard >= 0 && opt.hard <= opt.per_class && opt.min_pixels >= 0 && classes >= 1 &&
               classes <= 256 && opt.ignore_index == 255,
           op, ": bad options per_class ", opt.per_class, ", hard ", opt.hard, ", min_pixels ", opt.min_pixels,
           ", classes ", classes, ", ignore_index ", opt.ignore_index);
  C3_CHECK(labels.numel() <= INT32_MAX, op, ": too many positions for i32 indices: ", labels.desc());
  kernels::SamplerParams p;
  p.N = labels.dim(0), p.hw = labels.dim(1) * labels.dim(2), p.C = classes;
  p.per_class = opt.per_class, p.hard = opt.hard, p.min_pixels = opt.min_pixels;
  p.skip_class0 = opt.skip_class0, p.hard_easy = opt.hard_easy, p.seed = seed;
  AnchorRows r;
  r.per_image = kernels::sampler_slots_per_image(p);
  const Device dev = labels.device();
  r.index = Tensor::empty({p.N * r.per_image}, DType::i32, dev);
  r.label = Tensor::empty({p.N * r.per_image}, DType::i32, dev);
  if (labels.is_cuda()) {
    Tensor counts = Tensor::empty({std::max<int64_t>(1, p.N * 2 * p.C)}, DType::i32, dev);
    C3_CUDA(op, kernels::cuda::sample_anchors(labels.data<int32_t>(), pred.data<int32_t>(), p,
                                              r.index.data<int32_t>(), r.label.data<int32_t>(), counts.data<int32_t>()));
  } else {
    kernels::cpu::sample_anchors(labels.data<int32_t>(), pred.data<int32_t>(), p, r.index.data<int32_t>(),
                                 r.label.data<int32_t>());
  }
  return r;
}


}  // namespace c3::semiseg
