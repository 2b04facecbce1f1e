#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30) on the stable toolchain, without a
# sanitizer and with debug assertions on, starting from the checked-in corpus; prints each
# target's executions per second. New inputs go to a scratch directory, never to corpus/.
# Exits 1 if a target crashed, whose input libFuzzer leaves in artifacts/<target>/.
#
#   fuzz/run_all.sh 30          # what CI runs
#   fuzz/run_all.sh 3600 resp   # a long campaign of one target
#   fuzz/run_all.sh build       # only build the targets (CI builds them beside other work)
#
# The targets are built once, then run FUZZ_JOBS at a time (default: one per core), each for
# its full SECONDS on a core of its own: every target gets the executions it would get alone.
set -euo pipefail

cd "$(dirname "$0")"
seconds="${1:-30}"
shift || true
build_only=false
if [ "$seconds" = build ]; then
    build_only=true
fi
jobs="${FUZZ_JOBS:-$(nproc)}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
scratch="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$scratch"
}
trap cleanup EXIT
# `run` must be given the same build options as `build`, or it builds again.
options=(-s none -a)
cargo fuzz build "${options[@]}"
if $build_only; then
    exit 0
fi

# Runs one target; its log goes to $scratch/<target>.log, its exit status to .status.
run_one() {
    local target="$1"
    mkdir -p "$scratch/$target"
    local status=0
    cargo fuzz run "${options[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1 || status=$?
    echo "$status" >"$scratch/$target.status"
}

echo "== ${#targets[@]} targets, ${seconds}s each, $jobs at a time"
for target in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    echo "== $target: ${seconds}s"
    run_one "$target" &
    pids+=("$!")
done
wait || true

summary=()
failed=0
for target in "${targets[@]}"; do
    log="$scratch/$target.log"
    if [ "$(cat "$scratch/$target.status" 2>/dev/null || echo 1)" != 0 ]; then
        tail -n 40 "$log"
        echo "fuzz target $target crashed: see fuzz/artifacts/$target/"
        failed=1
        continue
    fi
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    took="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)"
    rate=$(( ${runs:-0} / (${took:-1} > 0 ? ${took:-1} : 1) ))
    summary+=("$target: ${runs:-?} runs in ${took:-?} s, ${rate} execs/s")
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
