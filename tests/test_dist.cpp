// Data-parallel training (core/dist.h). `make test` runs these cases twice: in the plain
// test binary (world size 1: the collectives are identities, SyncBN's composite against the
// fused kernel) and under `mpirun -np 2 c3tests -tc='dist:*' --no-skip` (tools/test_dist.sh),
// where every rank compares its data-parallel result with a single-process reference it
// computes itself inside a dist::LocalScope. The trainer cases are marked skip: they only
// mean something with several ranks.
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>

#include "core/dist.h"
#include "core/ops.h"
#include "core/ops_norm.h"
#include "data/synthetic.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "nn/safetensors.h"
#include "semiseg/ops_dcrs.h"
#include "semiseg/trainer.h"
#include "tests/helpers.h"

using namespace c3;

namespace {

// Rows [r*n/N, (r+1)*n/N) of a tensor: this rank's part of a batch.
Tensor my_rows(const Tensor& t) {
  const int64_t n = t.dim(0), N = dist::world_size(), r = dist::rank();
  REQUIRE(n % N == 0);
  return t.narrow0(r * n / N, n / N).detach().clone();
}

// A folder every rank sees (rank 0 creates it) with the tiny synthetic dataset in it.
std::string shared_dir() {
  static std::string d;
  if (d.empty()) {
    if (dist::is_main()) {
      const char* tmp = std::getenv("TMPDIR");  // tools/test_dist.sh points it at a folder it removes
      std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/c3distXXXXXX";
      REQUIRE_MESSAGE(::mkdtemp(templ.data()), "cannot create a folder from ", templ);
      d = templ;
      data::make_synthetic(d + "/data", 3, 24, 4, 64, 128);
    }
    d = dist::broadcast_string(d);
    dist::barrier();
  }
  return d;
}

semiseg::Config tiny(const std::string& out, const std::vector<std::string>& extra) {
  std::vector<std::string> sets = {
      "model.depth=18", "model.width=0.125", "model.proj_dim=16", "model.num_classes=19", "model.dropout=0.0",
      "data.root=\"" + shared_dir() + "/data\"", "data.labeled_count=8", "data.base_size=[64,128]",
      "data.crop=[32,64]", "data.val_size=[64,128]", "data.workers=0", "data.rotate=0", "data.scales=[1.0]",
      "train.batch_labeled=4", "train.batch_unlabeled=4", "train.epochs=1", "train.steps_per_epoch=2",
      "train.optimizer=\"sgd\"", "train.lr_head=0.01", "train.lr_backbone=0.01", "train.device=cpu",
      "train.dist_check_every=1", "output.vis_images=1", "output.log_every=1", "output.dir=\"" + out + "\""};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return semiseg::load_config("", sets);
}

std::vector<nlohmann::json> metrics(const std::string& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream f(dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Trains with `sets` data-parallel and alone (batch N*b), and compares what rank 0 wrote.
void check_same_as_one_process(const std::string& tag, const std::vector<std::string>& sets) {
  const std::string dir = shared_dir() + "/" + tag, ref = dir + "_ref_rank" + std::to_string(dist::rank());
  semiseg::TrainResult rd, rr;
  {
    semiseg::Trainer t(tiny(dir, sets), false);
    rd = t.run();  // dist_check_every = 1: throws if the ranks' weights ever differ
  }
  {
    dist::LocalScope alone;
    semiseg::Trainer t(tiny(ref, sets), false);
    rr = t.run();
  }
  dist::barrier();
  CHECK(rd.steps_done == 2);
  // Evaluation split over the ranks, confusion matrices summed: every val pixel counted once.
  CHECK(rd.last.pixels == 4 * 64 * 128);
  CHECK(rd.last.pixels == rr.last.pixels);
  CHECK(rd.last.miou == doctest::Approx(rr.last.miou).epsilon(1e-3));
  auto md = metrics(dir), mr = metrics(ref);
  REQUIRE(md.size() == mr.size());  // rank 1 wrote nothing (no doubled lines)
  for (size_t i = 0; i < md.size(); ++i)
    if (mr[i].contains("loss"))
      CHECK_MESSAGE(md[i]["loss"].get<double>() == doctest::Approx(mr[i]["loss"].get<double>()).epsilon(1e-6),
                    tag, " step ", i + 1);
  // Updated weights and BatchNorm statistics after two SGD steps.
  nn::SafetensorsFile fd = nn::load_safetensors(dir + "/latest.safetensors");
  nn::SafetensorsFile fr = nn::load_safetensors(ref + "/latest.safetensors");
  int compared = 0;
  for (const auto& [name, t] : fr.tensors) {
    if (name.rfind("student.", 0) != 0 || t.dtype() != DType::f32) continue;
    const Tensor* other = fd.find(name);
    REQUIRE_MESSAGE(other, name);
    CHECK_MESSAGE(c3test::close_tensors(tag + " " + name, *other, t, 1e-6, 1e-5), name);
    ++compared;
  }
  CHECK(compared > 50);
}

}  // namespace

TEST_CASE("dist: collectives sum, average, gather and broadcast over the ranks") {
  const int n = dist::world_size(), r = dist::rank();
  const double tri = n * (n + 1) / 2.0;
  Tensor a = Tensor::from_vector(std::vector<float>{float(r + 1), float(10 * (r + 1))}, {2});
  dist::all_reduce_sum(a);
  CHECK(a.to_vector<float>() == std::vector<float>{float(tri), float(10 * tri)});
  Tensor b = Tensor::from_vector(std::vector<double>{double(r)}, {1});
  dist::all_reduce_avg(b);
  CHECK(b.item() == doctest::Approx((n - 1) / 2.0));
  Tensor c = Tensor::from_vector(std::vector<int32_t>{r, -r}, {1, 2});
  auto g = dist::all_gather(c).to_vector<int32_t>();
  REQUIRE(g.size() == size_t(2 * n));
  for (int k = 0; k < n; ++k) CHECK((g[2 * k] == k && g[2 * k + 1] == -k));
  Tensor d = Tensor::from_vector(std::vector<int32_t>{7 * r + 1}, {1});
  dist::broadcast(d, 0);
  CHECK(d.item() == 1);
  // Packed broadcast: two f32 tensors in one buffer, an i32 one in another; rank 0's values.
  Tensor p1 = Tensor::full({2}, 5.0 + r), p2 = Tensor::full({1, 3}, -1.0 - r), p3 = Tensor::full({1}, 9 + r, DType::i32);
  dist::broadcast_packed({p1, p3, p2}, 0);
  CHECK(p1.to_vector<float>() == std::vector<float>{5.f, 5.f});
  CHECK(p2.to_vector<float>() == std::vector<float>{-1.f, -1.f, -1.f});
  CHECK(p3.item() == 9);
  std::vector<uint64_t> u = {uint64_t(r), 1};
  dist::all_reduce_sum(u);
  CHECK(u == std::vector<uint64_t>{uint64_t(n * (n - 1) / 2), uint64_t(n)});
  CHECK(dist::any(r == n - 1));
  CHECK_FALSE(dist::any(false));
  CHECK(dist::broadcast_string(r == 0 ? "from rank 0" : "other") == "from rank 0");
  CHECK_NOTHROW(dist::check_same_on_all_ranks(42, "a constant"));
  if (n > 1) CHECK_THROWS_WITH_AS(dist::check_same_on_all_ranks(uint64_t(r), "the rank"),
                                  doctest::Contains("rank(s) 1"), Error);
  {
    dist::LocalScope alone;
    CHECK(dist::world_size() == 1);
    CHECK(dist::rank() == 0);
    Tensor e = Tensor::from_vector(std::vector<float>{float(r)}, {1});
    dist::all_reduce_sum(e);
    CHECK(e.item() == r);
  }
  CHECK(dist::world_size() == n);
}

TEST_CASE("dist: average_gradients averages in buckets and zero-fills a gradient missing on some ranks") {
  const int n = dist::world_size(), r = dist::rank();
  Tensor p = Tensor::zeros({3}).set_requires_grad(), q = Tensor::zeros({2}).set_requires_grad();
  Tensor unused = Tensor::zeros({2}).set_requires_grad(), frozen = Tensor::zeros({2});
  p.impl().grad = Tensor::from_vector(std::vector<float>{float(r), float(2 * r), float(3 * r)}, {3}).impl_ptr();
  if (r == 0) q.impl().grad = Tensor::from_vector(std::vector<float>{4.f, -8.f}, {2}).impl_ptr();
  // 12-byte buckets: p alone, then q: two collectives.
  dist::average_gradients({p, unused, frozen, q}, 12);
  const float m = float(n - 1) / 2;
  CHECK(p.grad().to_vector<float>() == std::vector<float>{m, 2 * m, 3 * m});
  REQUIRE(q.grad().defined());
  CHECK(q.grad().to_vector<float>() == std::vector<float>{4.f / float(n), -8.f / float(n)});
  CHECK_FALSE(unused.grad().defined());
}

TEST_CASE("dist: contiguous_runs merges neighbours of one storage, across an arena's padding only") {
  Tensor flat = Tensor::zeros({40});
  Tensor a = flat.narrow0(0, 5), b = flat.narrow0(5, 3), c = flat.narrow0(9, 4), loose = Tensor::zeros({2});
  auto runs = dist::contiguous_runs({c, loose, b, a});  // storage order of first appearance, then offsets
  REQUIRE(runs.size() == 3);
  CHECK((runs[0].storage_offset() == 0 && runs[0].numel() == 8));  // a and b touch
  CHECK((runs[1].storage_offset() == 9 && runs[1].numel() == 4));  // one element apart: not merged
  CHECK(runs[2].same_storage(loose));

  struct Two : nn::Module {
    Tensor w = Tensor::zeros({5}).set_requires_grad(), v = Tensor::zeros({2, 3}).set_requires_grad();
    Tensor rm = Tensor::zeros({3});
    Two() { register_parameter("w", &w), register_parameter("v", &v), register_buffer("rm", &rm); }
  } m;
  m.pack_parameters();
  runs = dist::contiguous_runs({m.v, m.w});  // 5 elements, 11 of padding, then 6: one run
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].numel() == 22);
  CHECK(runs[0].same_storage(m.arena().params));
}

