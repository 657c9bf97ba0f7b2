// The CPU convolution paths side by side, per pass: im2col + OpenBLAS (kernels/cpu/conv.h)
// and oneDNN (kernels/cpu/conv_dnnl.h, which runs a pass on oneDNN only where it has a direct
// kernel for it, else on im2col). The shapes: every distinct convolution of the synthetic
// default's C3 step at batch 4+4 (configs/synthetic.json: DeepLab-v2 ResNet-18 at 1/4 width,
// 64x128 crops; the student sees 8 images, the teacher 4), with how many times a step runs each.
//
//   build/bench_conv [--threads 1,0] [--reps N] [--out DIR]
//
// Per pass: the best of the repeats for each path, and which one the oneDNN path takes;
// then the sum over one step, each pass weighted by its count. Writes <out>/conv-cpu.{json,md}.
// --help: the options (bench/lab/args.h).
#include <cstdio>
#include <string>
#include <vector>

#include "bench/lab/args.h"
#include "bench/lab/lab.h"
#include "bench/lab/report.h"
#include "bench/lab/timing.h"
#include "core/error.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/conv_dnnl.h"

namespace {

const char* const kUsage = R"(usage: bench_conv [--threads 1,0] [--reps N] [--out DIR]

Times each convolution pass of the synthetic default's C3 step (batch 4+4) on the CPU through
im2col + OpenBLAS and through the oneDNN path (oneDNN's direct kernel where it has one, else
im2col), and the sum over one step. Writes <out>/conv-cpu.{json,md}.
  --threads N,...  CPU threads per set of rows, 0 = all cores (default 1,0)
  --reps N         repeats per pass, the best reported (default 7)
  --out DIR        results folder (default bench/results)
)";

const std::vector<lab::Option> kOptions = {
    {"--threads", lab::Option::value}, {"--reps", lab::Option::value}, {"--out", lab::Option::value}};

enum Pass { fwd_train, fwd_infer, data, filter };
const char* const kPassName[] = {"forward (training)", "forward (teacher)", "data gradient", "filter gradient"};

struct Conv {
  const char* role;
  int64_t N, H, W, C, K, k, s, p, d;
  int fwd_train, fwd_infer, data, filter;  // how many times one C3 step runs each pass
};

// Per C3 step (counted with ONEDNN_VERBOSE over `bench_step --cpu --batches 4+4`, reps 1 against
// reps 2): the student's forward and backward once (no data gradient for the stem), the
// teacher's forward once. ResNet-18 at 1/4 width: layers of 16, 32, 64, 128 channels, layer3
// dilated 2 and layer4 dilated 4 (OS8); the projection head and the four ASPP branches after.
const Conv kConvs[] = {
    {"stem 7x7/2", 8, 64, 128, 3, 16, 7, 2, 3, 1, 1, 1, 0, 1},
    {"layer1 3x3", 8, 17, 33, 16, 16, 3, 1, 1, 1, 4, 4, 4, 4},
    {"layer2 3x3/2", 8, 17, 33, 16, 32, 3, 2, 1, 1, 1, 1, 1, 1},
    {"layer2 1x1/2 downsample", 8, 17, 33, 16, 32, 1, 2, 0, 1, 1, 1, 1, 1},
    {"layer2 3x3", 8, 9, 17, 32, 32, 3, 1, 1, 1, 3, 3, 3, 3},
    {"layer3 3x3 d2 32->64", 8, 9, 17, 32, 64, 3, 1, 2, 2, 1, 1, 1, 1},
    {"layer3 3x3 d2", 8, 9, 17, 64, 64, 3, 1, 2, 2, 3, 3, 3, 3},
    {"layer3 1x1 downsample", 8, 9, 17, 32, 64, 1, 1, 0, 1, 1, 1, 1, 1},
    {"layer4 3x3 d4 64->128", 8, 9, 17, 64, 128, 3, 1, 4, 4, 1, 1, 1, 1},
    {"layer4 3x3 d4", 8, 9, 17, 128, 128, 3, 1, 4, 4, 3, 3, 3, 3},
    {"layer4 1x1 downsample", 8, 9, 17, 64, 128, 1, 1, 0, 1, 1, 1, 1, 1},
    {"projection 1x1 128->64", 8, 9, 17, 128, 64, 1, 1, 0, 1, 1, 1, 1, 1},
    {"projection 1x1 64->64", 8, 9, 17, 64, 64, 1, 1, 0, 1, 1, 1, 1, 1},
    {"ASPP d6", 8, 9, 17, 128, 19, 3, 1, 6, 6, 1, 1, 1, 1},
    {"ASPP d12", 8, 9, 17, 128, 19, 3, 1, 12, 12, 1, 1, 1, 1},
    {"ASPP d18", 8, 9, 17, 128, 19, 3, 1, 18, 18, 1, 1, 1, 1},
    {"ASPP d24", 8, 9, 17, 128, 19, 3, 1, 24, 24, 1, 1, 1, 1},
};

}  // namespace

