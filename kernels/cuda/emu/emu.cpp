// The emulator's scheduler: fibers per CUDA thread, barriers, warp exchanges, stacks.
#include "emu.h"

#include "kernels/launch_counter.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/context/detail/fcontext.hpp>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

// The block's dynamic shared memory: a fixed thread_local buffer at the largest size a launch
// may ask for (227 KB), with C linkage: the build renames each kernel file's
// "extern __shared__ T name[]" (an undefined thread-local symbol) to it (see emu.h).
extern "C" {
alignas(16) thread_local unsigned char emu_dynamic_smem[emu::kOptInSharedLimit];
}


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
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define C3_ASAN_START_SWITCH(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define C3_ASAN_FINISH_SWITCH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define C3_ASAN_START_SWITCH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define C3_ASAN_FINISH_SWITCH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

// The dynamic shared buffer is a fixed 227 KB array; under ASan the part past a launch's
// shmem bytes is poisoned while the launch runs, so overruns are still reported.
static void asan_limit_dynamic_shared(unsigned char* p, size_t used, size_t cap) {
#ifdef C3_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, cap);
  ASAN_POISON_MEMORY_REGION(p + used, cap - used);
#else
  (void)p, (void)used, (void)cap;
#endif
}

// ThreadSanitizer flavour (g++ -fsanitize=thread; not the normal build): every CUDA thread
// is a TSan fiber, __syncthreads and warp intrinsics are release/acquire edges, the block's
// start and end order it after and before the host. TSan then finds shared- and global-
// memory races by happens-before, whatever the fiber order, and each data race inside a
// launch becomes an emu::Error naming the kernel, the address (offset into the dynamic
// shared buffer, or the thread_local array and offset) and both CUDA thread indices.
#if defined(__SANITIZE_THREAD__)
#define C3_EMU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define C3_EMU_TSAN 1
#endif
#endif
#ifdef C3_EMU_TSAN
#include <sanitizer/tsan_interface.h>
extern "C" {
int __tsan_get_report_data(void* report, const char** description, int* count, int* stack_count, int* mop_count,
                           int* loc_count, int* mutex_count, int* thread_count, int* unique_tid_count,
                           void** sleep_trace, unsigned long trace_size);
int __tsan_get_report_mop(void* report, unsigned long idx, int* tid, void** addr, int* size, int* write,
                          int* atomic, void** trace, unsigned long trace_size);
int __tsan_get_report_thread(void* report, unsigned long idx, int* tid, uint64_t* os_id, int* running,
                             const char** name, int* parent_tid, void** trace, unsigned long trace_size);
void __tsan_ignore_thread_begin();
void __tsan_ignore_thread_end();
}
// The emulator's own bookkeeping (threadIdx set by the scheduler, fiber states, exchange
// slots) is not the kernel's: it is left uninstrumented.
#define C3_EMU_NO_TSAN __attribute__((no_sanitize_thread))
namespace emu { void tsan_record_race(void* report); }
// Called by TSan after it prints a report; copies a data race inside a launch for the
// scheduler, which raises it as an emu::Error when the fiber yields.
extern "C" C3_EMU_NO_TSAN int __tsan_on_report(void* report) {
  emu::tsan_record_race(report);
  return 0;
}
// Every race is reported, not only the first one of a pair of source lines (a kernel with a
// race fails in each test that launches it); races inside launches fail the test as
// emu::Error, so the exit status does not repeat them. TSAN_OPTIONS overrides these.
extern "C" const char* __tsan_default_options() {
  return "suppress_equal_stacks=0:suppress_equal_addresses=0:exitcode=0";
}
#else
#define C3_EMU_NO_TSAN
#endif

namespace emu {
namespace bc = boost::context::detail;

#ifdef C3_EMU_TSAN
namespace {
// What the report hook copies out of TSan (no allocation inside the hook).
struct RaceRecord {
  bool set = false;
  uintptr_t addr[2] = {};
  int size[2] = {}, write[2] = {}, atomic[2] = {};
  long cuda_tid[2] = {-1, -1};
};
thread_local RaceRecord t_race;
thread_local bool t_in_launch = false;
// Sync objects: [0], [1] barrier parity, [2] block start, [3] block end; then one per warp.
thread_local char t_tsan_sync[4 + 32];
thread_local void* t_tsan_host = nullptr;       // the OS thread's own TSan context
thread_local std::vector<void*> t_tsan_fibers;  // one per CUDA thread, reused across blocks
}  // namespace
#endif

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
  unsigned barriers = 0;  // __syncthreads passed (TSan flavour: which sync object)
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

C3_EMU_NO_TSAN void fiber_entry(bc::transfer_t t) {
  Fiber* f = static_cast<Fiber*>(t.data);
  f->caller = t.fctx;
  C3_ASAN_FINISH_SWITCH(nullptr, &f->caller_bottom, &f->caller_size);
#ifdef C3_EMU_TSAN
  __tsan_acquire(&t_tsan_sync[2]);
#endif
  try {
    t_block->spec->body();
  } catch (const std::exception& e) {
    f->error = std::string("exception in kernel: ") + e.what();
  } catch (...) {
    f->error = "unknown exception in kernel";
  }
  f->st = St::done;
#ifdef C3_EMU_TSAN
  __tsan_release(&t_tsan_sync[3]);
  __tsan_switch_to_fiber(t_tsan_host, __tsan_switch_to_fiber_no_sync);
#endif
  C3_ASAN_START_SWITCH(nullptr, f->caller_bottom, f->caller_size);  // nullptr: this fiber ends
  bc::jump_fcontext(f->caller, nullptr);  // never resumed again
}

C3_EMU_NO_TSAN void yield(Fiber* f) {
#ifdef C3_EMU_TSAN
  __tsan_switch_to_fiber(t_tsan_host, __tsan_switch_to_fiber_no_sync);
#endif
  C3_ASAN_START_SWITCH(&f->asan_fake_stack, f->caller_bottom, f->caller_size);
  bc::transfer_t t = bc::jump_fcontext(f->caller, nullptr);
  C3_ASAN_FINISH_SWITCH(f->asan_fake_stack, &f->caller_bottom, &f->caller_size);
  f->caller = t.fctx;
}

C3_EMU_NO_TSAN void resume(Block& b, Fiber* f) {
  threadIdx = f->idx;
  b.current = f;
#ifdef C3_EMU_TSAN
  __tsan_switch_to_fiber(t_tsan_fibers[f->tid], __tsan_switch_to_fiber_no_sync);
#endif
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

// Finds the symbol at `addr` in an ELF file's .symtab (static functions included, which
// dladdr does not see). `off` is addr minus the load base for position-independent files.
std::string elf_symbol(const char* path, uintptr_t addr, uintptr_t base) {
  std::ifstream f(path, std::ios::binary);
  Elf64_Ehdr eh{};
  if (!f.read(reinterpret_cast<char*>(&eh), sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr))
    return "";
  const uintptr_t want = eh.e_type == ET_DYN ? addr - base : addr;
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  f.seekg(static_cast<std::streamoff>(eh.e_shoff));
  if (!f.read(reinterpret_cast<char*>(sh.data()), static_cast<std::streamsize>(sh.size() * sizeof(Elf64_Shdr))))
    return "";
  for (const Elf64_Shdr& s : sh) {
    if ((s.sh_type != SHT_SYMTAB && s.sh_type != SHT_DYNSYM) || s.sh_link >= sh.size()) continue;
    std::vector<Elf64_Sym> syms(s.sh_size / sizeof(Elf64_Sym));
    f.seekg(static_cast<std::streamoff>(s.sh_offset));
    f.read(reinterpret_cast<char*>(syms.data()), static_cast<std::streamsize>(syms.size() * sizeof(Elf64_Sym)));
    for (const Elf64_Sym& y : syms) {
      if (ELF64_ST_TYPE(y.st_info) != STT_FUNC || y.st_value != want || y.st_name == 0) continue;
      const Elf64_Shdr& str = sh[s.sh_link];
      std::string name;
      f.seekg(static_cast<std::streamoff>(str.sh_offset + y.st_name));
      std::getline(f, name, '\0');
      return name;
    }
  }
  return "";
}

// Thread-local symbols of the executable (the __shared__ arrays among them), for the static
// shared memory of a launch and for race messages.
struct TlsSym { uint64_t value, size; std::string name; };
std::vector<TlsSym> elf_tls_symbols(const char* path) {
  std::vector<TlsSym> out;
  std::ifstream f(path, std::ios::binary);
  Elf64_Ehdr eh{};
  if (!f.read(reinterpret_cast<char*>(&eh), sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr))
    return out;
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  f.seekg(static_cast<std::streamoff>(eh.e_shoff));
  if (!f.read(reinterpret_cast<char*>(sh.data()), static_cast<std::streamsize>(sh.size() * sizeof(Elf64_Shdr))))
    return out;
  for (const Elf64_Shdr& s : sh) {
    if (s.sh_type != SHT_SYMTAB || s.sh_link >= sh.size()) continue;
    std::vector<Elf64_Sym> syms(s.sh_size / sizeof(Elf64_Sym));
    f.seekg(static_cast<std::streamoff>(s.sh_offset));
    f.read(reinterpret_cast<char*>(syms.data()), static_cast<std::streamsize>(syms.size() * sizeof(Elf64_Sym)));
    for (const Elf64_Sym& y : syms) {
      if (ELF64_ST_TYPE(y.st_info) != STT_TLS || y.st_name == 0) continue;
      std::string name;
      f.seekg(static_cast<std::streamoff>(sh[s.sh_link].sh_offset + y.st_name));
      std::getline(f, name, '\0');
      out.push_back({y.st_value, y.st_size, name});
    }
  }
  return out;
}

std::string kernel_name(const LaunchSpec& spec) {
  if (spec.name) return spec.name;
  return spec.kernel ? function_name(spec.kernel) : "kernel";
}

std::string site_name(const LaunchSpec& spec) {
  std::ostringstream s;
  s << (spec.site.file_name()[0] ? spec.site.file_name() : "?") << ":" << spec.site.line();
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
  msg << "emu: kernel '" << kernel_name(*b.spec) << "' (launched at " << site_name(*b.spec) << ") block "
      << block_name(blockIdx) << ": ";
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

#ifdef C3_EMU_TSAN
std::string race_message(const LaunchSpec& spec, const RaceRecord& r);
#endif

C3_EMU_NO_TSAN void run_block(Block& b) {
  const LaunchSpec& spec = *b.spec;
  for (unsigned i = 0; i < b.nthreads; ++i) {
    Fiber& f = b.fibers[i];
    f = Fiber{};
    f.tid = i;
    f.idx = dim3(i % spec.block.x, (i / spec.block.x) % spec.block.y, i / (spec.block.x * spec.block.y));
    // A reused stack may hold the redzones of frames a fiber of an earlier launch never left
    // (a launch that stopped at an error): ASan would read them as overflows of this one's.
#ifdef C3_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(t_stacks[i].bottom(), kStackBytes);
#endif
    f.ctx = bc::make_fcontext(t_stacks[i].top(), kStackBytes, fiber_entry);
    f.stack_bottom = t_stacks[i].bottom();
  }
  for (auto& w : b.warps) w.clear();
  if (spec.dynamic_shared_bytes) std::memset(emu_dynamic_smem, 0xFF, spec.dynamic_shared_bytes);
  const bool reverse = g_order.load() == FiberOrder::reverse;
#ifdef C3_EMU_TSAN
  __tsan_release(&t_tsan_sync[2]);
#endif
  for (;;) {
    bool ran = false, alive = false;
    for (unsigned k = 0; k < b.nthreads; ++k) {
      Fiber* f = &b.fibers[reverse ? b.nthreads - 1 - k : k];
      if (f->st == St::ready) {
        resume(b, f);
        ran = true;
#ifdef C3_EMU_TSAN
        if (t_race.set) {
          RaceRecord r = t_race;
          t_race = RaceRecord{};
          throw Error(race_message(spec, r));
        }
#endif
        if (!f->error.empty())
          throw Error("emu: kernel '" + kernel_name(spec) + "' (launched at " + site_name(spec) + ") block " +
                      block_name(blockIdx) +
                      " thread " + std::to_string(f->tid) + ": " + f->error);
      }
      alive |= f->st != St::done;
    }
    if (!alive) {
#ifdef C3_EMU_TSAN
      __tsan_acquire(&t_tsan_sync[3]);
#endif
      return;
    }
    if (!ran) settle(b);
  }
}
}  // namespace

#ifdef C3_EMU_TSAN
namespace {
std::string dim_name(unsigned tid, const dim3& bl) {
  std::ostringstream s;
  s << "(" << tid % bl.x << "," << (tid / bl.x) % bl.y << "," << tid / (bl.x * bl.y) << ")";
  return s.str();
}

// Where a raced-on address lies: the dynamic shared buffer, a thread_local (__shared__)
// array of the executable, or elsewhere (global memory).
std::string describe_address(uintptr_t a) {
  const uintptr_t dyn = reinterpret_cast<uintptr_t>(emu_dynamic_smem);
  std::ostringstream s;
  if (a >= dyn && a < dyn + kOptInSharedLimit) {
    s << "byte offset " << a - dyn << " of dynamic shared memory";
    return s.str();
  }
  static const std::vector<TlsSym> syms = elf_tls_symbols("/proc/self/exe");
  uint64_t dyn_value = 0;
  for (const TlsSym& y : syms)
    if (y.name == "emu_dynamic_smem") dyn_value = y.value;
  const uintptr_t base = dyn - dyn_value;  // the main program's TLS block on this thread
  for (const TlsSym& y : syms)
    if (a >= base + y.value && a < base + y.value + y.size) {
      int status = 0;
      char* d = abi::__cxa_demangle(y.name.c_str(), nullptr, nullptr, &status);
      s << "byte offset " << a - (base + y.value) << " of __shared__ '" << (status == 0 && d ? d : y.name.c_str())
        << "'";
      std::free(d);
      return s.str();
    }
  s << "address 0x" << std::hex << a << " (global memory)";
  return s.str();
}
}  // namespace

C3_EMU_NO_TSAN void tsan_record_race(void* report) {
  if (!t_in_launch || t_race.set) return;
  const char* desc = nullptr;
  int count = 0, stacks = 0, mops = 0, locs = 0, mutexes = 0, threads = 0, uniq = 0;
  void* trace[1] = {};
  if (!__tsan_get_report_data(report, &desc, &count, &stacks, &mops, &locs, &mutexes, &threads, &uniq, trace, 1))
    return;
  const char want[] = "data-race";
  for (size_t i = 0; i < sizeof want; ++i)
    if (!desc || desc[i] != want[i]) return;
  if (mops < 2) return;
  RaceRecord r;
  for (int i = 0; i < 2; ++i) {
    int tid = -1;
    void* addr = nullptr;
    __tsan_get_report_mop(report, static_cast<unsigned long>(i), &tid, &addr, &r.size[i], &r.write[i],
                          &r.atomic[i], trace, 1);
    r.addr[i] = reinterpret_cast<uintptr_t>(addr);
    for (int j = 0; j < threads; ++j) {
      int ttid = -1, running = 0, parent = 0;
      uint64_t os_id = 0;
      const char* name = nullptr;
      __tsan_get_report_thread(report, static_cast<unsigned long>(j), &ttid, &os_id, &running, &name, &parent,
                               trace, 1);
      const char prefix[] = "emu thread ";
      if (ttid != tid || !name) continue;
      size_t k = 0;
      while (k + 1 < sizeof prefix && name[k] == prefix[k]) ++k;
      if (k + 1 != sizeof prefix) continue;
      long v = 0;
      for (; name[k] >= '0' && name[k] <= '9'; ++k) v = v * 10 + (name[k] - '0');
      r.cuda_tid[i] = v;
    }
  }
  r.set = true;
  t_race = r;
}

namespace {
std::string race_message(const LaunchSpec& spec, const RaceRecord& r) {
  std::ostringstream m;
  m << "emu: kernel '" << kernel_name(spec) << "' (launched at " << site_name(spec) << ") block "
    << block_name(blockIdx) << ": data race on " << describe_address(r.addr[0]) << ": ";
  for (int i = 0; i < 2; ++i) {
    if (i) m << " and ";
    m << "thread ";
    if (r.cuda_tid[i] >= 0) m << dim_name(static_cast<unsigned>(r.cuda_tid[i]), spec.block);
    else m << "(host or another block)";
    m << " " << (r.atomic[i] ? "atomically " : "") << (r.write[i] ? "writes" : "reads") << " " << r.size[i]
      << " bytes";
    if (i == 1 && r.addr[1] != r.addr[0]) m << " at " << describe_address(r.addr[1]);
  }
  m << ", with no __syncthreads between them";
  return m.str();
}
}  // namespace
#endif

namespace {
// The symbol (mangled) of a function in the program, or "" when none is found.
std::string raw_function_symbol(const void* fn) {
  static std::mutex m;
  static std::map<const void*, std::string> cache;
  std::lock_guard<std::mutex> lock(m);
  auto it = cache.find(fn);
  if (it != cache.end()) return it->second;
  std::string raw;
  Dl_info info{};
  if (dladdr(fn, &info)) {
    if (info.dli_sname && info.dli_saddr == fn) raw = info.dli_sname;
    const uintptr_t addr = reinterpret_cast<uintptr_t>(fn), base = reinterpret_cast<uintptr_t>(info.dli_fbase);
    if (raw.empty() && info.dli_fname && info.dli_fname[0]) raw = elf_symbol(info.dli_fname, addr, base);
    if (raw.empty()) raw = elf_symbol("/proc/self/exe", addr, base);
  }
  return cache[fn] = raw;
}
}  // namespace

std::string function_name(const void* fn) {
  const std::string raw = raw_function_symbol(fn);
  if (raw.empty()) {
    std::ostringstream s;
    s << "kernel at " << fn;
    return s.str();
  }
  int status = 0;
  char* d = abi::__cxa_demangle(raw.c_str(), nullptr, nullptr, &status);
  std::string name = status == 0 && d ? d : raw;
  std::free(d);
  return name;
}

// A function's block-scope statics are named _ZZ<its mangled name without _Z>E<name>[_n]:
// the kernel's __shared__ arrays are those that are thread-local.
size_t static_shared_bytes(const void* kernel) {
  static std::mutex m;
  static std::map<const void*, size_t> cache;
  const std::string raw = raw_function_symbol(kernel);
  std::lock_guard<std::mutex> lock(m);
  auto it = cache.find(kernel);
  if (it != cache.end()) return it->second;
  size_t bytes = 0;
  if (raw.size() > 2 && raw.compare(0, 2, "_Z") == 0) {
    static const std::vector<TlsSym> syms = elf_tls_symbols("/proc/self/exe");
    const std::string prefix = "_ZZ" + raw.substr(2) + "E";
    for (const TlsSym& y : syms)
      if (y.name.compare(0, prefix.size(), prefix) == 0) bytes += y.size;
  }
  return cache[kernel] = bytes;
}

bool race_detector() {
#ifdef C3_EMU_TSAN
  return true;
#else
  return false;
#endif
}

void set_fiber_order(FiberOrder o) { g_order = o; }
FiberOrder fiber_order() { return g_order; }

void set_max_dynamic_shared(const void* k, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_attr_mutex);
  g_max_dyn[k] = bytes;
}
size_t max_dynamic_shared(const void* k) {
  std::lock_guard<std::mutex> lock(g_attr_mutex);
  auto it = g_max_dyn.find(k);
  return it == g_max_dyn.end() ? kDefaultSharedLimit : it->second;
}

namespace {
std::string static_part(size_t bytes) {
  return bytes ? " plus " + std::to_string(bytes) + " bytes of static __shared__ arrays" : std::string();
}
}  // namespace

C3_EMU_NO_TSAN void run(const LaunchSpec& spec) {
  kernels::count_launch();
  const dim3 &g = spec.grid, &bl = spec.block;
  const unsigned long long nthreads = 1ull * bl.x * bl.y * bl.z;
  std::ostringstream bad;
  if (nthreads == 0 || nthreads > 1024 || bl.x > 1024 || bl.y > 1024 || bl.z > 64)
    bad << "block (" << bl.x << "," << bl.y << "," << bl.z << ") is not 1..1024 threads"
        << " (x, y <= 1024, z <= 64)";
  else if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535)
    bad << "grid (" << g.x << "," << g.y << "," << g.z << ") is out of range"
        << " (x 1..2^31-1, y and z 1..65535)";
  else if (const size_t st = spec.kernel ? static_shared_bytes(spec.kernel) : 0; st > kDefaultSharedLimit)
    bad << st << " bytes of static __shared__ arrays exceed the " << kDefaultSharedLimit
        << "-byte limit (nvcc refuses such a kernel; use dynamic shared memory and allow_dynamic_shared)";
  else if (st + spec.dynamic_shared_bytes > kOptInSharedLimit)
    bad << spec.dynamic_shared_bytes << " bytes of dynamic shared memory" << static_part(st) << " exceed the "
        << kOptInSharedLimit << "-byte limit of the device, even with allow_dynamic_shared";
  else if (spec.max_dynamic_shared_bytes == kDefaultSharedLimit  // not opted in: static + dynamic <= 48 KB
               ? st + spec.dynamic_shared_bytes > kDefaultSharedLimit
               : spec.dynamic_shared_bytes > spec.max_dynamic_shared_bytes)
    bad << spec.dynamic_shared_bytes << " bytes of dynamic shared memory" << static_part(st) << " exceed the "
        << spec.max_dynamic_shared_bytes << "-byte limit (opt in with allow_dynamic_shared)";
  if (!bad.str().empty())
    throw Error("emu: launch of kernel '" + kernel_name(spec) + "' at " + site_name(spec) + ": " + bad.str());

  Block b;
  b.spec = &spec;
  b.nthreads = static_cast<unsigned>(nthreads);
  b.fibers.resize(b.nthreads);
  b.warps.resize((b.nthreads + 31) / 32);
  while (t_stacks.size() < b.nthreads) t_stacks.emplace_back();
#ifdef C3_EMU_TSAN
  t_tsan_host = __tsan_get_current_fiber();
  while (t_tsan_fibers.size() < b.nthreads) {
    void* tf = __tsan_create_fiber(0);
    __tsan_set_fiber_name(tf, ("emu thread " + std::to_string(t_tsan_fibers.size())).c_str());
    t_tsan_fibers.push_back(tf);
  }
  t_race = RaceRecord{};
  t_in_launch = true;
  struct InLaunch { ~InLaunch() { t_in_launch = false; } } in_launch;
#endif
  Block* saved = t_block;
  t_block = &b;
  asan_limit_dynamic_shared(emu_dynamic_smem, spec.dynamic_shared_bytes, kOptInSharedLimit);
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
#ifdef C3_EMU_TSAN
    // Fibers left mid-kernel: order what they did before the host goes on, then drop them.
    for (void* tf : t_tsan_fibers) {
      __tsan_switch_to_fiber(tf, 0);
      __tsan_switch_to_fiber(t_tsan_host, 0);
      __tsan_destroy_fiber(tf);
    }
    t_tsan_fibers.clear();
#endif
    asan_limit_dynamic_shared(emu_dynamic_smem, kOptInSharedLimit, kOptInSharedLimit);
    throw;
  }
  t_block = saved;
  asan_limit_dynamic_shared(emu_dynamic_smem, kOptInSharedLimit, kOptInSharedLimit);
}

