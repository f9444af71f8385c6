#!/usr/bin/env bash
# The full test suite: brings up the services the tests use, then runs every test of the
# workspace with all features. This is the command README.md gives and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/test-services.sh
cargo test --workspace --all-features --locked "$@"
