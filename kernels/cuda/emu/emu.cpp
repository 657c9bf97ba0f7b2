// The emulator's scheduler: fibers per CUDA thread, barriers, warp exchanges, stacks.
#include "emu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <boost/context/detail/fcontext.hpp>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

// AddressSanitizer keeps a shadow of the current stack: every switch between the scheduler's
// stack and a fiber's is announced to it (start before the jump, finish after landing), or
// the first fiber's frames read as a stack-buffer-overflow. Nothing without ASan.
#if defined(__SANITIZE_ADDRESS__)
#define C3_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define C3_EMU_ASAN 1
#endif
#endif
#ifdef C3_EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#define C3_ASAN_START_SWITCH(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define C3_ASAN_FINISH_SWITCH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define C3_ASAN_START_SWITCH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define C3_ASAN_FINISH_SWITCH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

namespace emu {
namespace bc = boost::context::detail;

namespace {
std::atomic<FiberOrder> g_order{FiberOrder::forward};
std::mutex g_attr_mutex;
std::map<const void*, size_t> g_max_dyn;

constexpr size_t kStackBytes = 256 * 1024;

// A fiber stack with a PROT_NONE guard page below it; kept and reused across launches.
struct Stack {
  void* base = nullptr;  // start of the mapping (the guard page)
  size_t bytes = 0;
  Stack() {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    bytes = kStackBytes + page;
    base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) throw Error("emu: cannot map a fiber stack");
    mprotect(base, page, PROT_NONE);
  }
  Stack(const Stack&) = delete;
  Stack(Stack&& o) noexcept : base(o.base), bytes(o.bytes) { o.base = nullptr; }
  ~Stack() { if (base) munmap(base, bytes); }
  void* top() const { return static_cast<char*>(base) + bytes; }
  void* bottom() const { return static_cast<char*>(top()) - kStackBytes; }  // above the guard page
};

enum class St { ready, barrier, warp_wait, done };

struct Fiber {
  bc::fcontext_t ctx = nullptr, caller = nullptr;
  void* stack_bottom = nullptr;                   // for ASan's switch annotations
  void* asan_fake_stack = nullptr;                // ASan's saved fake stack while switched out
  const void* caller_bottom = nullptr;            // the scheduler's stack, as ASan reported it
  size_t caller_size = 0;
  St st = St::ready;
  unsigned tid = 0;
  dim3 idx;
  const char* file = "";  // where it waits
  int line = 0;
  uint64_t warp_result = 0;
  std::string error;
};

// One pending warp-level exchange (lanes that called the same intrinsic with one mask).
struct Exchange {
  unsigned mask = 0, arrived = 0;
  int kind = 0;
  const char* file = "";
  int line = 0;
  uint64_t vals[32] = {};
  int args[32] = {}, widths[32] = {};
};

struct Block {
  const LaunchSpec* spec = nullptr;
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  std::vector<std::vector<Exchange>> warps;  // pending exchanges per warp
  unsigned nthreads = 0;
};

thread_local Block* t_block = nullptr;
thread_local std::vector<Stack> t_stacks;
thread_local std::vector<unsigned char> t_dyn_shared;

void fiber_entry(bc::transfer_t t) {
  Fiber* f = static_cast<Fiber*>(t.data);
  f->caller = t.fctx;
  C3_ASAN_FINISH_SWITCH(nullptr, &f->caller_bottom, &f->caller_size);
  try {
    t_block->spec->body();
  } catch (const std::exception& e) {
    f->error = std::string("exception in kernel: ") + e.what();
  } catch (...) {
    f->error = "unknown exception in kernel";
  }
  f->st = St::done;
  C3_ASAN_START_SWITCH(nullptr, f->caller_bottom, f->caller_size);  // nullptr: this fiber ends
  bc::jump_fcontext(f->caller, nullptr);  // never resumed again
}

void yield(Fiber* f) {
  C3_ASAN_START_SWITCH(&f->asan_fake_stack, f->caller_bottom, f->caller_size);
  bc::transfer_t t = bc::jump_fcontext(f->caller, nullptr);
  C3_ASAN_FINISH_SWITCH(f->asan_fake_stack, &f->caller_bottom, &f->caller_size);
  f->caller = t.fctx;
}

void resume(Block& b, Fiber* f) {
  threadIdx = f->idx;
  b.current = f;
  [[maybe_unused]] void* fake_stack = nullptr;
  C3_ASAN_START_SWITCH(&fake_stack, f->stack_bottom, kStackBytes);
  bc::transfer_t t = bc::jump_fcontext(f->ctx, f);
  C3_ASAN_FINISH_SWITCH(fake_stack, nullptr, nullptr);
  f->ctx = t.fctx;
  b.current = nullptr;
}

std::string where(const char* file, int line) {
  std::ostringstream s;
  s << file << ":" << line;
  return s.str();
}

std::string block_name(const dim3& b) {
  std::ostringstream s;
  s << "(" << b.x << "," << b.y << "," << b.z << ")";
  return s.str();
}

// What a lane receives from a completed exchange.
uint64_t exchange_result(const Exchange& x, unsigned lane) {
  unsigned w = static_cast<unsigned>(x.widths[lane]);
  unsigned seg = lane & ~(w - 1), in = lane - seg;
  long src = -1;
  switch (x.kind) {
    case kShflIdx: src = seg + (static_cast<unsigned>(x.args[lane]) % w); break;
    case kShflDown: src = (in + x.args[lane] < w) ? long(lane + x.args[lane]) : -1; break;
    case kShflUp: src = (long(in) - x.args[lane] >= 0) ? long(lane - x.args[lane]) : -1; break;
    case kShflXor: {
      unsigned s = lane ^ static_cast<unsigned>(x.args[lane]);
      src = ((s & ~(w - 1)) == seg) ? long(s) : -1;
      break;
    }
    case kBallot: {
      unsigned bits = 0;
      for (unsigned l = 0; l < 32; ++l)
        if ((x.mask >> l & 1u) && x.vals[l]) bits |= 1u << l;
      return bits;
    }
    case kAny: case kAll: {
      bool any = false, all = true;
      for (unsigned l = 0; l < 32; ++l)
        if (x.mask >> l & 1u) { any |= x.vals[l] != 0; all &= x.vals[l] != 0; }
      return x.kind == kAny ? any : all;
    }
    case kSyncWarp: return 0;
  }
  // A source lane outside the exchange (not in the mask, or past a partial warp) yields
  // the caller's own value, as CUDA does for out-of-segment shuffles.
  if (src < 0 || !(x.mask >> src & 1u)) return x.vals[lane];
  return x.vals[src];
}

const char* kind_name(int k) {
  static const char* names[] = {"__shfl_sync", "__shfl_down_sync", "__shfl_up_sync",
                                "__shfl_xor_sync", "__ballot_sync", "__any_sync",
                                "__all_sync", "__syncwarp"};
  return names[k];
}

// Every live fiber is blocked: release a barrier if that is legal, else explain the hang.
void settle(Block& b) {
  unsigned n_bar = 0, n_warp = 0, n_done = 0;
  const Fiber* first_bar = nullptr;
  bool same_site = true;
  for (const Fiber& f : b.fibers) {
    if (f.st == St::done) ++n_done;
    if (f.st == St::warp_wait) ++n_warp;
    if (f.st == St::barrier) {
      if (!first_bar) first_bar = &f;
      else if (f.line != first_bar->line || std::strcmp(f.file, first_bar->file) != 0) same_site = false;
      ++n_bar;
    }
  }
  std::ostringstream msg;
  msg << "emu: kernel '" << b.spec->name << "' block " << block_name(blockIdx) << ": ";
  if (n_bar > 0 && n_warp == 0 && n_done == 0 && same_site) {
    for (Fiber& f : b.fibers) f.st = St::ready;
    return;
  }
  if (n_bar > 0 && n_warp == 0) {
    msg << "divergent __syncthreads: " << n_bar << " of " << b.nthreads << " threads wait at "
        << where(first_bar->file, first_bar->line);
    if (!same_site) {
      for (const Fiber& f : b.fibers)
        if (f.st == St::barrier && (f.line != first_bar->line || std::strcmp(f.file, first_bar->file))) {
          msg << ", thread " << f.tid << " waits at another barrier " << where(f.file, f.line);
          break;
        }
    }
    if (n_done) msg << ", " << n_done << " threads exited without reaching it";
    throw Error(msg.str());
  }
  msg << "deadlock: " << n_bar << " threads at __syncthreads, " << n_warp
      << " lanes in warp intrinsics, " << n_done << " exited";
  for (size_t w = 0; w < b.warps.size(); ++w)
    for (const Exchange& x : b.warps[w]) {
      msg << "; warp " << w << " waits in " << kind_name(x.kind) << " at " << where(x.file, x.line)
          << " (mask 0x" << std::hex << x.mask << ", arrived 0x" << x.arrived << std::dec << ")";
      break;
    }
  throw Error(msg.str());
}

void run_block(Block& b) {
  const LaunchSpec& spec = *b.spec;
  for (unsigned i = 0; i < b.nthreads; ++i) {
    Fiber& f = b.fibers[i];
    f = Fiber{};
    f.tid = i;
    f.idx = dim3(i % spec.block.x, (i / spec.block.x) % spec.block.y, i / (spec.block.x * spec.block.y));
    f.ctx = bc::make_fcontext(t_stacks[i].top(), kStackBytes, fiber_entry);
    f.stack_bottom = t_stacks[i].bottom();
  }
  for (auto& w : b.warps) w.clear();
  if (spec.dynamic_shared_bytes) std::memset(t_dyn_shared.data(), 0xFF, spec.dynamic_shared_bytes);
  const bool reverse = g_order.load() == FiberOrder::reverse;
  for (;;) {
    bool ran = false, alive = false;
    for (unsigned k = 0; k < b.nthreads; ++k) {
      Fiber* f = &b.fibers[reverse ? b.nthreads - 1 - k : k];
      if (f->st == St::ready) {
        resume(b, f);
        ran = true;
        if (!f->error.empty())
          throw Error("emu: kernel '" + std::string(spec.name) + "' block " + block_name(blockIdx) +
                      " thread " + std::to_string(f->tid) + ": " + f->error);
      }
      alive |= f->st != St::done;
    }
    if (!alive) return;
    if (!ran) settle(b);
  }
}
}  // namespace