TEST_CASE("dist: average_gradients of a packed model averages in place in the gradient arena") {
  const int n = dist::world_size(), r = dist::rank();
  struct Two : nn::Module {
    Tensor w = Tensor::zeros({5}).set_requires_grad(), v = Tensor::zeros({3}).set_requires_grad();
    Two() { register_parameter("w", &w), register_parameter("v", &v); }
  } m;
  m.pack_parameters();
  sum(mul(m.w, double(r + 1))).backward();  // dw = r + 1; v has a gradient on rank 0 only
  if (r == 0) sum(mul(m.v, 3.0)).backward();
  dist::average_gradients({m.w, m.v});
  CHECK(m.w.grad().same_storage(m.arena().grads));
  REQUIRE(m.v.grad().defined());
  CHECK(m.v.grad().same_storage(m.arena().grads));
  CHECK(m.w.grad().to_vector<float>() == std::vector<float>(5, float(n + 1) / 2));
  CHECK(m.v.grad().to_vector<float>() == std::vector<float>(3, 3.f / float(n)));
}

// SyncBN over N ranks with rows of a batch equals train-mode BatchNorm of the whole batch.
TEST_CASE("dist: SyncBN forward, backward and running statistics equal BatchNorm of the whole batch") {
  const int64_t C = 3;
  Tensor x = c3test::random_tensor({4, 3, 5, C}, 11, DType::f64, -2, 3), coef = c3test::random_tensor({4, 3, 5, C}, 12, DType::f64);
  Tensor w = Tensor::from_vector(std::vector<double>{1.5, -0.5, 2.0}, {C}), bias = Tensor::from_vector(std::vector<double>{0.1, 0.2, -0.3}, {C});
  // Reference: one process, the fused kernel, L = sum(y * coef).
  Tensor xr = x.detach().clone().set_requires_grad(), wr = w.detach().clone().set_requires_grad(),
         br = bias.detach().clone().set_requires_grad();
  Tensor rm_r = Tensor::zeros({C}, DType::f64), rv_r = Tensor::full({C}, 1.0, DType::f64);
  Tensor yr = batch_norm(xr, wr, br, rm_r, rv_r, BatchNormMode::train, 0.1, 1e-5);
  sum(mul(yr, coef)).backward();
  // This rank: its rows through SyncBN, L_r = sum(y_r * coef_r); sum over ranks of L_r = L.
  Tensor xs = my_rows(x).set_requires_grad(), ws = w.detach().clone().set_requires_grad(),
         bs = bias.detach().clone().set_requires_grad();
  Tensor rm_s = Tensor::zeros({C}, DType::f64), rv_s = Tensor::full({C}, 1.0, DType::f64);
  Tensor ys = nn::sync_batch_norm(xs, ws, bs, rm_s, rv_s, 0.1, 1e-5, dist::Comm::world());
  sum(mul(ys, my_rows(coef))).backward();
  Tensor dw = ws.grad().detach().clone(), db = bs.grad().detach().clone();
  dist::all_reduce_sum(dw);  // the data-parallel gradient sum (the trainer averages dL_r)
  dist::all_reduce_sum(db);
  // f64 throughout: only summation order differs.
  CHECK(c3test::close_tensors("y", ys, my_rows(yr), 1e-12, 1e-12));
  CHECK(c3test::close_tensors("dx", xs.grad(), my_rows(xr.grad()), 1e-12, 1e-10));
  CHECK(c3test::close_tensors("dweight", dw, wr.grad(), 1e-12, 1e-10));
  CHECK(c3test::close_tensors("dbias", db, br.grad(), 1e-12, 1e-10));
  CHECK(c3test::close_tensors("running_mean", rm_s, rm_r, 1e-14, 1e-12));
  CHECK(c3test::close_tensors("running_var", rv_s, rv_r, 1e-14, 1e-12));
}

