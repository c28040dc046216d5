# ctest-labels: cli
# test_cli_tokenize.sh: `cinder tokenize` / `cinder detokenize` on vocab-only GGUFs.
# $1 = cinder binary, $2 = shared dir. Exit 77 (skip) when the vocab files are missing.
set -u
CINDER=$1
V=$2/models/vocab
[ -f "$V/ggml-vocab-llama-spm.gguf" ] || { echo "skip: no vocab files"; exit 77; }
fails=0

check() { # name expected actual
    if [ "$2" == "$3" ]; then
        echo "ok   $1"
    else
        echo "FAIL $1: expected [$2] got [$3]"
        fails=$((fails + 1))
    fi
}

SPM=$V/ggml-vocab-llama-spm.gguf
L3=$V/ggml-vocab-llama-bpe.gguf
QW=$V/ggml-vocab-qwen2.gguf

check "spm default adds BOS" "1 15043 3186" "$("$CINDER" tokenize -m "$SPM" "Hello world")"
check "spm --no-bos" "15043 3186" "$("$CINDER" tokenize -m "$SPM" --no-bos -t 2 "Hello world")"
check "spm newline" "29871 13" "$("$CINDER" tokenize -m "$SPM" --no-bos $'\n')"
check "llama3 --special" "128000 128006 882 128007 271 9906 1917 128009" \
    "$("$CINDER" tokenize -m "$L3" --special $'<|start_header_id|>user<|end_header_id|>\n\nHello world<|eot_id|>')"
check "qwen2 control text is plain text" "27 91 318 4906 91 29 872" \
    "$("$CINDER" tokenize -m "$QW" "<|im_start|>user")"
check "qwen2 --special" "151644 872" "$("$CINDER" tokenize -m "$QW" --special "<|im_start|>user")"
check "qwen2 user-defined always" "151657" "$("$CINDER" tokenize -m "$QW" "<tool_call>")"

check "spm detokenize" "Hello world" "$("$CINDER" detokenize -m "$SPM" 15043 3186)"
out=$("$CINDER" detokenize -m "$SPM" 1 15043 3186; echo x)
check "spm detokenize after BOS keeps the space (llama.cpp)" "[ Hello world]" "[${out%x}]"
check "spm detokenize --special" "<s> Hello world</s>" \
    "$("$CINDER" detokenize -m "$SPM" --special 1 15043 3186 2)"
check "llama3 detokenize drops control" "Hello world" \
    "$("$CINDER" detokenize -m "$L3" 128000 9906 1917 128009)"
check "detokenize adds no newline" "5" "$("$CINDER" detokenize -m "$L3" 9906 | wc -c | tr -d ' ')"
# round trip of a mixed string
TXT=$'Hello, wörld! 123 🦙\n\tend'
for m in "$SPM" "$L3" "$QW"; do
    ids=$("$CINDER" tokenize -m "$m" --no-bos "$TXT")
    check "round trip $(basename "$m")" "$TXT" "$("$CINDER" detokenize -m "$m" $ids)"
done

"$CINDER" detokenize -m "$SPM" 99999999 >/dev/null 2>&1
check "bad id fails" "2" "$?"
"$CINDER" tokenize -m "$V/ggml-vocab-bert-bge.gguf" hi >/dev/null 2>&1
check "unsupported vocab fails" "1" "$?"

[ $fails -eq 0 ] || { echo "$fails failed"; exit 1; }
echo "all passed"
