#!/bin/sh
# The data-parallel tests on the CPU under MPI (make test, make test-dist):
#  1. `mpirun -np 2 c3tests -tc='dist:*'`: collectives, SyncBN, DCRS, and two ranks with
#     batch 2 against one process with batch 4 (tests/test_dist.cpp);
#  2. a rank that dies: rank 1 kills itself (C3_DEBUG_KILL_RANK=1) during a training step;
#     the job must end (non-zero) within 60 s with mpirun naming the dead rank, not hang;
#     a rank that hangs: rank 0's watchdog (C3_DIST_TIMEOUT=3 s) must end the job;
#  3. (with the c3semiseg path) an error on rank 1 of a real `c3semiseg train` ends the job;
#  4. `c3semiseg eval` on 2 ranks prints one table, with the IoUs of a single process;
#     a command that is not data-parallel (predict) is refused under mpirun with a message.
# Runs as root (CI) and on 2 cores (oversubscribed: 2 ranks, 1 OpenMP thread each).
# usage: tools/test_dist.sh path/to/c3tests [path/to/c3semiseg]
set -u
BIN=${1:?usage: tools/test_dist.sh path/to/c3tests}
command -v mpirun >/dev/null || { echo "test_dist: mpirun not found (apt-get install openmpi-bin)"; exit 1; }
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Under make SANITIZE=1: Open MPI's plugins keep allocations until exit and are unloaded
# before LeakSanitizer runs, so their leaks cannot be told from ours by name: no leak check
# under mpirun (the rest of ASan and UBSan stays on; the suite without MPI checks leaks).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# Shared memory without ptrace-based single copy (containers forbid it); no network needed.
# The tests' run folders (and Open MPI's session files) go to a folder removed at the end.
WORK=$(mktemp -d /tmp/c3dist-run.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export TMPDIR="$WORK"
MPIRUN="mpirun -np 2 --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none"

echo "== mpirun -np 2 $BIN -tc='dist:*'"
timeout 300 $MPIRUN "$BIN" -tc='dist:*' -tce='*dies*,*NCCL*' --no-skip
rc=$?
[ $rc = 0 ] || { echo "test_dist: the data-parallel tests failed (exit $rc)"; exit 1; }

# expect_job_ends WHAT SHOW WANT COMMAND...: the job must end by itself (non-zero exit, no
# timeout) within 60 s, and print a line matching WANT; the lines matching SHOW are echoed.
expect_job_ends() {
  what=$1 show=$2 want=$3
  shift 3
  start=$(date +%s)
  out=$(timeout 120 "$@" 2>&1)
  rc=$?
  took=$(( $(date +%s) - start ))
  echo "$out" | grep -E "$show" | head -5
  if [ $rc = 0 ] || [ $rc = 124 ] || [ $took -gt 60 ]; then
    echo "test_dist: FAILED: $what: the job exited $rc after ${took}s (want non-zero, no timeout, < 60 s)"; exit 1
  fi
  if ! echo "$out" | grep -q "$want"; then
    echo "test_dist: FAILED: $what: no line of its output matches '$want'"; exit 1
  fi
  echo "test_dist: ok ($what: the job ended after ${took}s, exit $rc)"
}

echo "== a rank that dies (C3_DEBUG_KILL_RANK=1)"
expect_job_ends "rank 1 killed" "rank|signal|Killed|abort" "rank 1" \
  env C3_DEBUG_KILL_RANK=1 $MPIRUN -x C3_DEBUG_KILL_RANK "$BIN" -tc='*dies*' --no-skip

echo "== a rank that hangs (C3_DEBUG_KILL_MODE=hang, C3_DIST_TIMEOUT=3)"
expect_job_ends "rank 1 hanging, rank 0's watchdog" "rank|abort" "rank 0 of 2: .* has waited" \
  env C3_DEBUG_KILL_RANK=1 C3_DEBUG_KILL_MODE=hang C3_DIST_TIMEOUT=3 $MPIRUN -x C3_DEBUG_KILL_RANK \
  -x C3_DEBUG_KILL_MODE -x C3_DIST_TIMEOUT "$BIN" -tc='*dies*' --no-skip

# 3. An error on one rank of a real `c3semiseg train`: main() calls MPI_Abort, which ends
#    every rank with the error message (the others wait in the gradient all-reduce).
CLI=${2:-}
[ -n "$CLI" ] || exit 0
echo "== mpirun -np 2 $CLI train, with an error on rank 1 (C3_DEBUG_KILL_MODE=throw)"
D=$(mktemp -d "$WORK/cli.XXXXXX")
"$CLI" make-synthetic --out "$D/data" --train 16 --val 4 >/dev/null || { echo "test_dist: make-synthetic failed"; exit 1; }
expect_job_ends "an error on rank 1" "error|MPI_ABORT" "rank 1 of 2: c3semiseg train: error: C3_DEBUG_KILL_RANK" \
  env C3_DEBUG_KILL_RANK=1 C3_DEBUG_KILL_MODE=throw $MPIRUN -x C3_DEBUG_KILL_RANK -x C3_DEBUG_KILL_MODE \
  "$CLI" train --set model.depth=18 --set model.width=0.125 --set model.proj_dim=16 --set "data.root=\"$D/data\"" \
  --set data.labeled_count=8 --set 'data.base_size=[64,128]' --set 'data.crop=[32,64]' --set 'data.val_size=[64,128]' \
  --set data.workers=0 --set train.mode=supervised --set train.batch_labeled=2 --set train.epochs=1 \
  --set train.steps_per_epoch=4 --set train.device=cpu --set "output.dir=\"$D/run\""

# 4. eval on 2 ranks: the val set split, the confusion matrices summed, rank 0 prints.
echo "== mpirun -np 2 $CLI eval: one table, the IoUs of one process"
SMALL="--set model.depth=18 --set model.width=0.125 --set model.proj_dim=16 --set data.root=\"$D/data\" \
  --set data.labeled_count=8 --set data.base_size=[64,128] --set data.crop=[32,64] --set data.val_size=[64,128] \
  --set data.workers=0 --set train.mode=supervised --set train.batch_labeled=2 --set train.epochs=1 \
  --set train.steps_per_epoch=4 --set train.device=cpu --set output.dir=\"$D/ok\""
eval "\"$CLI\" train $SMALL" >/dev/null 2>&1 || { echo "test_dist: FAILED: the short training for the eval check"; exit 1; }
one=$("$CLI" eval --checkpoint "$D/ok/latest.safetensors" 2>&1) || { echo "$one"; echo "test_dist: FAILED: eval"; exit 1; }
two=$(timeout 120 $MPIRUN "$CLI" eval --checkpoint "$D/ok/latest.safetensors" 2>&1) || {
  echo "$two"; echo "test_dist: FAILED: eval under mpirun"; exit 1; }
n_one=$(echo "$one" | grep -c "mIoU"); n_two=$(echo "$two" | grep -c "mIoU")
if [ "$n_one" -lt 1 ] || [ "$n_two" != "$n_one" ] || [ "$(echo "$one" | grep -v "^$")" != "$(echo "$two" | grep -v "^$")" ]; then
  echo "one process:"; echo "$one"; echo "two ranks:"; echo "$two"
  echo "test_dist: FAILED: eval on 2 ranks must print the table of one process, once"; exit 1
fi
echo "test_dist: ok (eval on 2 ranks printed the table of one process, once)"
expect_job_ends "predict under mpirun is refused" "error" "predict runs in one process: start it without mpirun" \
  $MPIRUN "$CLI" predict --checkpoint "$D/ok/latest.safetensors" --out "$D/pred" "$D/data"
