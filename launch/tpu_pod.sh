#!/usr/bin/env bash
# Run a jaxdd config on every worker of a Cloud TPU VM pod slice.
# Usage: launch/tpu_pod.sh TPU_NAME ZONE CONFIG[:ARG] WORKDIR [extra launch flags...]
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 TPU_NAME ZONE CONFIG[:ARG] WORKDIR [flags...]" >&2; exit 2
fi
tpu=$1; zone=$2; config=$3; workdir=$4; shift 4
gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command "
  set -e
  cd ~/jaxdd || { echo 'clone jaxdd into ~/jaxdd on every worker first' >&2; exit 1; }
  python3 -m pip install -q -e . 'jax[tpu]'
  python3 -m jaxdd.launch --multihost --config=$config --workdir=$workdir $*
"
