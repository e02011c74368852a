#!/usr/bin/env bash
# Data-parallel training with torchrun, as MMAction2's tools/dist_train.sh:
#
#   tools/dist_train.sh CONFIG NPROC [tools/train.py arguments]
#
# One process per GPU, or per CPU worker on a machine without CUDA: then
# mmcsn (imported by tools/train.py) uses gloo in place of nccl and DDP
# without device_ids, with no config setting (mmcsn/compat/cpu_dist.py).
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT. PYTHON defaults
# to the repository's .venv when it exists.
set -euo pipefail

CONFIG=$1
NPROC=$2
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

# torchrun == python -m torch.distributed.run (of the interpreter above)
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$NPROC" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
