# ctest-labels: e2e
# test_e2e_batching.sh: continuous batching seen from outside. 32 concurrent greedy streams each
# equal their single-stream text (also in a KV pool so small that they get preempted); 200
# requests from 64 clients against a short queue all get a 200 or a clean 503 (Retry-After,
# OpenAI error JSON) and the server stays healthy; 100 abrupt mid-stream disconnects leave no
# running request and the KV pool as it was; a shared-prefix workload hits the prefix cache
# (metrics, cached_tokens) and lowers the time to first token (cold vs warm medians).
source "$(dirname "$0")/e2e/lib.sh"
BC="python3 $E2E_DIR/batch_clients.py"
O=$TMP/out
T0=$(date +%s)

# normal_request URL WHAT: a plain greedy request still works
normal_request() {
    expect_status "$(post "$1/v1/completions" "$O.n" '{"prompt":"Once upon a time","temperature":0,"max_tokens":16}')" 200 "$2"
    jcheck "$O.n" 'd["usage"]["completion_tokens"] > 0 and len(d["choices"][0]["text"]) > 0' "$2 body"
}

# A: the default queue; a small step budget, so prefill chunks share steps with decodes
start_server A --max-num-seqs 32 --max-num-batched-tokens 256
U=$A_URL

# ---- 1. 32 concurrent streams == their single-stream greedy text ----
$BC alone "$U" 32 24 "$TMP/alone.json" >"$O.alone" || fail "32 single streams"
echo "     $(cat "$O.alone")"
$BC together "$U" 32 24 "$TMP/alone.json" >"$O.inv" ||
    fail "32 concurrent streams differ from their single-stream text"
echo "     $(cat "$O.inv")"
ok "32 concurrent greedy streams each equal their single-stream text"

# ---- 3. 100 mid-stream disconnects ----
$BC wait-idle "$U" 30 0 >/dev/null || fail "server A is not idle before the disconnects"
CANC0=$($BC metric "$U" cinder_requests_cancelled_total) || fail "no cancelled counter"
$BC disconnects "$U" 100 16 >"$O.disc" || fail "mid-stream disconnect clients"
echo "     $(cat "$O.disc")"
$BC wait-idle "$U" 20 0 >"$O.idle" ||
    fail "after 100 disconnects: requests still run or KV blocks are still held"
echo "     after: $(cat "$O.idle")"
CANC1=$($BC metric "$U" cinder_requests_cancelled_total)
python3 -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print("     cancelled: %d" % (b - a)); sys.exit(0 if b - a >= 50 else 1)' \
    "$CANC0" "$CANC1" || fail "too few disconnects were counted as cancelled ($CANC0 -> $CANC1)"
expect_status "$(http GET "$U/health" "$O")" 200 "/health after the disconnects"
normal_request "$U" "a request after 100 disconnects"
ok "100 mid-stream disconnects: running 0, KV usage back to 0, service goes on"

# ---- 4. prefix cache: hits and a lower time to first token ----
# 3 long prefixes (~450 tokens each): the first request of each is cold, 5 more are warm
$BC prefix "$U" 3 5 230 >"$O.pfx" || fail "prefix-cache workload: $(cat "$O.pfx")"
echo "     $(cat "$O.pfx")"
ok "shared prefix: prefix cache hits, cached_tokens > 0, warm TTFT < cold TTFT"

stop_server A

# ---- 1b. the same 32 streams in a 102-block pool: preempted and recomputed, still identical ----
# (no prefill cap: all 32 must be admitted quickly for the pool to run out and preempt)
start_server C --max-num-seqs 32 --max-num-batched-tokens 256 --kv-cache-memory 1MiB \
    --max-num-prefill-tokens 0
$BC together "$C_URL" 32 24 "$TMP/alone.json" 1 >"$O.invc" ||
    fail "32 concurrent streams in a small KV pool differ from their single-stream text"
echo "     $(cat "$O.invc")"
$BC wait-idle "$C_URL" 20 0 >/dev/null || fail "server C does not go idle"
ok "32 concurrent streams with preemption each equal their single-stream text"
stop_server C

# ---- 2. 200 requests, 64 clients, a short queue ----
start_server B --max-num-seqs 8 --max-waiting 16
$BC flood "$B_URL" 200 64 >"$O.flood" || fail "overload: not every request got a 200 or a clean 503"
echo "     $(cat "$O.flood")"
$BC wait-idle "$B_URL" 30 0 >/dev/null || fail "server B does not go idle after the flood"
expect_status "$(http GET "$B_URL/health" "$O")" 200 "/health after the flood"
normal_request "$B_URL" "a request after the flood"
$BC metric "$B_URL" vllm:num_requests_running >/dev/null || fail "metrics after the flood"
ok "200 requests from 64 clients: each a 200 or a clean 503, healthy afterwards"
stop_server B

echo "test_e2e_batching: $N_CHECKS groups passed in $(($(date +%s) - T0)) s"
