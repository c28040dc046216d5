#!/usr/bin/env bash
# serve_bench.sh [CINDER_BINARY]: serving benchmark of `cinder serve` with bench/loadgen.
#
# Starts `cinder serve` (default build/release/cinder) on a free loopback port with random
# weights (preset mid, q4_k), waits for GET /ready, then runs loadgen:
#   short   prompt "Once upon a time", 64 output tokens, concurrency 1, 4, 16, 64
#           (ROUNDS x max(16, N) requests per level; ROUNDS=3: 48, 48, 48, 192, so that a
#           level is more than one synchronized wave of arrivals);
#   long    prompts of ~320 tokens, nothing shared, concurrency 1, 4, 16 (max(8, N) requests);
#   prefix  the same prompt length with a shared first 256 tokens (prefix caching: the TTFT
#           should drop against `long` at the same level; p99 keeps the one cold request);
# prints one table (level | req/s | output tok/s | TTFT p50/p99 | TPOT p50 | ITL p50 | failures)
# and stops the server. Per-run tables and JSON stay in $OUT_DIR (a temp dir by default).
#
# Environment:
#   SERVE_ARGS    model flags for `cinder serve`, instead of trying in order
#                 "--random-weights mid --weight-type q4_k",
#                 "--random-weights -m mid --weight-type q4_k" (the spelling of older builds)
#                 and "-m $SHARED/models/stories260K.gguf"
#   SHARED        shared data dir (default: <repo>/../shared)
#   MAX_TOKENS    output tokens per request (64)      LEVELS       short levels ("1 4 16 64")
#   ROUNDS        short requests = ROUNDS x max(16, concurrency) (3)
#   LONG_LEN      long prompt tokens (320)            LONG_LEVELS  long/prefix levels ("1 4 16")
#   PREFIX_LEN    shared prefix tokens (256)          TIMEOUT      per-request timeout, s (300)
#   RUN_LIMIT     wall limit of one loadgen run, s (1800)
#   STARTUP_LIMIT seconds for the server to come up (600; random weights take a while)
#   OUT_DIR       where results go                    LOADGEN      a prebuilt loadgen binary
#   VERBOSE=1     also print every loadgen table      FAKE=1       benchmark
#                 tests/e2e/fake_openai.py instead of cinder (to test this script)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/build/release/cinder}
SHARED=${SHARED:-$ROOT/../shared}
MAX_TOKENS=${MAX_TOKENS:-64}
ROUNDS=${ROUNDS:-3}
LEVELS=${LEVELS:-1 4 16 64}
LONG_LEVELS=${LONG_LEVELS:-1 4 16}
LONG_LEN=${LONG_LEN:-320}
PREFIX_LEN=${PREFIX_LEN:-256}
TIMEOUT=${TIMEOUT:-300}
RUN_LIMIT=${RUN_LIMIT:-1800}
STARTUP_LIMIT=${STARTUP_LIMIT:-600}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/serve_bench.XXXXXX)}
mkdir -p "$OUT_DIR"
say() { echo "[serve_bench] $*" >&2; }

# ---- loadgen ----
LOADGEN=${LOADGEN:-}
if [ -z "$LOADGEN" ]; then
  LOADGEN=$ROOT/build/loadgen
  mkdir -p "$ROOT/build"
  # shellcheck disable=SC2046  # pkg-config's flags are meant to split
  if ! cc -O2 -Wall -Wextra -Werror -std=c11 "$ROOT/bench/loadgen.c" \
      $(pkg-config --cflags --libs libcurl) -lpthread -lm -o "$LOADGEN"; then
    say "cannot build loadgen (needs a C compiler and libcurl4-openssl-dev)"; exit 1
  fi
fi

