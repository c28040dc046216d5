# ctest-labels: e2e
# shellcheck shell=bash
# test_loadgen.sh BIN SHARED: bench/loadgen end to end.
#   1. against tests/e2e/fake_openai.py (python3, stdlib only): counts, token totals, chat,
#      prompt-length calibration, prefix sharing lowers TTFT, HTTP 503 / 401, timeouts,
#      streams without [DONE], servers without usage chunks, Poisson rate mode, bad flags;
#   2. against `cinder serve -m SHARED/models/stories260K.gguf` on a free loopback port:
#      concurrency 4, 8 requests of 16 tokens: 8 successes, 128 output tokens, sane times;
#      the chat endpoint and a prompt-length run too.
# Exits 77 (skipped) when loadgen cannot be built, or when part 2 cannot run (no model, or a
# build whose `cinder serve --help` fails) after part 1 passed.
set -u
BIN=$1
SHARED=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for tool in cc pkg-config python3 curl; do
  command -v $tool >/dev/null || { echo "no $tool: skipped"; exit 77; }
done
pkg-config --exists libcurl || { echo "no libcurl development files: skipped"; exit 77; }

T=$(mktemp -d /tmp/test_loadgen.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LG=$T/loadgen
# shellcheck disable=SC2046  # pkg-config's flags are meant to split
if ! cc -O2 -Wall -Wextra -Werror -std=c11 "$ROOT/bench/loadgen.c" \
    $(pkg-config --cflags --libs libcurl) -lpthread -lm -o "$LG"; then
  echo "FAIL loadgen does not build"
  exit 1
fi

fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
# expect NAME JSONFILE PYTHON-EXPR: the expression over d (the JSON) must be true
expect() {
  if python3 - "$2" "$3" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2], {"d": d})
if not ok:
    keys = ["completed", "failed", "failures", "errors", "total_input_tokens",
            "total_output_tokens", "median_ttft_ms", "median_tpot_ms", "median_itl_ms",
            "median_e2el_ms", "duration"]
    print("  " + ", ".join("%s=%s" % (k, d.get(k)) for k in keys))
sys.exit(0 if ok else 1)
EOF
  then ok "$1"; else bad "$1 ($3)"; fi
}

# fake FLAGS...: starts a fake server; sets U.
fake() {
  : > "$T/fake.out"
  python3 "$ROOT/tests/e2e/fake_openai.py" "$@" > "$T/fake.out" 2> "$T/fake.err" &
  PIDS+=($!)
  U=
  for _ in $(seq 100); do
    U=$(sed -n 's/^PORT \([0-9]*\)$/http:\/\/127.0.0.1:\1/p' "$T/fake.out")
    [ -n "$U" ] && return 0
    sleep 0.1
  done
  echo "FAIL fake server did not start: $(cat "$T/fake.err")"
  exit 1
}
stop_last() {
  local p=${PIDS[-1]}
  kill -TERM "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  unset 'PIDS[-1]'
}

# ---- 1. the fake server ----
fake --token-delay-ms 2
"$LG" --url "$U" --concurrency 4 --num-requests 8 --max-tokens 16 --json "$T/a.json" \
  > "$T/a.txt" 2>&1
rc=$?
[ $rc = 0 ] && ok "fake: exit 0" || bad "fake: exit $rc"
expect "fake: 8 of 8 succeed, 128 output and 32 input tokens" "$T/a.json" \
  'd["completed"] == 8 and d["failed"] == 0 and d["total_output_tokens"] == 128 and d["total_input_tokens"] == 32 and d["outputs_not_max_tokens"] == 0'
expect "fake: model found through /v1/models, times sane" "$T/a.json" \
  'd["model"] == "fake" and 0 < d["median_ttft_ms"] <= d["median_e2el_ms"] and 1.5 < d["median_tpot_ms"] < 100 and 1.5 < d["median_itl_ms"] < 100 and abs(d["request_throughput"] - 8 / d["duration"]) < 1e-3 * d["request_throughput"] + 1e-6'
grep -q "Successful requests: *8" "$T/a.txt" && grep -q "P99 ITL (ms):" "$T/a.txt" &&
  ok "fake: table printed" || bad "fake: table printed"

"$LG" --url "$U/v1" --endpoint chat --concurrency 2 --num-requests 8 --max-tokens 8 \
  --prompt-len 40 --json "$T/b.json" --quiet > /dev/null 2>&1
expect "fake chat: --prompt-len 40 calibrated to 40 tokens per request" "$T/b.json" \
  'd["completed"] == 8 and d["endpoint"].endswith("/v1/chat/completions") and d["total_input_tokens"] == 320 and d["calibrated"]'

"$LG" --url "$U" --rate 200 --num-requests 10 --max-tokens 4 --seed 7 --json "$T/c.json" \
  --quiet > /dev/null 2>&1
expect "fake: --rate 200, 10 requests" "$T/c.json" \
  'd["completed"] == 10 and d["request_rate"] == 200 and d["requests"][-1]["start_s"] > 0'

"$LG" --url "$U" --concurrency 1 --num-requests 2 --max-tokens 500 --timeout 0.3 \
  --json "$T/d.json" --quiet > /dev/null 2>&1
expect "fake: per-request timeout" "$T/d.json" \
  'd["completed"] == 0 and d["failures"].get("timeout") == 2 and d["duration"] < 3'
stop_last

fake --max-concurrent 1 --api-key k1 --token-delay-ms 5
"$LG" --url "$U" --model fake --api-key k1 --concurrency 4 --num-requests 8 --max-tokens 8 \
  --json "$T/e.json" --quiet > /dev/null 2>&1
