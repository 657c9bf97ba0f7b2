// The kernel lab (bench/lab/): checks and times every hand-written kernel family.
//
//   build/bench_kernels [--cpu | --gpu | --check-only] [--kernel NAME[:VERSION],...]
//                       [--family F,...] [--reps N] [--threads 1,0] [--out DIR] [--list]
//
// --cpu (the default without a GPU): the emulated CUDA kernels (kernels::emu) at small
//   shapes against the CPU kernels, in both fiber orders; then the CPU kernels timed at the
//   reference protocol's shapes with 1 thread and all cores (--threads; 0 = all), next to
//   the CPU's copy bandwidth and SGEMM rate measured in the same run.
// --gpu (the default with a GPU): each CUDA kernel at the reference shapes against the CPU
//   kernel, then timed with CUDA events (warm-up, L2 flushed before each repeat), as GB/s
//   and as a fraction of a 1 GiB device-to-device copy measured in the same run.
// --check-only: only the checks (emulated at small shapes, or on the GPU with --gpu).
// Writes <out>/kernels-cpu.{json,md} or kernels-gpu.{json,md} (out: bench/results). --help:
// the options; an unknown option or a bad value is an error (status 2; 1 is a failed check)
// before any work (bench/lab/args.h).
#include <algorithm>
#include <cstdio>
#include <optional>
#include <sstream>

#include "bench/lab/args.h"
#include "bench/lab/lab.h"
#include "bench/lab/report.h"
#include "bench/lab/timing.h"
#include "core/error.h"
#include "core/parse.h"
#include "kernels/cpu/blas.h"
#include "kernels/cuda/emu/emu.h"

using namespace lab;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// --kernel softmax,mul_channel:2 and --family optim select entries (a name without a
// version means version 1); no --kernel = every registered version. A name, version or
// family that is not registered is an error (see --list).
std::vector<const Kernel*> select(int argc, char** argv) {
  const auto names = split(arg_value(argc, argv, "--kernel", "")), fams = split(arg_value(argc, argv, "--family", ""));
  std::vector<std::pair<std::string, int64_t>> wanted;  // (name, version) of each --kernel entry
  for (const std::string& n : names) {
    const size_t colon = n.find(':');
    const std::optional<int64_t> v = colon == std::string::npos ? 1 : c3::parse_count(n.substr(colon + 1));
    C3_CHECK(v && *v >= 1 && *v <= 1000, "--kernel needs NAME or NAME:VERSION (a whole number in [1, 1000]), got '",
             n, "'");
    wanted.push_back({n.substr(0, colon), *v});
  }
  const std::vector<Kernel>& all = registry();
  auto is = [](const Kernel& k, const std::pair<std::string, int64_t>& w) {
    return k.name == w.first && k.version == w.second;
  };
  for (const auto& w : wanted)
    C3_CHECK(std::any_of(all.begin(), all.end(), [&](const Kernel& k) { return is(k, w); }), "--kernel: no kernel ",
             w.first, " v", w.second, " (see --list)");
  for (const std::string& f : fams)
    C3_CHECK(std::any_of(all.begin(), all.end(), [&](const Kernel& k) { return k.family == f; }),
             "--family: no family ", f, " (see --list)");
  std::vector<const Kernel*> out;
  for (const Kernel& k : all) {
    const bool by_name = wanted.empty() || std::any_of(wanted.begin(), wanted.end(), [&](auto& w) { return is(k, w); });
    const bool by_family = fams.empty() || std::find(fams.begin(), fams.end(), k.family) != fams.end();
    if (by_name && by_family) out.push_back(&k);
  }
  return out;
}

std::string label(const Kernel& k) { return k.name + " v" + std::to_string(k.version); }

// The emulated kernels against the CPU kernels, forward and reverse fiber order.
bool emulated_checks(const std::vector<const Kernel*>& ks, std::vector<Row>& rows, nlohmann::json& js) {
  bool ok = true;
  for (const Kernel* k : ks)
    for (const Scale& s : Scale::checks()) {
      Case c = k->setup(Backend::emu, s);
      std::string msg;
      for (emu::FiberOrder o : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
        emu::set_fiber_order(o);
        std::string m = c.check();
        if (!m.empty()) msg += std::string(o == emu::FiberOrder::forward ? "forward: " : "reverse: ") + m;
      }
      emu::set_fiber_order(emu::FiberOrder::forward);
      std::printf("  %-12s %-22s %-26s emulated vs CPU, both fiber orders: %s\n", k->family.c_str(), label(*k).c_str(),
                  c.shape.c_str(), msg.empty() ? "ok" : msg.c_str());
      ok &= msg.empty();
      rows.push_back({k->family, label(*k), c.shape, msg.empty() ? "ok" : "FAILED: " + msg});
      js.push_back({{"family", k->family}, {"kernel", k->name}, {"version", k->version}, {"shape", c.shape},
                    {"backend", "emu"}, {"check", msg.empty() ? "ok" : msg}});
    }
  return ok;
}

