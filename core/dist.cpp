// The MPI side of core/dist.h: world, host collectives, CPU tensor collectives, bucketed
// gradient averaging, hashes, abort. CUDA tensors go to core/dist_nccl.cpp.
#include "core/dist.h"

#ifdef C3_NO_MPI
#include "core/mpi_stub.h"  // make MPI=0: a world of one process
#else
#define OMPI_SKIP_MPICXX 1  // the C API only (the C++ bindings warn under -Wextra)
#include <mpi.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "core/autograd.h"
#include "core/ops.h"

namespace c3::dist {
namespace {

using WatchClock = std::chrono::steady_clock;
std::atomic<int64_t> g_wait_since{0};         // steady-clock ms when the current collective began; 0 = none
std::atomic<const char*> g_wait_what{nullptr};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(WatchClock::now().time_since_epoch()).count() + 1;
}

// Ends this rank when a collective waits too long (see detail::Watch). It runs on its own
// thread, and MPI calls are the main thread's: so it prints and exits (mpirun, seeing a rank
// exit with an error, ends the others) instead of calling MPI_Abort.
void watchdog(double timeout_s, int rank, int world) {
  const auto tick = std::chrono::milliseconds(std::max<int64_t>(100, std::min<int64_t>(1000, int64_t(timeout_s * 100))));
  for (;;) {
    std::this_thread::sleep_for(tick);
    const int64_t since = g_wait_since.load();
    if (since == 0 || double(now_ms() - since) < timeout_s * 1000) continue;
    const char* what = g_wait_what.load();
    std::fprintf(stderr, "rank %d of %d: %s has waited %.0f s for the other ranks (C3_DIST_TIMEOUT): "
                 "a rank died or hangs; ending this rank, and with it the job\n", rank, world,
                 what ? what : "a collective", double(now_ms() - since) / 1000);
    std::fflush(stderr);
    std::_Exit(3);
  }
}

bool g_inited = false;  // MPI_Init done by us
bool g_local = false;   // inside a LocalScope
int g_rank = 0, g_world = 1, g_local_rank = 0;

void finalize_at_exit() {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

bool mpi_active() {
  init();
  return g_inited && g_world > 1 && !g_local;
}

MPI_Datatype mpi_type(DType t, const char* op) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT;
    case DType::u8: return MPI_UNSIGNED_CHAR;
    case DType::bf16: break;  // MPI has no bf16 to sum
  }
  throw Error(std::string("dist::") + op + ": unsupported dtype " + dtype_name(t));
}

void check_count(const Tensor& t, const char* op) {
  C3_CHECK(t.numel() < INT32_MAX, "dist::", op, ": tensor too large for one MPI call: ", t.desc());
}

void scale_cpu(Tensor& t, double f) {
  if (t.dtype() == DType::f32) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(p[i] * f);
  } else {
    double* p = t.data<double>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] *= f;
  }
}

// A collective on CUDA tensors needs NCCL even at world size 1 (except inside a LocalScope).
bool cuda_alone(const Tensor& t) { return t.is_cuda() && g_local; }

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

void init() {
  static bool done = false;
  if (done) return;
  done = true;
  int already = 0;
  MPI_Initialized(&already);
  if (!launched_by_mpi() && !already) return;
  if (!already) {
    int provided = 0;
    // Only the main thread calls MPI (loader workers never do).
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    std::atexit(finalize_at_exit);
  }
  g_inited = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &g_local_rank);
  MPI_Comm_free(&node);
  detail::select_gpu(g_local_rank);
  const char* t = std::getenv("C3_DIST_TIMEOUT");
  const double timeout = t ? std::atof(t) : 1800.0;
  if (g_world > 1 && timeout > 0) std::thread(watchdog, timeout, g_rank, g_world).detach();
}

namespace detail {
Watch::Watch(const char* what) {
  g_wait_what = what;
  g_wait_since = now_ms();
}
Watch::~Watch() { g_wait_since = 0; }
}  // namespace detail

int rank() { return (init(), g_local) ? 0 : g_rank; }
int world_size() { return (init(), g_local) ? 1 : g_world; }
int local_rank() { return (init(), g_local) ? 0 : g_local_rank; }

LocalScope::LocalScope() : prev_((init(), g_local)) { g_local = true; }
LocalScope::~LocalScope() { g_local = prev_; }

void all_reduce_sum(Tensor& t) {
  if (t.is_cuda()) {
    if (!cuda_alone(t)) detail::nccl_all_reduce(t, false);
    return;
  }
  if (!mpi_active()) return;
  check_count(t, "all_reduce_sum");
  detail::Watch w("all_reduce_sum");
  MPI_Allreduce(MPI_IN_PLACE, t.raw(), int(t.numel()), mpi_type(t.dtype(), "all_reduce_sum"), MPI_SUM, MPI_COMM_WORLD);
}

