#!/bin/bash
# make gpu-check: the whole GPU path proven in one call, on a bare GPU machine or here.
#
# From a fresh checkout: unpacks the carried -dev packages when the machine lacks them
# (deps/debs, written here by `make gpu-deps`, into deps/prefix), finds cuDNN and NCCL where
# the machine has them (the toolkit, /usr, or a Python environment's nvidia-* wheels), builds
# with every core, then runs each part in its own process with its own time limit, going on
# past a failure:
#   gpu-tests   the GPU_TEST_CASEs (doctest suite "gpu"), each against the CPU backend
#   sanitizer   compute-sanitizer memcheck, racecheck, synccheck and initcheck over a 2-step
#               C3 training of the synthetic config on the GPU (every kernel of a step)
#   train10     10 steps at the reference batch (16 + 16, 256x512 crops, DeepLab-v2
#               ResNet-101, frozen BN): step time and peak GPU memory
#   bench-gpu   make bench-gpu (kernel lab, whole step, PyTorch fp32 and bf16 rows)
# and prints one table (part, result, seconds, first error line), also written with the
# device, driver, toolkit, cuDNN and commit to bench/results/gpu-check-<date>.md (and, with
# the logs, to $OUT when the device tool sets it; without a GPU to build/gpu-check/report.md). Without a GPU each GPU part is "skipped"
# and the command exits 0; with one it exits 1 if a part failed. `--dry` (what make test runs,
# so CI keeps the script working): everything but the GPU parts, which are skipped even on a GPU.
set -u
DRY=0; [ "${1:-}" = --dry ] && DRY=1
cd "$(dirname "$0")/.."
JOBS=$(nproc)
LOGS=build/gpu-check
mkdir -p "$LOGS" bench/results
DATE=$(date -u +%F)
REPORT=bench/results/gpu-check-$DATE.md  # without a GPU: $LOGS/report.md (nothing measured to keep)
declare -a ROWS=()
failed=0

has_gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU; then has_gpu=1; fi
[ $DRY = 1 ] && has_gpu=0
[ $has_gpu = 1 ] || REPORT=$LOGS/report.md

# part NAME LIMIT_S COMMAND...: runs it, records result, seconds and the first error line.
part() {
  local name=$1 limit=$2
  shift 2
  local log=$LOGS/$name.log start rc secs why result
  start=$(date +%s)
  timeout "$limit" bash -c "$*" > "$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ $rc = 0 ]; then result=ok; why=""
  elif [ $rc = 124 ]; then result=TIMEOUT; why="over ${limit} s"; failed=1
  else
    result=FAILED; failed=1
    why=$(grep -m1 -iE 'error|fail|assert|abort|exception' "$log" | cut -c1-160)
  fi
  ROWS+=("| $name | $result | $secs | ${why//|//} |")
  echo "gpu-check: $name: $result (${secs} s)${why:+: $why}"
}
skip() { ROWS+=("| $1 | skipped | 0 | $2 |"); echo "gpu-check: $1: skipped ($2)"; }

