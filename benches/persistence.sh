#!/usr/bin/env bash
# Persistence side by side with real Redis, in one run (issue 5's benchmarks):
# - SET throughput (redis-benchmark, 50 clients, -P 1 and -P 16) with appendonly yes and
#   appendfsync always, then everysec;
# - RDB SAVE and load throughput (MB/s of dump.rdb) for a mixed dataset of about DATASET_MB.
# Peak memory during BGSAVE under writes is benches/bgsave_memory.sh.
#
# Usage: benches/persistence.sh   (a few minutes). Knobs: REQUESTS, DATASET_KEYS.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
DATASET_KEYS=${DATASET_KEYS:-400000}

cargo build --release --bin strata-server >&2
source benches/lib.sh

rps() {
    redis-benchmark -p "$1" -c 50 -n "$REQUESTS" -P "$2" -d 64 -r 100000 -t set --csv 2>/dev/null |
        awk -F'","' 'NR == 2 { print $2 }' | tr -d '"'
}


echo "| test | pipeline | redis rps | strata rps | ratio |"
echo "|---|---|---|---|---|"
for policy in always everysec; do
    read -r redis_port redis_pid < <(start redis "$WORK/redis-$policy" --save "" --appendonly yes --appendfsync "$policy")
    read -r strata_port strata_pid < <(start strata "$WORK/strata-$policy" --save "" --appendonly yes --appendfsync "$policy")
    for pipeline in 1 16; do
        r=$(rps "$redis_port" "$pipeline")
        s=$(rps "$strata_port" "$pipeline")
        echo "| SET appendfsync $policy | $pipeline | $r | $s | $(ratio "$s" "$r") |"
    done
    kill -9 "$redis_pid" "$strata_pid" 2>/dev/null || true
done

# A mixed dataset: strings, and hashes, lists, sets and sorted sets of 20 elements each.
dataset() {
    awk -v count="$DATASET_KEYS" 'BEGIN {
        for (i = 0; i < count; i++) {
            kind = i % 5
            if (kind == 0) { printf "*3\r\n$3\r\nSET\r\n$14\r\nstr:%010d\r\n$100\r\n%0100d\r\n", i, i; continue }
            if (kind == 1) { printf "*42\r\n$4\r\nHSET\r\n$15\r\nhash:%010d\r\n", i; for (j = 0; j < 20; j++) printf "$8\r\nfield%03d\r\n$10\r\n%010d\r\n", j, i + j; continue }
            if (kind == 2) { printf "*22\r\n$5\r\nRPUSH\r\n$15\r\nlist:%010d\r\n", i; for (j = 0; j < 20; j++) printf "$10\r\n%010d\r\n", i * 20 + j; continue }
            if (kind == 3) { printf "*22\r\n$4\r\nSADD\r\n$14\r\nset:%010d\r\n", i; for (j = 0; j < 20; j++) printf "$10\r\nm%09d\r\n", j * 7 + i; continue }
            printf "*42\r\n$4\r\nZADD\r\n$15\r\nzset:%010d\r\n", i; for (j = 0; j < 20; j++) printf "$%d\r\n%d\r\n$10\r\nm%09d\r\n", length(j * 3 "") , j * 3, j
        }
    }'
}

seconds_of() {
    # "DB saved"/"DB loaded from disk: 1.234 seconds" aside, time the command itself.
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}

echo
echo "| server | dump.rdb MB | SAVE s | SAVE MB/s | load s | load MB/s |"
echo "|---|---|---|---|---|---|"
for kind in redis strata; do
    dir="$WORK/$kind-rdb"
    read -r port pid < <(start "$kind" "$dir" --save "" --appendonly no)
    dataset | redis-cli -p "$port" --pipe >/dev/null
    save_s=$(seconds_of redis-cli -p "$port" save)
    bytes=$(stat -c %s "$dir/dump.rdb")
    kill -9 "$pid" 2>/dev/null || true
    sleep 0.5
    start_time=$(date +%s.%N)
    read -r port pid < <(start "$kind" "$dir" --save "" --appendonly no)
    end_time=$(date +%s.%N)
    load_s=$(awk -v a="$start_time" -v b="$end_time" 'BEGIN { printf "%.3f", b - a }')
    keys=$(redis-cli -p "$port" dbsize)
    kill -9 "$pid" 2>/dev/null || true
    awk -v k="$kind" -v b="$bytes" -v s="$save_s" -v l="$load_s" -v n="$keys" 'BEGIN {
        mb = b / 1048576
        printf "| %s (%d keys) | %.1f | %.3f | %.0f | %.3f | %.0f |\n", k, n, mb, s, mb / s, l, mb / l
    }'
done
