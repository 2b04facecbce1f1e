# Shared by the benchmark scripts (sourced, after `cd` to the repository root): a work
# directory cleaned up at exit, free ports, and starting a Strata or real Redis server on it.
# Servers are started in subshells (`read -r port pid < <(start ...)`), so their pids are kept
# in a file, not a variable, for the cleanup to find.

WORK=$(mktemp -d)
cleanup() {
    if [[ -f "$WORK/pids" ]]; then
        while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$WORK/pids"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ping() {
    for _ in $(seq 1 3000); do
        [[ "$(redis-cli -p "$1" ping 2>/dev/null)" == "PONG" ]] && return
        sleep 0.1
    done
    echo "server on $1 did not answer" >&2
    exit 1
}

# start <redis|strata> <dir> <args...>: prints "port pid"
start() {
    local kind=$1 dir=$2
    shift 2
    local port
    port=$(free_port)
    mkdir -p "$dir"
    if [[ "$kind" == redis ]]; then
        redis-server --port "$port" --dir "$dir" --logfile "$dir/log" "$@" &
    else
        target/release/strata-server --port "$port" --dir "$dir" --logfile "$dir/log" "$@" &
    fi
    local pid=$!
    echo "$pid" >>"$WORK/pids"
    wait_ping "$port"
    echo "$port $pid"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