void all_reduce_avg(Tensor& t) {
  check_float("dist::all_reduce_avg", t);
  if (t.is_cuda()) {
    if (!cuda_alone(t)) detail::nccl_all_reduce(t, true);
    return;
  }
  if (!mpi_active()) return;
  all_reduce_sum(t);
  scale_cpu(t, 1.0 / g_world);
}

Tensor all_gather(const Tensor& t) {
  C3_CHECK(t.rank() >= 1, "dist::all_gather: needs a tensor of rank >= 1, got ", t.desc());
  const int n = world_size();
  Shape s = t.shape();
  s[0] *= n;
  if (n > 1) {  // shapes must agree: a mismatch would corrupt memory, so it is checked first
    std::vector<uint64_t> sizes = all_gather(uint64_t(t.numel()));
    for (int r = 0; r < n; ++r)
      C3_CHECK(sizes[size_t(r)] == uint64_t(t.numel()), "dist::all_gather: rank ", r, " has ", sizes[size_t(r)],
               " elements, this rank (", g_rank, ") ", t.desc());
  }
  if (t.is_cuda() && !cuda_alone(t)) {
    Tensor out = Tensor::empty(s, t.dtype(), t.device());
    detail::nccl_all_gather(t, out);
    return out;
  }
  if (!mpi_active()) return t.detach().clone();
  check_count(t, "all_gather");
  Tensor out = Tensor::empty(s, t.dtype(), Device::cpu);
  const MPI_Datatype ty = mpi_type(t.dtype(), "all_gather");
  detail::Watch w("all_gather");
  MPI_Allgather(t.raw(), int(t.numel()), ty, out.raw(), int(t.numel()), ty, MPI_COMM_WORLD);
  return out;
}

void broadcast(Tensor& t, int root) {
  if (t.is_cuda()) {
    if (!cuda_alone(t)) detail::nccl_broadcast(t, root);
    return;
  }
  if (!mpi_active()) return;
  check_count(t, "broadcast");
  detail::Watch w("broadcast");
  MPI_Bcast(t.raw(), int(t.numel()), mpi_type(t.dtype(), "broadcast"), root, MPI_COMM_WORLD);
}

std::vector<Tensor> contiguous_runs(const std::vector<Tensor>& ts) {
  std::vector<Storage*> order;
  std::map<Storage*, std::vector<Tensor>> by;
  for (const Tensor& t : ts) {
    if (!t.defined() || t.numel() == 0) continue;
    Storage* st = t.impl().storage.get();
    if (!by.count(st)) order.push_back(st);
    by[st].push_back(t);
  }
  std::vector<Tensor> runs;
  for (Storage* st : order) {
    std::vector<Tensor>& list = by[st];
    std::stable_sort(list.begin(), list.end(), [](const Tensor& a, const Tensor& b) {
      return a.storage_offset() < b.storage_offset();
    });
    const int64_t gap = st->arena_align > 0 ? st->arena_align - 1 : 0;
    for (size_t i = 0; i < list.size();) {
      const int64_t begin = list[i].storage_offset();
      int64_t end = begin + list[i].numel();
      size_t j = i + 1;
      while (j < list.size() && list[j].dtype() == list[i].dtype() && list[j].storage_offset() >= end &&
             list[j].storage_offset() - end <= gap)
        end = list[j].storage_offset() + list[j].numel(), ++j;
      runs.push_back(list[i].storage_range(begin, end - begin));
      i = j;
    }
  }
  return runs;
}

void broadcast_packed(const std::vector<Tensor>& ts, int root) {
  if (world_size() == 1) return;
  for (Tensor& run : contiguous_runs(ts)) broadcast(run, root);
}

void barrier() {
  if (!mpi_active()) return;
  detail::Watch w("barrier");
  MPI_Barrier(MPI_COMM_WORLD);
}

void all_reduce_sum(std::vector<double>& v) {
  if (!mpi_active()) return;
  detail::Watch w("all_reduce_sum (host)");
  MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
void all_reduce_sum(std::vector<uint64_t>& v) {
  if (!mpi_active()) return;
  detail::Watch w("all_reduce_sum (host)");
  MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
}
void all_reduce_sum(std::vector<int32_t>& v) {
  if (!mpi_active()) return;
  detail::Watch w("all_reduce_sum (host)");
  MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_INT, MPI_SUM, MPI_COMM_WORLD);
}

bool any(bool flag) {
  int v = flag ? 1 : 0;
  if (mpi_active()) {
    detail::Watch w("any (stop flag)");
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  }
  return v != 0;
}

