#!/usr/bin/env bash
# Persistence side by side with real Redis, in one run (issue 5's benchmarks):
# - SET throughput (redis-benchmark, 50 clients, -P 1 and -P 16) with appendonly yes and
#   appendfsync always, then everysec;
# - RDB SAVE and load throughput (MB/s of dump.rdb) for a mixed dataset of about DATASET_MB
#   (1 GB by default, as the issue asks: about 6 million keys, 2.5 GB of commands to send,
#   about 4 GB of memory in Redis and 6 GB in Strata, one server at a time).
# Every row prints Strata's figure over Redis's. Peak memory during BGSAVE under writes is
# benches/bgsave_memory.sh.
#
# Usage: benches/persistence.sh   (about 10 minutes at 1 GB). Knobs: REQUESTS (per SET
# run), DATASET_MB (e.g. DATASET_MB=64 for a quick run), ROWS=rdb for the RDB rows only,
# LOADS (loads of each file, alternating servers; the load row reports the fastest of each,
# default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
DATASET_MB=${DATASET_MB:-1024}
ROWS=${ROWS:-all}
LOADS=${LOADS:-1}
# The mixed dataset below takes about 165 bytes of dump.rdb per key (both servers).
DATASET_KEYS=$((DATASET_MB * 1048576 / 165))

cargo build --release --bin strata-server >&2
source benches/lib.sh

rps() {
    redis-benchmark -p "$1" -c 50 -n "$REQUESTS" -P "$2" -d 64 -r 100000 -t set --csv 2>/dev/null |
        awk -F'","' 'NR == 2 { print $2 }' | tr -d '"'
}


# CPU seconds a process has used (user + system): steadier than requests per second on a
# shared machine.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

rss_mb() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

if [[ "$ROWS" != rdb ]]; then
echo "| test | pipeline | redis rps | strata rps | ratio | redis CPU s | strata CPU s | redis CPU / strata CPU |"
echo "|---|---|---|---|---|---|---|---|"
for policy in always everysec; do
    read -r redis_port redis_pid < <(start redis "$WORK/redis-$policy" --save "" --appendonly yes --appendfsync "$policy")
    read -r strata_port strata_pid < <(start strata "$WORK/strata-$policy" --save "" --appendonly yes --appendfsync "$policy")
    for pipeline in 1 16; do
        before=$(cpu_s "$redis_pid")
        r=$(rps "$redis_port" "$pipeline")
        redis_cpu=$(minus "$(cpu_s "$redis_pid")" "$before")
        before=$(cpu_s "$strata_pid")
        s=$(rps "$strata_port" "$pipeline")
        strata_cpu=$(minus "$(cpu_s "$strata_pid")" "$before")
        echo "| SET appendfsync $policy | $pipeline | $r | $s | $(ratio "$s" "$r") | $redis_cpu | $strata_cpu | $(ratio "$redis_cpu" "$strata_cpu") |"
    done
    kill -9 "$redis_pid" "$strata_pid" 2>/dev/null || true
done
fi

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

# One load of $dir/dump.rdb by $kind: "seconds cpu_seconds rss_mb keys", start to the first
# PONG (the load, as a client sees it) and the process's CPU and RSS at that moment.
load_once() {
    local kind=$1 dir=$2 start_time end_time port pid result
    start_time=$(date +%s.%N)
    read -r port pid < <(start "$kind" "$dir" --save "" --appendonly no)
    end_time=$(date +%s.%N)
    result="$(awk -v a="$start_time" -v b="$end_time" 'BEGIN { printf "%.3f", b - a }') $(cpu_s "$pid") $(rss_mb "$pid") $(redis-cli -p "$port" dbsize)"
    kill -9 "$pid" 2>/dev/null || true
    sleep 1
    echo "$result"
}

echo
echo "| server | keys | dump.rdb MB | SAVE s | SAVE MB/s | load s | load MB/s | load CPU s | RSS after load MB |"
echo "|---|---|---|---|---|---|---|---|---|"
declare -A save_mbs load_mbs save_s bytes load_s load_cpu load_rss keys
for kind in redis strata; do
    dir="$WORK/$kind-rdb"
    read -r port pid < <(start "$kind" "$dir" --save "" --appendonly no)
    dataset | redis-cli -p "$port" --pipe >/dev/null
    save_s[$kind]=$(seconds_of redis-cli -p "$port" save)
    bytes[$kind]=$(stat -c %s "$dir/dump.rdb")
    kill -9 "$pid" 2>/dev/null || true
    sleep 1
done
# Loads alternate between the servers, so both meet the same machine; the fastest counts.
for _ in $(seq 1 "$LOADS"); do
    for kind in redis strata; do
        read -r seconds cpu rss count < <(load_once "$kind" "$WORK/$kind-rdb")
        if [[ -z "${load_s[$kind]:-}" ]] || awk -v a="$seconds" -v b="${load_s[$kind]}" 'BEGIN { exit !(a < b) }'; then
            load_s[$kind]=$seconds load_cpu[$kind]=$cpu load_rss[$kind]=$rss keys[$kind]=$count
        fi
    done
done
for kind in redis strata; do
    save_mbs[$kind]=$(awk -v b="${bytes[$kind]}" -v s="${save_s[$kind]}" 'BEGIN { printf "%.1f", b / 1048576 / s }')
    load_mbs[$kind]=$(awk -v b="${bytes[$kind]}" -v s="${load_s[$kind]}" 'BEGIN { printf "%.1f", b / 1048576 / s }')
    awk -v k="$kind" -v b="${bytes[$kind]}" -v s="${save_s[$kind]}" -v l="${load_s[$kind]}" -v n="${keys[$kind]}" -v c="${load_cpu[$kind]}" -v r="${load_rss[$kind]}" 'BEGIN {
        mb = b / 1048576
        printf "| %s | %d | %.1f | %.3f | %.1f | %.3f | %.1f | %s | %s |\n", k, n, mb, s, mb / s, l, mb / l, c, r
    }'
done
echo "| strata / redis | | | | $(ratio "${save_mbs[strata]}" "${save_mbs[redis]}") | | $(ratio "${load_mbs[strata]}" "${load_mbs[redis]}") | redis / strata $(ratio "${load_cpu[redis]}" "${load_cpu[strata]}") | |"
