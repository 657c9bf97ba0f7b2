#include "semiseg/c3_step.h"

#include <cmath>
#include <limits>
#include <tuple>

#include "core/dist.h"
#include "core/ops.h"
#include "core/ops_index.h"
#include "core/ops_loss.h"
#include "core/ops_resize.h"
#include "semiseg/ops_contrast.h"
#include "semiseg/ops_cutmix.h"
#include "semiseg/metrics.h"
#include "semiseg/ops_dcrs.h"
#include "semiseg/ops_sampler.h"

namespace c3::semiseg {

double ramp_up(int64_t t, int64_t T) {
  if (T <= 0 || t >= T) return 1.0;
  const double r = 1.0 - double(t) / double(T);
  return std::exp(-5.0 * r * r);
}

namespace {

// Rows of a [N, ...] tensor reordered: out[i] = x[idx[i]] (differentiable); idx i32 on x's device.
Tensor take_images(const Tensor& x, const Tensor& idx) {
  const int64_t n = x.dim(0), row = x.numel() / n;
  Tensor out = gather_rows(x.reshape({n, row}), idx);
  Shape s = x.shape();
  s[0] = idx.numel();
  return out.reshape(s);
}

// Feature-resolution labels (i32, on the device) for the contrastive loss: ground truth for
// the labeled images, the teacher's pseudo-labels (255, ignored, where the DCRS mask is 0) for
// the rest.
Tensor feature_labels(const Tensor& y_l, const Tensor& pseudo, const Tensor& mask, int64_t h, int64_t w) {
  NoGradGuard ng;
  Tensor lab = cast(resize_nearest(y_l, h, w), DType::i32);
  if (!pseudo.defined()) return lab;
  Tensor pl = resize_nearest(pseudo, h, w);
  if (mask.defined()) {  // class ids and 255 are exact in f32
    const Tensor plf = cast(pl, DType::f32);
    pl = cast(where(resize_nearest(mask, h, w), plf, Tensor::full(plf.shape(), 255.0, DType::f32, plf.device())),
              DType::i32);
  }
  return concat({lab, pl}, 0);
}

// Pixel accuracy of the argmax of `logits` against `target` (255: ignored; no such pixel: 0),
// as a device scalar. Both maps hold small integers, exact in f32: |p - t| is 0 exactly where
// they agree and >= 1 elsewhere, and 255 - t is >= 1 exactly where t is not ignored.
Tensor pixel_accuracy(const Tensor& logits, const Tensor& target) {
  NoGradGuard ng;
  const Tensor p = cast(argmax_channels(logits.detach()), DType::f32), t = cast(target, DType::f32);
  const Tensor valid = clamp(add(neg(t), 255.0), 0, 1);
  const Tensor hit = mul(clamp(add(neg(abs(sub(p, t))), 1.0), 0, 1), valid);
  return div(sum(hit), clamp(sum(valid), 1, 1e30));
}

// The sample without its empty rows (label -1), for tensors in host memory, where reading the
// labels costs no wait: the loss is the same (empty rows take no part), on fewer rows.
std::pair<Tensor, Tensor> drop_empty_rows(const Tensor& index, const Tensor& label) {
  const int32_t* ip = index.data<int32_t>();
  const int32_t* lp = label.data<int32_t>();
  int64_t k = 0;
  for (int64_t i = 0; i < label.numel(); ++i) k += lp[i] >= 0;
  Tensor oi = Tensor::empty({k}, DType::i32), ol = Tensor::empty({k}, DType::i32);
  int32_t* a = oi.data<int32_t>();
  int32_t* b = ol.data<int32_t>();
  for (int64_t i = 0, j = 0; i < label.numel(); ++i)
    if (lp[i] >= 0) a[j] = ip[i], b[j] = lp[i], ++j;
  return {oi, ol};
}

SamplerOptions sampler_options(const Config& c) {
  SamplerOptions o;
  o.per_class = c.loss.samples_per_class;
  o.hard = c.loss.samples_per_class / 2;
  o.min_pixels = c.loss.min_pixels;
  o.skip_class0 = c.loss.skip_class0;
  o.hard_easy = c.loss.hard_easy;
  return o;
}

// L_con over images [N,h,w]: anchors from the student embeddings z (L2-normalized), contrast
// rows from `contrast` (same layout, no gradient). Per group of images when groups > 1 (the
// reference computed it per GPU), averaged over the groups that have anchors. Data-parallel:
// each rank is a group of its own, so a rank splits its images into contrast_groups / N.
Tensor contrast_loss(const Config& c, int ranks, const Tensor& z, const Tensor& contrast, const Tensor& labels_feat,
                     const Tensor& logits, Generator& gen, std::vector<std::pair<std::string, Tensor>>* draws) {
  const int64_t N = z.dim(0), h = z.dim(1), w = z.dim(2), D = z.dim(3), hw = h * w;
  // The sampler runs where the maps are, into a fixed number of rows per image (empty rows
  // have label -1 and take no part in the loss): nothing is read back or uploaded.
  const Tensor pred = argmax_channels(resize_bilinear(logits.detach(), h, w, false));
  const uint64_t seed = uint64_t(gen.randint_scalar(0, std::numeric_limits<int64_t>::max()));
  const AnchorRows s = sample_anchor_rows(labels_feat, pred, int(c.model.num_classes), seed, sampler_options(c));
  if (draws) {  // the dump: the anchors only (read here; dumping waits anyway)
    const auto idx = s.index.to_vector<int32_t>(), lab = s.label.to_vector<int32_t>();
    std::vector<int32_t> vi, vl;
    for (size_t k = 0; k < idx.size(); ++k)
      if (lab[k] >= 0) vi.push_back(idx[k]), vl.push_back(lab[k]);
    const int64_t K = int64_t(vi.size());
    draws->insert(draws->end(), {{"anchor_index", Tensor::from_vector(vi, {K})}, {"anchor_label", Tensor::from_vector(vl, {K})}});
  }
  const int64_t groups = std::max<int64_t>(1, std::min<int64_t>(c.train.contrast_groups / ranks, N));
  Tensor zr = z.reshape({N * hw, D}), cr = contrast.reshape({N * hw, D});
  if (s.per_image == 0) return mul(sum(z), 0.0);  // no class can qualify at this size
  // Per group of images (their rows are contiguous): the loss, and whether the group has two
  // anchors or more (the groups averaged over), both on the device.
  Tensor total, used;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t n0 = g * N / groups, n1 = (g + 1) * N / groups;
    Tensor ti = slice(s.index, 0, n0 * s.per_image, (n1 - n0) * s.per_image);
    Tensor tl = slice(s.label, 0, n0 * s.per_image, (n1 - n0) * s.per_image);
    if (!z.is_cuda()) std::tie(ti, tl) = drop_empty_rows(ti, tl);  // host memory: free to read
    Tensor l = contrastive_loss(gather_rows(zr, ti), gather_rows(cr, ti), tl, c.loss.tau, c.loss.tau_b);
    Tensor anchors = sum(clamp(add(cast(tl, DType::f32), 1.0), 0, 1));  // labels >= 0
    Tensor has = clamp(add(anchors, -1.0), 0, 1);                          // 1 when >= 2
    total = total.defined() ? add(total, l) : l;
    used = used.defined() ? add(used, has) : has;
  }
  return groups == 1 ? total : div(total, clamp(used, 1, 1e30));
}

}  // namespace

