# C3-SemiSeg engine: GNU make.
#   make            library + build/c3semiseg (CUDA backend when nvcc is found)
#   make test       build and run the test suite, the command line on bad input, then the MPI tests; installs packages as root
#   make run        train on the embedded synthetic dataset and print results
#   make compare    the supervised baseline and C3 on the synthetic data, side by side
#   make bench      the CPU benchmarks (kernel lab + emulated checks, whole step, PyTorch CPU rows)
#   make bench-gpu  the GPU benchmarks (kernel lab, whole step, PyTorch GPU rows); results in bench/results/
#   make twin-lockstep  replay our first 20 C3 steps in the PyTorch twin and compare (tools/torch_twin.py)
#   make twin       ours and the PyTorch twin, supervised and C3, the default (33) and 125 labels, two seeds (about 1.5 h)
#   make CUDA=0 ... CPU-only build;  CUDA=1 requires nvcc;  MPI=0 without MPI (no data-parallel runs)
#   make SANITIZE=1 test  the same tests under AddressSanitizer + UBSan (build-asan, CPU, emulated kernels)
#   make gpu-check  on a GPU machine: build, GPU tests, compute-sanitizer, 10 reference steps, bench-gpu; one report
#   make race-check every emulated test under the race detector (make test runs a short list of them)
#   make fuzz       libFuzzer on the safetensors, image, config and split-list readers (FUZZ_SECONDS=30 each)
#   make DEPS_PREFIX=/path ...  use -dev packages unpacked (dpkg -x) under that prefix
#   make BUILD=dir  put objects and binaries in another folder (default build, or build-cpu with CUDA=0)
#   make CUDA_ARCH="80 90"  the GPU architectures of the CUDA kernels (default; PTX of the last)

DEPS_PREFIX ?=
CXX         ?= g++
NVCC        ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME   ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)),/usr/local/cuda)
OPT         ?= -O2
# GPU architectures the CUDA kernels are compiled for (sm_XX each), with PTX of the last one
# for newer GPUs: 80 = A100, 90 = H100/H200. CUDA_ARCH=90 builds faster for one H100.
CUDA_ARCH   ?= 80 90
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)

# SANITIZE=1: AddressSanitizer + UBSan over everything (CPU build, the emulated kernels
# included), in build-asan. FUZZ=1 (set by make fuzz): clang, libFuzzer-ready objects and the
# same sanitizers, in build-fuzz.
SANITIZE ?= 0
FUZZ ?= 0
ifeq ($(FUZZ),1)
  CXX := clang++
endif
ifeq ($(origin CUDA),undefined)
  CUDA := $(if $(filter 1,$(SANITIZE))$(filter 1,$(FUZZ)),0,$(if $(NVCC),1,0))
endif
# CPU-only objects differ (no -DC3_HAVE_CUDA), so they live in their own folder.
BUILD ?= $(if $(filter 1,$(FUZZ)),build-fuzz,$(if $(filter 1,$(SANITIZE)),build-asan,$(if $(filter 1,$(CUDA)),build,build-cpu)))$(if $(filter 0,$(MPI)),-nompi)

ifeq ($(CUDA),1)
  ifeq ($(NVCC),)
    $(error CUDA=1 but nvcc was not found: put it on PATH or set NVCC=/path/to/nvcc)
  endif
endif