int main(int argc, char** argv) try {
  if (!lab::check_args(argc, argv, kOptions, kUsage)) return 0;
  const std::vector<int> threads = lab::int_list_arg(argc, argv, "--threads", "1,0", 0, 1024);
  const int reps = lab::int_arg(argc, argv, "--reps", 7, 1, 1000);
  const std::string out = lab::arg_value(argc, argv, "--out", "bench/results");
  lab::set_threads(0);
  lab::Meta meta = lab::make_meta("CPU convolution paths (bench/bench_conv)", lab::cpu_device(), lab::max_threads());
  nlohmann::json js = nlohmann::json::array();
  std::vector<lab::Row> rows;
  for (int t : threads) {
    lab::set_threads(t);
    const int nthr = t > 0 ? t : lab::max_threads();
    double step_im2col = 0, step_dnnl = 0;
    for (const Conv& c : kConvs) {
      const kernels::ConvGeom g = kernels::make_conv_geom(c.N, c.H, c.W, c.C, c.K, c.k, c.k, c.s, c.s, c.p, c.p, c.d, c.d);
      const std::vector<float> x = lab::uniform(g.N * g.H * g.W * g.C, -1.f, 1.f, 1),
                               w = lab::uniform(g.K * g.taps(), -1.f, 1.f, 2), b = lab::uniform(g.K, -1.f, 1.f, 3),
                               dy = lab::uniform(g.out_pixels() * g.K, -1.f, 1.f, 4);
      std::vector<float> y(dy.size()), dx(x.size()), dw(w.size());
      const int counts[] = {c.fwd_train, c.fwd_infer, c.data, c.filter};
      for (int p = 0; p < 4; ++p) {
        if (counts[p] == 0) continue;
        const bool training = p == fwd_train;
        // The teacher sees the unlabeled half of the batch.
        const kernels::ConvGeom gp = p == fwd_infer ? kernels::make_conv_geom(c.N / 2, c.H, c.W, c.C, c.K, c.k, c.k,
                                                                              c.s, c.s, c.p, c.p, c.d, c.d)
                                                    : g;
        auto im2col = [&] {
          if (p <= fwd_infer) kernels::cpu::conv2d_forward(x.data(), w.data(), b.data(), y.data(), gp, true);
          else if (p == data) kernels::cpu::conv2d_backward<float>(nullptr, w.data(), dy.data(), dx.data(), nullptr, g);
          else kernels::cpu::conv2d_backward<float>(x.data(), nullptr, dy.data(), nullptr, dw.data(), g);
        };
        auto dnnl = [&] {
          namespace dc = kernels::cpu::dnnl_conv;
          if (p <= fwd_infer) dc::forward(x.data(), w.data(), b.data(), y.data(), gp, true, training);
          else if (p == data) dc::backward(nullptr, w.data(), dy.data(), dx.data(), nullptr, g);
          else dc::backward(x.data(), nullptr, dy.data(), nullptr, dw.data(), g);
        };
        const double a = lab::time_host(im2col, reps).best * 1e3, d = lab::time_host(dnnl, reps).best * 1e3;
        const kernels::cpu::dnnl_conv::Pass dp = p <= fwd_infer ? kernels::cpu::dnnl_conv::Pass::forward
                                                 : p == data    ? kernels::cpu::dnnl_conv::Pass::data
                                                                : kernels::cpu::dnnl_conv::Pass::filter;
        const bool direct = kernels::cpu::dnnl_conv::direct(gp, dp, training);
        step_im2col += a * counts[p], step_dnnl += d * counts[p];
        rows.push_back({std::to_string(nthr), c.role, kPassName[p], std::to_string(counts[p]), lab::fmt("%.3f", a),
                        lab::fmt("%.3f", d), direct ? "oneDNN" : "im2col"});
        js.push_back({{"threads", nthr}, {"conv", c.role}, {"pass", kPassName[p]}, {"count", counts[p]},
                      {"im2col_ms", a}, {"onednn_path_ms", d}, {"runs_on", direct ? "oneDNN" : "im2col"}});
        std::printf("%2d thr %-24s %-18s x%-2d im2col %8.3f ms  oneDNN path %8.3f ms  (%s)\n", nthr, c.role,
                    kPassName[p], counts[p], a, d, direct ? "oneDNN" : "im2col");
      }
    }
    rows.push_back({std::to_string(nthr), "**one C3 step**", "all", "", "**" + lab::fmt("%.1f", step_im2col) + "**",
                    "**" + lab::fmt("%.1f", step_dnnl) + "**", ""});
    js.push_back({{"threads", nthr}, {"conv", "one C3 step"}, {"im2col_ms", step_im2col},
                  {"onednn_path_ms", step_dnnl}});
    std::printf("%2d thr one C3 step's convolutions: im2col %.1f ms, oneDNN path %.1f ms\n", nthr, step_im2col,
                step_dnnl);
  }
  const std::string md =
      "The synthetic default's convolutions at batch 4+4 (student 8 images, teacher 4), forward with bias and "
      "ReLU; per pass the best of " + std::to_string(reps) + " repeats after a warm-up, the caches evicted before "
      "each (lab::time_host). \"oneDNN path\": what train.cpu_conv=onednn "
      "runs (oneDNN's direct kernel, or im2col where it has none). Step: each pass times its count in one C3 "
      "step.\n\n" + lab::md_table({"threads", "conv", "pass", "count", "im2col ms", "oneDNN path ms", "runs on"}, rows);
  std::printf("wrote %s\n", lab::write_results(out, "conv-cpu", meta, js, md).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_conv: error: %s\n", e.what());
  return 1;
}