Tensor Mixing::mix(const Tensor& sources) const {
  const Tensor& all = indices_on(sources.device());
  const int64_t n = int64_t(order.size()), k = int64_t(boxes.size());
  return cutmix_mix(take_images(sources, slice(all, 0, 0, n)), boxes, H, W, slice(all, 0, 2 * n, 4 * k).reshape({k, 4}));
}
Tensor Mixing::unmix(const Tensor& outputs) const {
  const Tensor& all = indices_on(outputs.device());
  const int64_t n = int64_t(order.size()), k = int64_t(boxes.size());
  return take_images(cutmix_unmix(outputs, boxes, H, W, slice(all, 0, 2 * n, 4 * k).reshape({k, 4})),
                     slice(all, 0, n, n));
}
const Tensor& Mixing::indices_on(Device d) const {
  if (!indices.defined() || indices.device() != d) {
    std::vector<int32_t> v(order.begin(), order.end());
    v.insert(v.end(), inverse.begin(), inverse.end());
    for (const data::Box& b : boxes) v.insert(v.end(), {b.y0, b.x0, b.h, b.w});
    indices = small_i32(v, d);  // in a kernel's arguments: no wait (a few hundred values at most)
  }
  return indices;
}

Mixing draw_mixing(bool cross_set, int64_t Bl, int64_t Bu, int64_t H, int64_t W, Generator& gen) {
  const int64_t N = Bl + Bu;
  C3_CHECK(N % 2 == 0, "C3 mixing pairs images: batch_labeled + batch_unlabeled must be even, got ", N);
  Mixing m;
  m.H = H, m.W = W;
  if (cross_set) {
    m.order = gen.permutation(N);
  } else {  // within-set: labeled with labeled, unlabeled with unlabeled
    C3_CHECK(Bl % 2 == 0 && Bu % 2 == 0, "within-set mixing needs even batch sizes");
    auto pl = gen.permutation(Bl), pu = gen.permutation(Bu);
    for (int half = 0; half < 2; ++half) {
      for (int64_t i = half * Bl / 2; i < (half + 1) * Bl / 2; ++i) m.order.push_back(pl[i]);
      for (int64_t i = half * Bu / 2; i < (half + 1) * Bu / 2; ++i) m.order.push_back(Bl + pu[i]);
    }
  }
  m.inverse.resize(size_t(N));
  for (int64_t i = 0; i < N; ++i) m.inverse[size_t(m.order[size_t(i)])] = i;
  m.boxes = cutmix_boxes(gen, N / 2, int(H), int(W));
  return m;
}

