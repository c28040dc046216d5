#!/usr/bin/env bash
# gpu_check.sh: the CUDA backend's check on a machine with a GPU, from what bench/gpu_prepare.sh
# put in .gpu-run/ (run it there with carry [".gpu-run"]). Prints the card and its measured
# device-to-device copy bandwidth, runs the cuda tests, then for random-weight llama3-8b shapes in
# Q4_K, Q8_0 and F16: batch-1 decode tokens/s and the bandwidth it implies against the copy
# bandwidth and the datasheet peak, prefill tokens/s at 512, and aggregate decode tokens/s at 16
# and 64 sequences. Ends with the targets (H100): decode1 >= 80% of copy bandwidth for Q4_K and
# F16, decode64 >= 5000 tok/s for F16. Budget: under 6 minutes on an H100 (each step has a
# timeout). Exit status: 0 when tests pass and targets are met, 1 otherwise.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${GPU_RUN_DIR:-$ROOT/.gpu-run}
[ -d "$RUN/bin" ] || RUN=$(cd "$(dirname "$0")" && pwd) # gpu_check.sh copied into .gpu-run
BIN=$RUN/bin
export LD_LIBRARY_PATH="$RUN/lib:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}"
export CND_TEST_MODEL_DIR=$RUN/models
export CINDER_LOG_LEVEL=${CINDER_LOG_LEVEL:-warn}
START=$(date +%s)
FAIL=0
DEADLINE=${GPU_CHECK_DEADLINE:-350}
step() { echo; echo "== $* (t=$(( $(date +%s) - START ))s)"; }
# limit(step_max): seconds a step may take, so the whole check ends by DEADLINE
limit() { local left=$(( DEADLINE - ($(date +%s) - START) )); [ "$left" -lt 5 ] && left=5; [ "$1" -lt "$left" ] && left=$1; echo "$left"; }

step "card"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv,noheader 2>/dev/null || true
COPY_OUT=$(timeout "$(limit 60)" "$BIN/bench_gpu" copy 2>&1)
echo "$COPY_OUT"
COPY=$(echo "$COPY_OUT" | awk '/^copy_gbps/ {print $2}')
PEAK=$(echo "$COPY_OUT" | awk '/^peak_gbps/ {print $2}')
if [ -z "$COPY" ]; then
    echo "no usable GPU: ldd of bench_gpu follows"; ldd "$BIN/bench_gpu"; exit 1
fi

step "cuda tests"
for t in test_device test_cuda_rmsnorm test_cuda_ops test_cuda_forward; do
    T0=$(date +%s)
    case $t in test_cuda_forward) TL=90 ;; test_cuda_ops) TL=60 ;; *) TL=20 ;; esac
    timeout "$(limit $TL)" "$BIN/$t" > "/tmp/$t.log" 2>&1
    rc=$?
    case $rc in
        0) res=PASS ;;
        77) res=SKIP; FAIL=1 ;;  # on the GPU machine a skip is a failure
        124) res=TIMEOUT; FAIL=1 ;;
        *) res="FAIL($rc)"; FAIL=1 ;;
    esac
    echo "$res $t ($(( $(date +%s) - T0 ))s)"
    [ $rc -ne 0 ] && tail -n 40 "/tmp/$t.log"
    grep -E "graph|skipped" "/tmp/$t.log" | head -n 12
done

declare -A D1 D64
for ty in q4_k q8_0 f16; do
    step "llama3-8b $ty"
    OUT=$(timeout "$(limit 80)" "$BIN/bench_gpu" model --preset llama3-8b --type "$ty" --copy-gbps "$COPY" \
          --peak-gbps "${PEAK:-0}" --prefill 512 --decode 64 --seqs 16,64 --ctx 128 2>&1)
    rc=$?
    echo "$OUT"
    [ $rc -ne 0 ] && { echo "bench failed (rc $rc)"; FAIL=1; }
    D1[$ty]=$(echo "$OUT" | awk '/^decode1_frac_copy/ {print $2}')
    D64[$ty]=$(echo "$OUT" | awk '/^decode64 / {print $2}')
done

step "targets (H100)"
check() { # name value op threshold
    if [ -z "$2" ]; then echo "MISSING $1"; FAIL=1; return; fi
    if awk -v v="$2" -v t="$4" "BEGIN{exit !(v $3 t)}"; then echo "MET     $1 = $2 (target $3 $4)";
    else echo "MISSED  $1 = $2 (target $3 $4)"; FAIL=1; fi
}
check "q4_k decode1 / copy bandwidth" "${D1[q4_k]:-}" ">=" 0.80
check "f16 decode1 / copy bandwidth" "${D1[f16]:-}" ">=" 0.80
check "f16 decode64 tok/s" "${D64[f16]:-}" ">=" 5000
echo "total $(( $(date +%s) - START ))s"
exit $FAIL
