#!/usr/bin/env bash
# Run a jaxdd config on every worker of a Cloud TPU VM pod slice (launch/README.md).
#
#   launch/tpu_pod.sh --tpu=NAME --zone=ZONE --config=CONFIG[:ARG] --workdir=gs://BUCKET/DIR \
#       [--accelerator=TYPE [--runtime=VERSION]] [--project=PROJECT] [--version=VER]
#       [--repo=URL] [--python=PYTHON] [--data_dir=DIR] [--dry_run] [-- LAUNCH_FLAGS...]
#
# Steps: (with --accelerator) create the slice unless `describe` finds it; on every
# worker install 'jaxdd[tpu]' from REPO at the pinned ref and create ~/jaxdd_configs;
# copy the local config file there; run `python3 -m jaxdd.launch --multihost ...` on
# every worker. --version=X.Y.Z installs the git tag vX.Y.Z (default: setup.cfg's
# version); any other value is used as the git ref itself. --dry_run prints each
# command, one per line, quoted for bash, and runs none.
set -euo pipefail

# shellcheck source=launch/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage() { die "$1; usage: $0 --tpu=NAME --zone=ZONE --config=CONFIG[:ARG] --workdir=gs://... [--accelerator=TYPE] [--runtime=VERSION] [--project=PROJECT] [--version=VER] [--repo=URL] [--python=PYTHON] [--data_dir=DIR] [--dry_run] [-- LAUNCH_FLAGS...]"; }


tpu='' zone='' accelerator='' runtime=tpu-ubuntu2204-base project='' version='' python=python3
repo=https://github.com/jaxdd/jaxdd.git config='' workdir='' data_dir='' dry_run=0 extra=()
set_flag() {
  case $1 in
    --tpu) tpu=$2 ;;              --zone) zone=$2 ;;
    --accelerator) accelerator=$2 ;; --runtime) runtime=$2 ;;
    --project) project=$2 ;;      --version) version=$2 ;;
    --repo) repo=$2 ;;            --python) python=$2 ;;
    --config) config=$2 ;;        --workdir) workdir=$2 ;;
    --data_dir) data_dir=$2 ;;
    *) usage "unknown flag $1 (flags for jaxdd.launch go after --)" ;;
  esac
}
parse_flags "$@"

for f in tpu zone config workdir; do
  [ -n "${!f}" ] || usage "--$f is required"
done
[[ $workdir == gs://?* ]] || die "--workdir must be a gs:// path: every worker must see the same workdir"
config_file=${config%%:*}
[ -f "$config_file" ] || die "config file not found: $config_file"
remote_config=jaxdd_configs/$(basename "$config_file")${config:${#config_file}}

if [ -z "$version" ]; then
  setup_cfg=$(dirname "$0")/../setup.cfg
  version=$(sed -n '/^version *= */{s///p;q;}' "$setup_cfg" 2>/dev/null)
  [ -n "$version" ] || die "no 'version =' line in $setup_cfg; pass --version"
fi
if [[ $version =~ ^[0-9]+\.[0-9]+ ]]; then ref=v$version; else ref=$version; fi

gc=(gcloud compute tpus tpu-vm)
where=(--zone "$zone")
[ -z "$project" ] || where+=(--project "$project")

run() {   # run (or print) one command given as words
  if [ "$dry_run" = 1 ]; then q "$@"; echo; else "$@"; fi
}

if [ -n "$accelerator" ]; then
  create=("${gc[@]}" create "$tpu" "${where[@]}" --accelerator-type "$accelerator" --version "$runtime")
  if [ "$dry_run" = 1 ]; then
    echo "$(q "${gc[@]}" describe "$tpu" "${where[@]}") >/dev/null 2>&1 || $(q "${create[@]}")"
  elif ! "${gc[@]}" describe "$tpu" "${where[@]}" >/dev/null 2>&1; then
    "${create[@]}"
  fi
fi

install="$(q "$python" -m pip install -q "jaxdd[tpu] @ git+$repo@$ref") && mkdir -p jaxdd_configs"
launch=$(q "$python" -m jaxdd.launch --multihost "--config=$remote_config" "--workdir=$workdir" "${extra[@]}")
[ -z "$data_dir" ] || launch="TFDS_DATA_DIR=$(q "$data_dir") $launch"

run "${gc[@]}" ssh "$tpu" "${where[@]}" --worker=all --command "$install"
run "${gc[@]}" scp "$config_file" "$tpu:jaxdd_configs/" "${where[@]}" --worker=all
run "${gc[@]}" ssh "$tpu" "${where[@]}" --worker=all --command "$launch"
