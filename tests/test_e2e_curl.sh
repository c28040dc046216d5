# ctest-labels: e2e
# test_e2e_curl.sh: cinder serve driven with curl: every endpoint, the exact OpenAI shapes
# (streamed and not), greedy streamed == non-streamed, usage, stop strings, logprobs, seeds,
# every error status, x-request-id, a mid-stream disconnect, 8 clients at once, /metrics,
# queue-full 503, and a clean exit on SIGTERM.
source "$(dirname "$0")/e2e/lib.sh"
UTIL="python3 $E2E_DIR/e2e_util.py"

start_server A
U=$A_URL
O=$TMP/out

# ---- health, models ----
expect_status "$(http GET "$U/health" "$O")" 200 "/health"
jcheck "$O" 'd["status"] == "ok"' "/health body"
expect_status "$(http GET "$U/ready" "$O")" 200 "/ready"
jcheck "$O" 'd["status"] == "ready" and d["model"] == "stories260K"' "/ready body"
ok "/health and /ready"

expect_status "$(http GET "$U/v1/models" "$O")" 200 "/v1/models"
jcheck "$O" 'd["object"] == "list" and len(d["data"]) == 1 and d["data"][0]["id"] == "stories260K"
and d["data"][0]["object"] == "model" and d["data"][0]["max_model_len"] == 2048' "/v1/models body"
expect_status "$(http GET "$U/v1/models/stories260K" "$O")" 200 "/v1/models/{id}"
jcheck "$O" 'd["id"] == "stories260K" and d["max_model_len"] == 2048' "/v1/models/{id} body"
expect_status "$(http GET "$U/v1/models/gpt-4" "$O")" 404 "/v1/models/gpt-4"
jcheck "$O" 'd["error"]["code"] == "model_not_found"' "unknown model id"
ok "/v1/models and /v1/models/{id}"

# ---- x-request-id ----
http GET "$U/health" "$O" -H 'x-request-id: my-id-42' >/dev/null
[ "$(header "$O.h" x-request-id)" = "my-id-42" ] || fail "x-request-id not echoed"
http GET "$U/health" "$O" >/dev/null
header "$O.h" x-request-id | grep -Eq '^[0-9a-f]{32}$' || fail "x-request-id not generated"
ok "x-request-id echoed or generated"

# ---- chat, not streamed ----
CHAT='{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story"}],"temperature":0,"max_tokens":24}'
expect_status "$(post "$U/v1/chat/completions" "$O.chat" "$CHAT")" 200 "chat"
jcheck "$O.chat" 'd["object"] == "chat.completion" and d["id"].startswith("chatcmpl-")
and d["model"] == "stories260K" and d["choices"][0]["index"] == 0
and d["choices"][0]["message"]["role"] == "assistant"
and len(d["choices"][0]["message"]["content"]) > 0
and d["choices"][0]["finish_reason"] in ("stop", "length")
and d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + d["usage"]["completion_tokens"]
and 0 < d["usage"]["completion_tokens"] <= 24' "chat body"
[ "$(header "$O.chat.h" content-type)" = "application/json" ] || fail "chat content type"
ok "chat completion (not streamed)"

# the prompt /tokenize renders for the same messages is exactly what generation saw
TOK='{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story"}]}'
expect_status "$(post "$U/tokenize" "$O.tok" "$TOK")" 200 "/tokenize messages"
[ "$(jget "$O.tok" 'd["count"]')" = "$(jget "$O.chat" 'd["usage"]["prompt_tokens"]')" ] ||
    fail "/tokenize count differs from the chat's prompt_tokens"
jcheck "$O.tok" 'd["tokens"][0] == 1 and d["max_model_len"] == 2048 and len(d["tokens"]) == d["count"]' \
    "/tokenize: the fallback template starts with BOS"
ok "/tokenize with messages == the chat prompt"

