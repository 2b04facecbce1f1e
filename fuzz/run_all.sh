#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30) on the stable toolchain, without a
# sanitizer and with debug assertions on, starting from the checked-in corpus; prints each
# target's executions per second. New inputs go to a scratch directory, never to corpus/.
# Exits 1 at the first crash, whose input libFuzzer leaves in artifacts/<target>/.
#
#   fuzz/run_all.sh 30          # what CI runs
#   fuzz/run_all.sh 3600 resp   # a long campaign of one target
set -euo pipefail

cd "$(dirname "$0")"
seconds="${1:-30}"
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cargo fuzz build -s none -a

summary=()
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    log="$scratch/$target.log"
    echo "== $target: ${seconds}s"
    if ! cargo fuzz run -s none -a "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz target $target crashed: see fuzz/artifacts/$target/"
        exit 1
    fi
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    took="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)"
    rate=$(( ${runs:-0} / (${took:-1} > 0 ? ${took:-1} : 1) ))
    summary+=("$target: ${runs:-?} runs in ${took:-?} s, ${rate} execs/s")
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
