#!/usr/bin/env bash
# Run one jaxdd process on this host as part of a multi-host job without a cluster
# manager (launch/README.md). Run it on every host with the same coordinator (the
# address of process 0's host and a free port) and its own PROCESS_ID (0 .. N-1);
# WORKDIR must be on a file system every host sees. Arguments after WORKDIR go to
# jaxdd.launch. --dry_run prints the command instead of running it.
#
#   launch/multi_gpu_host.sh [--dry_run] COORDINATOR_HOST:PORT NUM_PROCESSES PROCESS_ID CONFIG[:ARG] WORKDIR [LAUNCH_FLAGS...]
set -euo pipefail

# shellcheck source=launch/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"


dry_run=0
if [ "${1:-}" = --dry_run ]; then dry_run=1; shift; fi
[ $# -ge 5 ] || die "usage: $0 [--dry_run] COORDINATOR_HOST:PORT NUM_PROCESSES PROCESS_ID CONFIG[:ARG] WORKDIR [LAUNCH_FLAGS...]"
[[ $1 =~ ^.+:[0-9]+$ ]] || die "COORDINATOR must be HOST:PORT, not $1"
[[ $2 =~ ^[1-9][0-9]*$ ]] || die "NUM_PROCESSES must be a positive number, not $2"
if ! [[ $3 =~ ^[0-9]+$ ]] || [ "$3" -ge "$2" ]; then
  die "PROCESS_ID must be in 0 .. $(($2 - 1)), not $3"
fi

cmd=(python3 -m jaxdd.launch "--coordinator_address=$1" "--num_processes=$2" "--process_id=$3"
     "--config=$4" "--workdir=$5" "${@:6}")
if [ "$dry_run" = 1 ]; then q "${cmd[@]}"; echo; else exec "${cmd[@]}"; fi
