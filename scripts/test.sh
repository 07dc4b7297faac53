#!/usr/bin/env bash
# The project's one test command: the TypeScript suite (node's test runner), then the trainer's
# Python suite (pytest). Both must pass.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.test.json   # types of the library, tests and benchmarks
npx tsc -p web/tsconfig.json    # types of the web page's modules (browser)
mapfile -t files < <(find test -name '*.test.ts' | sort)
status=0
# --test-force-exit: a file whose tests have all finished ends even if a client it opened (e.g. to a Redis the test
# killed) still holds the event loop; --test-timeout bounds any single test.
node --import tsx --test --test-concurrency=1 --test-force-exit --test-timeout=900000 "${files[@]}" || status=$?
PYTHON="${PIXEL_INFO_PYTHON:-/usr/bin/python3}"
"$PYTHON" -m pytest -q -p no:cacheprovider trainer/tests || status=$?
exit $status
