#!/usr/bin/env bash
# Create ./.venv with everything this project needs (idempotent). Used by the README and by .ci/run.
#
# torch itself is not pinned by the package. On a CPU-only machine torch needs a matching torchvision
# (open_clip imports it), so by default this installs a known-good pair; override with e.g.
#   SGM_TORCH_PACKAGES="torch torchvision" bash scripts/setup_env.sh
# On a machine that already has a CUDA torch, use SGM_TORCH_PACKAGES="" to keep it
# (with SGM_VENV_ARGS=--system-site-packages).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SGM_VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv ${SGM_VENV_ARGS:-} "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
TORCH_PACKAGES=${SGM_TORCH_PACKAGES-"torch==2.15.0 torchvision==0.29.2"}
if [ -n "$TORCH_PACKAGES" ]; then
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install -q $TORCH_PACKAGES
fi
"$VENV/bin/python" -m pip install -q -e ".[test${SGM_EXTRAS:+,$SGM_EXTRAS}]"
# The optional DWT-DCT watermark (--watermark): invisible-watermark pins opencv-python, which would
# shadow opencv-python-headless, so it goes in without its declared dependencies (PyWavelets is in [test]).
"$VENV/bin/python" -m pip install -q --no-deps "invisible-watermark>=0.2"
"$VENV/bin/python" -c "import torch, torchvision, open_clip, sgm; print('environment ready: torch', torch.__version__)"
