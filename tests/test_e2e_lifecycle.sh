# ctest-labels: e2e
# test_e2e_lifecycle.sh: cinder serve around the requests: --help and config precedence, API
# keys (flags and environment), CORS preflight, a chat template that raises, systemd notify
# messages on a fake NOTIFY_SOCKET (READY, WATCHDOG, STOPPING), and SIGTERM: a running stream
# completes and the process exits 0; past the drain timeout streams end with an error event.
source "$(dirname "$0")/e2e/lib.sh"
UTIL="python3 $E2E_DIR/e2e_util.py"
O=$TMP/out

# ---- --help lists every key; config precedence: defaults < file < env < flags ----
"$CINDER" serve --help >"$TMP/help.txt" || fail "serve --help"
"$CINDER" serve --print-config >"$TMP/defaults.yaml" || fail "--print-config"
while IFS=: read -r key _; do
    flag="--${key//_/-}"
    grep -q -- "$flag " "$TMP/help.txt" || fail "--help does not list $flag"
done <"$TMP/defaults.yaml"
grep -q -- '--api-key KEY' "$TMP/help.txt" || fail "--help does not list --api-key"
grep -q -- '--config FILE' "$TMP/help.txt" || fail "--help does not list --config"
printf 'port: 1111\nctx_size: 100\nmax_num_seqs: 7\n' >"$TMP/c.yaml"
"$CINDER" serve -m "$MODEL" --config "$TMP/c.yaml" --print-config >"$O" || fail "--config"
grep -q '^ctx_size: 100$' "$O" && grep -q '^port: 1111$' "$O" || fail "file < defaults"
CINDER_CTX_SIZE=200 "$CINDER" serve -m "$MODEL" --config "$TMP/c.yaml" --print-config >"$O"
grep -q '^ctx_size: 200$' "$O" && grep -q '^max_num_seqs: 7$' "$O" || fail "env over file"
CINDER_CTX_SIZE=200 "$CINDER" serve -m "$MODEL" --config "$TMP/c.yaml" -c 300 --print-config >"$O"
grep -q '^ctx_size: 300$' "$O" || fail "flag over env"
CINDER_CONFIG="$TMP/c.yaml" "$CINDER" serve -m "$MODEL" --ctx-size=400 --print-config >"$O"
grep -q '^ctx_size: 400$' "$O" && grep -q '^port: 1111$' "$O" || fail "CINDER_CONFIG, --flag=value"
rc=0
"$CINDER" serve -m "$MODEL" --no-such-flag 2>"$O" || rc=$?
[ "$rc" = 2 ] && grep -q "unknown option" "$O" || fail "unknown flag: exit $rc"
rc=0
"$CINDER" serve -m "$TMP/missing.gguf" --port 0 2>"$O" || rc=$?
[ "$rc" != 0 ] && grep -q "missing.gguf" "$O" || fail "missing model: exit $rc"
ok "--help, config precedence, bad flags and a missing model"

# ---- API keys, CORS, a template that raises ----
cat >"$TMP/tmpl.jinja" <<'EOF'
{%- if messages[0]['role'] == 'system' -%}
{{ raise_exception('System messages are not supported by this template') }}
{%- endif -%}
{%- for m in messages -%}<|{{ m['role'] }}|>{{ m['content'] }}</s>{%- endfor -%}
{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}
EOF
start_server C --api-key sk-one --api-key sk-two --allowed-origins http://example.com \
    --chat-template "$TMP/tmpl.jinja" --served-model-name tiny-stories
U=$C_URL
KEY=(-H 'Authorization: Bearer sk-two')
expect_status "$(http GET "$U/v1/models" "$O")" 401 "no key"
jcheck "$O" 'd["error"]["type"] == "authentication_error"' "401 body"
[ "$(header "$O.h" www-authenticate)" = "Bearer" ] || fail "401 without WWW-Authenticate"
expect_status "$(http GET "$U/v1/models" "$O" -H 'Authorization: Bearer sk-three')" 401 "wrong key"
expect_status "$(post "$U/tokenize" "$O" '{"prompt":"x"}')" 401 "/tokenize without a key"
expect_status "$(post "$U/v1/chat/completions" "$O" '{"messages":[]}')" 401 "chat without a key"
expect_status "$(http GET "$U/v1/models" "$O" "${KEY[@]}")" 200 "right key"
jcheck "$O" 'd["data"][0]["id"] == "tiny-stories"' "--served-model-name"
expect_status "$(http GET "$U/v1/models" "$O" -H 'Authorization: Bearer sk-one')" 200 "first key"
for p in /health /ready /metrics; do
    expect_status "$(http GET "$U$p" "$O")" 200 "$p stays open"
done
ok "API keys: 401 with an OpenAI body, success with either key; /health /ready /metrics open"

expect_status "$(http OPTIONS "$U/v1/chat/completions" "$O" -H 'Origin: http://example.com' \
    -H 'Access-Control-Request-Method: POST' \
    -H 'Access-Control-Request-Headers: authorization, content-type')" 204 "preflight"
[ "$(header "$O.h" access-control-allow-origin)" = "http://example.com" ] || fail "preflight origin"
header "$O.h" access-control-allow-methods | grep -q POST || fail "preflight methods"
header "$O.h" access-control-allow-headers | grep -qi authorization || fail "preflight headers"
expect_status "$(http OPTIONS "$U/v1/chat/completions" "$O" -H 'Origin: http://evil.example' \
    -H 'Access-Control-Request-Method: POST')" 204 "preflight, other origin"
