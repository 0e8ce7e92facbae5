#!/usr/bin/env bash
# Run one jaxdd process on this GPU host as part of a multi-host job.
# Usage: launch/multi_gpu_host.sh COORDINATOR_HOST:PORT NUM_PROCESSES PROCESS_ID CONFIG WORKDIR
# Run it on every host with the same coordinator and its own PROCESS_ID (0 .. N-1).
set -euo pipefail
if [ $# -lt 5 ]; then
  echo "usage: $0 COORDINATOR:PORT NUM_PROCESSES PROCESS_ID CONFIG[:ARG] WORKDIR" >&2; exit 2
fi
export JAX_COORDINATOR_ADDRESS=$1 JAX_NUM_PROCESSES=$2 JAX_PROCESS_ID=$3
exec python3 -m jaxdd.launch --multihost --config="$4" --workdir="$5" "${@:6}"
