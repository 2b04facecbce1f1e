#!/usr/bin/env bash
# Side-by-side comparison of Strata with real Redis on this machine, in one run.
#
# Throughput: redis-benchmark (50 clients) for SET, GET, INCR, MSET, LPUSH, LPOP, SADD, HSET,
# ZADD, LRANGE_100, and XADD, PUBLISH, SETBIT, PFADD (as `COMMAND args`) at -P 1 and -P 16,
# interleaved (ROUNDS times, redis first in odd rounds and strata first in even ones) so
# machine noise and any drift within a round hit both alike; the median of the rounds is
# reported, with strata/redis as a ratio. With two CPUs or more, both servers run on CPU 0
# and redis-benchmark on CPU 1 (`taskset`, as Redis's benchmarking notes advise), so the
# scheduler does not put the client beside the server it measures; PIN=0 turns that off. The tests run in that order on the same servers, so both see the same data: LPOP
# pops what LPUSH pushed (as many requests, so the list never runs dry), and LRANGE_100 first
# pushes its own elements (redis-benchmark's "LPUSH (needed to benchmark LRANGE)" step).
# Memory: 1,000,000 keys of 16-byte keys and 16-byte values loaded with redis-cli --pipe into
# fresh servers; reports bytes per key from INFO's used_memory and from the RSS delta.
#
# Usage: benches/compare.sh            (about 10 minutes)
#        QUICK=1 benches/compare.sh    (smoke run: small counts, one round)
# Knobs: ROUNDS, PIN, CLIENTS, VALUE_BYTES, REQUESTS_P1, REQUESTS_P16, LRANGE_REQUESTS_P1,
#        LRANGE_REQUESTS_P16, MEMORY_KEYS, TESTS (a subset, e.g. TESTS="zadd lrange_100").
# Needs redis-server, redis-cli and redis-benchmark (apt-get install -y redis-server redis-tools).
set -euo pipefail

cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
PIN=${PIN:-1}
if [[ "$PIN" == "1" ]] && { ! command -v taskset >/dev/null || (($(nproc) < 2)); }; then
    PIN=0
fi
# How servers and the client are started: on their own CPUs when pinning.
SERVER_CPU=()
CLIENT_CPU=()
if [[ "$PIN" == "1" ]]; then
    SERVER_CPU=(taskset -c 0)
    CLIENT_CPU=(taskset -c 1)
fi
CLIENTS=${CLIENTS:-50}
VALUE_BYTES=${VALUE_BYTES:-64}
REQUESTS_P1=${REQUESTS_P1:-200000}
REQUESTS_P16=${REQUESTS_P16:-1000000}
# LRANGE_100 replies 100 elements per request (about 7 KB at 64-byte values): fewer requests
# keep each run well inside bench_rps's time limit.
LRANGE_REQUESTS_P1=${LRANGE_REQUESTS_P1:-50000}
LRANGE_REQUESTS_P16=${LRANGE_REQUESTS_P16:-200000}
MEMORY_KEYS=${MEMORY_KEYS:-1000000}
TESTS=${TESTS:-set get incr mset lpush lpop sadd hset zadd lrange_100 xadd publish setbit pfadd}
if [[ "${QUICK:-0}" == "1" ]]; then
    ROUNDS=1
    REQUESTS_P1=20000
    REQUESTS_P16=100000
    LRANGE_REQUESTS_P1=5000
    LRANGE_REQUESTS_P16=20000
    MEMORY_KEYS=100000
fi

for tool in redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null || {
        echo "$tool not found: apt-get install -y redis-server redis-tools" >&2
        exit 1
    }
done

echo "Building release..." >&2
cargo build --release --bin strata-server >&2
STRATA_BIN=target/release/strata-server

WORK=$(mktemp -d)
REDIS_PID=""
STRATA_PID=""

stop_servers() {
    for pid in $REDIS_PID $STRATA_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $REDIS_PID $STRATA_PID; do
        # Bounded wait, then force.
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    REDIS_PID=""
    STRATA_PID=""
}

cleanup() {
    stop_servers
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# A port nothing listens on, from a range away from the usual ones.
free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    exit 1
}

wait_ready() {
    local port=$1
    for _ in $(seq 1 100); do
        if [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == "PONG" ]]; then
            return
        fi
        sleep 0.1
    done
    echo "server on port $port did not start" >&2
    exit 1
}

start_servers() {
    REDIS_PORT=$(free_port)
    STRATA_PORT=$(free_port)
    while [[ "$STRATA_PORT" == "$REDIS_PORT" ]]; do STRATA_PORT=$(free_port); done
    rm -rf "$WORK/redis" "$WORK/strata"
    mkdir -p "$WORK/redis" "$WORK/strata"
    "${SERVER_CPU[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$WORK/redis" --logfile "$WORK/redis.log" &
    REDIS_PID=$!
    "${SERVER_CPU[@]}" "$STRATA_BIN" --port "$STRATA_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$WORK/strata" --logfile "$WORK/strata.log" &
    STRATA_PID=$!
    wait_ready "$REDIS_PORT"
    wait_ready "$STRATA_PORT"
}

