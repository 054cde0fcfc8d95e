#!/usr/bin/env bash
# Every GPU measurement the book reports, in one script (benchmarks/gpu.py says what each is;
# gpu.json: seconds per image and per judge question, UNet FLOPs and the share of the GPU's peak):
# ≤ 8 minutes on one H100/H200, no downloads (random weights built from dvdlib/configs).
#   bash benchmarks/gpu.sh              # results in benchmarks/results/, shown on the benchmarks page
#   bash benchmarks/gpu.sh --only judge # one section
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/gpu.py --size gpu "$@"