# ---- chat, streamed: shape, and greedy text equal to the non-streamed text ----
SCHAT='{"messages":[{"role":"user","content":"Tell me a story"}],"temperature":0,"max_tokens":24,"stream":true,"stream_options":{"include_usage":true}}'
expect_status "$(post "$U/v1/chat/completions" "$O.sse" "$SCHAT" -N)" 200 "chat stream"
[ "$(header "$O.sse.h" content-type)" = "text/event-stream" ] || fail "stream content type"
$UTIL sse-check "$O.sse" chat --usage >"$O.sum" || fail "chat stream shape"
python3 - "$O.chat" "$O.sum" <<'EOF' || fail "streamed chat differs from non-streamed"
import json, sys
full, s = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert s["text"] == full["choices"][0]["message"]["content"], (s["text"], full)
assert s["finish_reason"] == full["choices"][0]["finish_reason"]
assert s["usage"]["completion_tokens"] == full["usage"]["completion_tokens"]
assert s["usage"]["prompt_tokens"] == full["usage"]["prompt_tokens"]
EOF
ok "chat stream: role first, one finish_reason, usage chunk, [DONE]; equals non-streamed"

SCHAT2='{"messages":[{"role":"user","content":"Hi"}],"temperature":0,"max_tokens":8,"stream":true}'
expect_status "$(post "$U/v1/chat/completions" "$O.sse2" "$SCHAT2" -N)" 200 "chat stream w/o usage"
$UTIL sse-check "$O.sse2" chat >/dev/null || fail "chat stream without include_usage"
ok "chat stream without usage"

# ---- completions ----
COMP='{"model":"stories260K","prompt":"Once upon a time","temperature":0,"max_tokens":32}'
expect_status "$(post "$U/v1/completions" "$O.comp" "$COMP")" 200 "completion"
jcheck "$O.comp" 'd["object"] == "text_completion" and d["id"].startswith("cmpl-")
and len(d["choices"][0]["text"]) > 0 and d["choices"][0]["logprobs"] is None
and d["usage"]["prompt_tokens"] == 5 and d["usage"]["completion_tokens"] == 32
and d["choices"][0]["finish_reason"] == "length"' "completion body"
SCOMP='{"prompt":"Once upon a time","temperature":0,"max_tokens":32,"stream":true,"stream_options":{"include_usage":true}}'
expect_status "$(post "$U/v1/completions" "$O.csse" "$SCOMP" -N)" 200 "completion stream"
$UTIL sse-check "$O.csse" completion --usage >"$O.csum" || fail "completion stream shape"
python3 - "$O.comp" "$O.csum" <<'EOF' || fail "streamed completion differs"
import json, sys
full, s = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert s["text"] == full["choices"][0]["text"], (s["text"], full["choices"][0]["text"])
assert s["usage"]["completion_tokens"] == 32
EOF
# default max_tokens of completions is 16, as OpenAI's
expect_status "$(post "$U/v1/completions" "$O" '{"prompt":"Once upon a time","temperature":0}')" 200 "default max_tokens"
jcheck "$O" 'd["usage"]["completion_tokens"] == 16' "completions default max_tokens 16"
# a prompt given as token ids gives the same text
IDS=$(post "$U/tokenize" "$O.ids" '{"prompt":"Once upon a time"}' >/dev/null; jget "$O.ids" 'd["tokens"]')
expect_status "$(post "$U/v1/completions" "$O" "{\"prompt\":$IDS,\"temperature\":0,\"max_tokens\":32}")" 200 "token prompt"
[ "$(jget "$O" 'd["choices"][0]["text"]')" = "$(jget "$O.comp" 'd["choices"][0]["text"]')" ] ||
    fail "a token-id prompt gives other text"
ok "completions: streamed == not streamed, default 16, token-id prompts"

