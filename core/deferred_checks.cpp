#include "core/deferred_checks.h"

#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "core/ops_elementwise.h"

namespace c3 {
namespace {
thread_local bool t_defer = false;

Tensor fresh_flags(Device d) {
  return small_i32({0, 0, -1, -1}, d);  // no bad index; no bad label (u64 all ones); no host sync
}
}  // namespace

DeferChecks::DeferChecks() : saved_(t_defer) { t_defer = true; }
DeferChecks::~DeferChecks() { t_defer = saved_; }
bool checks_deferred() { return t_defer; }

Tensor deferred_flags(Device d) {
  if (d == Device::cpu) {
    static const Tensor cpu = fresh_flags(Device::cpu);
    return cpu;
  }
  // Made on first use and never freed (no device free after the CUDA runtime shuts down).
  static Tensor* flags = new Tensor(fresh_flags(d));
  return *flags;
}

void check_deferred(Device d, const std::vector<float>& w, const std::string& when) {
  C3_CHECK(w.size() == 4, "check_deferred: 4 flag words expected, got ", w.size());
  const bool bad_index = w[0] != 0, bad_label = !(w[2] == -1 && w[3] == -1);
  if (!bad_index && !bad_label) return;
  if (d != Device::cpu) deferred_flags(d).copy_(fresh_flags(Device::cpu));
  if (bad_index) throw Error("gather_rows or scatter_add_rows: an index was outside its range " + when);
  throw Error("cross_entropy: a label that is neither a class nor ignore_index, " + when +
              " (run the step on the CPU to see its value and position)");
}

void check_deferred(Device d, const std::string& when) {
  if (d == Device::cpu) return;
  const std::vector<int32_t> v = deferred_flags(d).to_vector<int32_t>();
  check_deferred(d, {float(v[0]), float(v[1]), float(v[2]), float(v[3])}, when);
}

}  // namespace c3
