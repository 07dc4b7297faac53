#!/usr/bin/env bash
# The project's one test command: TypeScript tests (node's test runner) then the Python trainer's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find test -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency=1 "${files[@]}"
