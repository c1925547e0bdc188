#!/usr/bin/env bash
# The GPU table of docs/benchmarks.md in one command (see scripts/benchmark/gpu_suite.py for what it measures).
#
#   scripts/benchmark/gpu_suite.sh [--wheels DIR] [gpu_suite.py flags, e.g. --dry-run, --json out.json]
#
# --wheels DIR: install the wheels in DIR first, offline (pip --no-index), into .gpu_deps/ next to
# this checkout, and put that folder on PYTHONPATH. Make DIR where the package index is reachable:
#   python scripts/benchmark/gpu_wheels.py --dest gpu_wheels
# (the dependencies of the suite beyond torch + torchvision, at the versions checked here, as wheels
# for CPython 3.12 on manylinux x86_64; `--python-version` for another Python).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PY=${PYTHON:-python3}
WHEELS=""
if [ "${1:-}" = "--wheels" ]; then
  WHEELS="$2"
  shift 2
fi
if [ -n "$WHEELS" ]; then
  DEPS="$REPO/.gpu_deps"
  "$PY" -m pip install -q --no-index --no-deps --target "$DEPS" "$WHEELS"/*.whl
  export PYTHONPATH="$DEPS${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$REPO/scripts/benchmark/gpu_suite.py" "$@"
