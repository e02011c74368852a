#!/usr/bin/env bash
# Feature extraction on NPROC ranks with torchrun (docs/features.md):
#
#   tools/dist_extract_features.sh CONFIG CHECKPOINT NPROC \
#       --video-list LIST --out-dir OUT [tools/extract_features.py arguments]
#
# The list is sharded by position, every video exactly once; each rank uses
# cuda:LOCAL_RANK, or the CPU (gloo) without CUDA: then also set
# OMP_NUM_THREADS (cores / NPROC). Multi-node: set NNODES, NODE_RANK,
# MASTER_ADDR and PORT on every node. PYTHON defaults to the repository's
# .venv when it exists.
set -euo pipefail

CONFIG=$1
CHECKPOINT=$2
NPROC=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        PYTHON=python
    fi
fi

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$NPROC" \
    "$ROOT/tools/extract_features.py" "$CONFIG" "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