, := ,
MULTIARCH := x86_64-linux-gnu
# OpenBLAS's OpenMP build: its GEMMs and our OpenMP loops share one pool of threads (the
# pthread build keeps a second pool, and the two fight for the cores between them).
OPENBLAS_INC := $(DEPS_PREFIX)/usr/include/$(MULTIARCH)/openblas-openmp
OPENBLAS_LIB := $(DEPS_PREFIX)/usr/lib/$(MULTIARCH)/openblas-openmp
DEP_INC  := $(if $(DEPS_PREFIX),-I$(DEPS_PREFIX)/usr/include -I$(DEPS_PREFIX)/usr/include/$(MULTIARCH)) -I$(OPENBLAS_INC)
# Debian's OpenMPI (data-parallel training, core/dist.h): headers outside /usr/include.
# MPI=0 builds without it (core/mpi_stub.h: a world of one process; the MPI tests are skipped).
MPI      ?= 1
MPI_INC  := $(DEPS_PREFIX)/usr/lib/$(MULTIARCH)/openmpi/include
MPI_LIB  := $(DEPS_PREFIX)/usr/lib/$(MULTIARCH)/openmpi/lib
DEP_INC  += $(if $(filter 1,$(MPI)),-I$(MPI_INC))
DEP_LIB  := $(if $(DEPS_PREFIX),-L$(DEPS_PREFIX)/usr/lib/$(MULTIARCH) -Wl$(,)-rpath$(,)$(DEPS_PREFIX)/usr/lib/$(MULTIARCH)) \
            -L$(OPENBLAS_LIB) -Wl,-rpath,$(OPENBLAS_LIB) $(if $(filter 1,$(MPI)),-L$(MPI_LIB) -Wl$(,)-rpath$(,)$(MPI_LIB))

WARN     := -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas
CXXFLAGS := -std=c++20 $(OPT) -g -fopenmp -march=x86-64-v2 $(WARN) -I. $(DEP_INC) -MMD -MP
LDLIBS   := $(DEP_LIB) -lopenblas -ldnnl -lboost_context $(if $(filter 1,$(MPI)),-lmpi) -fopenmp -lpthread
ifneq ($(MPI),1)
  CXXFLAGS += -DC3_NO_MPI
endif
LDFLAGS  ?=
ifeq ($(FUZZ),1)
  CXXFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS  += -fsanitize=fuzzer,address,undefined
endif
ifeq ($(SANITIZE),1)
  SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  CXXFLAGS  += $(SAN_FLAGS)
  LDFLAGS   += $(SAN_FLAGS)
  # Leaks are reported, except inside the MPI, OpenMP and OpenBLAS runtimes (tools/lsan.supp).
  export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=0
  export LSAN_OPTIONS ?= suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0
  export UBSAN_OPTIONS ?= print_stacktrace=1
endif

ifeq ($(CUDA),1)
  # cuDNN and NCCL may live outside the toolkit (e.g. a Python environment's nvidia-* wheels):
  # CUDNN_INC/CUDNN_LIB and NCCL_INC/NCCL_LIB point at them (tools/gpu_check.sh finds them).
  CUDNN_INC ?=
  NCCL_INC  ?=
  CXXFLAGS += -DC3_HAVE_CUDA=1 -I$(CUDA_HOME)/include $(if $(CUDNN_INC),-I$(CUDNN_INC)) $(if $(NCCL_INC),-I$(NCCL_INC))
  CUDNN_LIB ?= $(CUDA_HOME)/lib64
  # NCCL ships in the toolkit's lib/ (not lib64/) here; NCCL_LIB overrides.
  NCCL_LIB ?= $(firstword $(wildcard $(CUDA_HOME)/lib/libnccl.so $(CUDA_HOME)/lib64/libnccl.so /usr/lib/$(MULTIARCH)/libnccl.so))
  NCCL_DIR := $(if $(NCCL_LIB),$(patsubst %/,%,$(dir $(NCCL_LIB))),$(CUDA_HOME)/lib)
  LDLIBS   += -L$(CUDA_HOME)/lib64 -L$(CUDNN_LIB) -Wl,-rpath,$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDNN_LIB) \
              -L$(NCCL_DIR) -Wl,-rpath,$(NCCL_DIR) $(if $(NCCL_LIB),-l:$(notdir $(NCCL_LIB)),-lnccl) -lcudnn -lcublas -lcudart
  NVCCFLAGS := -std=c++20 -O3 -I. $(DEP_INC) $(if $(CUDNN_INC),-I$(CUDNN_INC)) -MMD -MP --expt-relaxed-constexpr -lineinfo \
               $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a)) \
               -gencode arch=compute_$(lastword $(CUDA_ARCH)),code=compute_$(lastword $(CUDA_ARCH)) \
               -Xcompiler -fopenmp,-Wall,-Wno-unknown-pragmas,-Wno-unused-parameter
