# ctest-labels: model slow
# test_perplexity.sh: `cinder perplexity` reproduces llama-perplexity's figures on
# reference/perplexity/stories-sampled.txt (llamacpp-perplexity.json): PPL within 0.002 for
# F32/F16 and 0.005 for the quantized files; for random-llama-256x4-q4_k_m (PPL ~ 4e10, see the
# README there) the mean NLL within 0.005 nats instead.
set -u
BIN=$1
SHARED=$2
T=$SHARED/reference/perplexity/stories-sampled.txt
J=$SHARED/reference/perplexity/llamacpp-perplexity.json
[ -f "$T" ] && [ -f "$J" ] || { echo "no perplexity reference: skipped"; exit 77; }
fail=0
run() { # model ctx tolerance field(ppl|nll)
  local out got want
  out=$("$BIN" perplexity -m "$SHARED/models/$1.gguf" -f "$T" -c "$2" 2>/dev/null)
  if [ "$4" = ppl ]; then got=$(printf %s "$out" | sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p')
  else got=$(printf %s "$out" | sed -n 's/^mean NLL = \([0-9.]*\).*/\1/p'); fi
  want=$(python3 -c "import json,sys; r=[r for r in json.load(open(sys.argv[1]))['runs'] if r['model_file']==sys.argv[2]+'.gguf' and r['n_ctx']==int(sys.argv[3])][0]; print(r['ppl'] if sys.argv[4]=='ppl' else r['running_mean_nll'][-1])" "$J" "$1" "$2" "$4")
  if python3 -c "import sys; sys.exit(0 if abs(float(sys.argv[1])-float(sys.argv[2]))<=float(sys.argv[3]) else 1)" "${got:-nan}" "$want" "$3"; then
    echo "ok   $1 -c $2: $4 $got (llama.cpp $want, tol $3)"
  else
    echo "FAIL $1 -c $2: $4 ${got:-none} (llama.cpp $want, tol $3)"; fail=1
  fi
}
run stories260K 128 0.002 ppl
run stories260K 256 0.002 ppl
run stories260K-f16 128 0.002 ppl
run stories260K-q8_0 128 0.005 ppl
run stories260K-q5_1 128 0.005 ppl
run stories260K-q4_0 128 0.005 ppl
run random-llama-256x4-q4_k_m 128 0.005 nll
exit $fail
