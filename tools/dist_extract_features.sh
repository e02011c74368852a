#!/usr/bin/env bash
# Feature extraction on NPROC ranks with torchrun (docs/features.md):
#
#   tools/dist_extract_features.sh CONFIG CHECKPOINT NPROC \
#       --video-list LIST --out-dir OUT [tools/extract_features.py arguments]
#
# The list is sharded by position, every video exactly once; each rank uses
# cuda:LOCAL_RANK, or the CPU (gloo) without CUDA: then also set
# OMP_NUM_THREADS (cores / NPROC). Multi-node: set NNODES, NODE_RANK,
# MASTER_ADDR and PORT on every node; PYTHON defaults to the repository's
# .venv when it exists (tools/torchrun.sh).
set -euo pipefail
TOOLS="$(cd "$(dirname "$0")" && pwd)"
exec bash "$TOOLS/torchrun.sh" "$3" "$TOOLS/extract_features.py" "$1" "$2" \
    --launcher pytorch "${@:4}"