C3_EMU_NO_TSAN void syncthreads(const char* file, int line) {
  Fiber* f = t_block->current;
  f->st = St::barrier;
  f->file = file;
  f->line = line;
#ifdef C3_EMU_TSAN
  __tsan_release(&t_tsan_sync[f->barriers & 1]);
#endif
  yield(f);
#ifdef C3_EMU_TSAN
  __tsan_acquire(&t_tsan_sync[f->barriers & 1]);
#endif
  ++f->barriers;
}

void* dynamic_shared_ptr() { return emu_dynamic_smem; }

C3_EMU_NO_TSAN uint64_t warp_exchange(unsigned mask, uint64_t value, int kind, int arg, int width,
                                      const char* file, int line) {
  Block& b = *t_block;
  Fiber* f = b.current;
  const unsigned lane = f->tid % 32, warp = f->tid / 32;
#ifdef C3_EMU_TSAN
  // One sync object per warp: every exchange orders all earlier ones of its warp (warp-
  // synchronous exchanges are trusted, a slight over-synchronization).
  // The exchange bookkeeping below (vectors shared by the lanes) is the emulator's, ignored.
  struct Edge {
    unsigned w;
    bool ignoring = true;
    explicit Edge(unsigned w_) : w(w_) { __tsan_release(&t_tsan_sync[4 + w]); __tsan_ignore_thread_begin(); }
    void end() { if (ignoring) __tsan_ignore_thread_end(); ignoring = false; }  // before a fatal yield
    ~Edge() { end(); __tsan_acquire(&t_tsan_sync[4 + w]); }
  } edge(warp);
#define C3_EMU_FATAL_YIELD(f) (edge.end(), yield(f))
#else
#define C3_EMU_FATAL_YIELD(f) yield(f)
#endif
  if (!(mask >> lane & 1u)) {
    {  // destroyed before the yield: this fiber is never resumed, its frame never unwound
      std::ostringstream m;
      m << "lane " << lane << " of warp " << warp << " called " << kind_name(kind) << " at "
        << where(file, line) << " with mask 0x" << std::hex << mask << ", which excludes it";
      f->error = m.str();
    }
    C3_EMU_FATAL_YIELD(f);  // the scheduler throws
  }
  if (width <= 0 || width > 32 || (width & (width - 1))) {
    f->error = std::string(kind_name(kind)) + " at " + where(file, line) + ": width must be a power of two <= 32";
    C3_EMU_FATAL_YIELD(f);
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
    C3_EMU_FATAL_YIELD(f);
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
#ifdef C3_EMU_TSAN
  edge.end();  // no ignore held while parked (the launch may be abandoned)
#endif
  yield(f);
  return f->warp_result;
}

}  // namespace emu