TEST_CASE("dist: SyncBN gradient check in double") {
  if (dist::world_size() > 1) return;  // gradcheck perturbs one process's inputs: world size 1 only
  Tensor x = c3test::random_tensor({2, 2, 3, 2}, 21, DType::f64), w = c3test::random_tensor({2}, 22, DType::f64, 0.5, 1.5);
  Tensor b = c3test::random_tensor({2}, 23, DType::f64), coef = c3test::random_tensor({2, 2, 3, 2}, 24, DType::f64);
  CHECK(c3test::gradcheck("sync_batch_norm", [&](const std::vector<Tensor>& in) {
    Tensor rm = Tensor::zeros({2}, DType::f64), rv = Tensor::full({2}, 1.0, DType::f64);
    return sum(mul(nn::sync_batch_norm(in[0], in[1], in[2], rm, rv, 0.1, 1e-5, dist::Comm::world()), coef));
  }, {x, w, b}));
}

// DCRS over ranks: thresholds (and quantiles) bit for bit those of one process on the whole
// batch, on every rank; each rank's mask is its rows of the whole batch's mask.
TEST_CASE("dist: DCRS thresholds from every rank's confidences agree across ranks and with one process") {
  // Random confidences, and confidences with many ties (logits rounded to a few values),
  // among 8 x 24 x 40 pixels: the radix select over all ranks must equal the sort exactly.
  std::vector<float> coarse = c3test::random_floats(8 * 24 * 40 * 5, 32, -2.f, 2.f);
  for (float& v : coarse) v = std::round(v);
  const Tensor inputs[2] = {softmax(mul(c3test::random_tensor({4, 6, 7, 5}, 31), 3.0)),
                            softmax(Tensor::from_vector(coarse, {8, 24, 40, 5}))};
  for (const Tensor& probs : inputs)
  for (semiseg::DcrsMode mode : {semiseg::DcrsMode::per_class, semiseg::DcrsMode::global}) {
    semiseg::DcrsState ref = semiseg::dcrs_init(5, mode, 0.9), mine = semiseg::dcrs_init(5, mode, 0.9);
    // Per class: the extreme fractions too (0: the largest value, 1: the smallest).
    const std::vector<double> s = mode == semiseg::DcrsMode::per_class ? std::vector<double>{0.0, 0.3, 0.5, 0.99, 1.0}
                                                                       : std::vector<double>{0.7};
    semiseg::DcrsResult rr, rm;
    for (int step = 0; step < 2; ++step) {  // two updates: the EMA runs on the shared state
      {
        dist::LocalScope alone;
        rr = semiseg::dcrs_update(probs, ref, s, 0.9, true);
      }
      rm = semiseg::dcrs_update_all_ranks(my_rows(probs), mine, s, 0.9, true, dist::Comm::world());
    }
    CHECK(ref.thresholds.to_vector<float>() == mine.thresholds.to_vector<float>());
    CHECK(c3test::close_tensors("quantile", rm.quantile, rr.quantile, 0, 0));
    CHECK(my_rows(rr.mask).to_vector<uint8_t>() == rm.mask.to_vector<uint8_t>());
    CHECK_NOTHROW(dist::check_same_on_all_ranks(dist::hash_tensors({mine.thresholds}), "DCRS thresholds"));
  }
}

