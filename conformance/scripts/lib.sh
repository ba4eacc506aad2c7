# Shared by the shell suites: one JSON line per case into $OUT (same shape as the Go
# harnesses: suite, case, status pass|fail|skip, reason, ms), a human line on stderr.
# Case bodies run in a subshell with errexit; they end with `fail MSG`, `skip REASON`
# or by returning normally (pass). A `note MSG` on a passing case becomes its reason.

: "${OUT:=/dev/stdout}"
: "${PREFIX:=wk}"

# Checks use grep -q on captured output, never `cmd | grep -q`: under pipefail the
# writer can die of SIGPIPE when grep stops early and fail a check that held.
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
note() { echo "NOTE: $*" >&2; }

now_ms() { date +%s%3N; }

emit() { # suite case status reason ms
  jq -cn --arg s "$1" --arg c "$2" --arg st "$3" --arg r "$4" --argjson ms "$5" \
    '{suite:$s, case:$c, status:$st} + (if $r == "" then {} else {reason:$r} end) + {ms:$ms}' >>"$OUT"
  local label=ok
  [ "$3" = fail ] && label=FAIL
  [ "$3" = skip ] && label=skip
  printf '  %-4s %s %s (%s ms)%s\n' "$label" "$1" "$2" "$5" "${4:+: $4}" >&2
}

# run_case SUITE CASE FUNCTION [ARGS...]
run_case() {
  local suite=$1 name=$2; shift 2
  local log start rc reason status
  log=$(mktemp "/tmp/${PREFIX}-case.XXXXXX")
  start=$(now_ms)
  ( set -eEuo pipefail; trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR; "$@" ) >"$log" 2>&1
  rc=$?
  case $rc in
    0) status=pass; reason=$(grep '^NOTE: ' "$log" | sed 's/^NOTE: //' | paste -sd';' - || true) ;;
    77) status=skip; reason=$(grep '^SKIP: ' "$log" | tail -1 | sed 's/^SKIP: //') ;;
    *) status=fail
       reason=$(grep '^FAIL: ' "$log" | head -1 | sed 's/^FAIL: //')
       [ -n "$reason" ] || reason="exit $rc: $(tail -1 "$log")"
       sed 's/^/       | /' "$log" >&2 ;;
  esac
  emit "$suite" "$name" "$status" "$reason" "$(( $(now_ms) - start ))"
  rm -f "$log"
}

# Target plugin configurations (without ipam), as in the Go harnesses; @BRIDGE@ is
# replaced by the caller. TARGET_CONF overrides for any other plugin.
target_conf() {
  case $1 in
    bridge) echo '{"type":"bridge","bridge":"@BRIDGE@","isGateway":true}' ;;
    ptp) echo '{"type":"ptp"}' ;;
    weft) echo '{"type":"weft-cni","mode":"veth","degraded":true}' ;;
    *) [ -n "${TARGET_CONF:-}" ] || { echo "unknown target $1 and no TARGET_CONF" >&2; return 1; }
       echo "$TARGET_CONF" ;;
  esac
}