# ---- server ----
SPID=
cleanup() {
  if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
    kill -TERM "$SPID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SPID" 2>/dev/null && kill -KILL "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
  fi
  SPID=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

URL=
LOG=$OUT_DIR/server.log
# start_server CMD...: runs it; sets URL from its "listening on" line (cinder) or "PORT N"
# line (the fake server). Returns non-zero when it exits or does not come up in time.
start_server() {
  : > "$LOG"
  "$@" > "$LOG.out" 2> "$LOG" &
  SPID=$!
  local deadline=$((SECONDS + STARTUP_LIMIT))
  URL=
  while [ $SECONDS -lt $deadline ]; do
    URL=$(sed -n 's/.*listening on \(http:\/\/[0-9.]*:[0-9]*\).*/\1/p' "$LOG" | head -1)
    [ -z "$URL" ] && URL=$(sed -n 's/^PORT \([0-9]*\)$/http:\/\/127.0.0.1:\1/p' "$LOG.out" | head -1)
    [ -n "$URL" ] && break
    kill -0 "$SPID" 2>/dev/null || { wait "$SPID" 2>/dev/null; SPID=; return 1; }
    sleep 0.2
  done
  [ -n "$URL" ] || { cleanup; return 1; }
  case "$URL" in
    http://127.0.0.1:*) ;;
    *) say "server is not on loopback: $URL"; cleanup; return 1 ;;
  esac
  # ready?
  while [ $SECONDS -lt $deadline ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL/ready" 2>/dev/null)
    [ "$code" = 200 ] && return 0
    kill -0 "$SPID" 2>/dev/null || { wait "$SPID" 2>/dev/null; SPID=; return 1; }
    sleep 0.2
  done
  cleanup
  return 1
}

MODEL_DESC=
if [ "${FAKE:-0}" = 1 ]; then
  MODEL_DESC="tests/e2e/fake_openai.py (not cinder)"
  start_server python3 "$ROOT/tests/e2e/fake_openai.py" --prefill-ms-per-token 0.05 \
    --token-delay-ms 2 || { say "fake server did not start"; exit 1; }
else
  [ -x "$BIN" ] || { say "no cinder binary at $BIN"; exit 1; }
  if [ -n "${SERVE_ARGS:-}" ]; then
    tries=("$SERVE_ARGS")
  else
    tries=("--random-weights mid --weight-type q4_k" "--random-weights -m mid --weight-type q4_k"
           "-m $SHARED/models/stories260K.gguf")
  fi
  for args in "${tries[@]}"; do
    say "starting: $BIN serve $args --host 127.0.0.1 --port 0"
    # shellcheck disable=SC2086
    if start_server "$BIN" serve $args --host 127.0.0.1 --port 0; then
      MODEL_DESC="cinder serve $args"
      break
    fi
    say "did not come up: $(grep -v '^$' "$LOG" | tail -1)"
  done
  [ -n "$URL" ] || { say "cinder serve did not start with any model arguments"; exit 1; }
  case "$MODEL_DESC" in
    *stories260K*) say "NOTE: random weights are not available in this build: stories260K" ;;
  esac
fi
say "server: $MODEL_DESC at $URL; results in $OUT_DIR"

# ---- runs ----
ROWS=()
# run LABEL ARGS...: one loadgen run; appends a row to ROWS.
run() {
  local label=$1; shift
  local f
  f=$OUT_DIR/$(echo "$label" | tr ' =/' '__-')
  say "$label: loadgen $*"
  timeout "$RUN_LIMIT" "$LOADGEN" --url "$URL" --max-tokens "$MAX_TOKENS" --timeout "$TIMEOUT" \
    --json "$f.json" --quiet "$@" > "$f.txt" 2> "$f.err"
  local rc=$?
  [ "${VERBOSE:-0}" = 1 ] && cat "$f.txt" >&2
  if [ ! -s "$f.json" ]; then
    ROWS+=("$(printf '%-22s | %s' "$label" "no result (loadgen exit $rc: $(tail -1 "$f.err"))")")
    return
  fi
  jv() { grep -o "\"$1\": [-0-9.e+]*" "$f.json" | head -1 | awk '{print $2}'; }
  local failed kinds
  failed=$(jv failed)
  kinds=$(grep -o '"failures": {[^}]*}' "$f.json" | sed 's/"failures": {\(.*\)}/\1/; s/"//g')
  [ "$failed" != 0 ] && failed="$failed ($kinds)"
  ROWS+=("$(printf '%-22s | %7.2f | %9.1f | %9.1f | %9.1f | %8.2f | %8.2f | %s' "$label" \
    "$(jv request_throughput)" "$(jv output_throughput)" "$(jv median_ttft_ms)" \
    "$(jv p99_ttft_ms)" "$(jv median_tpot_ms)" "$(jv median_itl_ms)" "$failed")")
}

for c in $LEVELS; do
  n=$(( ROUNDS * (c > 16 ? c : 16) ))
  run "short c=$c" --concurrency "$c" --num-requests "$n" --prompt "Once upon a time"
done
for c in $LONG_LEVELS; do
  n=$(( c > 8 ? c : 8 ))
  run "long-$LONG_LEN c=$c" --concurrency "$c" --num-requests "$n" --prompt-len "$LONG_LEN" \
    --seed $((100 + c))
done
for c in $LONG_LEVELS; do
  n=$(( c > 8 ? c : 8 ))
  run "prefix-$PREFIX_LEN/$LONG_LEN c=$c" --concurrency "$c" --num-requests "$n" \
    --prompt-len "$LONG_LEN" --shared-prefix-len "$PREFIX_LEN" --seed $((200 + c))
done

cleanup
echo
echo "serve_bench: $MODEL_DESC, $MAX_TOKENS output tokens per request (ms unless noted)"
printf '%-22s | %7s | %9s | %9s | %9s | %8s | %8s | %s\n' level 'req/s' 'out tok/s' \
  'TTFT p50' 'TTFT p99' 'TPOT p50' 'ITL p50' failures
printf '%s\n' "-----------------------+---------+-----------+-----------+-----------+----------+----------+---------"
printf '%s\n' "${ROWS[@]}"
echo "(per-run tables and JSON: $OUT_DIR)"