TEST_CASE("dist: two ranks with batch 2 train as one process with batch 4 (frozen BN)" * doctest::skip()) {
  check_same_as_one_process("frozen", {"train.mode=supervised", "model.frozen_bn=true"});
}

TEST_CASE("dist: two ranks with batch 2 train as one process with batch 4 (SyncBN)" * doctest::skip()) {
  check_same_as_one_process("syncbn", {"train.mode=supervised", "model.frozen_bn=false", "model.sync_bn=true"});
}

// C3 over the ranks: warm-up step, then a semi step; the weights, optimizer state and DCRS
// thresholds are compared between the ranks after every step (dist_check_every = 1).
TEST_CASE("dist: C3 trains data-parallel with the same state on every rank" * doctest::skip()) {
  const std::string dir = shared_dir() + "/c3";
  semiseg::TrainResult r;
  {
    semiseg::Trainer t(tiny(dir, {"train.mode=c3", "train.epochs=2", "train.steps_per_epoch=1",
                                  "train.warmup_epochs=1", "model.frozen_bn=false", "model.sync_bn=true",
                                  "loss.samples_per_class=4", "loss.min_pixels=4", "dcrs.init=0.2"}),
                       false);
    CHECK_NOTHROW(r = t.run());
  }
  dist::barrier();
  CHECK(r.steps_done == 2);
  auto m = metrics(dir);
  int semi = 0;
  for (const auto& j : m)
    if (j.contains("dcrs_thresholds")) ++semi;
  CHECK(semi == 1);  // one semi step, logged once (by rank 0 only)
}

