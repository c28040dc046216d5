# ctest-labels: cli model
# test_cli_eval.sh: `cinder eval` prints one JSON line per input position with the top-K next
# tokens as natural-log probabilities: checked against llama.cpp's prompt_top5 (ids in order) for
# every stories260K reference case, logprobs normalised (sum of exp over top-K <= 1, descending);
# `cinder bench` prints its pp/tg lines in the documented form.
set -u
BIN=$1
SHARED=$2
M=$SHARED/models/stories260K.gguf
[ -f "$M" ] || { echo "no $M: skipped"; exit 77; }
python3 - "$BIN" "$M" "$SHARED/reference/stories260K.json" <<'PY'
import json, math, subprocess, sys
binary, model, ref = sys.argv[1:4]
fail = 0
for case in json.load(open(ref))["cases"]:
    toks = case["prompt_tokens"]
    out = subprocess.run([binary, "eval", "-m", model, "--tokens", " ".join(map(str, toks)), "--top", "5"],
                         capture_output=True, text=True)
    lines = [json.loads(l) for l in out.stdout.splitlines()]
    ok = out.returncode == 0 and len(lines) == len(toks)
    for i, (line, want) in enumerate(zip(lines, case["prompt_top5"])):
        ids = [t[0] for t in line["top"]]
        lps = [t[1] for t in line["top"]]
        if line["pos"] != i or len(ids) != 5:
            ok = False
        if lps != sorted(lps, reverse=True) or sum(math.exp(x) for x in lps) > 1.0001:
            ok = False
        # top-1 must agree; the rest where llama.cpp's logits are not near-ties
        wids = [t[0] for t in want]
        wl = [t[1] for t in want]
        for k in range(5):
            if ids[k] != wids[k] and (k == 0 or abs(wl[k] - wl[k - 1]) > 0.05) and (k == 4 or abs(wl[k] - wl[k + 1]) > 0.05):
                ok = False
                print(f"  {case['id']} pos {i} rank {k}: {ids[k]} vs {wids[k]}")
    print(("ok  " if ok else "FAIL"), "eval", case["id"], f"({len(toks)} positions)")
    fail |= not ok
bad = subprocess.run([binary, "eval", "-m", model, "--tokens", "1 99999"], capture_output=True, text=True)
ok = bad.returncode == 2 and "outside the vocabulary" in bad.stderr
print(("ok  " if ok else "FAIL"), "eval rejects an id outside the vocabulary")
fail |= not ok
b = subprocess.run([binary, "bench", "-m", model, "-p", "32", "-n", "16", "-r", "2"], capture_output=True, text=True)
import re
ok = b.returncode == 0 and re.search(r"^pp32 [0-9.]+ tok/s$", b.stdout, re.M) and re.search(r"^tg16 [0-9.]+ tok/s$", b.stdout, re.M)
print(("ok  " if ok else "FAIL"), "bench output:", b.stdout.strip().replace("\n", " | "))
fail |= not ok
sys.exit(1 if fail else 0)
PY