# ---- stop strings ----
FULL=$(jget "$O.comp" 'd["choices"][0]["text"]')
STOP=$(python3 -c 'import sys; w=sys.argv[1].split(); print(" " + w[len(w)//2])' "$FULL")
BODY=$(python3 -c 'import json,sys; print(json.dumps({"prompt":"Once upon a time","temperature":0,"max_tokens":32,"stop":[sys.argv[1]]}))' "$STOP")
expect_status "$(post "$U/v1/completions" "$O.stop" "$BODY")" 200 "stop"
python3 - "$O.stop" "$FULL" "$STOP" <<'EOF' || fail "stop string"
import json, sys
d = json.load(open(sys.argv[1])); full, stop = sys.argv[2], sys.argv[3]
c = d["choices"][0]
assert c["finish_reason"] == "stop", c
assert c["text"] == full[:full.index(stop)], (c["text"], full, stop)
EOF
BODY=$(python3 -c 'import json,sys; print(json.dumps({"prompt":"Once upon a time","temperature":0,"max_tokens":32,"stop":sys.argv[1],"stream":True}))' "$STOP")
expect_status "$(post "$U/v1/completions" "$O.stops" "$BODY" -N)" 200 "stop streamed"
$UTIL sse-check "$O.stops" completion >"$O.stopsum" || fail "stop stream shape"
python3 - "$O.stopsum" "$O.stop" <<'EOF' || fail "streamed stop"
import json, sys
s, d = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert s["text"] == d["choices"][0]["text"] and s["finish_reason"] == "stop", (s, d)
EOF
ok "stop strings (streamed and not)"

# ---- logprobs ----
LP='{"messages":[{"role":"user","content":"Hi"}],"temperature":0,"max_tokens":6,"logprobs":true,"top_logprobs":3}'
expect_status "$(post "$U/v1/chat/completions" "$O.lp" "$LP")" 200 "chat logprobs"
jcheck "$O.lp" 'len(d["choices"][0]["logprobs"]["content"]) == d["usage"]["completion_tokens"]
and all(len(t["top_logprobs"]) == 3 and t["logprob"] <= 0 and isinstance(t["bytes"], list)
        and t["top_logprobs"][0]["logprob"] >= t["top_logprobs"][1]["logprob"]
        and abs(t["logprob"] - t["top_logprobs"][0]["logprob"]) < 1e-4
        for t in d["choices"][0]["logprobs"]["content"])' "chat logprobs (greedy = top-1)"
LPC='{"prompt":"Once upon a time","temperature":0,"max_tokens":5,"logprobs":2}'
expect_status "$(post "$U/v1/completions" "$O.lpc" "$LPC")" 200 "completion logprobs"
jcheck "$O.lpc" 'len(d["choices"][0]["logprobs"]["tokens"]) == 5
and len(d["choices"][0]["logprobs"]["token_logprobs"]) == 5
and all(len(t) == 2 for t in d["choices"][0]["logprobs"]["top_logprobs"])
and d["choices"][0]["logprobs"]["text_offset"][0] == 0' "legacy logprobs"
SLP='{"messages":[{"role":"user","content":"Hi"}],"temperature":0,"max_tokens":6,"logprobs":true,"stream":true}'
expect_status "$(post "$U/v1/chat/completions" "$O.slp" "$SLP" -N)" 200 "streamed logprobs"
$UTIL sse-check "$O.slp" chat >"$O.slpsum" || fail "streamed logprobs shape"
jcheck "$O.slpsum" 'd["n_logprobs"] == 6' "one streamed logprob per token"
ok "logprobs (chat, legacy, streamed)"

# ---- seeds ----
SEED='{"prompt":"Once upon a time","temperature":1.0,"max_tokens":24,"seed":1234}'
post "$U/v1/completions" "$O.s1" "$SEED" >/dev/null
post "$U/v1/completions" "$O.s2" "$SEED" >/dev/null
[ "$(jget "$O.s1" 'd["choices"][0]["text"]')" = "$(jget "$O.s2" 'd["choices"][0]["text"]')" ] ||
    fail "the same seed gave different text"
ok "seed reproducibility"