// Run by tools/test_dist.sh with C3_DEBUG_KILL_RANK=1: rank 1 dies (SIGKILL) inside the
// first training step; mpirun must end rank 0, which waits in the gradient all-reduce.
TEST_CASE("dist: a rank that dies ends the job" * doctest::skip()) {
  if (!std::getenv("C3_DEBUG_KILL_RANK")) return;
  semiseg::Trainer t(tiny(shared_dir() + "/death", {"train.mode=supervised", "train.steps_per_epoch=50"}), false);
  t.run();
  FAIL("the training finished although a rank was killed");
}

// The NCCL backend with one GPU: a process started without mpirun is rank 0 of 1, and CUDA
// collectives still go through NCCL (the communicator is created on the first one).
GPU_TEST_CASE("dist: NCCL at world size 1 sums, averages, gathers and broadcasts CUDA tensors") {
  if (dist::world_size() > 1) return;
  Tensor a = Tensor::from_vector(std::vector<float>{1.5f, -2.f, 3.f}, {3}, Device::cuda);
  dist::all_reduce_sum(a);
  CHECK(a.cpu().to_vector<float>() == std::vector<float>{1.5f, -2.f, 3.f});
  dist::all_reduce_avg(a);
  CHECK(a.cpu().to_vector<float>() == std::vector<float>{1.5f, -2.f, 3.f});
  Tensor g = dist::all_gather(Tensor::from_vector(std::vector<int32_t>{4, 5}, {1, 2}, Device::cuda));
  CHECK(g.is_cuda());
  CHECK(g.shape() == Shape{1, 2});
  CHECK(g.cpu().to_vector<int32_t>() == std::vector<int32_t>{4, 5});
  dist::broadcast(a, 0);
  CHECK(a.cpu().to_vector<float>() == std::vector<float>{1.5f, -2.f, 3.f});
}

// Per-rank BatchNorm (neither frozen nor synchronized): each rank normalizes with its own
// batch, and rank 0's running statistics are broadcast after each step, so the hash check
// after every step finds the same state everywhere.
TEST_CASE("dist: per-rank BatchNorm keeps the same running statistics on every rank" * doctest::skip()) {
  semiseg::TrainResult r;
  {
    semiseg::Trainer t(tiny(shared_dir() + "/perrank", {"train.mode=supervised", "model.frozen_bn=false"}), false);
    CHECK_NOTHROW(r = t.run());
  }
  CHECK(r.steps_done == 2);
}

// A stop signal that reaches one rank only (mpirun forwards SIGUSR1 to all, but not at the
// same instant) stops every rank after the same step: the flag is all-reduced.
TEST_CASE("dist: a stop signal on one rank stops every rank at the same step" * doctest::skip()) {
  const std::string dir = shared_dir() + "/stop";
  semiseg::Trainer t(tiny(dir, {"train.mode=supervised", "train.steps_per_epoch=4"}), false);
  if (dist::rank() == dist::world_size() - 1) semiseg::g_stop_signal = SIGUSR1;
  semiseg::TrainResult r = t.run();
  semiseg::g_stop_signal = 0;
  dist::barrier();
  CHECK(r.interrupted);
  CHECK(r.steps_done == 1);
  std::ifstream ck(dir + "/latest.safetensors");
  CHECK(ck.good());  // rank 0 saved the checkpoint
}