double StepOutput::read_values() {
  std::vector<Tensor> parts = {loss.detach().reshape({1}).cast(DType::f32)};
  for (auto* list : {&terms, &stats})
    for (Reported& r : *list)
      if (r.pending.defined()) parts.push_back(r.pending.reshape({1}).cast(DType::f32));
  for (const Tensor& t : dcrs) parts.push_back(cast(t.reshape({t.numel()}), DType::f32));  // counts < 2^24: exact
  for (const Tensor& t : flags) parts.push_back(cast(t.reshape({t.numel()}), DType::f32));
  const std::vector<float> v = concat(parts, 0).to_vector<float>();
  size_t i = 1;
  for (auto* list : {&terms, &stats})
    for (Reported& r : *list)
      if (r.pending.defined()) r.value = v[i++], r.pending = Tensor();
  std::vector<float>* outs[] = {&thresholds, &kept_per_class, &quantiles, &class_counts};
  for (size_t k = 0; k < dcrs.size() && k < 4; ++k) {
    const size_t n = size_t(dcrs[k].numel());
    outs[k]->assign(v.begin() + long(i), v.begin() + long(i + n));
    i += n;
  }
  dcrs.clear();
  flag_values.clear();
  for (const Tensor& t : flags)
    for (int64_t k = 0; k < t.numel(); ++k) flag_values.push_back(v[i++]);
  flags.clear();
  return v[0];
}

double StepOutput::value(const std::string& name, double absent) const {
  for (const auto* list : {&terms, &stats})
    for (const Reported& r : *list)
      if (r.name == name) return r.pending.defined() ? r.pending.item() : r.value;
  return absent;
}

C3Step::C3Step(const Config& cfg, Device device, const dist::Comm& comm) : cfg_(cfg), device_(device), comm_(comm) {
  reset_thresholds();
}

void C3Step::reset_thresholds() {
  dcrs_ = dcrs_init(cfg_.model.num_classes, cfg_.dcrs.mode,
                    cfg_.dcrs.mode == DcrsMode::global ? cfg_.dcrs.global_threshold : cfg_.dcrs.init, device_);
  thresholds = dcrs_.thresholds;
}

void C3Step::load_thresholds(const Tensor& t) {
  C3_CHECK(t.shape() == dcrs_.thresholds.shape(), "checkpoint DCRS thresholds ", t.desc(), " do not match ",
           dcrs_.thresholds.desc(), " (dcrs.mode or model.num_classes changed?)");
  dcrs_.thresholds.copy_(t.to(device_));
  thresholds = dcrs_.thresholds;
}

StepOutput C3Step::supervised(nn::DeepLab& student, const StepInputs& in, int64_t step, Generator& gen) {
  StepOutput out;
  const int64_t H = in.x_l.dim(1), W = in.x_l.dim(2);
  nn::ResNetFeatures f = student.features(in.x_l);
  Tensor logits = student.upsample(student.classify(f), H, W);
  Tensor sup = cross_entropy(logits, in.y_l);
  out.terms.push_back({"sup", sup});
  out.loss = sup;
  // Warm-up: L_sup plus the contrastive loss on labeled pixels (no teacher yet).
  if (cfg_.train.mode == TrainMode::c3 && cfg_.loss.contrast && cfg_.loss.w_con > 0) {
    Tensor z = l2_normalize(student.project(f.layer4));
    Tensor lf = feature_labels(in.y_l, Tensor(), Tensor(), z.dim(1), z.dim(2));
    Tensor con = contrast_loss(cfg_, comm_.size(), z, z.detach(), lf, logits, gen, keep_draws ? &out.draws : nullptr);
    out.terms.push_back({"con", con});
    out.loss = add(out.loss, mul(con, cfg_.loss.w_con * ramp_up(step, cfg_.loss.ramp_con)));
  }
  return out;
}

