#!/bin/sh
# The command line against bad input, as a user meets it (make test): each case must end by
# itself within 60 s, without a signal (no crash, no hang), with exit status 1 or 2 and a
# message naming the option, key or file. The library functions behind each case have their
# own unit tests; this checks that the binary reports them instead of dying.
# With a build folder, also the benchmark programs in it (bench/bench_*.cpp): --help, and bad
# options and values, each rejected before any work.
# usage: tools/test_cli.sh path/to/c3semiseg [build-folder]
set -u
BIN=${1:?usage: tools/test_cli.sh path/to/c3semiseg [build-folder]}
BUILD=${2:-}
WORK=$(mktemp -d /tmp/c3cli.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
failed=0

# expect_error WANT COMMAND...: exit 1 or 2 within 60 s, and a line of the output matching WANT.
expect_error() {
  want=$1
  shift
  out=$(timeout 60 "$@" 2>&1)
  rc=$?
  if [ $rc = 124 ]; then echo "test_cli: FAILED (hang): $*"; failed=1; return; fi
  if [ $rc -ne 1 ] && [ $rc -ne 2 ]; then echo "test_cli: FAILED (exit $rc): $*"; echo "$out" | tail -3; failed=1; return; fi
  if ! echo "$out" | grep -q -- "$want"; then
    echo "test_cli: FAILED (no '$want' in the output): $*"; echo "$out" | tail -3; failed=1; return
  fi
  echo "test_cli: ok: $(echo "$out" | grep -- "$want" | head -1 | cut -c1-150)"
}

expect_error "--seed needs a whole number" "$BIN" make-synthetic --out "$WORK/s" --seed 3abc
expect_error "--train needs a whole number" "$BIN" make-synthetic --out "$WORK/s" --train -5
expect_error "--lighting needs a number" "$BIN" make-synthetic --out "$WORK/s" --lighting abc
expect_error "--rare" "$BIN" make-synthetic --out "$WORK/s" --rare 2
expect_error "--colour" "$BIN" make-synthetic --out "$WORK/s" --colour -1
expect_error "--dump-steps needs a whole number" "$BIN" train --dump "$WORK/d" --dump-steps 1e3
expect_error "need --dump DIR" "$BIN" train --dump-state-every 5
expect_error "--stop-after needs a whole number" "$BIN" train --stop-after 0
expect_error "is not a key" "$BIN" train --set .x=1
expect_error "is not a key" "$BIN" train --set ..=1
expect_error "train.eval_every_epochs" "$BIN" train --set train.eval_every_epochs=0
expect_error "train.epochs" "$BIN" train --set train.epochs=9223372036854775807
expect_error "output.dir" "$BIN" train --set output.dir=/
deep=$(printf '%*s' 20000 '' | tr ' ' '[')$(printf '%*s' 20000 '' | tr ' ' ']')
expect_error "nested deeper than" "$BIN" train --set "data.scales=$deep"
printf '{"model": %s}' "$deep" > "$WORK/deep.json"
expect_error "deep.json: JSON nested deeper than" "$BIN" train --config "$WORK/deep.json"
: > "$WORK/empty.txt"
# expect_ok WANT COMMAND...: exit 0 within 60 s, and a line of the output matching WANT.
expect_ok() {
  want=$1
  shift
  out=$(timeout 60 "$@" 2>&1)
  rc=$?
  if [ $rc -ne 0 ] || ! echo "$out" | grep -q -- "$want"; then
    echo "test_cli: FAILED (exit $rc, or no '$want' in the output): $*"; echo "$out" | tail -3; failed=1; return
  fi
  echo "test_cli: ok: $(echo "$out" | grep -- "$want" | head -1 | cut -c1-150)"
}
expect_ok "^  loss.w_cons  *50.0 " "$BIN" config --list
expect_ok '"seed": 7,' "$BIN" config --config configs/synthetic.json --set train.seed=7
expect_error "loss.tau': must be in" "$BIN" config --set loss.tau=0
expect_error "takes no --config or --set" "$BIN" config --list --set train.seed=1

expect_error "--window needs HxW" "$BIN" eval --checkpoint "$WORK/none.safetensors" --window 64
expect_error "--stride needs --window" "$BIN" eval --checkpoint "$WORK/none.safetensors" --stride 32x32
expect_error "larger than the window" "$BIN" eval --checkpoint "$WORK/none.safetensors" --window 32x32 --stride 64x8
expect_error "--scales needs" "$BIN" predict --checkpoint "$WORK/none.safetensors" --out "$WORK" --scales 1,0 x.png

expect_error "no samples" "$BIN" check-data "$WORK" "$WORK/empty.txt"
printf 'not a checkpoint' > "$WORK/bad.safetensors"
expect_error "bad.safetensors" "$BIN" eval --checkpoint "$WORK/bad.safetensors"

if [ -n "$BUILD" ]; then
  # Results go to $WORK: a case that does run writes nothing into the repository.
  for b in bench_step bench_kernels bench_model_cpu bench_loader bench_mixing bench_conv; do
    expect_ok "^usage: $b " "$BUILD/$b" --help
  done
  expect_ok "^usage: bench_step " "$BUILD/bench_step" -h
  S="$BUILD/bench_step --cpu --out $WORK/results"
  expect_error "unknown option '--rep'; the options are --cpu, --gpu" $S --rep 3
  expect_error "--reps needs a whole number in \[1, 1000\], got 'abc'" $S --reps abc
  expect_error "--reps needs a whole number in \[1, 1000\], got '0'" $S --reps 0
  expect_error "--threads needs whole numbers in \[0, 1024\] separated by commas, got 'x'" $S --threads x
  expect_error "--reps needs a value (last on the line)" $S --reps
  expect_error "--config needs a value, got the option --reps" $S --config --reps 3
  expect_error "--reps is given twice" $S --reps 3 --reps 4
  expect_error "unexpected argument '3'" $S 3
  expect_error "--crop needs HxW" $S --crop 64
  expect_error "--batches needs labeled+unlabeled pairs" $S --batches 4
  expect_error "--batches needs a whole number" $S --batches 4+x
  expect_error "--phase 'nothing' is part of no phase" $S --phase nothing
  expect_error "--cpu and --gpu exclude each other" $S --gpu
  expect_error "--cpu-conv needs onednn or im2col, got 'mkl'" $S --cpu-conv mkl
  C="$BUILD/bench_conv --out $WORK/results"
  expect_error "--reps needs a whole number in \[1, 1000\], got '0'" $C --reps 0
  expect_error "--threads needs whole numbers" $C --threads 1,x
  expect_error "unknown option '--thread'" $C --thread 1
  K="$BUILD/bench_kernels --cpu --out $WORK/results"
  expect_error "unknown option '--famly'" $K --famly optim
  expect_error "--reps needs a whole number in \[1, 1000\], got '0'" $K --reps 0
  expect_error "--threads needs whole numbers" $K --threads 1,x
  expect_error "--kernel: no kernel nothing v1" $K --kernel softmax,nothing
  expect_error "--kernel needs NAME or NAME:VERSION" $K --kernel softmax:1x
  expect_error "--family: no family nothing" $K --family optim,nothing
  expect_error "--family needs a value (last on the line)" $K --family
  M="$BUILD/bench_model_cpu"
  expect_error "--depth needs 18, 34, 50 or 101, got '7'" $M --depth 7
  expect_error "--reps needs a whole number in \[1, 1000\], got '0'" $M --reps 0
  expect_error "--width needs a number" $M --width abc
  expect_error "--size needs HxW" $M --size 256
  expect_error "unexpected argument '101'" $M 101
  L="$BUILD/bench_loader"
  expect_error "--images needs a whole number in \[1, 10000\], got '0'" $L --images 0
  expect_error "--batches needs a value (last on the line)" $L --batches
  expect_error "unexpected argument '8'" $L 8
  X="$BUILD/bench_mixing $WORK/none.safetensors"
  expect_error "--batches needs a whole number in \[1, 100000\], got 'abc'" $X --batches abc
  expect_error "unknown option '--tacher'" $X --tacher
  expect_error "one CHECKPOINT expected" $X "$WORK/other.safetensors"
fi

[ $failed = 0 ] || { echo "test_cli: some cases FAILED"; exit 1; }
echo "test_cli: all cases ok"
