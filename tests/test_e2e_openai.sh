# ctest-labels: e2e
# test_e2e_openai.sh: cinder serve driven by the official openai npm package (tests/e2e/
# openai.mjs): create, streams, the accumulating stream helper, stop, logprobs, seeds, SDK
# error classes, concurrency and API keys. Skips when node or the package is missing
# (cd tests/e2e && npm ci).
source "$(dirname "$0")/e2e/lib.sh"

if ! command -v node >/dev/null; then
    echo "skip: node is not installed"
    exit 77
fi
if [ ! -d "$E2E_DIR/node_modules/openai" ]; then
    echo "skip: the openai package is not installed (cd tests/e2e && npm ci)"
    exit 77
fi

start_server A
start_server K --api-key sk-test-one --api-key sk-test-two
node "$E2E_DIR/openai.mjs" "$A_URL/v1" "$K_URL/v1" sk-test-two || fail "openai.mjs"
ok "openai SDK suite"
stop_server A
stop_server K
echo "test_e2e_openai: $N_CHECKS groups passed"
