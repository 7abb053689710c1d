#!/usr/bin/env bash
# Builds every cargo-fuzz target once, then runs each for FUZZ_SECONDS (default 30) on a copy
# of its committed corpus (fuzz/corpus/<target>/ is never modified). Prints one line per
# target, `<target>: N executions, 0 crashes`, and exits non-zero when any target crashes
# (the input is kept in fuzz/artifacts/<target>/) or does not run. docs/fuzzing.md.
#
#   fuzz/run.sh                 all targets
#   fuzz/run.sh params config   some targets
#   FUZZ_SECONDS=300 fuzz/run.sh
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-30}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer, sancov passes); the toolchain is
# stable, so the fuzz build runs with RUSTC_BOOTSTRAP=1 (this script only; not the install).
export RUSTC_BOOTSTRAP=1

# --dev: unoptimised, the quickest build of the instrumented dependency tree; -s none: no
# AddressSanitizer (the code under test forbids unsafe; panics and aborts are what we catch).
# Still coverage-guided: sancov instrumentation is on either way.
t0=$(date +%s)
cargo fuzz build --dev -s none
echo "fuzz build: $(( $(date +%s) - t0 ))s"

triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=target/$triple/debug
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

logs=target/run-logs
mkdir -p "$logs"
failed=0
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  mkdir "$work.tmp"
  cp -R "corpus/$t/." "$work/" 2>/dev/null || true
  mkdir -p "artifacts/$t"
  before=$(ls "artifacts/$t" | wc -l)
  t1=$(date +%s)
  rc=0
  # -timeout: one input running this long is a hang; the outer timeout is a backstop.
  # TMPDIR: where a target writes scratch files (config: its TOML file), removed after.
  TMPDIR=$work.tmp timeout $(( seconds + 120 )) "$bin_dir/$t" "$work" \
    -max_total_time="$seconds" -timeout=25 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >"$logs/$t.log" 2>&1 || rc=$?
  rm -rf "$work" "$work.tmp"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$logs/$t.log" | tail -n 1)
  crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ] || [ -z "$execs" ]; then
    failed=1
    echo "$t: ${execs:-?} executions, $crashes crashes (exit $rc, $(( $(date +%s) - t1 ))s)"
    ls -t "artifacts/$t" | head -n "$(( crashes > 0 ? crashes : 1 ))" | sed "s|^|  input: fuzz/artifacts/$t/|"
    tail -n 40 "$logs/$t.log" | sed 's/^/  | /'
  else
    echo "$t: $execs executions, 0 crashes"
  fi
done
echo "fuzz run: $(( $(date +%s) - t0 ))s in all"
exit "$failed"
