// Kernel lab: the C3 kernels on the reference protocol's batch (16 labeled + 16 unlabeled
// images of 256 x 512, 19 classes): the DCRS step over the teacher's probabilities, the
// CutMix routing of the images (mix) and of the logits (un-mix), and the confusion matrix.
#include <memory>

#include "bench/lab/lab.h"
#include "kernels/cpu/metrics.h"
#include "kernels/cpu/semiseg_cutmix.h"
#include "kernels/cpu/semiseg_dcrs.h"
#include "kernels/cpu/semiseg_sampler.h"
#include "kernels/cuda/metrics.h"
#include "kernels/cuda/semiseg_cutmix.h"
#include "kernels/cuda/semiseg_dcrs.h"
#include "kernels/cuda/semiseg_sampler.h"

namespace lab {
namespace {

// The outputs and the state of one DCRS step, and the GPU workspace.
struct DcrsState {
  Buf<float> probs, thr, conf, quantile, kept_fraction, cand;
  Buf<int32_t> label, count, hist, sel, kept;
  Buf<uint8_t> mask, s_bytes;  // the fractions as doubles (CUDA tensors have no f64)
  std::vector<double> s;
  int64_t P = 0;
  int C = 0;
  kernels::DcrsIo io(bool device) {
    kernels::DcrsIo io;
    auto p = [device](auto& buf) { return device ? buf.dev() : buf.host(); };
    io.probs = p(probs), io.P = P, io.C = C, io.T = C, io.momentum = 0.9f, io.update = true;
    io.s = device ? reinterpret_cast<const double*>(s_bytes.dev()) : s.data();
    io.thr = p(thr), io.conf = p(conf), io.label = p(label), io.mask = p(mask), io.quantile = p(quantile);
    io.count = p(count), io.kept_fraction = p(kept_fraction);
    return io;
  }
};

Case dcrs_case(Backend b, const Scale& s) {
  auto st = std::make_shared<DcrsState>();
  DcrsState& v = *st;
  v.P = s.N * s.H * s.W, v.C = int(s.classes);
  const int64_t P = v.P, C = v.C;
  v.probs = Buf<float>(b, P * C);
  fill_probs(v.probs.vec(), P, C, 1);
  v.thr = Buf<float>(b, C), v.quantile = Buf<float>(b, C), v.kept_fraction = Buf<float>(b, C);
  for (float& t : v.thr.vec()) t = 0.9f;
  v.conf = Buf<float>(b, P), v.label = Buf<int32_t>(b, P), v.mask = Buf<uint8_t>(b, P), v.count = Buf<int32_t>(b, C);
  v.s.assign(size_t(C), 0.8);
  v.s_bytes = Buf<uint8_t>(b, C * 8 + 8);
  std::memcpy(v.s_bytes.host(), v.s.data(), size_t(C) * 8);
  v.probs.upload(), v.thr.upload(), v.s_bytes.upload();
  if (b != Backend::cpu) {
    v.hist = Buf<int32_t>(b, C * kernels::kDcrsBins), v.sel = Buf<int32_t>(b, C * 5), v.kept = Buf<int32_t>(b, C);
    v.cand = Buf<float>(b, P);
  }
  // Reads the probabilities; writes conf, label, mask (9 bytes a pixel).
  return make_case(
      b, dims({s.N, s.H, s.W, C}), double(P * C) * 4 + double(P) * 9, [&v, st] { kernels::cpu::dcrs_step(v.io(false)); },
      [&v, st, b] {
        kernels::DcrsWorkspace ws{v.hist.dev(), v.sel.dev(), v.kept.dev(), v.cand.dev()};
        LAB_DEV(b, dcrs_step, v.io(true), ws);
      },
      [&v, st] {
        // Exact by design: the quantile is the order statistic on both backends.
        return all_of({compare_exact("thresholds", v.thr.download(), v.thr.vec()),
                       compare_exact("quantiles", v.quantile.download(), v.quantile.vec()),
                       compare_exact("mask", v.mask.download(), v.mask.vec()),
                       compare_exact("label", v.label.download(), v.label.vec())});
      });
}

struct SwapState {
  Buf<uint32_t> x, out;
  Buf<int32_t> boxes;
};

// Mix (the images, C = 3) or un-mix (the logits, C = classes) of 2N images in N pairs, with
// half-area boxes; both are the same routing kernel.
Case cutmix_case(Backend b, const Scale& s, int64_t C) {
  const int64_t K = s.N, n = 2 * K * s.H * s.W * C;
  auto st = std::make_shared<SwapState>();
  SwapState& v = *st;
  v.x = Buf<uint32_t>(b, n), v.out = Buf<uint32_t>(b, n), v.boxes = Buf<int32_t>(b, 4 * K);
  for (int64_t i = 0; i < n; ++i) v.x.vec()[size_t(i)] = uint32_t(i * 2654435761u);
  for (int64_t k = 0; k < K; ++k) {  // (y0, x0, h, w): half of the image, at varied places
    const int64_t h = s.H * 3 / 4, w = s.W * 2 / 3;
    const int32_t box[4] = {int32_t((k * 7) % (s.H - h + 1)), int32_t((k * 13) % (s.W - w + 1)), int32_t(h), int32_t(w)};
    std::memcpy(v.boxes.host() + 4 * k, box, sizeof box);
  }
  v.x.upload(), v.boxes.upload();
  const int64_t H = s.H, W = s.W;
  return make_case(
      b, dims({2 * K, H, W, C}), double(2 * n) * 4,
      [&v, st, K, H, W, C] { kernels::cpu::cutmix_swap(v.x.host(), v.out.host(), v.boxes.host(), K, H, W, C, H, W); },
      [&v, st, K, H, W, C, b] { LAB_DEV(b, cutmix_swap_b4, v.x.dev(), v.out.dev(), v.boxes.dev(), K, H, W, C, H, W); },
      [&v, st] { return compare_exact("out", v.out.download(), v.out.vec()); });
}

struct ConfState {
  Buf<int32_t> pred;
  Buf<uint8_t> label;
  Buf<unsigned long long> counts, bad;
};

Case confusion_case(Backend b, const Scale& s) {
  const int64_t n = s.N * s.H * s.W;
  const int C = int(s.classes);
  auto st = std::make_shared<ConfState>();
  ConfState& v = *st;
  v.pred = Buf<int32_t>(b, n), v.label = Buf<uint8_t>(b, n);
  v.counts = Buf<unsigned long long>(b, C * C), v.bad = Buf<unsigned long long>(b, 1);
  fill_labels(v.label.vec(), C, 1, 29);
  for (int64_t i = 0; i < n; ++i)  // 70% right, as a trained model
    v.pred.vec()[size_t(i)] = (i % 10 < 7 && v.label.vec()[size_t(i)] != 255) ? v.label.vec()[size_t(i)] : int32_t(i % C);
  v.pred.upload(), v.label.upload(), v.counts.upload(), v.bad.upload();
  return make_case(
      b, dims({s.N, s.H, s.W}), double(n) * 5,
      [&v, st, n, C] {
        kernels::cpu::confusion_add(v.pred.host(), v.label.host(), nullptr, n, C, 255,
                                    reinterpret_cast<uint64_t*>(v.counts.host()));
      },
      [&v, st, n, C, b] {
        LAB_DEV(b, confusion_add, v.pred.dev(), v.label.dev(), nullptr, n, C, 255, v.counts.dev(), v.bad.dev());
      },
      [&v, st] { return compare_exact("counts", v.counts.download(), v.counts.vec()); });
}

struct SamplerState {
  Buf<int32_t> labels, pred, idx, lab, counts;
  kernels::SamplerParams p;
};

// The anchor sampler of L_con on the layer4 label maps of all 32 images (16 x 33 x 65 at the
// reference protocol): random labels with 255 every 13th pixel, predictions right 1 time in 3;
// min_pixels scaled so that classes qualify at every scale.
Case sampler_case(Backend b, const Scale& s) {
  auto st = std::make_shared<SamplerState>();
  SamplerState& v = *st;
  const int64_t n = 2 * s.N * s.h * s.w;
  v.p.N = 2 * s.N, v.p.hw = s.h * s.w, v.p.C = int(s.classes);
  v.p.min_pixels = int(v.p.hw / (3 * s.classes)), v.p.seed = 0x5EED;
  const int64_t slots = v.p.N * kernels::sampler_slots_per_image(v.p);
  v.labels = Buf<int32_t>(b, n), v.pred = Buf<int32_t>(b, n);
  std::vector<uint8_t> l8(static_cast<size_t>(n));
  fill_labels(l8, int(s.classes), 5, 13);
  for (int64_t i = 0; i < n; ++i) {
    v.labels.vec()[size_t(i)] = l8[size_t(i)];
    v.pred.vec()[size_t(i)] = i % 3 == 0 ? l8[size_t(i)] : int32_t((i * 7) % s.classes);
  }
  v.labels.upload(), v.pred.upload();
  v.idx = Buf<int32_t>(b, slots), v.lab = Buf<int32_t>(b, slots), v.counts = Buf<int32_t>(b, v.p.N * 2 * v.p.C);
  return make_case(
      b, dims({v.p.N, s.h, s.w}) + " -> " + std::to_string(slots), double(2 * n + 2 * slots) * 4,
      [&v, st] { kernels::cpu::sample_anchors(v.labels.host(), v.pred.host(), v.p, v.idx.host(), v.lab.host()); },
      [&v, st, b] { LAB_DEV(b, sample_anchors, v.labels.dev(), v.pred.dev(), v.p, v.idx.dev(), v.lab.dev(), v.counts.dev()); },
      [&v, st] {
        return all_of({compare_exact("index", v.idx.download(), v.idx.vec()),
                       compare_exact("label", v.lab.download(), v.lab.vec())});
      });
}

const Register r1({"semiseg", "dcrs", 1, "DCRS step: histogram, bin scan, radix select, mask", dcrs_case});
const Register r2({"semiseg", "cutmix_images", 1, "cross-set CutMix of 32 images (mix)",
                   [](Backend b, const Scale& s) { return cutmix_case(b, s, 3); }});
const Register r3({"semiseg", "cutmix_logits", 1, "un-mix of the 32 images' logits",
                   [](Backend b, const Scale& s) { return cutmix_case(b, s, s.classes); }});
const Register r4({"metrics", "confusion", 1, "confusion matrix, 19 classes, ignore 255", confusion_case});
const Register r5({"semiseg", "sample_anchors", 1, "L_con anchors: per image and class, hard then easy, Philox keys",
                   sampler_case});

}  // namespace
}  // namespace lab