// Times every kernel at the reference shapes on the CPU (per thread count) or on the GPU.
bool timed(const std::vector<const Kernel*>& ks, Backend b, const std::vector<int>& threads, int reps,
           const std::vector<Ceilings>& ceil, bool check, std::vector<Row>& rows, nlohmann::json& js) {
  bool ok = true;
  for (const Kernel* k : ks) {
    set_threads(0);
    Case c = k->setup(b, Scale::full());
    std::string msg = check ? c.check() : "";
    ok &= msg.empty();
    const std::string verdict = !check ? "-" : msg.empty() ? "ok" : "FAILED: " + msg;
    for (size_t i = 0; i < threads.size(); ++i) {
      if (b == Backend::cpu) set_threads(threads[i]);
      const Timing t = b == Backend::cuda ? time_cuda(c.run, reps) : time_host(c.run, reps, 0.2);
      const double gbps = c.bytes / t.median / 1e9, tflops = c.flops / t.median / 1e12;
      const double frac = c.flops > 0 ? tflops / ceil[i].tflops_fp32 : gbps / ceil[i].gbps;
      const std::string th = b == Backend::cuda ? "-" : std::to_string(threads[i] ? threads[i] : max_threads());
      std::printf("  %-12s %-22s %-26s %-5s %4s thr  %9.3f ms  %8.2f GB/s  %5.1f%% of ceiling  %s\n",
                  k->family.c_str(), label(*k).c_str(), c.shape.c_str(), backend_name(b), th.c_str(), t.median * 1e3,
                  gbps, 100 * frac, verdict.c_str());
      std::fflush(stdout);
      rows.push_back({k->family, label(*k), c.shape, th, fmt("%.3f", t.median * 1e3), fmt("%.3f", t.best * 1e3),
                      c.flops > 0 ? fmt("%.2f TFLOP/s", tflops) : fmt("%.1f GB/s", gbps), fmt("%.1f%%", 100 * frac),
                      verdict});
      js.push_back({{"family", k->family}, {"kernel", k->name}, {"version", k->version}, {"what", k->what},
                    {"shape", c.shape}, {"backend", backend_name(b)}, {"threads", th}, {"median_ms", t.median * 1e3},
                    {"best_ms", t.best * 1e3}, {"reps", t.reps}, {"bytes", c.bytes}, {"flops", c.flops},
                    {"gbps", gbps}, {"tflops", tflops}, {"fraction_of_ceiling", frac}, {"check", verdict}});
    }
  }
  return ok;
}

const char* const kUsage = R"(usage: bench_kernels [--cpu | --gpu | --check-only] [--kernel NAME[:VERSION],...]
                     [--family F,...] [--reps N] [--threads 1,0] [--out DIR] [--list]

Checks and times every hand-written kernel family; writes <out>/kernels-cpu.{json,md} or
kernels-gpu.{json,md}. Exit status 1: some check failed; 2: an error (bad option, no GPU).
  --cpu | --gpu          where to run (default: the GPU when there is one)
  --check-only           only the checks (emulated at small shapes, or on the GPU with --gpu)
  --kernel NAME[:V],...  only these kernels (version 1 without :V)
  --family F,...         only these families
  --reps N               timed repeats (default 3 on the CPU, 20 on the GPU)
  --threads N,...        CPU threads per set of rows, 0 = all cores (default 1,0)
  --out DIR              results folder (default bench/results)
  --list                 list the registered kernels and end
)";

const std::vector<Option> kOptions = {
    {"--cpu"}, {"--gpu"}, {"--check-only"}, {"--list"}, {"--kernel", Option::value}, {"--family", Option::value},
    {"--reps", Option::value}, {"--threads", Option::value}, {"--out", Option::value}};

}  // namespace