# --- what a bare machine needs ------------------------------------------------------------
DEPS_ARGS=""
if [ ! -f /usr/include/doctest/doctest.h ] || [ ! -f /usr/include/nlohmann/json.hpp ]; then
  if ls deps/debs/*.deb >/dev/null 2>&1; then
    mkdir -p deps/prefix
    for d in deps/debs/*.deb; do dpkg -x "$d" deps/prefix; done
    DEPS_ARGS="DEPS_PREFIX=$PWD/deps/prefix"
    echo "gpu-check: unpacked $(ls deps/debs/*.deb | wc -l) carried packages into deps/prefix"
  else
    echo "gpu-check: the -dev packages are missing and deps/debs holds none (run make gpu-deps on a machine with apt)"
  fi
fi
MPI_ARG="MPI=1"
if [ -n "$DEPS_ARGS" ] || ! command -v mpirun >/dev/null || [ ! -f /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h ]; then
  MPI_ARG="MPI=0"  # no MPI there: single-process build
fi
CUDA_ARGS=""
if command -v nvcc >/dev/null; then
  # cuDNN and NCCL: the toolkit or /usr first, else the Python environment's nvidia wheels.
  find_dir() {  # find_dir FILE DIR...: the first DIR holding FILE
    local f=$1; shift
    for d in "$@"; do [ -e "$d/$f" ] && { echo "$d"; return; }; done
  }
  CUDA_HOME=$(dirname "$(dirname "$(command -v nvcc)")")
  PYNV=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
  CUDNN_INC=$(find_dir cudnn.h "$CUDA_HOME/include" /usr/include /usr/include/x86_64-linux-gnu ${PYNV:+$PYNV/cudnn/include})
  CUDNN_LIB=$(find_dir libcudnn.so "$CUDA_HOME/lib64" /usr/lib/x86_64-linux-gnu ${PYNV:+$PYNV/cudnn/lib})
  [ -n "$CUDNN_LIB" ] || CUDNN_LIB=$(find_dir libcudnn.so.9 "$CUDA_HOME/lib64" /usr/lib/x86_64-linux-gnu ${PYNV:+$PYNV/cudnn/lib})
  NCCL_INC=$(find_dir nccl.h "$CUDA_HOME/include" /usr/include ${PYNV:+$PYNV/nccl/include})
  NCCL_DIR=$(find_dir libnccl.so "$CUDA_HOME/lib" "$CUDA_HOME/lib64" /usr/lib/x86_64-linux-gnu ${PYNV:+$PYNV/nccl/lib})
  [ -n "$NCCL_DIR" ] && NCCL_LIB=$NCCL_DIR/libnccl.so
  if [ -z "${NCCL_DIR:-}" ]; then
    NCCL_DIR=$(find_dir libnccl.so.2 "$CUDA_HOME/lib" "$CUDA_HOME/lib64" /usr/lib/x86_64-linux-gnu ${PYNV:+$PYNV/nccl/lib})
    [ -n "$NCCL_DIR" ] && NCCL_LIB=$NCCL_DIR/libnccl.so.2
  fi
  CUDA_ARGS="CUDA=1 ${CUDNN_INC:+CUDNN_INC=$CUDNN_INC} ${CUDNN_LIB:+CUDNN_LIB=$CUDNN_LIB} ${NCCL_INC:+NCCL_INC=$NCCL_INC} ${NCCL_LIB:+NCCL_LIB=$NCCL_LIB}"
  # cuDNN 9's .so.9 without the unversioned link (wheels): link against it by a local link.
  if [ -n "$CUDNN_LIB" ] && [ ! -e "$CUDNN_LIB/libcudnn.so" ]; then
    mkdir -p deps/lib && ln -sf "$CUDNN_LIB/libcudnn.so.9" deps/lib/libcudnn.so
    CUDA_ARGS="$CUDA_ARGS CUDNN_LIB=$PWD/deps/lib LDFLAGS=-Wl,-rpath,$CUDNN_LIB"
  fi
else
  CUDA_ARGS="CUDA=0"
fi
BUILD_DIR=build; [ "$MPI_ARG" = MPI=0 ] && BUILD_DIR=build-nompi
[ "$CUDA_ARGS" = CUDA=0 ] && BUILD_DIR=build-cpu$([ "$MPI_ARG" = MPI=0 ] && echo -nompi)
MAKE_ARGS="$DEPS_ARGS $MPI_ARG $CUDA_ARGS BUILD=$BUILD_DIR"
echo "gpu-check: make $MAKE_ARGS"

part build 420 "make -j$JOBS $MAKE_ARGS $BUILD_DIR/c3tests $BUILD_DIR/c3semiseg $BUILD_DIR/bench_kernels $BUILD_DIR/bench_step"
built=0; [ -x $BUILD_DIR/c3tests ] && [ -x $BUILD_DIR/c3semiseg ] && built=1

if [ $has_gpu = 1 ] && [ $built = 1 ]; then
  part gpu-tests 240 "./$BUILD_DIR/c3tests -ts=gpu"
  SYN=datasets/gpu-check
  [ -d $SYN/leftImg8bit/val ] || ./$BUILD_DIR/c3semiseg make-synthetic --out $SYN --train 400 --val 8 > "$LOGS/synthetic.log" 2>&1
  SMALL="--config configs/synthetic.json --set data.root=$SYN --set train.device=cuda --set train.epochs=1 --set train.steps_per_epoch=2 --set train.warmup_epochs=0 --set loss.ramp_cons=0 --set dcrs.init=0.0 --set data.val_limit=2 --set output.vis_images=0"
  if command -v compute-sanitizer >/dev/null; then
    for tool in memcheck racecheck synccheck initcheck; do
      part "sanitizer-$tool" 150 "compute-sanitizer --tool $tool --error-exitcode 9 ./$BUILD_DIR/c3semiseg train $SMALL --set output.dir=runs/gpu-check/$tool"
    done
  else
    skip sanitizer "compute-sanitizer not found"
  fi
  part train10 240 "./$BUILD_DIR/c3semiseg train --config configs/cityscapes_372.json --set data.root=$SYN --set train.device=cuda --set train.epochs=1 --set train.steps_per_epoch=10 --set train.warmup_epochs=0 --set data.val_limit=2 --set output.vis_images=0 --set output.dir=runs/gpu-check/train10 && tail -n 3 runs/gpu-check/train10/metrics.jsonl"
  part bench-gpu 300 "make $MAKE_ARGS BENCH_PYTHON=python3 bench-gpu"
else
  why=$([ $has_gpu = 1 ] && echo "the build failed" || ([ $DRY = 1 ] && echo "--dry" || echo "no GPU on this machine"))
  for p in gpu-tests sanitizer train10 bench-gpu; do skip $p "$why"; done
fi

# --- the report ----------------------------------------------------------------------------
{
  echo "# make gpu-check, $DATE"
  echo
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "- device: $( [ $has_gpu = 1 ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1 || echo none)"
  echo "- toolkit: $(command -v nvcc >/dev/null && nvcc --version | tail -1 || echo 'no nvcc')"
  echo "- cuDNN: $(grep -hE '#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' ${CUDNN_INC:-/nonexistent}/cudnn_version.h 2>/dev/null | awk '{print $3}' | paste -sd. || echo '?') (${CUDNN_LIB:-not found})"
  echo "- NCCL: ${NCCL_LIB:-not found}; build: make $MAKE_ARGS"
  echo
  echo "| part | result | seconds | first error line |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  if [ -f runs/gpu-check/train10/metrics.jsonl ]; then
    echo; echo "train10, last lines of metrics.jsonl (images/s, mem_peak_mib):"; echo
    echo '```'; grep '"loss"' runs/gpu-check/train10/metrics.jsonl | tail -n 2; echo '```'
  fi
} > "$REPORT"
echo; cat "$REPORT"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$REPORT" "$OUT/"
  tar czf "$OUT/gpu-check-logs.tgz" "$LOGS" bench/results/*-gpu.* 2>/dev/null
fi
[ $has_gpu = 1 ] && exit $failed
[ $DRY = 1 ] && [ $built = 0 ] && exit 1  # make test: the build part must work
exit 0