expect "fake: HTTP 503 counted" "$T/e.json" \
  'd["completed"] >= 1 and d["failures"].get("HTTP 503", 0) >= 1 and d["completed"] + d["failed"] == 8'
"$LG" --url "$U" --model fake --concurrency 1 --num-requests 2 --max-tokens 8 \
  --json "$T/f.json" --quiet > /dev/null 2>&1
rc=$?
[ $rc = 1 ] && ok "fake: exit 1 when nothing succeeds" || bad "fake: exit $rc when nothing succeeds"
expect "fake: HTTP 401 without the key" "$T/f.json" \
  'd["failures"] == {"HTTP 401": 2} and "invalid API key" in d["errors"][0]'
stop_last

fake --no-usage --empty-first-chunk --token-delay-ms 1
"$LG" --url "$U" --concurrency 4 --num-requests 8 --max-tokens 16 --json "$T/g.json" \
  --quiet > /dev/null 2>&1
expect "fake without usage: tokens counted from chunks, empty chunks ignored" "$T/g.json" \
  'd["completed"] == 8 and d["total_output_tokens"] == 128 and d["input_tokens_estimated"] and all(r["chunks"] == 16 for r in d["requests"])'
stop_last

fake --drop-after 3
"$LG" --url "$U" --concurrency 2 --num-requests 4 --max-tokens 16 --json "$T/h.json" \
  --quiet > /dev/null 2>&1
expect "fake: a stream without [DONE] fails" "$T/h.json" \
  'd["completed"] == 0 and d["failures"] == {"incomplete stream": 4}'
stop_last

fake --prefill-ms-per-token 0.5 --token-delay-ms 1
"$LG" --url "$U" --concurrency 1 --num-requests 6 --max-tokens 4 --prompt-len 200 \
  --json "$T/i.json" --quiet > /dev/null 2>&1
"$LG" --url "$U" --concurrency 1 --num-requests 6 --max-tokens 4 --prompt-len 200 \
  --shared-prefix-len 160 --json "$T/j.json" --quiet > /dev/null 2>&1
python3 - "$T/i.json" "$T/j.json" <<'EOF' && ok "fake: a shared prefix lowers TTFT" || bad "fake: a shared prefix lowers TTFT"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
print("  TTFT p50 %.1f ms without, %.1f ms with a shared prefix" % (a["median_ttft_ms"], b["median_ttft_ms"]))
sys.exit(0 if a["completed"] == b["completed"] == 6 and b["median_ttft_ms"] < 0.6 * a["median_ttft_ms"] else 1)
EOF
stop_last

"$LG" --url http://127.0.0.1:1 --rate 1 --concurrency 2 > /dev/null 2>&1
rc=$?
[ $rc = 2 ] && ok "bad flags: exit 2" || bad "bad flags: exit $rc"

# ---- 2. cinder serve ----
M=$SHARED/models/stories260K.gguf
if [ ! -f "$M" ]; then
  echo "no $M: the cinder serve part is skipped"
  [ $fail = 0 ] && exit 77 || exit 1
fi
if ! "$BIN" serve --help > /dev/null 2>&1; then
  echo "cinder serve is not available in this build: its part is skipped"
  [ $fail = 0 ] && exit 77 || exit 1
fi
"$BIN" serve -m "$M" --host 127.0.0.1 --port 0 > "$T/serve.out" 2> "$T/serve.err" &
PIDS+=($!)
U=
for _ in $(seq 300); do
  U=$(sed -n 's/.*listening on \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$T/serve.err" | head -1)
  [ -n "$U" ] && break
  kill -0 "${PIDS[-1]}" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$U" ]; then
  echo "FAIL cinder serve did not start:"; tail -5 "$T/serve.err"; exit 1
fi
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$U/ready")" = 200 ] && break
  sleep 0.1
done
"$LG" --url "$U" --concurrency 4 --num-requests 8 --max-tokens 16 --timeout 60 \
  --json "$T/s.json" > "$T/s.txt" 2>&1
rc=$?
[ $rc = 0 ] && ok "cinder: exit 0" || { bad "cinder: exit $rc"; cat "$T/s.txt"; }
expect "cinder: 8 of 8 succeed with 16 tokens each" "$T/s.json" \
  'd["completed"] == 8 and d["failed"] == 0 and d["total_output_tokens"] == 128 and d["outputs_not_max_tokens"] == 0 and not d["input_tokens_estimated"]'
expect "cinder: times and throughputs sane" "$T/s.json" \
  'd["model"] and 0 < d["median_ttft_ms"] <= d["median_e2el_ms"] < 60000 and d["median_tpot_ms"] >= 0 and d["output_throughput"] > 0 and d["total_input_tokens"] >= 8 * 2 and all(r["output_tokens"] == 16 and r["http_status"] == 200 for r in d["requests"])'
"$LG" --url "$U" --endpoint chat --concurrency 2 --num-requests 4 --max-tokens 8 --timeout 60 \
  --json "$T/t.json" --quiet > /dev/null 2>&1
expect "cinder chat: 4 of 4" "$T/t.json" 'd["completed"] == 4 and d["total_output_tokens"] == 32'
"$LG" --url "$U" --concurrency 2 --num-requests 4 --max-tokens 4 --prompt-len 100 --timeout 60 \
  --json "$T/u.json" --quiet > /dev/null 2>&1
expect "cinder: --prompt-len 100 gives 60..160 prompt tokens" "$T/u.json" \
  'd["completed"] == 4 and d["calibrated"] and 60 * 4 <= d["total_input_tokens"] <= 160 * 4'

[ $fail = 0 ] && echo "all loadgen checks passed"
exit $fail
