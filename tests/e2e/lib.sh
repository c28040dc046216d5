# tests/e2e/lib.sh: sourced by tests/test_e2e_*.sh. $1 = the cinder binary, $2 = the shared
# dir. Starts servers on 127.0.0.1 with --port 0 (the port is read from the log), always kills
# them on exit, and gives small check helpers. Skips (77) when the model or a tool is missing.
set -u
export PYTHONDONTWRITEBYTECODE=1

CINDER=${1:?usage: test_e2e_X.sh CINDER_BINARY SHARED_DIR}
SHARED=${2:?usage: test_e2e_X.sh CINDER_BINARY SHARED_DIR}
MODEL="$SHARED/models/stories260K.gguf"
E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ ! -r "$MODEL" ]; then
    echo "skip: $MODEL is missing"
    exit 77
fi
for tool in curl python3; do
    if ! command -v $tool >/dev/null; then
        echo "skip: $tool is not installed"
        exit 77
    fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cinder-e2e.XXXXXX")
SERVER_PIDS=()
N_CHECKS=0

e2e_cleanup() {
    for p in "${SERVER_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    for p in "${SERVER_PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap e2e_cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*" >&2
    for f in "$TMP"/*.log; do
        [ -f "$f" ] || continue
        echo "---- tail of $f" >&2
        tail -n 30 "$f" >&2
    done
    exit 1
}

ok() {
    N_CHECKS=$((N_CHECKS + 1))
    echo "ok   $*"
}

# start_server NAME [cinder serve flags...]: sets NAME_PORT, NAME_PID, NAME_URL; log in
# $TMP/NAME.log. Small KV pool and one compute thread: the model is tiny and the machine shared.
start_server() {
    local name=$1
    shift
    local log="$TMP/$name.log"
    "$CINDER" serve -m "$MODEL" --host 127.0.0.1 --port 0 -t 1 --kv-cache-memory 64MiB \
        --max-num-seqs 32 "$@" >"$log" 2>&1 &
    local pid=$!
    SERVER_PIDS+=("$pid")
    local port=""
    for _ in $(seq 1 600); do
        port=$(sed -n 's|^cinder serve: listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$log")
        [ -n "$port" ] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            fail "server $name exited during start-up"
        fi
        sleep 0.1
    done
    [ -n "$port" ] || fail "server $name did not start within 60 s"
    printf -v "${name}_PORT" '%s' "$port"
    printf -v "${name}_PID" '%s' "$pid"
    printf -v "${name}_URL" '%s' "http://127.0.0.1:$port"
}

# stop_server NAME: SIGTERM, wait, and require exit status 0 (ASan leak reports fail it).
stop_server() {
    local name=$1
    local pidvar="${name}_PID"
    local pid=${!pidvar}
    kill -TERM "$pid" 2>/dev/null
    local rc=0
    wait "$pid" || rc=$?
    [ "$rc" = 0 ] || fail "server $name exited with $rc after SIGTERM"
    grep -q "ERROR: AddressSanitizer\|runtime error:\|WARNING: ThreadSanitizer" "$TMP/$name.log" &&
        fail "server $name: sanitizer report in its log"
    ok "server $name: SIGTERM -> exit 0"
}

# http METHOD URL OUTFILE [curl args...]: prints the status code; headers go to OUTFILE.h
http() {
    local method=$1 url=$2 out=$3
    shift 3
    curl -sS -X "$method" -o "$out" -D "$out.h" -w '%{http_code}' --max-time 60 "$@" "$url"
}

# post URL OUTFILE JSON [curl args...]: prints the status code
post() {
    local url=$1 out=$2 body=$3
    shift 3
    http POST "$url" "$out" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

# expect_status GOT WANT WHAT
expect_status() {
    [ "$1" = "$2" ] || fail "$3: HTTP $1, expected $2"
}

# jq-like checks with python: jcheck FILE 'python expression over d' WHAT
jcheck() {
    python3 - "$1" "$2" <<'EOF' || fail "$3: $(head -c 600 "$1")"
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)
EOF
}

# jget FILE 'python expression over d': prints its value
jget() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
v = eval("(" + sys.argv[2] + ")")
print(v if isinstance(v, str) else json.dumps(v))
EOF
}

# header FILE.h NAME: value of a response header (case-insensitive), without CR
header() {
    grep -i "^$2:" "$1" | head -n 1 | sed 's/^[^:]*: *//' | tr -d '\r'
}
