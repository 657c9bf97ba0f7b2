#include "semiseg/ops_dcrs.h"

#include <cmath>
#include <cstring>

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

// Per group t, the value at index dcrs_rank(n_t, s_t) of the group's confidences over ALL
// ranks sorted descending (what std::nth_element gives one process), NaN for an empty group.
// An exact radix select on the float bits (confidences are >= 0, so their bit patterns sort
// as the values do): three passes of 11, 11 and 10 bits, each a per-group histogram of the
// pixels that match the bits chosen so far, summed over the ranks (an all-reduce of
// T x 2048 counts: the confidences themselves never travel).
std::vector<float> quantiles_all_ranks(const std::vector<float>& conf, const std::vector<int32_t>& label, int64_t T,
                                       const std::vector<double>& fr, const dist::Comm& comm) {
  constexpr int kShift[3] = {21, 10, 0}, kWidth[3] = {11, 11, 10};
  std::vector<uint32_t> bits(conf.size());
  std::memcpy(bits.data(), conf.data(), conf.size() * sizeof(float));
  std::vector<uint32_t> prefix(size_t(T), 0);  // the high bits chosen so far, per group
  std::vector<int64_t> want(size_t(T), -1);    // index still sought within the matching pixels
  for (int pass = 0; pass < 3; ++pass) {
    const int bins = 1 << kWidth[pass];
    std::vector<int32_t> hist(size_t(T * bins), 0);
    const int above = kShift[pass] + kWidth[pass];  // bits above this pass's digit must match
    for (size_t i = 0; i < bits.size(); ++i) {
      const int t = kernels::dcrs_group(label[i], int(T));
      if (pass > 0 && (above >= 32 ? 0 : bits[i] >> above) != prefix[size_t(t)]) continue;
      ++hist[size_t(t * bins + int((bits[i] >> kShift[pass]) & uint32_t(bins - 1)))];
    }
    comm.all_reduce_sum(hist);
    for (int64_t t = 0; t < T; ++t) {
      const int32_t* h = &hist[size_t(t * bins)];
      if (pass == 0) {
        int64_t n = 0;
        for (int b = 0; b < bins; ++b) n += h[b];
        want[size_t(t)] = n > 0 ? kernels::dcrs_rank(n, fr[size_t(t)]) : -1;
      }
      if (want[size_t(t)] < 0) continue;
      int b = bins - 1;  // descending: the largest values first
      for (; b > 0 && want[size_t(t)] >= h[b]; --b) want[size_t(t)] -= h[b];
      prefix[size_t(t)] = (prefix[size_t(t)] << kWidth[pass]) | uint32_t(b);
    }
  }
  std::vector<float> q(size_t(T), NAN);
  for (int64_t t = 0; t < T; ++t)
    if (want[size_t(t)] >= 0) std::memcpy(&q[size_t(t)], &prefix[size_t(t)], sizeof(float));
  return q;
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
  if (!state.fractions_dev.defined() || state.fractions_host != fr || state.fractions_dev.device() != dev) {
    std::vector<uint8_t> bytes(fr.size() * sizeof(double) + 8);
    std::memcpy(bytes.data(), fr.data(), fr.size() * sizeof(double));
    state.fractions_dev = Tensor::from_vector(bytes, {int64_t(bytes.size())}, dev);
    state.fractions_host = fr;
  }
  const Tensor& s_dev = state.fractions_dev;
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
                                 double momentum, bool update, const dist::Comm& comm) {
  if (comm.size() == 1 || state.mode == DcrsMode::off || !update)
    return dcrs_update(probs, state, s, momentum, update);
  // This rank's confidences and labels (thresholds untouched).
  DcrsResult local = dcrs_update(probs, state, s, momentum, false);
  const int64_t T = state.thresholds.numel();
  const std::vector<double> fr = group_fractions(s, T, state.mode);
  const auto conf = local.confidence.to_vector<float>();
  const auto label = local.label.to_vector<int32_t>();
  const std::vector<float> q = quantiles_all_ranks(conf, label, T, fr, comm);
  std::vector<float> thr = state.thresholds.to_vector<float>();
  for (int64_t t = 0; t < T; ++t)
    if (!std::isnan(q[size_t(t)])) thr[size_t(t)] = kernels::dcrs_ema(thr[size_t(t)], q[size_t(t)], float(momentum));
  state.thresholds.copy_(Tensor::from_vector(thr, {T}, probs.device()));
  // The mask (and kept fractions) of this rank's pixels under the new thresholds.
  DcrsResult out = dcrs_update(probs, state, s, momentum, false);
  out.quantile = Tensor::from_vector(q, {T}, probs.device());
  return out;
}

}  // namespace c3::semiseg
