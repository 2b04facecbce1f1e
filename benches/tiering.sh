#!/usr/bin/env bash
# Tiering (issue 6): a dataset ten times maxmemory, side by side with real Redis, in one run.
# - loads KEYS values of SIZE bytes (default 2,000,000 x 1 KiB, about 2 GiB) into Strata
#   under `maxmemory MAXMEMORY` (default 200mb); checks every key reads back correctly;
#   reports peak RSS (VmHWM) against maxmemory + the key index (measured: the same keys with
#   1-byte values on a server without a limit);
# - GET throughput with 90% of reads on a 10% hot set (two redis-benchmark runs at once,
#   9:1 requests, 45:5 clients), against the same server without a memory limit, runs
#   interleaved (3 rounds after a warm-up each), as ratios of throughput and of server CPU;
# - p50/p99/p99.9 of cold GETs (1 client, random keys) after dropping the page cache of the
#   segment files;
# - BGSAVE of the whole dataset (RSS while it runs) and a restart that loads it under the same
#   maxmemory (load time, peak RSS);
# - real Redis with the same maxmemory: what noeviction refuses and what allkeys-lru loses.
#
# Usage: benches/tiering.sh   (about 10 minutes; needs ~5 GB of disk in $TMPDIR).
# Knobs: KEYS, SIZE, MAXMEMORY, GETS.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-2000000}
SIZE=${SIZE:-1024}
MAXMEMORY=${MAXMEMORY:-200mb}
GETS=${GETS:-1000000}
HOT=$((KEYS / 10))

cargo build --release --bin strata-server >&2
source benches/lib.sh

stop() { redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true; sleep 0.5; }

info() { redis-cli -p "$1" info "$2" | tr -d '\r' | awk -F: -v k="$3" '$1 == k { print $2 }'; }

peak_rss_mb() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

load() { # load <port> [size]: prints redis-cli --pipe's summary line
    python3 benches/tiering_data.py load "$KEYS" "${2:-$SIZE}" | redis-cli -p "$1" --pipe 2>&1 | tail -1
}

# get_mix <port> <pid>: "requests/s server-CPU-seconds" of GETs, 90% on the hot tenth
get_mix() {
    local port=$1 pid=$2 start end cpu0 cpu1
    cpu0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    start=$(date +%s.%N)
    redis-benchmark -p "$port" -c 45 -n $((GETS * 9 / 10)) -r "$HOT" -t get -q >/dev/null 2>&1 &
    local hot=$!
    redis-benchmark -p "$port" -c 5 -n $((GETS / 10)) -r "$KEYS" -t get -q >/dev/null 2>&1
    wait "$hot"
    end=$(date +%s.%N)
    cpu1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    awk -v n="$GETS" -v a="$start" -v b="$end" -v c0="$cpu0" -v c1="$cpu1" \
        'BEGIN { printf "%.0f %.2f\n", n / (b - a), (c1 - c0) / 100 }'
}

echo "== key index: $KEYS keys with 1-byte values, no limit"
read -r port pid < <(start strata "$WORK/index" --save "" --tiering no)
load "$port" 1 >/dev/null
index_mb=$(( $(info "$port" memory used_memory) / 1048576 ))
echo "used_memory: ${index_mb} MB"
stop "$port"

echo "== Strata, maxmemory $MAXMEMORY: load $KEYS x $SIZE bytes"
read -r port pid < <(start strata "$WORK/tiered" --save "" --maxmemory "$MAXMEMORY")
t0=$(date +%s.%N)
echo "load: $(load "$port")"
t1=$(date +%s.%N)
echo "load time: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f s", b - a }')"
redis-cli -p "$port" info tiering | tr -d '\r' | grep -E "cold_keys|hot_keys|disk_bytes|live_bytes|spills|segments"
limit_mb=$(( $(info "$port" tiering tiering_effective_maxmemory) / 1048576 ))
echo "bound: maxmemory $limit_mb + index $index_mb + 20% = $(( (limit_mb + index_mb) * 12 / 10 )) MB"
echo "peak RSS after the load: $(peak_rss_mb "$pid") MB"
echo "dbsize: $(redis-cli -p "$port" dbsize)"
# A key missing or wrong, or a check that cannot run, stops the bench: its figures would
# describe a server that loses data.
python3 benches/tiering_data.py check "$port" "$KEYS" "$SIZE"
echo "peak RSS after reading every key back: $(peak_rss_mb "$pid") MB; now $(grep -E 'RssAnon|RssFile' "/proc/$pid/status" | tr -s ' \t' ' ' | tr '\n' ' ')"

