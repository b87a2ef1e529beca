# tests/netns/localsend_lib.sh - what the LocalSend namespace scripts share; source after
# lib.sh and lanyard.sh.
#   need_tool TOOL HINT       SKIP the script (die under LANYARD_REQUIRE_NETNS=1) without TOOL
#   until_ok SECONDS WHAT COMMAND...   lib.sh's wait_for, quiet, dying with WHAT
#   localsendd_start I DIR    localsendd (alias phone2, port 53317, unattended) in host I,
#                             files into DIR; its pid in LS_PID, stderr in $NETNS_TMP/lsI.err;
#                             `ctl ARGS...` is localsendctl on it (once its socket answers)
# shellcheck shell=bash disable=SC2034

need_tool() {
    if ! command -v "$1" >/dev/null; then
        [ "${LANYARD_REQUIRE_NETNS:-0}" = 1 ] && die "$1 not found ($2)"
        echo "SKIP $(basename "$0"): $1 not found ($2)"
        exit 0
    fi
}

# localsendd and localsendctl (one pip package), which every LocalSend script drives.
need_localsendd() {
    need_tool localsendd "pip install localsendd==0.1.1"
    need_tool localsendctl "pip install localsendd==0.1.1"
}

until_ok() {
    local limit=$1 what=$2
    shift 2
    wait_for "$limit" quiet "$@" || die "not within ${limit}s: $what"
}
quiet() { "$@" >/dev/null 2>&1; }

localsendd_start() {
    local HENV
    host_env "$1"
    LSENV=("${HENV[@]}")
    LSHOST=$1
    LSSOCK="$NETNS_TMP/home$1/run/localsendd.sock"
    netns_spawn "$1" "$NETNS_TMP/ls$1.out" "$NETNS_TMP/ls$1.err" "${LSENV[@]}" localsendd --port 53317 \
        --alias phone2 --download-dir "$2" --unattended --log-time
    LS_PID=$NETNS_PID
    until_ok "${PATIENCE:-60}" "localsendd's control socket" ctl status
}
ctl() { netns_exec "$LSHOST" timeout "$((${PATIENCE:-60} + 30))" "${LSENV[@]}" localsendctl --socket "$LSSOCK" "$@"; }
