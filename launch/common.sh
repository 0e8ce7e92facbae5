# Shared by the launch scripts (sourced, not run): errors, quoting, flag parsing.

die() { echo "$0: $*" >&2; exit 2; }   # one line on stderr, exit status 2

# Each argument as one shell word: single-quoted unless it has only safe characters.
q() {
  local a out=()
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then out+=("$a")
    else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  printf '%s' "${out[*]}"
}

# --flag=VALUE / --flag VALUE through the script's set_flag NAME VALUE; --dry_run sets
# dry_run=1; everything after -- goes to extra (flags for jaxdd.launch).
parse_flags() {
  while [ $# -gt 0 ]; do
    case $1 in
      --dry_run) dry_run=1 ;;
      --) shift; extra=("$@"); break ;;
      --*=*) set_flag "${1%%=*}" "${1#*=}" ;;
      --*) [ $# -ge 2 ] || die "$1 needs a value"; set_flag "$1" "$2"; shift ;;
      *) usage "unexpected argument $1 (flags for jaxdd.launch go after --)" ;;
    esac
    shift
  done
}