echo "== GET, 90% of reads on the hot $HOT keys: tiered and in RAM, runs interleaved"
read -r ram_port ram_pid < <(start strata "$WORK/ram" --save "" --tiering no)
load "$ram_port" >/dev/null
echo "in RAM: peak RSS $(peak_rss_mb "$ram_pid") MB after the load"
# Warm-up: the hot set settles in RAM (promotions) on the tiered server.
get_mix "$port" "$pid" >/dev/null
get_mix "$ram_port" "$ram_pid" >/dev/null
tiered_sum=0 ram_sum=0 tiered_cpu=0 ram_cpu=0
for round in 1 2 3; do
    read -r rps cpu < <(get_mix "$port" "$pid")
    echo "round $round tiered: $rps req/s, $cpu CPU s"
    tiered_sum=$((tiered_sum + rps)) tiered_cpu=$(awk -v a="$tiered_cpu" -v b="$cpu" 'BEGIN { print a + b }')
    read -r rps cpu < <(get_mix "$ram_port" "$ram_pid")
    echo "round $round in RAM: $rps req/s, $cpu CPU s"
    ram_sum=$((ram_sum + rps)) ram_cpu=$(awk -v a="$ram_cpu" -v b="$cpu" 'BEGIN { print a + b }')
done
stop "$ram_port"
echo "tiered: promotions $(info "$port" tiering tiering_promotions), cold reads $(info "$port" tiering tiering_cold_reads)"
echo "GET ratio tiered / in RAM: $(ratio "$tiered_sum" "$ram_sum") (throughput), $(ratio "$ram_cpu" "$tiered_cpu") (server CPU per GET, in RAM / tiered)"
echo "peak RSS after the GET mix: $(peak_rss_mb "$pid") MB"

echo "== cold GETs with the segment files' page cache dropped"
if ! (sync && echo 1 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    python3 benches/tiering_data.py evict-fadvise "$WORK/tiered/tier"
fi
redis-benchmark -p "$port" -c 1 -n 20000 -r "$KEYS" -t get --precision 3 2>/dev/null |
    tr '\r' '\n' | grep -E "^ *(50\.000|99\.000|99\.900|99\.9[0-9]*)% <= " | sed 's/^ */  /' | head -4 || true
redis-benchmark -p "$port" -c 1 -n 20000 -r "$KEYS" -t get --csv 2>/dev/null | tail -1
echo "peak RSS after the reads: $(peak_rss_mb "$pid") MB"

echo "== BGSAVE of the whole dataset, then a restart that loads it under the same maxmemory"
redis-cli -p "$port" config set rdbcompression no >/dev/null
redis-cli -p "$port" bgsave >/dev/null
rss_max=0
while [[ "$(info "$port" persistence rdb_bgsave_in_progress)" == "1" ]]; do
    rss=$(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")
    ((rss > rss_max)) && rss_max=$rss
    sleep 0.2
done
echo "BGSAVE: $(info "$port" persistence rdb_last_bgsave_status); RSS at most $rss_max MB while it ran; dump.rdb $(( $(stat -c %s "$WORK/tiered/dump.rdb") / 1048576 )) MB"
stop "$port"
t0=$(date +%s.%N)
read -r port pid < <(start strata "$WORK/tiered" --save "" --maxmemory "$MAXMEMORY")
t1=$(date +%s.%N)
echo "restart: $(redis-cli -p "$port" dbsize) keys loaded in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f s", b - a }'); peak RSS $(peak_rss_mb "$pid") MB"
stop "$port"

for policy in noeviction allkeys-lru; do
    echo "== real Redis, maxmemory $MAXMEMORY, $policy"
    read -r port pid < <(start redis "$WORK/redis-$policy" --save "" --maxmemory "$MAXMEMORY" --maxmemory-policy "$policy")
    echo "load: $(load "$port")"
    echo "keys kept: $(redis-cli -p "$port" dbsize) of $KEYS; evicted: $(info "$port" stats evicted_keys)"
    stop "$port"
done
