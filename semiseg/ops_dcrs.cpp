#include "semiseg/ops_dcrs.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "core/dispatch.h"
#include "core/dist.h"
#include "kernels/cpu/semiseg_dcrs.h"
#include "kernels/cuda/semiseg_dcrs.h"

namespace c3::semiseg {
namespace {

int64_t groups_for(DcrsMode mode, int64_t C) {
  switch (mode) {
    case DcrsMode::per_class: return C;
    case DcrsMode::global: return 1;
    case DcrsMode::off: return 0;
  }
  return 0;
}

const char* mode_name(DcrsMode m) {
  return m == DcrsMode::per_class ? "per_class" : m == DcrsMode::global ? "global" : "off";
}

// The fractions, one per group, checked.
std::vector<double> group_fractions(const std::vector<double>& s, int64_t T, DcrsMode mode) {
  C3_CHECK(s.size() == 1 || int64_t(s.size()) == T, "dcrs_update: ", s.size(), " quantile fractions s for ", T,
           " threshold groups (mode ", mode_name(mode), "): give one, or one per group");
  for (double v : s) C3_CHECK(v >= 0 && v <= 1, "dcrs_update: quantile fraction s = ", v, " is outside [0, 1]");
  return s.size() == 1 ? std::vector<double>(size_t(T), s[0]) : s;
}

}  // namespace

DcrsState dcrs_init(int64_t num_classes, DcrsMode mode, double init, Device device) {
  C3_CHECK(num_classes >= 1, "dcrs_init: needs at least one class, got ", num_classes);
  DcrsState st;
  st.mode = mode;
  st.thresholds = Tensor::full({groups_for(mode, num_classes)}, init, DType::f32, device);
  return st;
}

DcrsResult dcrs_update(const Tensor& probs, DcrsState& state, const std::vector<double>& s, double momentum,
                       bool update) {
  check_dtype("dcrs_update (probs)", probs, DType::f32);
  C3_CHECK(probs.rank() >= 2 && probs.dim(-1) >= 1, "dcrs_update: probs must be [..., C], got ", probs.desc());
  const int64_t C = probs.dim(-1), P = probs.numel() / C, T = groups_for(state.mode, C);
  C3_CHECK(P < INT32_MAX && C < INT32_MAX, "dcrs_update: too many pixels for i32 counts: ", probs.desc());
  Tensor& thr = state.thresholds;
  C3_CHECK(thr.defined() && thr.dtype() == DType::f32 && thr.rank() == 1 && thr.dim(0) == T, "dcrs_update: mode ",
           mode_name(state.mode), " with ", C, " classes needs f32 thresholds [", T, "], got ",
           thr.defined() ? thr.desc() : std::string("none"));
  check_same_device("dcrs_update (probs, thresholds)", probs, thr);
  C3_CHECK(momentum >= 0 && momentum <= 1, "dcrs_update: momentum ", momentum, " is outside [0, 1]");
  const std::vector<double> fr = group_fractions(s, T, state.mode);

  const Device dev = probs.device();
  const Shape pix(probs.shape().begin(), probs.shape().end() - 1);
  DcrsResult r{Tensor::empty(pix, DType::u8, dev),     Tensor::empty(pix, DType::f32, dev),
               Tensor::empty(pix, DType::i32, dev),    Tensor::empty({T}, DType::f32, dev),
               Tensor::empty({C}, DType::f32, dev),    Tensor::empty({C}, DType::i32, dev)};
  kernels::DcrsIo io;
  io.probs = probs.data<float>();
  io.P = P, io.C = int(C), io.T = int(T);
  io.momentum = float(momentum), io.update = update;
  io.thr = thr.data<float>();
  io.conf = r.confidence.data<float>(), io.label = r.label.data<int32_t>(), io.mask = r.mask.data<uint8_t>();
  io.quantile = r.quantile.data<float>(), io.count = r.count.data<int32_t>();
  io.kept_fraction = r.kept_fraction.data<float>();
  if (!probs.is_cuda()) {
    io.s = fr.data();
    kernels::cpu::dcrs_step(io);
    return r;
  }
  // CUDA tensors have no f64: the fractions travel as their bytes, so the rank floor(N * s)
  // is computed in double on the device exactly as on the CPU.
  std::vector<uint8_t> bytes(fr.size() * sizeof(double) + 8);
  std::memcpy(bytes.data(), fr.data(), fr.size() * sizeof(double));
  Tensor s_dev = Tensor::from_vector(bytes, {int64_t(bytes.size())}, dev);
  C3_CHECK(C <= kernels::kDcrsMaxClasses, "dcrs_update: the CUDA kernels take at most ", kernels::kDcrsMaxClasses,
           " classes, got ", probs.desc());
  const int64_t G = T > 0 ? T : 1;
  Tensor hist = Tensor::empty({G * kernels::kDcrsBins}, DType::i32, dev), sel = Tensor::empty({G * 5}, DType::i32, dev);
  Tensor kept = Tensor::empty({C}, DType::i32, dev), cand = Tensor::empty({P > 0 ? P : 1}, DType::f32, dev);
  io.s = reinterpret_cast<const double*>(s_dev.raw());
  kernels::DcrsWorkspace ws;
  ws.hist = hist.data<int32_t>(), ws.sel = sel.data<int32_t>(), ws.kept = kept.data<int32_t>();
  ws.cand = cand.data<float>();
  C3_CUDA("dcrs_update", kernels::cuda::dcrs_step(io, ws));
  return r;
}

DcrsResult dcrs_update_all_ranks(const Tensor& probs, DcrsState& state, const std::vector<double>& s,
                                 double momentum, bool update) {
  if (dist::world_size() == 1 || state.mode == DcrsMode::off || !update)
    return dcrs_update(probs, state, s, momentum, update);
  // This rank's confidences and labels (thresholds untouched), then everyone's.
  DcrsResult local = dcrs_update(probs, state, s, momentum, false);
  const int64_t P = local.confidence.numel(), T = state.thresholds.numel();
  const std::vector<double> fr = group_fractions(s, T, state.mode);
  const auto conf = dist::all_gather(local.confidence.reshape({P})).cpu().to_vector<float>();
  const auto label = dist::all_gather(local.label.reshape({P})).cpu().to_vector<int32_t>();
  // The same selection as kernels::cpu::dcrs_step, over the gathered pixels.
  std::vector<std::vector<float>> groups(static_cast<size_t>(T));
  for (size_t i = 0; i < conf.size(); ++i) groups[size_t(kernels::dcrs_group(label[i], int(T)))].push_back(conf[i]);
  std::vector<float> thr = state.thresholds.cpu().to_vector<float>(), quantile(size_t(T), NAN);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<float>& g = groups[size_t(t)];
    if (g.empty()) continue;
    const int64_t r = kernels::dcrs_rank(int64_t(g.size()), fr[size_t(t)]);
    std::nth_element(g.begin(), g.begin() + r, g.end(), std::greater<float>());
    quantile[size_t(t)] = g[size_t(r)];
    thr[size_t(t)] = kernels::dcrs_ema(thr[size_t(t)], g[size_t(r)], float(momentum));
  }
  state.thresholds.copy_(Tensor::from_vector(thr, {T}, probs.device()));
  // The mask (and kept fractions) of this rank's pixels under the new thresholds.
  DcrsResult out = dcrs_update(probs, state, s, momentum, false);
  out.quantile = Tensor::from_vector(quantile, {T}, probs.device());
  return out;
}

}  // namespace c3::semiseg