void set_fiber_order(FiberOrder o) { g_order = o; }
FiberOrder fiber_order() { return g_order; }

void set_max_dynamic_shared(const void* k, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_attr_mutex);
  g_max_dyn[k] = bytes;
}
size_t max_dynamic_shared(const void* k) {
  std::lock_guard<std::mutex> lock(g_attr_mutex);
  auto it = g_max_dyn.find(k);
  return it == g_max_dyn.end() ? 48 * 1024 : it->second;
}

void run(const LaunchSpec& spec) {
  const dim3 &g = spec.grid, &bl = spec.block;
  const unsigned long long nthreads = 1ull * bl.x * bl.y * bl.z;
  std::ostringstream bad;
  if (nthreads == 0 || nthreads > 1024 || bl.x > 1024 || bl.y > 1024 || bl.z > 64)
    bad << "block (" << bl.x << "," << bl.y << "," << bl.z << ") is not 1..1024 threads";
  else if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535)
    bad << "grid (" << g.x << "," << g.y << "," << g.z << ") is out of range";
  else if (spec.dynamic_shared_bytes > spec.max_dynamic_shared_bytes)
    bad << spec.dynamic_shared_bytes << " bytes of dynamic shared memory exceed the "
        << spec.max_dynamic_shared_bytes << "-byte limit (opt in with allow_dynamic_shared)";
  if (!bad.str().empty()) throw Error("emu: launch of '" + std::string(spec.name) + "': " + bad.str());

  Block b;
  b.spec = &spec;
  b.nthreads = static_cast<unsigned>(nthreads);
  b.fibers.resize(b.nthreads);
  b.warps.resize((b.nthreads + 31) / 32);
  while (t_stacks.size() < b.nthreads) t_stacks.emplace_back();
  if (t_dyn_shared.size() < spec.dynamic_shared_bytes) t_dyn_shared.resize(spec.dynamic_shared_bytes);
  Block* saved = t_block;
  t_block = &b;
  gridDim = g;
  blockDim = bl;
  try {
    for (unsigned z = 0; z < g.z; ++z)
      for (unsigned y = 0; y < g.y; ++y)
        for (unsigned x = 0; x < g.x; ++x) {
          blockIdx = dim3(x, y, z);
          run_block(b);
        }
  } catch (...) {
    t_block = saved;
    throw;
  }
  t_block = saved;
}

