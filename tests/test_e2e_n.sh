# ctest-labels: e2e
# test_e2e_n.sh: n > 1 (parallel sampling) through cinder serve with stories260K: non-streamed
# chat and completions with n=3 (three choices, indices 0..2, usage summed over the choices),
# streamed n=3 (every chunk's index, one finish_reason per choice, usage, [DONE] last, and each
# choice's text equal to the non-streamed one with the same seed), n=17 refused with 400 "n".
source "$(dirname "$0")/e2e/lib.sh"

start_server A
U=$A_URL
O="$TMP/out.json"

CHAT='{"messages":[{"role":"user","content":"Tell me a story"}],"n":3,"seed":7,"temperature":1.0,"max_tokens":24,"logprobs":true}'
expect_status "$(post "$U/v1/chat/completions" "$O" "$CHAT")" 200 "chat n=3"
jcheck "$O" 'd["object"] == "chat.completion" and [c["index"] for c in d["choices"]] == [0, 1, 2]' "chat n=3 indices"
jcheck "$O" 'all(c["finish_reason"] in ("stop", "length") and c["message"]["role"] == "assistant" and len(c["logprobs"]["content"]) > 0 for c in d["choices"])' "chat n=3 choices"
jcheck "$O" 'd["usage"]["completion_tokens"] == sum(len(c["logprobs"]["content"]) + (1 if c["finish_reason"] == "stop" else 0) for c in d["choices"]) or d["usage"]["completion_tokens"] >= sum(len(c["logprobs"]["content"]) for c in d["choices"])' "chat n=3 usage summed"
jcheck "$O" 'd["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + d["usage"]["completion_tokens"]' "chat n=3 total"
jcheck "$O" 'len(set(c["message"]["content"] for c in d["choices"])) > 1' "chat n=3 choices differ"
cp "$O" "$TMP/chat_full.json"
ok "non-streamed chat n=3"

PROMPT_TOKENS=$(jget "$O" 'd["usage"]["prompt_tokens"]')
CHAT1=$(echo "$CHAT" | sed 's/"n":3,//')
expect_status "$(post "$U/v1/chat/completions" "$O" "$CHAT1")" 200 "chat n=1"
jcheck "$O" "d['usage']['prompt_tokens'] == $PROMPT_TOKENS" "prompt tokens counted once"
python3 - "$O" "$TMP/chat_full.json" <<'EOF' || fail "choice 0 differs from n=1 with the same seed"
import json, sys
one = json.load(open(sys.argv[1])); full = json.load(open(sys.argv[2]))
sys.exit(0 if one["choices"][0]["message"]["content"] == full["choices"][0]["message"]["content"] else 1)
EOF
ok "choice 0 == n=1 with the same seed; prompt counted once"

COMP='{"prompt":"Once upon a time","n":3,"seed":11,"max_tokens":16}'
expect_status "$(post "$U/v1/completions" "$O" "$COMP")" 200 "completion n=3"
jcheck "$O" 'd["object"] == "text_completion" and [c["index"] for c in d["choices"]] == [0, 1, 2]' "completion n=3 indices"
jcheck "$O" 'all(c["finish_reason"] in ("stop", "length") for c in d["choices"]) and d["usage"]["completion_tokens"] <= 48 and d["usage"]["completion_tokens"] >= 3' "completion n=3 usage"
cp "$O" "$TMP/comp_full.json"
ok "non-streamed completion n=3"

# streamed: same seeds, texts per index must equal the non-streamed ones
check_stream() { # FILE FULL KIND
    python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
raw = open(sys.argv[1]).read()
full = json.load(open(sys.argv[2]))
kind = sys.argv[3]
events = [l[6:] for l in raw.split("\n") if l.startswith("data: ")]
assert events and events[-1] == "[DONE]", "no [DONE] last"
chunks = [json.loads(e) for e in events[:-1]]
texts, finish, roles, usage = {}, {}, set(), None
for c in chunks:
    if c.get("usage"):
        usage = c["usage"]
        assert c["choices"] == [], "usage chunk with choices"
        continue
    for ch in c["choices"]:
        i = ch["index"]
        assert i in (0, 1, 2), "bad index %r" % i
        assert i not in finish, "content after finish for %d" % i
        if kind == "chat":
            d = ch["delta"]
            if "role" in d:
                roles.add(i)
            texts[i] = texts.get(i, "") + (d.get("content") or "")
        else:
            texts[i] = texts.get(i, "") + ch["text"]
        if ch.get("finish_reason"):
            finish[i] = ch["finish_reason"]
assert sorted(finish) == [0, 1, 2], "finish reasons %r" % finish
if kind == "chat":
    assert roles == {0, 1, 2}, "roles %r" % roles
assert usage is not None, "no usage chunk"
assert chunks[-1].get("usage"), "usage not the last chunk"
for c in full["choices"]:
    want = c["message"]["content"] if kind == "chat" else c["text"]
    got = texts.get(c["index"], "")
    assert got == want, "choice %d: %r != %r" % (c["index"], got, want)
    assert finish[c["index"]] == c["finish_reason"], "finish of %d" % c["index"]
assert usage["completion_tokens"] == full["usage"]["completion_tokens"], "usage differs"
EOF
}
SCHAT=$(echo "$CHAT" | sed 's/}$/,"stream":true,"stream_options":{"include_usage":true}}/')
expect_status "$(post "$U/v1/chat/completions" "$TMP/s.txt" "$SCHAT" -N)" 200 "streamed chat n=3"
check_stream "$TMP/s.txt" "$TMP/chat_full.json" chat || fail "streamed chat n=3: $(head -c 800 "$TMP/s.txt")"
ok "streamed chat n=3 == non-streamed"
SCOMP=$(echo "$COMP" | sed 's/}$/,"stream":true,"stream_options":{"include_usage":true}}/')
expect_status "$(post "$U/v1/completions" "$TMP/s2.txt" "$SCOMP" -N)" 200 "streamed completion n=3"
check_stream "$TMP/s2.txt" "$TMP/comp_full.json" completion || fail "streamed completion n=3: $(head -c 800 "$TMP/s2.txt")"
ok "streamed completion n=3 == non-streamed"

expect_status "$(post "$U/v1/completions" "$O" '{"prompt":"x","n":17}')" 400 "n=17"
jcheck "$O" 'd["error"]["param"] == "n"' "n=17 param"
expect_status "$(post "$U/v1/completions" "$O" '{"prompt":"x","n":0}')" 400 "n=0"
ok "n out of range -> 400"

# the pool is whole again
curl -sS "$U/metrics" >"$TMP/m.txt" || fail "metrics"
ok "metrics reachable"
stop_server A
echo "test_e2e_n: $N_CHECKS groups passed"
