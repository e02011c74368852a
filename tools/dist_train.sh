#!/usr/bin/env bash
# Data-parallel training with torchrun, as MMAction2's tools/dist_train.sh:
#
#   tools/dist_train.sh CONFIG NPROC [tools/train.py arguments]
#
# One process per GPU, or per CPU worker on a machine without CUDA: then
# mmcsn (imported by tools/train.py) uses gloo in place of nccl and DDP
# without device_ids, with no config setting (mmcsn/compat/cpu_dist.py).
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT; PYTHON defaults
# to the repository's .venv when it exists (tools/torchrun.sh).
set -euo pipefail
TOOLS="$(cd "$(dirname "$0")" && pwd)"
exec bash "$TOOLS/torchrun.sh" "$2" "$TOOLS/train.py" "$1" --launcher pytorch \
    "${@:3}"
