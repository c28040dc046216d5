#!/usr/bin/env bash
# gpu_prepare.sh: build the CUDA binaries here and fill .gpu-run/ with everything the GPU check
# needs, since the GPU machine has CUDA and CMake but none of our Debian packages and no
# ../shared: the binaries, the shared libraries they load (found with ldd; CUDA's own libraries
# stay behind, the GPU machine has CUDA 13), and the model files the tests read.
# Then, on the GPU machine: bash bench/gpu_check.sh   (device run with carry [".gpu-run"])
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build/cuda}
SHARED=${CND_SHARED_DIR:-$ROOT/../shared}
OUT=$ROOT/.gpu-run
JOBS=${JOBS:-$(nproc)}

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCINDER_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES="80;90" >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target cinder bench_gpu test_cuda_rmsnorm test_cuda_ops \
      test_cuda_forward test_device

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib" "$OUT/models"
BINS="cinder bench_gpu test_cuda_rmsnorm test_cuda_ops test_cuda_forward test_device"
for b in $BINS; do
    cp "$BUILD/$b" "$OUT/bin/"
    strip --strip-debug "$OUT/bin/$b" 2>/dev/null || true
done
# shared libraries: everything ldd resolves except the C runtime and CUDA's own
for b in $BINS; do ldd "$OUT/bin/$b"; done | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
        libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libcuda.so*|libcudart*|libcublas*|libnvidia*) ;;
        *) cp -L "$lib" "$OUT/lib/" ;;
    esac
done
cp "$SHARED/models/stories260K.gguf" "$OUT/models/" 2>/dev/null ||
    echo "warning: $SHARED/models/stories260K.gguf missing: the forward test will skip it"
cp "$ROOT/bench/gpu_check.sh" "$OUT/" 2>/dev/null || true
echo "== .gpu-run:"
ls -la "$OUT/bin" "$OUT/lib" "$OUT/models"
SIZE=$(du -sm "$OUT" | cut -f1)
echo "== .gpu-run is ${SIZE} MiB (the device run carries at most 64 MiB with the tree)"
if [ "$SIZE" -gt 56 ]; then
    echo "error: .gpu-run too large" >&2
    exit 1
fi
