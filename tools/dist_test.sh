#!/usr/bin/env bash
# Distributed testing with torchrun, as MMAction2's tools/dist_test.sh:
#
#   tools/dist_test.sh CONFIG CHECKPOINT NPROC [tools/test.py arguments]
#
# See tools/dist_train.sh for CPU runs and tools/torchrun.sh for NNODES,
# NODE_RANK, MASTER_ADDR, PORT, PYTHON.
set -euo pipefail
TOOLS="$(cd "$(dirname "$0")" && pwd)"
exec bash "$TOOLS/torchrun.sh" "$3" "$TOOLS/test.py" "$1" "$2" \
    --launcher pytorch "${@:4}"