void syncthreads(const char* file, int line) {
  Fiber* f = t_block->current;
  f->st = St::barrier;
  f->file = file;
  f->line = line;
  yield(f);
}

void* dynamic_shared_ptr() { return t_dyn_shared.data(); }

uint64_t warp_exchange(unsigned mask, uint64_t value, int kind, int arg, int width,
                       const char* file, int line) {
  Block& b = *t_block;
  Fiber* f = b.current;
  const unsigned lane = f->tid % 32, warp = f->tid / 32;
  if (!(mask >> lane & 1u)) {
    {  // destroyed before the yield: this fiber is never resumed, its frame never unwound
      std::ostringstream m;
      m << "lane " << lane << " of warp " << warp << " called " << kind_name(kind) << " at "
        << where(file, line) << " with mask 0x" << std::hex << mask << ", which excludes it";
      f->error = m.str();
    }
    yield(f);  // the scheduler throws
  }
  if (width <= 0 || width > 32 || (width & (width - 1))) {
    f->error = std::string(kind_name(kind)) + " at " + where(file, line) + ": width must be a power of two <= 32";
    yield(f);
  }
  // Lanes past the end of a partial last warp do not exist and cannot arrive.
  const unsigned present_lanes = std::min(32u, b.nthreads - warp * 32);
  const unsigned present = present_lanes == 32 ? 0xffffffffu : ((1u << present_lanes) - 1);
  const unsigned eff = mask & present;
  auto& pending = b.warps[warp];
  Exchange* x = nullptr;
  for (auto& e : pending)
    if (e.mask == eff && !(e.arrived >> lane & 1u)) { x = &e; break; }
  if (!x) {
    pending.push_back(Exchange{});
    x = &pending.back();
    x->mask = eff; x->kind = kind; x->file = file; x->line = line;
  } else if (x->kind != kind) {
    f->error = std::string("warp ") + std::to_string(warp) + ": lanes of mask disagree: " + kind_name(x->kind) +
               " at " + where(x->file, x->line) + " vs " + kind_name(kind) + " at " + where(file, line);
    yield(f);
  }
  x->vals[lane] = value;
  x->args[lane] = arg;
  x->widths[lane] = width;
  x->arrived |= 1u << lane;
  if (x->arrived == x->mask) {
    for (unsigned l = 0; l < 32; ++l)
      if (x->mask >> l & 1u) {
        Fiber& o = b.fibers[warp * 32 + l];
        o.warp_result = exchange_result(*x, l);
        if (&o != f) o.st = St::ready;
      }
    uint64_t mine = f->warp_result;
    pending.erase(pending.begin() + (x - pending.data()));
    return mine;
  }
  f->st = St::warp_wait;
  f->file = file;
  f->line = line;
  yield(f);
  return f->warp_result;
}

}  // namespace emu
