#!/usr/bin/env bash
# Extra memory during a background save under write load: Strata's snapshot vs Redis's fork.
#
# Each server gets the same dataset (KEYS keys named as redis-benchmark names them, with
# VALUE_BYTES-byte values: about 1 GB by default), then BGSAVE while redis-benchmark keeps
# overwriting those keys. RSS is sampled every 20 ms until the save ends. Extra memory is the peak minus
# the RSS just before the save: for Redis, the parent's RSS plus the fork child's private
# (copy-on-write) pages; for Strata, its one process. Also prints Redis's own
# `rdb_last_cow_size`. The requirement for Strata: extra memory under 10% of the dataset.
#
# Usage: benches/bgsave_memory.sh   (a few minutes; needs redis-server, redis-cli,
#        redis-benchmark). Knobs: KEYS, VALUE_BYTES, WRITERS.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000000}
VALUE_BYTES=${VALUE_BYTES:-1000}
WRITERS=${WRITERS:-20}

cargo build --release --bin strata-server >&2
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
private_kb() {
    awk '/^Private_(Clean|Dirty)/ {sum += $2} END {print sum + 0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0
}

measure() {
    local name=$1 port=$2 pid=$3
    # Every key redis-benchmark's -r will name exists first, so the overwrite load below
    # never grows the dataset: what grows during the save is the save's own cost.
    awk -v count="$KEYS" -v size="$VALUE_BYTES" 'BEGIN {
        value = sprintf("%*s", size, ""); gsub(/ /, "x", value)
        for (i = 0; i < count; i++) {
            printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$%d\r\n%s\r\n", i, size, value
        }
    }' | redis-cli -p "$port" --pipe >/dev/null
    local used
    used=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
    local keys
    keys=$(redis-cli -p "$port" dbsize | tr -d '\r')
    # Overwrite load during the save.
    redis-benchmark -p "$port" -t set -n 100000000 -r "$KEYS" -d "$VALUE_BYTES" -P 4 -c "$WRITERS" -q >/dev/null 2>&1 &
    local load=$!
    # Let the overwrite churn settle the allocator before the baseline.
    sleep 3
    local before
    before=$(rss_kb "$pid")
    redis-cli -p "$port" bgsave >/dev/null
    local peak=$before
    local started=$SECONDS
    while true; do
        local now
        now=$(rss_kb "$pid")
        for child in $(pgrep -P "$pid" 2>/dev/null || true); do
            now=$((now + $(private_kb "$child")))
        done
        ((now > peak)) && peak=$now
        if redis-cli -p "$port" info persistence | grep -q '^rdb_bgsave_in_progress:0'; then
            break
        fi
        if ((SECONDS - started > 600)); then
            echo "save did not finish" >&2
            break
        fi
        sleep 0.02
    done
    local seconds=$((SECONDS - started))
    kill "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    local cow
    cow=$(redis-cli -p "$port" info persistence | awk -F: '/^rdb_last_cow_size:/ {print $2}' | tr -d '\r')
    local extra=$(((peak - before) * 1024))
    printf '| %-6s | %9s | %13s | %15s | %14s | %6.1f%% | %5ss |\n' "$name" "$keys" "$used" "$extra" "${cow:-0}" \
        "$(echo "scale=3; $extra * 100 / $used" | bc)" "$seconds"
}

redis_port=$(free_port)
mkdir -p "$WORK/redis" "$WORK/strata"
redis-server --port "$redis_port" --dir "$WORK/redis" --save "" --appendonly no --daemonize no \
    --logfile "$WORK/redis.log" &
PIDS+=($!)
redis_pid=$!
strata_port=$(free_port)
target/release/strata-server --port "$strata_port" --dir "$WORK/strata" --save "" >"$WORK/strata.log" 2>&1 &
PIDS+=($!)
strata_pid=$!
sleep 1

echo "BGSAVE under write load: $KEYS keys of $VALUE_BYTES bytes, $WRITERS writers overwriting them"
echo
echo '| server |      keys |   used_memory | peak extra (B) | redis cow (B) | extra/used | save |'
echo '|--------|-----------|---------------|----------------|---------------|------------|------|'
measure redis "$redis_port" "$redis_pid"
measure strata "$strata_port" "$strata_pid"
