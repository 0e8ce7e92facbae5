#!/usr/bin/env bash
# Run a jaxdd config under SLURM, one process per GPU (launch/README.md).
#
#   sbatch launch/slurm_gpu.sh --config=CONFIG[:ARG] --workdir=DIR [--port=8476] [-- LAUNCH_FLAGS...]
#   launch/slurm_gpu.sh --dry_run --config=... --workdir=...   # print the srun command only
#
# Edit the #SBATCH lines below (or override them on the sbatch command line). The
# coordinator is the first host of the allocation; every task runs the same command and
# expands $SLURM_PROCID itself. DIR must be visible from every node (a shared file system).
# Outside an allocation --dry_run reads SLURM_JOB_NODELIST and SLURM_NTASKS from the
# environment; without scontrol it takes the first host of a plain list or of one range
# (gpu[003-004],x -> gpu003).
#SBATCH --job-name=jaxdd
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-task=1
set -euo pipefail

# sbatch runs a copy of this script from its spool directory: then common.sh is found
# in the directory the job was submitted from (the repository's root).
here=$(dirname "${BASH_SOURCE[0]}")
[ -f "$here/common.sh" ] || here=${SLURM_SUBMIT_DIR:-.}/launch
# shellcheck source=launch/common.sh
. "$here/common.sh"
usage() { die "$1; usage: $0 --config=CONFIG[:ARG] --workdir=DIR [--port=PORT] [--dry_run] [-- LAUNCH_FLAGS...]"; }


first_host() {
  local hosts head rest
  if command -v scontrol >/dev/null 2>&1; then   # no `| head -n1`: SIGPIPE + pipefail
    hosts=$(scontrol show hostnames "$1")
    printf '%s\n' "${hosts%%$'\n'*}"
    return
  fi
  head=${1%%[,[]*}
  if [ "${1:${#head}:1}" = '[' ]; then   # prefix[003-004,7]suffix
    rest=${1:${#head}+1}
    local after=${rest#*]}
    printf '%s%s%s\n' "$head" "${rest%%[-,\]]*}" "${after%%,*}"
  else
    printf '%s\n' "$head"
  fi
}

config='' workdir='' port=8476 dry_run=0 extra=()
set_flag() {
  case $1 in
    --config) config=$2 ;;
    --workdir) workdir=$2 ;;
    --port) port=$2 ;;
    *) usage "unknown flag $1 (flags for jaxdd.launch go after --)" ;;
  esac
}
parse_flags "$@"
[ -n "$config" ] || usage "--config is required"
[ -n "$workdir" ] || usage "--workdir is required"
[[ $port =~ ^[0-9]+$ ]] || die "--port must be a number, not $port"
if [ -z "${SLURM_JOB_NODELIST:-}" ] || [ -z "${SLURM_NTASKS:-}" ]; then
  die "SLURM_JOB_NODELIST and SLURM_NTASKS are not set: submit with sbatch (or set them for --dry_run)"
fi
[[ $SLURM_NTASKS =~ ^[0-9]+$ ]] || die "SLURM_NTASKS must be a number, not $SLURM_NTASKS"

host=$(first_host "$SLURM_JOB_NODELIST")
[ -n "$host" ] || die "no host in SLURM_JOB_NODELIST=$SLURM_JOB_NODELIST"
# Single quotes: $SLURM_PROCID is expanded by each task's bash, not here.
# shellcheck disable=SC2016
task="exec $(q python3 -m jaxdd.launch "--coordinator_address=$host:$port" \
  "--num_processes=$SLURM_NTASKS") "'--process_id=$SLURM_PROCID'" $(q "--config=$config" \
  "--workdir=$workdir" "${extra[@]}")"
cmd=(srun --kill-on-bad-exit=1 bash -c "$task")
if [ "$dry_run" = 1 ]; then q "${cmd[@]}"; echo; else "${cmd[@]}"; fi