# Requests per second of one redis-benchmark run, from its --csv line for the test
# ("test","rps",...). The line is picked by name because some tests print a preparation step
# first (LRANGE_100 prints "LPUSH (needed to benchmark LRANGE)" before
# "LRANGE_100 (first 100 elements)"); MSET's line is "MSET (10 keys)". 0 when the run failed
# (a command the server does not have yet, say), so the table still prints.
bench_rps() {
    local port=$1 test=$2 pipeline=$3 requests=$4 rps
    # Tests redis-benchmark has no -t for run as `COMMAND args` (issue 4 families).
    local custom=()
    case "$test" in
        xadd) custom=(XADD stream '*' field __rand_int__) ;;
        publish) custom=(PUBLISH channel message) ;;
        setbit) custom=(SETBIT bitmap:__rand_int__ 7 1) ;;
        pfadd) custom=(PFADD hll element:__rand_int__) ;;
    esac
    if ((${#custom[@]} > 0)); then
        rps=$(timeout 120 "${CLIENT_CPU[@]}" redis-benchmark -p "$port" -c "$CLIENTS" -n "$requests" -P "$pipeline" \
            -r 100000 --csv "${custom[@]}" 2>/dev/null |
            awk -F'","' 'NR == 2 { print $2; exit }' | tr -d '"') || true
        echo "${rps:-0}"
        return
    fi
    rps=$(timeout 120 "${CLIENT_CPU[@]}" redis-benchmark -p "$port" -c "$CLIENTS" -n "$requests" -P "$pipeline" \
        -d "$VALUE_BYTES" -r 100000 -t "$test" --csv 2>/dev/null |
        awk -F'","' -v name="${test^^}" 'NR > 1 {
            label = $1
            sub(/^"/, "", label)
            if (label == name || substr(label, 1, length(name) + 1) == name " ") { print $2; exit }
        }' | tr -d '"') || true
    echo "${rps:-0}"
}

median() {
    sort -g | awk '{ values[NR] = $1 } END { if (NR == 0) print 0; else print values[int((NR + 1) / 2)] }'
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

start_servers
echo "redis-server $(redis-server --version | awk '{print $3}') on $REDIS_PORT, strata on $STRATA_PORT; $ROUNDS round(s), $CLIENTS clients, ${VALUE_BYTES}-byte values, pinned: $PIN" >&2

RESULTS=()
for test in $TESTS; do
    for pipeline in 1 16; do
        requests=$REQUESTS_P1
        [[ "$pipeline" == "16" ]] && requests=$REQUESTS_P16
        if [[ "$test" == lrange_* ]]; then
            requests=$LRANGE_REQUESTS_P1
            [[ "$pipeline" == "16" ]] && requests=$LRANGE_REQUESTS_P16
        fi
        redis_runs=""
        strata_runs=""
        for round in $(seq 1 "$ROUNDS"); do
            echo "  $test -P $pipeline round $round/$ROUNDS" >&2
            if ((round % 2 == 1)); then
                redis_runs+="$(bench_rps "$REDIS_PORT" "$test" "$pipeline" "$requests")"$'\n'
                strata_runs+="$(bench_rps "$STRATA_PORT" "$test" "$pipeline" "$requests")"$'\n'
            else
                strata_runs+="$(bench_rps "$STRATA_PORT" "$test" "$pipeline" "$requests")"$'\n'
                redis_runs+="$(bench_rps "$REDIS_PORT" "$test" "$pipeline" "$requests")"$'\n'
            fi
        done
        redis_rps=$(printf '%s' "$redis_runs" | grep -v '^$' | median)
        strata_rps=$(printf '%s' "$strata_runs" | grep -v '^$' | median)
        RESULTS+=("$(printf '| %-10s | %8s | %12.0f | %12.0f | %5s |' \
            "${test^^}" "$pipeline" "$redis_rps" "$strata_rps" "$(ratio "$strata_rps" "$redis_rps")")")
    done
done

# Memory per key, on fresh servers.
stop_servers
start_servers

used_memory() {
    # Empty when the server has no INFO memory section.
    redis-cli -p "$1" info memory 2>/dev/null | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'
}

rss_bytes() {
    awk '$1 == "VmRSS:" { print $2 * 1024 }' "/proc/$1/status"
}

load_keys() {
    awk -v count="$MEMORY_KEYS" 'BEGIN {
        for (i = 0; i < count; i++) {
            printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$16\r\nval:%012d\r\n", i, i
        }
    }' | redis-cli -p "$1" --pipe >/dev/null
}

per_key() {
    awk -v before="$1" -v after="$2" -v keys="$MEMORY_KEYS" \
        'BEGIN { if (before == "" || after == "") print "n/a"; else printf "%.1f", (after - before) / keys }'
}

MEMORY=()
for side in redis strata; do
    if [[ "$side" == "redis" ]]; then port=$REDIS_PORT pid=$REDIS_PID; else port=$STRATA_PORT pid=$STRATA_PID; fi
    echo "  loading $MEMORY_KEYS keys into $side" >&2
    used_before=$(used_memory "$port")
    rss_before=$(rss_bytes "$pid")
    load_keys "$port"
    dbsize=$(redis-cli -p "$port" dbsize)
    used_after=$(used_memory "$port")
    rss_after=$(rss_bytes "$pid")
    MEMORY+=("$(printf '| %-6s | %9s | %21s | %14s |' "$side" "$dbsize" \
        "$(per_key "$used_before" "$used_after")" "$(per_key "$rss_before" "$rss_after")")")
done

echo
echo "Throughput (requests/s, median of $ROUNDS; ratio = strata / redis)"
echo
echo "| test       | pipeline |    redis rps |   strata rps | ratio |"
echo "|------------|----------|--------------|--------------|-------|"
printf '%s\n' "${RESULTS[@]}"
echo
echo "Memory for $MEMORY_KEYS keys (16-byte keys, 16-byte values), bytes per key"
echo
echo "| server |    dbsize | used_memory delta/key | RSS delta/key |"
echo "|--------|-----------|-----------------------|---------------|"
printf '%s\n' "${MEMORY[@]}"
