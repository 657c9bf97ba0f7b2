// Checks that a GPU op makes by reading a flag back from the device: an index outside its
// range in gather_rows / scatter_add_rows, a label that is neither a class nor ignore_index in
// cross_entropy. Read at once, each costs a host synchronisation per call (the CPU path,
// which checks on the host, counts the same point in host_syncs()). Inside a DeferChecks
// scope (the trainer's step) the GPU kernels raise per-device flags instead and the op returns
// without waiting; the trainer reads the flags with its logged values (deferred_flags) and
// check_deferred() turns a raised flag into the error. The CPU path still checks every call
// on the host, where it costs no wait.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace c3 {

class DeferChecks {
 public:
  DeferChecks();
  ~DeferChecks();
  DeferChecks(const DeferChecks&) = delete;
  DeferChecks& operator=(const DeferChecks&) = delete;

 private:
  bool saved_;
};
bool checks_deferred();

// The flags of device d: i32 [4]; [0] != 0: an index was out of range; [2..3]: the first
// pixel with a bad label as a u64, all ones when none. On the CPU they are never raised.
Tensor deferred_flags(Device d);
// Throws naming `when` if a flag is raised (and resets them). `words`: the 4 flags as read
// (e.g. cast to f32 and packed with other values); the overload without reads them (a sync).
void check_deferred(Device d, const std::vector<float>& words, const std::string& when);
void check_deferred(Device d, const std::string& when);

}  // namespace c3