# ---- /tokenize, /detokenize ----
expect_status "$(post "$U/tokenize" "$O" '{"prompt":"Once upon a time"}')" 200 "/tokenize"
jcheck "$O" 'd["tokens"][0] == 1 and d["count"] == 5' "/tokenize prompt adds BOS"
expect_status "$(post "$U/detokenize" "$O" "{\"tokens\":$IDS}")" 200 "/detokenize"
jcheck "$O" 'd["prompt"] == "Once upon a time"' "/detokenize round trip"
expect_status "$(post "$U/tokenize" "$O" '{"prompt":"<s>Hi","add_special_tokens":false}')" 200 "/tokenize special"
jcheck "$O" 'd["tokens"][0] == 1' "control-token text is parsed (parse_special)"
expect_status "$(post "$U/detokenize" "$O" '{"tokens":[1,99999]}')" 400 "/detokenize bad id"
expect_status "$(post "$U/tokenize" "$O" '{"prompt":"x","model":"nope"}')" 404 "/tokenize unknown model"
ok "/tokenize and /detokenize"

# ---- errors ----
expect_status "$(post "$U/v1/chat/completions" "$O" '{"messages": [')" 400 "bad JSON"
jcheck "$O" 'd["error"]["type"] == "invalid_request_error" and "message" in d["error"]
and "param" in d["error"] and "code" in d["error"]' "error body shape"
expect_status "$(post "$U/v1/chat/completions" "$O" '{"model":"stories260K"}')" 400 "missing messages"
jcheck "$O" 'd["error"]["param"] == "messages"' "missing messages param"
expect_status "$(post "$U/v1/chat/completions" "$O" '{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}')" 400 "wrong type"
jcheck "$O" 'd["error"]["param"] == "max_tokens"' "wrong type param"
expect_status "$(post "$U/v1/chat/completions" "$O" '{"messages":[{"role":"user","content":"x"}],"temperature":7}')" 400 "out of range"
jcheck "$O" 'd["error"]["param"] == "temperature"' "out of range param"
expect_status "$(post "$U/v1/chat/completions" "$O" '{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}')" 404 "unknown model"
jcheck "$O" 'd["error"]["code"] == "model_not_found"' "unknown model code"
expect_status "$(post "$U/v1/completions" "$O" '{"prompt":"Once upon a time","max_tokens":2045}')" 400 "context exceeded"
jcheck "$O" 'd["error"]["code"] == "context_length_exceeded"' "context_length_exceeded code"
FIT=$(python3 -c 'print("{\"prompt\":" + str([1] + [300] * 2039) + ",\"max_tokens\":8,\"ignore_eos\":true}")')
expect_status "$(post "$U/v1/completions" "$O" "$FIT")" 200 "prompt + max_tokens == the context"
jcheck "$O" 'd["usage"]["prompt_tokens"] == 2040 and d["usage"]["completion_tokens"] == 8' "exact fit"
LONG=$(python3 -c 'print("{\"prompt\":" + str([1] + [300] * 2100) + "}")')
expect_status "$(post "$U/v1/completions" "$O" "$LONG")" 400 "prompt over the context"
jcheck "$O" 'd["error"]["code"] == "context_length_exceeded"' "long prompt code"
expect_status "$(post "$U/v1/completions" "$O" '{"prompt":"x","n":17}')" 400 "n over 16"
expect_status "$(http GET "$U/v1/nothing" "$O")" 404 "unknown route"
jcheck "$O" 'd["error"]["type"] == "not_found_error"' "404 body"
expect_status "$(http GET "$U/v1/chat/completions" "$O")" 405 "wrong method"
header "$O.h" allow | grep -q POST || fail "405 without Allow: POST"
jcheck "$O" '"error" in d' "405 body"
expect_status "$(http DELETE "$U/v1/models" "$O")" 405 "DELETE /v1/models"
python3 -c 'import sys; sys.stdout.write("{\"prompt\":\"" + "a" * (9 << 20) + "\"}")' >"$TMP/big.json"
expect_status "$(http POST "$U/v1/completions" "$O" -H 'Content-Type: application/json' --data-binary @"$TMP/big.json")" 413 "body over 8 MiB"
jcheck "$O" '"error" in d' "413 body"
expect_status "$(http POST "$U/v1/completions" "$O" -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big.json")" 413 "chunked body over 8 MiB"
rm -f "$TMP/big.json"
ok "errors: 400 (JSON, missing, type, range, context), 404, 405, 413"