endif

# Sources: every .cpp under the library folders; every .cu under kernels/cuda.
LIB_DIRS  := core kernels/cpu kernels nn data semiseg
LIB_SRC   := $(filter-out semiseg/main.cpp,$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cpp))) kernels/cuda/check.cpp
CU_SRC    := $(wildcard kernels/cuda/*.cu)
TEST_SRC  := $(wildcard tests/*.cpp) tests/fuzz/targets.cpp
LIB_OBJ   := $(LIB_SRC:%.cpp=$(BUILD)/obj/%.o)
CU_OBJ    := $(if $(filter 1,$(CUDA)),$(CU_SRC:%.cu=$(BUILD)/obj/%.cu.o))
# Kernel files compiled against the emulator: ours, and the emulator's own test kernels.
EMU_SRC   := $(CU_SRC) $(wildcard tests/emu_kernels/*.cu)
EMU_OBJ   := $(EMU_SRC:%.cu=$(BUILD)/emu/%.o) $(BUILD)/emu/kernels/cuda/emu/emu.o
EMU_RACE_OBJ := $(EMU_OBJ:$(BUILD)/emu/%=$(BUILD)/emu-race/%)
TEST_OBJ  := $(TEST_SRC:%.cpp=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libc3.a
BIN       := $(BUILD)/c3semiseg
TEST_BIN  := $(BUILD)/c3tests
RACE_BIN  := $(BUILD)/c3tests-race
BENCH_SRC := $(wildcard bench/*.cpp)
BENCH_BIN := $(BENCH_SRC:bench/%.cpp=$(BUILD)/%)
BENCH_LAB_OBJ := $(patsubst %.cpp,$(BUILD)/obj/%.o,$(wildcard bench/lab/*.cpp))
BENCH_PYTHON ?= /usr/bin/python3
BENCH_OUT ?= bench/results

# A recipe that fails leaves no half-made target behind.
.DELETE_ON_ERROR:
.PHONY: all test test-dist run compare deps clean help bench bench-gpu twin twin-lockstep twin-deps fuzz gpu-check gpu-deps race-check
all: deps $(BIN)

help:
	@sed -n '2,/^$$/p' Makefile | sed 's/^# //'

# --- packages -----------------------------------------------------------------------------
DEB_PKGS := doctest-dev libstb-dev libopenblas-openmp-dev libdnnl-dev nlohmann-json3-dev libboost-context-dev \
            libopenmpi-dev openmpi-bin
DEP_HEADERS := doctest/doctest.h stb/stb_image.h nlohmann/json.hpp boost/context/detail/fcontext.hpp \
               oneapi/dnnl/dnnl.hpp
deps: $(BUILD)/.deps-ok
# The check runs again whenever the Makefile (its package list) changes.
$(BUILD)/.deps-ok: Makefile
	@missing=""; \
	for h in $(DEP_HEADERS); do \
	  [ -f "$(DEPS_PREFIX)/usr/include/$$h" ] || missing="$$missing $$h"; done; \
	[ -f "$(OPENBLAS_INC)/cblas.h" ] || missing="$$missing cblas.h"; \
	[ "$(MPI)" != 1 ] || [ -f "$(MPI_INC)/mpi.h" ] || missing="$$missing mpi.h"; \
	[ "$(MPI)" != 1 ] || [ -n "$(DEPS_PREFIX)" ] || command -v mpirun >/dev/null || missing="$$missing mpirun"; \
	if [ -n "$$missing" ]; then \
	  echo "missing:$$missing"; \
	  if [ -n "$(DEPS_PREFIX)" ]; then echo "unpack the -dev packages under $(DEPS_PREFIX) (dpkg -x)"; exit 1; fi; \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: $(DEB_PKGS)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS)) || exit 1; \
	  else \
	    echo "run:  sudo apt-get install -y $(DEB_PKGS)"; exit 1; \
	  fi; \
	fi
	@mkdir -p $(BUILD) && touch $@

# --- compile --------------------------------------------------------------------------------
$(BUILD)/obj/%.o: %.cpp | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# The same kernel sources, compiled by g++ against the emulator (kernels::emu namespace), and
# once more with ThreadSanitizer into emu-race/ for the race-detecting test binary. A plain
# CUDA file compiles unchanged: the emulator is force-included, and each "extern __shared__
# T name[]" (the only undefined thread-local symbols such an object has) is renamed to the
# block's dynamic shared memory, emu_dynamic_smem (kernels/cuda/emu/emu.h).
EMU_EXTERN_SHARED = for s in $$(readelf -sW $@ | awk '$$4 == "TLS" && $$7 == "UND" && $$8 != "emu_dynamic_smem" \
                      { print $$8 }' | sort -u); do objcopy --redefine-sym "$$s=emu_dynamic_smem" $@ || exit 1; done
$(BUILD)/emu/%.o: %.cu | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -x c++ -include kernels/cuda/compat.h -c $< -o $@
	@$(EMU_EXTERN_SHARED)
$(BUILD)/emu/%.o: %.cpp | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@
$(BUILD)/emu-race/%.o: %.cu | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -fsanitize=thread -x c++ -include kernels/cuda/compat.h -c $< -o $@
	@$(EMU_EXTERN_SHARED)
$(BUILD)/emu-race/%.o: %.cpp | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -fsanitize=thread -c $< -o $@

$(LIB): $(LIB_OBJ) $(CU_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/obj/semiseg/main.o $(LIB)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The test binary links the kernel lab's registry (bench/lab): every entry's check runs in
# make test (tests/test_kernel_lab.cpp), an op's check written once for both.
$(TEST_BIN): $(TEST_OBJ) $(BENCH_LAB_OBJ) $(EMU_OBJ) $(LIB)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The race-detecting test binary: the same tests, with the emulated kernels and the emulator
# built with ThreadSanitizer (the rest uninstrumented). Each CUDA thread is a TSan fiber and
# barriers and warp exchanges are its ordering points, so two threads of a block touching one
# address between two barriers, one writing, fail the launch with an emu::Error naming the
# kernel, the offset and both threads, whatever the fiber order.
$(RACE_BIN): $(TEST_OBJ) $(BENCH_LAB_OBJ) $(EMU_RACE_OBJ) $(LIB)
	$(CXX) $(LDFLAGS) -fsanitize=thread $^ -o $@ $(LDLIBS)

$(BUILD)/bench_%: $(BUILD)/obj/bench/bench_%.o $(BENCH_LAB_OBJ) $(EMU_OBJ) $(LIB)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# One libFuzzer binary per target of tests/fuzz/targets.h (make fuzz).
FUZZ_TARGETS := safetensors image config split_list
$(BUILD)/obj/tests/fuzz/driver_%.o: tests/fuzz/driver.cpp | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -DC3_FUZZ_TARGET=$* -c $< -o $@
$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/driver_%.o $(BUILD)/obj/tests/fuzz/targets.o $(LIB)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# --- commands -------------------------------------------------------------------------------
# After the suite, the race detector runs the emulator's tests and every kernel lab entry
# (RACE_TESTS; make race-check runs every emulated test under it).
# (Not under SANITIZE=1: AddressSanitizer and ThreadSanitizer do not mix.)
RACE_TESTS := emu:*,kernel lab: no registered emulated kernel races*
RACE_RUN   := $(if $(filter 1,$(SANITIZE)),,$(RACE_BIN))
test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(BIN) $(TEST_BIN) $(RACE_RUN) $(if $(TEST_ARGS),,$(BENCH_BIN))
	./$(TEST_BIN) $(TEST_ARGS)
	@if [ -z "$(TEST_ARGS)" ] && [ -n "$(RACE_RUN)" ]; then \
	  echo "race detector: ./$(RACE_BIN) -tc='$(RACE_TESTS)' (ThreadSanitizer's own reports: $(BUILD)/race-log.*)"; \
	  OMP_NUM_THREADS=1 TSAN_OPTIONS=log_path=$(BUILD)/race-log ./$(RACE_BIN) -tc='$(RACE_TESTS)'; fi
	@if [ -n "$(TEST_ARGS)" ]; then echo "(TEST_ARGS given: the command-line and MPI tests did not run)"; \
	elif [ "$(MPI)" != 1 ]; then tools/test_cli.sh ./$(BIN) $(BUILD) && \
	  echo "(MPI=0: the data-parallel tests were skipped)"; \
	else tools/test_cli.sh ./$(BIN) $(BUILD) && tools/test_dist.sh ./$(TEST_BIN) ./$(BIN); fi
	@if [ -z "$(TEST_ARGS)" ] && [ "$(BUILD)" = build ]; then echo "== make gpu-check, GPU parts skipped (tools/gpu_check.sh --dry)"; \
	  tools/gpu_check.sh --dry > build/gpu-check-dry.log 2>&1 || { cat build/gpu-check-dry.log; exit 1; }; \
	  grep -E '^gpu-check: (build|gpu-tests)' build/gpu-check-dry.log; fi

# make fuzz: each target for FUZZ_SECONDS (default 30) under libFuzzer with ASan + UBSan,
# from the seeds in tests/fuzz/corpus/<target> (new inputs go to build-fuzz/corpus, not the
# repository). A finding is saved as tests/fuzz/regressions/<target>/crash-*, which make
# test then replays for good; the command exits 1 if any target found one.
FUZZ_SECONDS ?= 30
FUZZ_PKGS := clang libomp-dev libclang-rt-dev
fuzz: deps
	@if ! command -v clang++ >/dev/null || ! echo 'int main(){}' | clang++ -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: $(FUZZ_PKGS)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FUZZ_PKGS)) || exit 1; \
	  else echo "run:  sudo apt-get install -y $(FUZZ_PKGS)"; exit 1; fi; \
	fi
	@$(MAKE) --no-print-directory -j$(JOBS) FUZZ=1 $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t tests/fuzz/regressions/$$t; \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
	    -artifact_prefix=tests/fuzz/regressions/$$t/ build-fuzz/corpus/$$t tests/fuzz/corpus/$$t \
	    > build-fuzz/fuzz_$$t.log 2>&1; rc=$$?; \
	  grep -E "ERROR|SUMMARY|Test unit written|stat::number_of_executed_units|Done [0-9]+ runs" build-fuzz/fuzz_$$t.log; \
	  if [ $$rc != 0 ]; then failed="$$failed $$t"; echo "(the whole log: build-fuzz/fuzz_$$t.log)"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: findings for:$$failed (saved under tests/fuzz/regressions/)"; exit 1; fi; \
	echo "fuzz: no finding in $(FUZZ_SECONDS) s per target"

# make race-check: every emulated test (both fiber orders, all their shapes) under the race
# detector (c3tests-race; make test runs its short list).
race-check: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(RACE_BIN)
	OMP_NUM_THREADS=1 TSAN_OPTIONS=log_path=$(BUILD)/race-log ./$(RACE_BIN) -tc='emu*,*emulated*,kernel lab*'

# make gpu-check: build, GPU tests, compute-sanitizer, 10 reference steps, bench-gpu; one
# report (tools/gpu_check.sh). Here, without a GPU, the GPU parts are reported as skipped.
# make gpu-deps (on a machine with apt) downloads what a bare GPU machine lacks into
# deps/debs: carry that folder, and gpu-check unpacks it (dpkg -x) into deps/prefix.
GPU_DEBS := doctest-dev libstb-dev libstb0 nlohmann-json3-dev libboost1.74-dev libboost-context1.74-dev \
            libboost-context1.74.0 libopenblas-openmp-dev libopenblas0-openmp libdnnl-dev libdnnl2 \
            ocl-icd-libopencl1 libgfortran5
gpu-check:
	tools/gpu_check.sh
gpu-deps:
	mkdir -p deps/debs && cd deps/debs && apt-get download $(GPU_DEBS)
	@du -sh deps/debs

# The data-parallel tests: 2 ranks under mpirun on the CPU (tools/test_dist.sh).
test-dist: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(BIN) $(TEST_BIN)
	tools/test_dist.sh ./$(TEST_BIN) ./$(BIN)

run: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(BIN)
	./$(BIN) run $(RUN_ARGS)

compare: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(BIN)
	./$(BIN) compare $(RUN_ARGS)

# The CPU benchmarks, ours and PyTorch's, each at libgomp's default waiting.
bench: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(BENCH_BIN)
	./$(BUILD)/bench_kernels --cpu --out $(BENCH_OUT)
	./$(BUILD)/bench_step --cpu --out $(BENCH_OUT)
	$(BENCH_PYTHON) bench/torch_peer.py --cpu --run-ours ./$(BUILD)/bench_step --out $(BENCH_OUT)
	./$(BUILD)/bench_loader

bench-gpu: deps
	@$(MAKE) --no-print-directory -j$(JOBS) CUDA=1 $(BENCH_BIN)
	./$(BUILD)/bench_kernels --gpu --out $(BENCH_OUT)
	./$(BUILD)/bench_step --gpu --out $(BENCH_OUT)
	$(BENCH_PYTHON) bench/torch_peer.py --gpu --ours $(BENCH_OUT)/step-gpu.json --out $(BENCH_OUT)

# --- the PyTorch twin (tools/torch_twin.py; Debian's python3-torch on the CPU) ----------------
TWIN_PKGS := python3-torch python3-torchvision python3-pil python3-matplotlib python3-numpy
twin-deps:
	@if ! $(BENCH_PYTHON) -c "import torch, torchvision, PIL, matplotlib" 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: $(TWIN_PKGS)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TWIN_PKGS)) || exit 1; \
	  else echo "run:  sudo apt-get install -y $(TWIN_PKGS)"; exit 1; fi; \
	fi

datasets/synthetic-colour/leftImg8bit/val:
	@$(MAKE) --no-print-directory -j$(JOBS) $(BIN)
	./$(BIN) make-synthetic --out datasets/synthetic-colour --colour 1

# 20 steps of the default config (10 warm-up, 10 semi; ramps off and DCRS from 0 so that every
# loss term and the threshold update act from the first semi step), dumped by ours and replayed.
LOCKSTEP_SETS := --set train.epochs=2 --set train.steps_per_epoch=10 --set train.warmup_epochs=1 \
                 --set loss.ramp_cons=0 --set loss.ramp_con=0 --set dcrs.init=0.0 --set data.val_limit=4 \
                 --set train.threads=1 --set output.dir=runs/twin-lockstep/run
twin-lockstep: deps twin-deps datasets/synthetic-colour/leftImg8bit/val
	@$(MAKE) --no-print-directory -j$(JOBS) $(BIN)
	rm -rf runs/twin-lockstep
	./$(BIN) train --config configs/synthetic.json $(LOCKSTEP_SETS) --dump runs/twin-lockstep/dump --dump-steps 20 > /dev/null
	$(BENCH_PYTHON) tools/torch_twin.py lockstep runs/twin-lockstep/dump

twin: twin-lockstep
	$(BENCH_PYTHON) tools/twin_compare.py --bin ./$(BIN) --out $(BENCH_OUT) $(TWIN_ARGS)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