StepOutput C3Step::semi(nn::DeepLab& student, nn::DeepLab& teacher, const StepInputs& in, int64_t step,
                        int64_t semi_step, Generator& gen) {
  StepOutput out;
  const int64_t Bl = in.x_l.dim(0), Bu = in.u_s.dim(0), H = in.x_l.dim(1), W = in.x_l.dim(2);
  const int64_t C = cfg_.model.num_classes;
  C3_CHECK(in.u_s.dim(1) == H && in.u_s.dim(2) == W, "labeled and unlabeled crops differ in size");

  // 2. Teacher on the weak view, without gradient.
  Tensor p_t, e_t;
  {
    NoGradGuard ng;
    nn::ResNetFeatures ft = teacher.features(in.u_w);
    p_t = softmax(teacher.upsample(teacher.classify(ft), H, W));
    if (cfg_.loss.contrast) e_t = l2_normalize(teacher.project(ft.layer4));
  }
  std::vector<double> s = cfg_.dcrs.s_per_class.empty() ? std::vector<double>{cfg_.dcrs.s} : cfg_.dcrs.s_per_class;
  DcrsResult dr = dcrs_update_all_ranks(p_t, dcrs_, s, cfg_.dcrs.momentum, true, comm_);  // same on every rank
  thresholds = dcrs_.thresholds;

  // 3. Cross-set mixing: shuffle [x_l; u_s], pair k with k + K, both complementary mixes.
  //    (loss.mix_labeled = false: only the unlabeled images are mixed, among themselves.)
  const bool mix_all = cfg_.loss.mix_labeled;
  const Mixing mixing = mix_all ? draw_mixing(cfg_.loss.cross_set, Bl, Bu, H, W, gen) : draw_mixing(true, 0, Bu, H, W, gen);
  Tensor mixed = mix_all ? mixing.mix(concat({in.x_l, in.u_s}, 0)) : concat({in.x_l, mixing.mix(in.u_s)}, 0);
  // Back to per-source outputs in the original order, [labeled; unlabeled].
  auto unmix = [&](const Tensor& out) {
    if (mix_all) return mixing.unmix(out);
    return concat({slice(out, 0, 0, Bl), mixing.unmix(slice(out, 0, Bl, Bu))}, 0);
  };
  if (keep_draws) {
    std::vector<int32_t> order(mixing.order.begin(), mixing.order.end()), boxes;
    for (const data::Box& b : mixing.boxes) boxes.insert(boxes.end(), {b.y0, b.x0, b.h, b.w});
    out.draws.emplace_back("mix_order", Tensor::from_vector(order, {int64_t(order.size())}));
    out.draws.emplace_back("mix_boxes", Tensor::from_vector(boxes, {int64_t(mixing.boxes.size()), 4}));
  }

  // 4. Student on the mixed images; un-mix logits and layer4 features; undo the shuffle.
  nn::ResNetFeatures f = student.features(mixed);
  Tensor logits = unmix(student.upsample(student.classify(f), H, W));
  Tensor logits_l = slice(logits, 0, 0, Bl), logits_u = slice(logits, 0, Bl, Bu);

  // 5. Losses, in the coordinates of the original images.
  Tensor sup = cross_entropy(logits_l, in.y_l);
  Tensor mask = cfg_.dcrs.mode == DcrsMode::off ? Tensor() : dr.mask;
  Tensor cons = mul(soft_cross_entropy(logits_u, p_t, mask), 1.0 / double(C));
  out.terms.push_back({"sup", sup});
  out.terms.push_back({"cons", cons});
  out.loss = add(sup, mul(cons, cfg_.loss.w_cons * ramp_up(semi_step, cfg_.loss.ramp_cons)));
  if (cfg_.loss.contrast && cfg_.loss.w_con > 0) {
    Tensor l4 = unmix(f.layer4);
    Tensor z = l2_normalize(student.project(l4));
    Tensor contrast = concat({slice(z, 0, 0, Bl).detach(), e_t}, 0);
    Tensor lf = feature_labels(in.y_l, dr.label, cfg_.dcrs.apply_to_contrast ? mask : Tensor(), z.dim(1), z.dim(2));
    Tensor con = contrast_loss(cfg_, comm_.size(), z, contrast, lf, logits, gen, keep_draws ? &out.draws : nullptr);
    out.terms.push_back({"con", con});
    out.loss = add(out.loss, mul(con, cfg_.loss.w_con * ramp_up(step, cfg_.loss.ramp_con)));
  }
  // Statistics for the log, on the device until read_values (no copy of a map to the host).
  if (dr.mask.numel() > 0) out.stats.push_back({"kept", mean(cast(dr.mask, DType::f32))});
  else out.stats.push_back({"kept", 1.0});
  out.stats.push_back({"agree_teacher", pixel_accuracy(logits_u, dr.label), false});
  out.stats.push_back({"acc_labeled", pixel_accuracy(logits_l, in.y_l), false});
  out.dcrs = {thresholds.detach(), dr.kept_fraction, dr.quantile, dr.count};
  return out;
}

}  // namespace c3::semiseg