// Resume under MPI: every rank reads the checkpoint rank 0 wrote, the loaders skip to the
// same place in their parts of the batch, and the losses repeat the uninterrupted run's.
TEST_CASE("dist: an interrupted data-parallel run resumed from its checkpoint repeats the losses" * doctest::skip()) {
  const std::vector<std::string> sets = {"train.mode=supervised", "train.steps_per_epoch=3"};
  const std::string a = shared_dir() + "/resume_a", b = shared_dir() + "/resume_b";
  semiseg::Trainer(tiny(a, sets), false).run();
  {
    semiseg::Trainer t(tiny(b, sets), false);
    CHECK(t.run(1).interrupted);
  }
  dist::barrier();  // rank 0's checkpoint is complete before anyone reads it
  semiseg::TrainResult r = semiseg::Trainer(tiny(b, sets), true).run();
  CHECK(r.steps_done == 3);
  dist::barrier();
  std::vector<double> la, lb;
  for (const auto& j : metrics(a))
    if (j.contains("loss")) la.push_back(j["loss"].get<double>());
  for (const auto& j : metrics(b))
    if (j.contains("loss")) lb.push_back(j["loss"].get<double>());
  REQUIRE(la.size() == 3);
  REQUIRE(lb.size() == 3);
  // The same arithmetic in the same order: equal to float printing precision.
  for (size_t i = 0; i < la.size(); ++i) CHECK_MESSAGE(lb[i] == doctest::Approx(la[i]).epsilon(1e-6), "step ", i + 1);
}

// The DCRS thresholds of a data-parallel C3 run equal one process's: the warm-up step is
// equivalent (no contrastive loss, SyncBN), so the teacher is the same, the unlabeled
// loaders' parts make up the same global batch, and the thresholds come from every rank's
// confidences. (The semi step's mixing differs per rank; the thresholds are taken before.)
TEST_CASE("dist: C3 DCRS thresholds of a data-parallel run equal one process's" * doctest::skip()) {
  const std::vector<std::string> sets = {"train.mode=c3", "train.epochs=2", "train.steps_per_epoch=1",
                                         "train.warmup_epochs=1", "model.frozen_bn=false", "model.sync_bn=true",
                                         "loss.contrast=false", "dcrs.init=0.2", "dcrs.s=0.5", "dcrs.momentum=0.5"};
  const std::string dir = shared_dir() + "/c3thr", ref = dir + "_ref_rank" + std::to_string(dist::rank());
  semiseg::Trainer(tiny(dir, sets), false).run();
  {
    dist::LocalScope alone;
    semiseg::Trainer(tiny(ref, sets), false).run();
  }
  dist::barrier();
  std::vector<float> td, tr;
  nlohmann::json kd, kr;  // kept fraction per class (null where a class is absent)
  for (const auto& j : metrics(dir))
    if (j.contains("dcrs_thresholds")) td = j["dcrs_thresholds"].get<std::vector<float>>(), kd = j["dcrs_kept_per_class"];
  for (const auto& j : metrics(ref))
    if (j.contains("dcrs_thresholds")) tr = j["dcrs_thresholds"].get<std::vector<float>>(), kr = j["dcrs_kept_per_class"];
  REQUIRE(td.size() == 19);
  REQUIRE(tr.size() == 19);
  int moved = 0;
  for (float t : tr) moved += t != 0.2f;
  CHECK(moved > 0);  // some classes were present and moved their thresholds
  // The teachers differ by float rounding of the warm-up step (~1e-7): so may the quantiles.
  CHECK(c3test::close_arrays("thresholds", td.data(), tr.data(), 19, 1e-5, 0));
  // The logged kept fractions are over all ranks' pixels too (a pixel's confidence may sit
  // within float rounding of its threshold: 1% slack).
  REQUIRE(kd.size() == 19);
  for (size_t c = 0; c < 19; ++c) {
    CHECK_MESSAGE(kd[c].is_null() == kr[c].is_null(), "class ", c);
    if (!kd[c].is_null() && !kr[c].is_null())
      CHECK_MESSAGE(kd[c].get<double>() == doctest::Approx(kr[c].get<double>()).epsilon(0.01), "class ", c);
  }
}