std::string broadcast_string(const std::string& s, int root) {
  if (!mpi_active()) return s;
  detail::Watch w("broadcast_string");
  uint64_t n = s.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, root, MPI_COMM_WORLD);
  std::string out = g_rank == root ? s : std::string(size_t(n), '\0');
  MPI_Bcast(out.data(), int(n), MPI_CHAR, root, MPI_COMM_WORLD);
  return out;
}

std::vector<uint64_t> all_gather(uint64_t v) {
  if (!mpi_active()) return {v};
  std::vector<uint64_t> out(static_cast<size_t>(g_world));
  detail::Watch w("all_gather (host)");
  MPI_Allgather(&v, 1, MPI_UINT64_T, out.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
  return out;
}

Tensor all_reduce_sum_grad(const Tensor& t) {
  Tensor out = t.detach().clone();
  all_reduce_sum(out);
  record(out, "dist::all_reduce_sum", {t}, [](const Tensor& g, const Needs&) {
    Tensor gs = g.detach().clone();
    all_reduce_sum(gs);
    return std::vector<Tensor>{gs};
  });
  return out;
}

void average_gradients(const std::vector<Tensor>& params, size_t bucket_bytes) {
  if (world_size() == 1) return;
  debug_maybe_die();  // failure injection of tools/test_dist.sh (nothing unless C3_DEBUG_KILL_RANK is set)
  std::vector<Tensor> ps;
  for (const Tensor& p : params)
    if (p.requires_grad()) ps.push_back(p);
  std::vector<int32_t> has(ps.size());
  for (size_t i = 0; i < ps.size(); ++i) has[i] = ps[i].grad().defined() ? 1 : 0;
  all_reduce_sum(has);  // a parameter used on any rank is updated on every rank
  std::vector<Tensor> slots;
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!has[i]) continue;
    TensorImpl& p = ps[i].impl();
    if (!p.grad_slot) p.grad_slot = Tensor::zeros(p.shape, p.dtype, ps[i].device()).impl_ptr();
    Tensor slot(p.grad_slot);
    if (!p.grad) fill_(slot, 0.0);  // zeros stand in for a missing local gradient
    else if (p.grad != p.grad_slot) slot.copy_(Tensor(p.grad));
    p.grad = p.grad_slot;
    slots.push_back(slot);
  }
  const size_t per_bucket = std::max<size_t>(bucket_bytes, 1);
  for (const Tensor& run : contiguous_runs(slots)) {
    const int64_t step = std::max<int64_t>(1, int64_t(per_bucket / dtype_size(run.dtype())));
    for (int64_t off = 0; off < run.numel(); off += step) {
      Tensor bucket = run.narrow0(off, std::min(step, run.numel() - off));
      all_reduce_avg(bucket);
    }
  }
}

uint64_t hash_tensors(const std::vector<Tensor>& tensors) {
  uint64_t h = 1469598103934665603ull;
  for (const Tensor& t : contiguous_runs(tensors)) {
    Tensor c = t.cpu();
    const auto* p = static_cast<const unsigned char*>(c.raw());
    for (size_t i = 0; i < c.nbytes(); ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  return h;
}

void check_same_on_all_ranks(uint64_t hash, const std::string& what) {
  std::vector<uint64_t> all = all_gather(hash);
  std::string bad;
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) bad += (bad.empty() ? "" : ", ") + std::to_string(r);
  C3_CHECK(bad.empty(), "dist: ", what, " differ between ranks: rank(s) ", bad, " differ from rank 0 (hash ",
           all[0], ")");
}

[[noreturn]] void abort(const std::string& msg, int code) {
  std::fprintf(stderr, "rank %d of %d: %s\n", g_rank, g_world, msg.c_str());
  std::fflush(stderr);
  int inited = 0, fin = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&fin);
  if (inited && !fin && g_world > 1) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

void debug_maybe_die() {
  static int calls = 0;
  const char* r = std::getenv("C3_DEBUG_KILL_RANK");
  if (!r || std::atoi(r) != rank()) return;
  const char* at = std::getenv("C3_DEBUG_KILL_AT");
  if (++calls < (at ? std::atoi(at) : 1)) return;
  const char* mode = std::getenv("C3_DEBUG_KILL_MODE");
  if (mode && std::string(mode) == "throw")
    throw Error("C3_DEBUG_KILL_RANK: an error injected on rank " + std::to_string(rank()));
  if (mode && std::string(mode) == "hang") {
    std::fprintf(stderr, "rank %d: C3_DEBUG_KILL_RANK: this process hangs\n", rank());
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::fprintf(stderr, "rank %d: C3_DEBUG_KILL_RANK: killing this process (SIGKILL)\n", rank());
  std::fflush(stderr);
  std::raise(SIGKILL);
}

}  // namespace c3::dist
