# ctest-labels: cli
# test_cli_inspect.sh: `cinder inspect` and `cinder inspect --json` on every shared GGUF (exit 0,
# JSON that parses, key fields right), and on broken files (exit 1, a message naming the file
# and the offset, never a crash). $1 = cinder binary, $2 = shared dir.
set -u
CINDER=${1:?usage: test_cli_inspect.sh CINDER SHARED_DIR}
SHARED=${2:?usage: test_cli_inspect.sh CINDER SHARED_DIR}
MODELS=$SHARED/models
if [ ! -d "$MODELS" ]; then
    echo "no $MODELS: skipped"
    exit 77
fi
TMP=$(mktemp -d /tmp/cinder_inspect.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
n=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# run both modes on every file; one Python process then checks all the outputs
find "$MODELS" -name '*.gguf' -type f | sort > "$TMP/list"
while IFS= read -r f; do
    n=$((n + 1))
    "$CINDER" inspect "$f" > "$TMP/$n.txt" 2> "$TMP/err.txt"
    rc=$?
    [ $rc -eq 0 ] || fail "inspect $f: exit $rc: $(head -c 300 "$TMP/err.txt")"
    "$CINDER" inspect --json "$f" > "$TMP/$n.json" 2> "$TMP/err.txt"
    rc=$?
    [ $rc -eq 0 ] || fail "inspect --json $f: exit $rc: $(head -c 300 "$TMP/err.txt")"
done < "$TMP/list"
[ $n -gt 0 ] || { echo "no GGUF files under $MODELS: skipped"; exit 77; }
python3 - "$TMP" <<'PY' || fail "JSON/text checks (above)"
import json, os, sys
tmp = sys.argv[1]
files = open(f"{tmp}/list").read().split("\n")[:-1]
bad = 0
def err(f, msg):
    global bad
    bad += 1
    print(f"FAIL: {f}: {msg}", file=sys.stderr)
for i, f in enumerate(files, 1):
    try:
        d = json.load(open(f"{tmp}/{i}.json"))
    except Exception as e:
        err(f, f"--json output does not parse: {e}")
        continue
    txt = open(f"{tmp}/{i}.txt").read()
    s = d["summary"]
    nt = s["n_tensors"]
    if nt != len(d["tensors"]): err(f, "n_tensors disagrees with the tensor list")
    if d["version"] not in (2, 3): err(f, "bad version")
    if d["file_size"] != os.path.getsize(f): err(f, "wrong file_size")
    if not txt.startswith("file:"): err(f, "text output does not start with 'file:'")
    if f"tensors ({nt}):" not in txt: err(f, "text output lacks the tensor count")
    for t in d["tensors"]:
        if not (d["alignment"] and t["offset"] % d["alignment"] == 0 and t["offset"] + t["size"] <= d["file_size"]):
            err(f, f"tensor {t['name']} outside the file or misaligned")
    if "/vocab/" in f:
        if nt != 0: err(f, f"vocab file with {nt} tensors")
        if "no tensors" not in txt: err(f, "text output does not say 'no tensors'")
        if s["bits_per_weight"] is not None: err(f, "bits_per_weight not null")
        if "tokenizer.ggml.tokens" not in d["metadata"]: err(f, "no tokenizer.ggml.tokens")
    elif nt == 0:
        err(f, "model file with no tensors")
    if f.endswith("/models/stories260K.gguf"):
        want = {"architecture": s["architecture"] == "llama", "48 tensors": nt == 48,
                "v3": d["version"] == 3, "alignment 32": d["alignment"] == 32,
                "block_count 5": d["metadata"].get("llama.block_count") == 5,
                "512 tokens": d["metadata"]["tokenizer.ggml.tokens"]["n"] == 512,
                "32 bits per weight": abs(s["bits_per_weight"] - 32) < 1e-9,
                "text summary": "architecture:   llama" in txt and "tensors (48):" in txt}
        for k, ok in want.items():
            if not ok: err(f, f"stories260K: wrong {k}")
sys.exit(1 if bad else 0)
PY

S=$MODELS/stories260K.gguf
if [ -f "$S" ]; then
    # broken files: exit 1, a message with the file and "offset", never a signal
    for len in 3 10 20 100 1000 5000 $(( $(stat -c %s "$S") - 1 )); do
        head -c $len "$S" > "$TMP/trunc.gguf"
        "$CINDER" inspect "$TMP/trunc.gguf" > /dev/null 2> "$TMP/err.txt"
        rc=$?
        [ $rc -eq 1 ] || fail "truncated to $len: exit $rc (want 1)"
        grep -q "offset" "$TMP/err.txt" || fail "truncated to $len: no 'offset' in: $(cat "$TMP/err.txt")"
        grep -q "trunc.gguf" "$TMP/err.txt" || fail "truncated to $len: message does not name the file"
        "$CINDER" inspect --json "$TMP/trunc.gguf" > /dev/null 2>&1
        rc=$?
        [ $rc -eq 1 ] || fail "truncated to $len, --json: exit $rc (want 1)"
    done
    python3 - "$S" "$TMP" <<'PY'
import random, struct, sys
src, tmp = sys.argv[1], sys.argv[2]
b = bytearray(open(src, 'rb').read())
def put(name, data):
    open(f"{tmp}/{name}.gguf", 'wb').write(data)
v = bytearray(b); v[4:8] = struct.pack('<I', 7); put('badversion', v)
v = bytearray(b); v[8:16] = struct.pack('<Q', 1 << 60); put('hugetensors', v)
v = bytearray(b); v[16:24] = struct.pack('<Q', 1 << 63); put('hugekv', v)
v = bytearray(b); v[24:32] = struct.pack('<Q', 1 << 63); put('hugekey', v)
rng = random.Random(1234)
for i in range(40):
    v = bytearray(b)
    for _ in range(rng.randint(1, 3)):
        p = rng.randrange(min(len(v), 8192))
        v[p] ^= rng.randrange(1, 256)
    put(f'flip{i:02d}', v)
PY
    for name in badversion hugetensors hugekv hugekey; do
        "$CINDER" inspect "$TMP/$name.gguf" > /dev/null 2> "$TMP/err.txt"
        rc=$?
        [ $rc -eq 1 ] || fail "$name: exit $rc (want 1)"
        grep -q "offset" "$TMP/err.txt" || fail "$name: no 'offset' in: $(cat "$TMP/err.txt")"
    done
    for f in "$TMP"/flip*.gguf; do
        for mode in "" --json; do
            "$CINDER" inspect $mode "$f" > "$TMP/flip.out" 2> "$TMP/err.txt"
            rc=$?
            if [ $rc -eq 0 ]; then
                if [ "$mode" = --json ] && ! python3 -c 'import json,sys; json.load(sys.stdin)' < "$TMP/flip.out"; then
                    fail "$(basename "$f") --json: loaded but the JSON does not parse"
                fi
            elif [ $rc -eq 1 ]; then
                grep -q "offset" "$TMP/err.txt" || fail "$(basename "$f"): no 'offset' in: $(cat "$TMP/err.txt")"
            else
                fail "$(basename "$f") $mode: exit $rc (crash?)"
            fi
        done
    done
fi

"$CINDER" inspect "$TMP/does-not-exist.gguf" > /dev/null 2>&1
[ $? -eq 1 ] || fail "missing file: exit not 1"
"$CINDER" inspect > /dev/null 2>&1
[ $? -eq 2 ] || fail "no argument: exit not 2"

if [ $fails -gt 0 ]; then
    echo "$fails failures ($n files)"
    exit 1
fi
echo "ok: $n files"