# ---- a client that disconnects mid-stream, then normal service ----
DISC='{"prompt":"Once upon a time","max_tokens":2000,"ignore_eos":true,"stream":true}'
$UTIL disconnect "$U" /v1/completions "$DISC" >/dev/null || fail "disconnect client"
for _ in $(seq 1 100); do
    http GET "$U/metrics" "$O.m" >/dev/null
    grep -q '^cinder_requests_cancelled_total{model_name="stories260K"} [1-9]' "$O.m" &&
        grep -q '^vllm:num_requests_running{model_name="stories260K"} 0' "$O.m" && break
    sleep 0.1
done
grep -q '^cinder_requests_cancelled_total{model_name="stories260K"} [1-9]' "$O.m" ||
    fail "the disconnect was not cancelled: $(grep cancelled "$O.m")"
grep -q '^vllm:num_requests_running{model_name="stories260K"} 0' "$O.m" ||
    fail "a request still runs after the disconnect"
# a non-streamed request whose client leaves while tokens are being generated
$UTIL disconnect-full "$U" /v1/completions '{"prompt":"Once upon a time","max_tokens":2000,"ignore_eos":true}' >/dev/null ||
    fail "disconnect-full client"
for _ in $(seq 1 100); do
    http GET "$U/metrics" "$O.m" >/dev/null
    grep -q '^cinder_requests_cancelled_total{model_name="stories260K"} [2-9]' "$O.m" &&
        grep -q '^vllm:num_requests_running{model_name="stories260K"} 0' "$O.m" && break
    sleep 0.05
done
grep -q '^cinder_requests_cancelled_total{model_name="stories260K"} [2-9]' "$O.m" ||
    fail "the non-streamed disconnect was not cancelled: $(grep cancelled "$O.m")"
grep -q '^vllm:num_requests_running{model_name="stories260K"} 0' "$O.m" ||
    fail "a non-streamed request still runs after its client left"
expect_status "$(post "$U/v1/chat/completions" "$O" "$CHAT")" 200 "service after a disconnect"
[ "$(jget "$O" 'd["choices"][0]["message"]["content"]')" = "$(jget "$O.chat" 'd["choices"][0]["message"]["content"]')" ] ||
    fail "another greedy answer after a disconnect"
ok "mid-stream disconnect cancels; service goes on"

# ---- 8 clients at once ----
pids=()
for i in $(seq 1 8); do
    if [ $((i % 2)) = 0 ]; then
        post "$U/v1/chat/completions" "$O.p$i" "{\"messages\":[{\"role\":\"user\",\"content\":\"story $i\"}],\"max_tokens\":48,\"temperature\":0}" >"$O.p$i.code" &
    else
        post "$U/v1/completions" "$O.p$i" "{\"prompt\":\"Once upon a time $i\",\"max_tokens\":48,\"stream\":true,\"temperature\":0.8,\"seed\":$i}" -N >"$O.p$i.code" &
    fi
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a parallel client failed"; done
for i in $(seq 1 8); do
    expect_status "$(cat "$O.p$i.code")" 200 "parallel client $i"
    if [ $((i % 2)) = 0 ]; then
        jcheck "$O.p$i" 'd["choices"][0]["finish_reason"] in ("stop", "length")' "parallel chat $i"
    else
        $UTIL sse-check "$O.p$i" completion >/dev/null || fail "parallel stream $i"
    fi
done
# batch invariance: the greedy answer under load equals the one alone
post "$U/v1/chat/completions" "$O.alone" '{"messages":[{"role":"user","content":"story 2"}],"max_tokens":48,"temperature":0}' >/dev/null
[ "$(jget "$O.alone" 'd["choices"][0]["message"]["content"]')" = "$(jget "$O.p2" 'd["choices"][0]["message"]["content"]')" ] ||
    fail "greedy text under load differs from the text alone"
ok "8 simultaneous clients all complete"