int main(int argc, char** argv) try {
  if (!check_args(argc, argv, kOptions, kUsage)) return 0;
  if (has_flag(argc, argv, "--list")) {
    for (const Kernel& k : registry())
      std::printf("%-12s %-20s v%d  %s\n", k.family.c_str(), k.name.c_str(), k.version, k.what.c_str());
    return 0;
  }
  C3_CHECK(!has_flag(argc, argv, "--cpu") || !has_flag(argc, argv, "--gpu"), "--cpu and --gpu exclude each other");
  const bool gpu = has_flag(argc, argv, "--gpu") || (!has_flag(argc, argv, "--cpu") && cuda_present());
  const bool check_only = has_flag(argc, argv, "--check-only");
  const std::string out = arg_value(argc, argv, "--out", "bench/results");
  const auto ks = select(argc, argv);
  if (ks.empty()) throw std::runtime_error("no kernel matches --kernel/--family (see --list)");
  if (gpu && !cuda_present()) throw std::runtime_error("--gpu: no usable GPU (or a CUDA=0 build)");
  // Read before any work (the emulated checks run first). The GPU has one set of rows.
  std::vector<int> threads = int_list_arg(argc, argv, "--threads", "1,0", 0, 1024);
  if (gpu) threads = {0};
  const int reps = int_arg(argc, argv, "--reps", gpu ? 20 : 3, 1, 1000);

  nlohmann::json js;
  std::vector<Row> check_rows, time_rows;
  bool ok = true;
  std::string md;
  const Row time_header = {"family", "kernel", "shape", "threads", "median ms", "best ms", "rate", "of ceiling", "check"};
  if (!gpu) {
    std::printf("kernel lab: emulated CUDA kernels vs CPU kernels (small shapes)\n");
    ok &= emulated_checks(ks, check_rows, js["emulated_checks"]);
    md += "## Emulated CUDA kernels vs the CPU kernels (small shapes, both fiber orders)\n\n" +
          md_table({"family", "kernel", "shape", "check"}, check_rows) + "\n";
  }
  Meta meta = make_meta("kernel lab (bench/bench_kernels)", gpu ? cuda_device() : cpu_device(), gpu ? 1 : max_threads());
  if (!check_only) {
    std::vector<Ceilings> ceil;  // one per thread count (the GPU: one)
    for (int t : threads) ceil.push_back(gpu ? cuda_ceilings() : cpu_ceilings(t));
    md += "## Ceilings measured in this run\n\n";
    for (size_t i = 0; i < ceil.size(); ++i) {
      std::printf("ceiling%s: copy %.1f GB/s, SGEMM %.2f TFLOP/s%s (%s)\n",
                  gpu ? "" : (" at " + std::to_string(threads[i] ? threads[i] : max_threads()) + " threads").c_str(),
                  ceil[i].gbps, ceil[i].tflops_fp32, gpu ? fmt(", TF32 %.1f TFLOP/s", ceil[i].tflops_tf32).c_str() : "",
                  ceil[i].how.c_str());
      md += "- " + (gpu ? std::string("GPU") : std::to_string(threads[i] ? threads[i] : max_threads()) + " threads") +
            ": copy " + fmt("%.1f GB/s", ceil[i].gbps) + ", SGEMM " + fmt("%.3f TFLOP/s", ceil[i].tflops_fp32) +
            (gpu ? ", TF32 GEMM " + fmt("%.1f TFLOP/s", ceil[i].tflops_tf32) : "") + " (" + ceil[i].how + ")\n";
      js["ceilings"].push_back({{"threads", threads[i]}, {"copy_gbps", ceil[i].gbps},
                                {"sgemm_tflops", ceil[i].tflops_fp32}, {"tf32_tflops", ceil[i].tflops_tf32},
                                {"how", ceil[i].how}});
    }
    std::printf("kernel lab: %s kernels at the reference protocol's shapes\n", gpu ? "CUDA" : "CPU");
    ok &= timed(ks, gpu ? Backend::cuda : Backend::cpu, threads, reps, ceil, gpu, time_rows, js["timings"]);
    md += "\n## " + std::string(gpu ? "CUDA kernels (CUDA events, L2 flushed, median of the repeats)"
                                    : "CPU kernels (wall clock, caches flushed, median of the repeats)") +
          "\n\nRate: bytes each kernel must move (inputs read once, outputs written once) / median time; "
          "ceiling: the copy bandwidth above.\n\n" + md_table(time_header, time_rows);
  } else if (gpu) {
    std::printf("kernel lab: CUDA kernels vs CPU kernels (reference shapes)\n");
    for (const Kernel* k : ks) {
      Case c = k->setup(Backend::cuda, Scale::full());
      const std::string m = c.check();
      ok &= m.empty();
      std::printf("  %-22s %s\n", label(*k).c_str(), m.empty() ? "ok" : m.c_str());
    }
  }
  if (!check_only || !gpu) {
    const std::string stem = std::string("kernels-") + (gpu ? "gpu" : "cpu") + (check_only ? "-check" : "");
    std::printf("wrote %s\n", write_results(out, stem, meta, js, md).c_str());
  }
  if (!ok) std::printf("SOME CHECKS FAILED\n");
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_kernels: error: %s\n", e.what());
  return 2;
}
