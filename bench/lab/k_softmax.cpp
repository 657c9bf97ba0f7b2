// Kernel lab: softmax, the fused cross-entropy losses (hard labels: L_sup; soft targets with
// the DCRS mask: L_cons) on the upsampled logits of the reference protocol (16 x 256 x 512
// pixels x 19 classes), and the per-row kernel of the contrastive loss (L_con) on the
// similarity matrix of 16 images x 19 classes x 20 anchors.
#include <memory>

#include "bench/lab/lab.h"
#include "kernels/cpu/semiseg_contrast.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cuda/semiseg_contrast.h"
#include "kernels/cuda/softmax.h"

namespace lab {
namespace {

constexpr double kRtol = 1e-4, kAtol = 1e-6;  // exp/log in f32: a few ulp on the GPU

struct LossState {
  Buf<float> logits, target, grad, out;
  Buf<uint8_t> labels;
  void* scratch = nullptr;
  Backend b = Backend::cpu;
  ~LossState() {
    if (scratch) dev_free(b, scratch);
  }
};

std::shared_ptr<LossState> loss_state(Backend b, const Scale& s, bool soft) {
  const int64_t P = s.N * s.H * s.W, C = s.classes;
  auto st = std::make_shared<LossState>();
  st->b = b;
  st->logits = Buf<float>(b, P * C);
  fill_uniform(st->logits.vec(), -4.f, 4.f, 1);
  st->logits.upload();
  st->labels = Buf<uint8_t>(b, P);  // class labels with some 255 (ignore); for soft: the mask
  if (soft) {
    st->target = Buf<float>(b, P * C);
    fill_probs(st->target.vec(), P, C, 2);
    st->target.upload();
    for (int64_t i = 0; i < P; ++i) st->labels.vec()[size_t(i)] = uint8_t(i % 5 != 0);  // 80% kept
  } else {
    fill_labels(st->labels.vec(), int(C), 3, 17);
  }
  st->labels.upload();
  st->grad = Buf<float>(b, P * C);
  st->out = Buf<float>(b, 2);
  if (b != Backend::cpu) st->scratch = dev_malloc(b, LAB_DEV(b, loss_scratch_bytes));
  return st;
}

std::string loss_cmp(LossState& st) {
  return all_of({compare("loss", st.out.download(), st.out.vec(), kRtol, 0),
                 compare("grad", st.grad.download(), st.grad.vec(), kRtol, kAtol)});
}

Case softmax_case(Backend b, const Scale& s) {
  const int64_t P = s.N * s.H * s.W, C = s.classes;
  auto st = std::make_shared<LossState>();
  st->logits = Buf<float>(b, P * C);
  fill_uniform(st->logits.vec(), -4.f, 4.f, 1);
  st->logits.upload();
  st->grad = Buf<float>(b, P * C);
  LossState& v = *st;
  return make_case(
      b, dims({s.N, s.H, s.W, C}), double(2 * P * C) * 4,
      [&v, st, P, C] { kernels::cpu::softmax(v.logits.host(), v.grad.host(), P, C, false); },
      [&v, st, P, C, b] { LAB_DEV(b, softmax_f32, v.logits.dev(), v.grad.dev(), P, C, false); },
      [&v, st] { return compare("y", v.grad.download(), v.grad.vec(), kRtol, kAtol); });
}

// Reads the logits and the labels, writes the per-pixel gradient (the op's forward does both).
Case cross_entropy_case(Backend b, const Scale& s) {
  const int64_t P = s.N * s.H * s.W, C = s.classes;
  auto st = loss_state(b, s, false);
  LossState& v = *st;
  return make_case(
      b, dims({s.N, s.H, s.W, C}), double(2 * P * C * 4 + P),
      [&v, st, P, C] {
        kernels::cpu::cross_entropy(v.logits.host(), v.labels.host(), (const float*)nullptr, 255, P, C, v.grad.host(),
                                    v.out.host());
      },
      [&v, st, P, C, b] {
        LAB_DEV(b, cross_entropy_f32, v.logits.dev(), v.labels.dev(), nullptr, 255, P, C, v.grad.dev(), v.out.dev(),
                v.scratch);
      },
      [&v, st] { return loss_cmp(v); });
}

Case soft_cross_entropy_case(Backend b, const Scale& s) {
  const int64_t P = s.N * s.H * s.W, C = s.classes;
  auto st = loss_state(b, s, true);
  LossState& v = *st;
  return make_case(
      b, dims({s.N, s.H, s.W, C}), double(3 * P * C * 4 + P),
      [&v, st, P, C] {
        kernels::cpu::soft_cross_entropy(v.logits.host(), v.target.host(), v.labels.host(), P, C, v.grad.host(),
                                         v.out.host());
      },
      [&v, st, P, C, b] {
        LAB_DEV(b, soft_cross_entropy_f32, v.logits.dev(), v.target.dev(), v.labels.dev(), P, C, v.grad.dev(),
                v.out.dev(), v.scratch);
      },
      [&v, st] { return loss_cmp(v); });
}

struct ContrastState {
  Buf<float> S, row_loss, dS, loss, coef;
  Buf<int32_t> labels, ok;
};

// One row per anchor: the row's loss and d(loss)/dS over the M x M similarities, then the
// one-block finalize. M = images x classes x 20 anchors (every class sampled: the worst case).
Case contrast_case(Backend b, const Scale& s) {
  const int64_t M = s.anchors;
  auto st = std::make_shared<ContrastState>();
  ContrastState& v = *st;
  v.S = Buf<float>(b, M * M);
  fill_uniform(v.S.vec(), -1.f, 1.f, 4);  // cosine similarities
  v.S.upload();
  v.labels = Buf<int32_t>(b, M);
  for (int64_t i = 0; i < M; ++i) v.labels.vec()[size_t(i)] = int32_t(1 + (i / 20) % (s.classes - 1));
  v.labels.upload();
  v.row_loss = Buf<float>(b, M), v.dS = Buf<float>(b, M * M), v.loss = Buf<float>(b, 1), v.coef = Buf<float>(b, 1);
  v.ok = Buf<int32_t>(b, M);
  const double inv_tau = 1 / 0.15, scale = -(0.15 / 0.1);
  return make_case(
      b, dims({M, M}), double(2 * M * M) * 4,
      [&v, st, M, inv_tau, scale] {
        kernels::cpu::contrast_rows(v.S.host(), v.labels.host(), M, inv_tau, v.row_loss.host(), v.ok.host(), v.dS.host());
        kernels::cpu::contrast_finalize(v.row_loss.host(), v.ok.host(), M, scale, v.loss.host(), v.coef.host());
      },
      [&v, st, M, inv_tau, scale, b] {
        LAB_DEV(b, contrast_rows_f32, v.S.dev(), v.labels.dev(), M, float(inv_tau), v.row_loss.dev(), v.ok.dev(),
                v.dS.dev());
        LAB_DEV(b, contrast_finalize_f32, v.row_loss.dev(), v.ok.dev(), M, float(scale), v.loss.dev(), v.coef.dev());
      },
      [&v, st] {
        return all_of({compare("row_loss", v.row_loss.download(), v.row_loss.vec(), kRtol, 1e-5),
                       compare("dS", v.dS.download(), v.dS.vec(), kRtol, 1e-8),
                       compare("loss", v.loss.download(), v.loss.vec(), kRtol, 0),
                       compare_exact("ok", v.ok.download(), v.ok.vec())});
      });
}

const Register r1({"softmax", "softmax", 1, "softmax over 19 classes per pixel", softmax_case});
const Register r2({"softmax", "cross_entropy", 1, "fused CE + per-pixel gradient, u8 labels, ignore 255 (L_sup)",
                   cross_entropy_case});
const Register r3({"softmax", "soft_cross_entropy", 1, "fused soft-target CE + gradient, u8 DCRS mask (L_cons)",
                   soft_cross_entropy_case});
const Register r4({"semiseg", "contrast_rows", 1, "per-anchor loss and dS of L_con, then the finalize", contrast_case});

}  // namespace
}  // namespace lab