# ---- /metrics ----
expect_status "$(http GET "$U/metrics" "$O.m")" 200 "/metrics"
header "$O.m.h" content-type | grep -q '^text/plain; version=0.0.4' || fail "/metrics content type"
for name in 'vllm:num_requests_running' 'vllm:num_requests_waiting' 'vllm:kv_cache_usage_perc' \
    'vllm:prompt_tokens_total' 'vllm:generation_tokens_total' 'vllm:request_success_total' \
    'vllm:time_to_first_token_seconds_bucket' 'vllm:e2e_request_latency_seconds_count' \
    'cinder_http_requests_total'; do
    grep -q "^$name{" "$O.m" || fail "/metrics lacks $name"
done
grep -q '^cinder_http_requests_total{.*route="/v1/chat/completions".*status="200".*} [1-9]' "$O.m" ||
    grep -q '^cinder_http_requests_total{.*status="200".*route="/v1/chat/completions".*} [1-9]' "$O.m" ||
    fail "/metrics lacks the chat route count"
grep -q 'model_name="stories260K"' "$O.m" || fail "/metrics lacks model_name"
ok "/metrics"

stop_server A

# ---- queue full: 503 + Retry-After ----
# one running sequence and a queue of one: two long streams fill both, a third request is refused
start_server B --max-num-seqs 1 --max-waiting 1 --ctx-size 4096 --connection-timeout-s 2
LONGS='{"prompt":"Once upon a time","max_tokens":4000,"ignore_eos":true,"stream":true}'
# wait_gauge NAME VALUE: poll /metrics until the gauge shows VALUE (up to 5 s)
wait_gauge() {
    for _ in $(seq 1 100); do
        http GET "$B_URL/metrics" "$O.m" >/dev/null
        grep -q "^vllm:$1{model_name=\"stories260K\"} $2\$" "$O.m" && return 0
        sleep 0.05
    done
    return 0
}
curl -sN --max-time 60 "$B_URL/v1/completions" -d "$LONGS" >/dev/null &
L1=$!
wait_gauge num_requests_running 1
curl -sN --max-time 60 "$B_URL/v1/completions" -d "$LONGS" >/dev/null &
L2=$!
wait_gauge num_requests_waiting 1
grep -q '^vllm:num_requests_waiting{model_name="stories260K"} 1' "$O.m" ||
    fail "the queue did not fill: $(grep -E '^vllm:num_requests_(running|waiting)' "$O.m")"
expect_status "$(post "$B_URL/v1/completions" "$O" '{"prompt":"x"}')" 503 "queue full"
[ "$(header "$O.h" retry-after)" = "1" ] || fail "503 without Retry-After"
jcheck "$O" 'd["error"]["type"] == "service_unavailable_error"' "503 body"
kill "$L1" "$L2" 2>/dev/null
wait "$L1" "$L2" 2>/dev/null
expect_status "$(http GET "$B_URL/health" "$O")" 200 "/health with a full queue"
ok "queue full -> 503 + Retry-After"

# ---- limits: header size, a stalled body, a trickling body ----
BIGH=$(python3 -c 'print("a" * 40000)')
expect_status "$(http GET "$B_URL/health" "$O" -H "X-Big: $BIGH")" 431 "headers over max_header_bytes"
python3 - "$B_PORT" <<'PYEOF' || fail "slow senders are not cut off"
import socket, sys, time
port = int(sys.argv[1])
# a body that stops half way: the idle timeout (2 s) closes the connection
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro")
s.settimeout(15)
t = time.time()
assert s.recv(100) == b"", "got an answer to half a body"
assert time.time() - t < 6, "the stalled connection stayed open %.1f s" % (time.time() - t)
# one byte every 0.4 s never idles, but the whole body must arrive within the timeout
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
t = time.time()
try:
    for i in range(40):
        s.sendall(b" ")
        time.sleep(0.4)
    sys.exit("a trickling body held the connection for %.1f s" % (time.time() - t))
except OSError:
    pass
PYEOF
ok "limits: 431 for big headers; stalled and trickling bodies are cut off"
stop_server B

echo "test_e2e_curl: $N_CHECKS groups passed"