[ -z "$(header "$O.h" access-control-allow-origin)" ] || fail "CORS for an origin not allowed"
expect_status "$(http GET "$U/v1/models" "$O" "${KEY[@]}" -H 'Origin: http://example.com')" 200 "CORS GET"
[ "$(header "$O.h" access-control-allow-origin)" = "http://example.com" ] || fail "CORS on a response"
ok "CORS: preflight answered, origins checked"

SYS='{"model":"tiny-stories","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"hi"}]}'
expect_status "$(post "$U/v1/chat/completions" "$O" "$SYS" "${KEY[@]}")" 400 "template raise"
jcheck "$O" '"System messages are not supported by this template" in d["error"]["message"]' "raise message"
USR='{"model":"tiny-stories","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"temperature":0}'
expect_status "$(post "$U/v1/chat/completions" "$O.chat" "$USR" "${KEY[@]}")" 200 "template chat"
expect_status "$(post "$U/tokenize" "$O.tok" '{"messages":[{"role":"user","content":"hi"}]}' "${KEY[@]}")" 200 "template tokenize"
[ "$(jget "$O.tok" 'd["count"]')" = "$(jget "$O.chat" 'd["usage"]["prompt_tokens"]')" ] ||
    fail "/tokenize differs from the chat prompt with --chat-template"
expect_status "$(post "$U/detokenize" "$O.det" "{\"tokens\":$(jget "$O.tok" 'd["tokens"]')}" "${KEY[@]}")" 200 "template detokenize"
# (the SPM encoder puts its space prefix on text after a control token, as llama.cpp does)
jcheck "$O.det" 'd["prompt"].replace(" ", "") == "<|user|>hi</s><|assistant|>"' "the rendered prompt"
jcheck "$O.tok" '2 in d["tokens"]' "</s> in the rendered template became the EOS token"
ok "--chat-template: a raise is a 400 with its message; /tokenize sees the same prompt"
stop_server C

# ---- systemd notify, keys from the environment ----
SOCK="$TMP/notify.sock"
$UTIL notify-listen "$SOCK" "$TMP/notify.txt" 60 &
LISTENER=$!
SERVER_PIDS+=("$LISTENER")
for _ in $(seq 1 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
NOTIFY_SOCKET="$SOCK" WATCHDOG_USEC=400000 CINDER_API_KEYS=env-key CINDER_API_KEY=sdk-key \
    CINDER_METRICS_REQUIRE_KEY=true \
    start_server N
for _ in $(seq 1 50); do grep -q '^WATCHDOG=1$' "$TMP/notify.txt" && break; sleep 0.1; done
grep -q '^READY=1$' "$TMP/notify.txt" || fail "no READY=1: $(cat "$TMP/notify.txt")"
grep -q '^WATCHDOG=1$' "$TMP/notify.txt" || fail "no WATCHDOG=1"
grep -q '^STATUS=serving' "$TMP/notify.txt" || fail "no STATUS="
expect_status "$(http GET "$N_URL/metrics" "$O")" 401 "metrics_require_key"
expect_status "$(http GET "$N_URL/metrics" "$O" -H 'Authorization: Bearer env-key')" 200 "CINDER_API_KEYS"
expect_status "$(http GET "$N_URL/v1/models" "$O" -H 'Authorization: Bearer sdk-key')" 200 "CINDER_API_KEY"
stop_server N
grep -q '^STOPPING=1$' "$TMP/notify.txt" || fail "no STOPPING=1"
kill "$LISTENER" 2>/dev/null
ok "systemd: READY=1, STATUS, WATCHDOG=1 pings, STOPPING=1; keys from CINDER_* env"

# ---- SIGTERM: the running stream completes, new connections are refused, exit 0 ----
start_server D --drain-timeout-s 60
DRAIN='{"messages":[{"role":"user","content":"Tell me a long story"}],"max_tokens":1500,"ignore_eos":true,"stream":true}'
$UTIL drain "$D_URL" /v1/chat/completions "$DRAIN" "$D_PID" >"$O" || fail "drain client"
jcheck "$O" 'd["finish_reason"] == "length"' "the stream finished during the drain"
if python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["seconds_after_sigterm"] > 0.6 else 1)' "$O"; then
    jcheck "$O" 'd["refused_during_drain"] is True' "new connections refused while draining"
fi
rc=0
wait "$D_PID" || rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after the drain"
grep -q 'draining' "$TMP/D.log" || fail "no drain in the log"
ok "SIGTERM drain: the running stream completed, exit 0"

# ---- past the drain timeout: the stream ends with an error event, exit 0 ----
start_server E --drain-timeout-s 1 --ctx-size 8192
LONGEST='{"prompt":"Once upon a time","max_tokens":8000,"ignore_eos":true,"stream":true}'
$UTIL drain "$E_URL" /v1/completions "$LONGEST" "$E_PID" --expect-error >"$O" || fail "drain timeout client"
jcheck "$O" 'd["error"]["type"] == "service_unavailable_error" and d["seconds_after_sigterm"] < 10' "error event after the drain timeout"
rc=0
wait "$E_PID" || rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after the drain timeout"
ok "drain timeout: the stream gets an error event, exit 0"

echo "test_e2e_lifecycle: $N_CHECKS groups passed"
