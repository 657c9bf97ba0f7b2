#include "semiseg/c3_step.h"

#include <cmath>

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

// Rows of a [N, ...] tensor reordered: out[i] = x[idx[i]] (differentiable).
Tensor take_images(const Tensor& x, const std::vector<int64_t>& order) {
  const int64_t n = x.dim(0), row = x.numel() / n;
  std::vector<int32_t> idx(order.begin(), order.end());
  Tensor out = gather_rows(x.reshape({n, row}), Tensor::from_vector(idx, {int64_t(idx.size())}, x.device()));
  Shape s = x.shape();
  s[0] = int64_t(idx.size());
  return out.reshape(s);
}

// Feature-resolution labels for the contrastive loss: ground truth for the first `n_lab`
// images, the teacher's pseudo-labels (ignore where the DCRS mask is 0) for the rest.
Tensor feature_labels(const Tensor& y_l, const Tensor& pseudo, const Tensor& mask, int64_t h, int64_t w) {
  std::vector<int32_t> out;
  auto lab = resize_nearest(y_l, h, w).to_vector<uint8_t>();
  out.insert(out.end(), lab.begin(), lab.end());
  int64_t n = y_l.dim(0);
  if (pseudo.defined()) {
    auto pl = resize_nearest(pseudo, h, w).to_vector<int32_t>();
    std::vector<uint8_t> m(pl.size(), 1);
    if (mask.defined()) m = resize_nearest(mask, h, w).to_vector<uint8_t>();
    for (size_t i = 0; i < pl.size(); ++i) out.push_back(m[i] ? pl[i] : 255);
    n += pseudo.dim(0);
  }
  return Tensor::from_vector(out, {n, h, w});
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
  const int64_t N = z.dim(0), h = z.dim(1), w = z.dim(2), D = z.dim(3);
  Tensor pred = argmax_channels(resize_bilinear(logits.detach(), h, w, false)).cpu();
  AnchorSample s = sample_anchors(labels_feat, pred, gen, sampler_options(c));
  if (draws) draws->insert(draws->end(), {{"anchor_index", s.index}, {"anchor_label", s.label}});
  const int64_t groups = std::max<int64_t>(1, std::min<int64_t>(c.train.contrast_groups / ranks, N));
  Tensor zr = z.reshape({N * h * w, D}), cr = contrast.reshape({N * h * w, D});
  auto idx = s.index.to_vector<int32_t>();
  auto lab = s.label.to_vector<int32_t>();
  Tensor total;
  int used = 0;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t lo = g * N / groups * h * w, hi = (g + 1) * N / groups * h * w;
    std::vector<int32_t> gi, gl;
    for (size_t k = 0; k < idx.size(); ++k)
      if (idx[k] >= lo && idx[k] < hi) gi.push_back(idx[k]), gl.push_back(lab[k]);
    if (gi.size() < 2) continue;
    Tensor ti = Tensor::from_vector(gi, {int64_t(gi.size())}, z.device());
    Tensor l = contrastive_loss(gather_rows(zr, ti), gather_rows(cr, ti),
                                Tensor::from_vector(gl, {int64_t(gl.size())}, z.device()), c.loss.tau, c.loss.tau_b);
    total = total.defined() ? add(total, l) : l;
    ++used;
  }
  if (!used) return Tensor::zeros({}, z.dtype(), z.device());
  return used == 1 ? total : mul(total, 1.0 / used);
}

}  // namespace

Tensor Mixing::mix(const Tensor& sources) const { return cutmix_mix(take_images(sources, order), boxes, H, W); }
Tensor Mixing::unmix(const Tensor& outputs) const { return take_images(cutmix_unmix(outputs, boxes, H, W), inverse); }

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
  const std::vector<float> v = concat(parts, 0).to_vector<float>();
  size_t i = 1;
  for (auto* list : {&terms, &stats})
    for (Reported& r : *list)
      if (r.pending.defined()) r.value = v[i++], r.pending = Tensor();
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
  // Statistics for the log.
  auto agree = [&](const Tensor& logits, const Tensor& target) {  // pixel accuracy; target 255 = ignore
    ConfusionMatrix cm(int(C), logits.device());
    cm.add(argmax_channels(logits.detach()), target.cast(DType::u8));
    const IoUResult r = compute_iou(cm.counts(), int(C));
    return r.pixels ? r.pixel_acc : 0.0;
  };
  // The kept fraction on the device (read with the loss terms), not a copy of the whole mask.
  if (dr.mask.numel() > 0) out.stats.push_back({"kept", mean(cast(dr.mask, DType::f32))});
  else out.stats.push_back({"kept", 1.0});
  out.stats.push_back({"agree_teacher", agree(logits_u, dr.label), false});
  out.stats.push_back({"acc_labeled", agree(logits_l, in.y_l), false});
  out.thresholds = thresholds.to_vector<float>();
  out.kept_per_class = dr.kept_fraction.to_vector<float>();
  if (comm_.size() > 1) {  // the fractions over every rank's pixels (as one process logs them)
    const auto count = dr.count.to_vector<int32_t>();
    std::vector<double> v(size_t(2 * C), 0.0);
    for (int64_t c = 0; c < C; ++c) {
      v[size_t(c)] = count[size_t(c)];
      if (count[size_t(c)] > 0) v[size_t(C + c)] = std::round(double(out.kept_per_class[size_t(c)]) * count[size_t(c)]);
    }
    comm_.all_reduce_sum(v);
    for (int64_t c = 0; c < C; ++c)
      out.kept_per_class[size_t(c)] = v[size_t(c)] > 0 ? float(v[size_t(C + c)] / v[size_t(c)]) : NAN;
  }
  out.quantiles = dr.quantile.to_vector<float>();
  return out;
}

}  // namespace c3::semiseg
