# tests/netns/lanyard.sh - lanyard helpers for the namespace tests; source after lib.sh.
#   lanyard_bin            resolve $LANYARD_BIN (default target/debug/lanyard) or die
#   lny I TIMEOUT args...  run a lanyard command in host I (private HOME/XDG per host)
#   serve_start I args...  `lanyard serve --json` in host I, background; pid in SERVE_PID[I],
#                          events in $NETNS_TMP/hI.jsonl, stderr in hI.err, data dir hI
#   id_in I                the id of host I's data dir
# shellcheck shell=bash disable=SC2034

declare -a SERVE_PID=()

lanyard_bin() {
    local here repo
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    repo=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null) || repo=$(cd "$here/../.." && pwd)
    LANYARD_BIN=${LANYARD_BIN:-$repo/target/debug/lanyard}
    [[ $LANYARD_BIN == /* ]] || LANYARD_BIN="$repo/$LANYARD_BIN"
    [ -x "$LANYARD_BIN" ] || die "lanyard binary not found at $LANYARD_BIN (run 'cargo build' or set LANYARD_BIN)"
}

lanyard__env() {
    local h="$NETNS_TMP/home$1"
    mkdir -p "$h/.config" "$h/.local/share" "$h/.cache"
    HENV=(env HOME="$h" XDG_CONFIG_HOME="$h/.config" XDG_DATA_HOME="$h/.local/share" XDG_CACHE_HOME="$h/.cache" RUST_BACKTRACE=1)
}

lny() {
    local i=$1 t=$2 HENV
    shift 2
    lanyard__env "$i"
    netns_exec "$i" timeout "$t" "${HENV[@]}" "$LANYARD_BIN" --data-dir "$NETNS_TMP/h$i" "$@"
}

serve_start() {
    local i=$1 HENV
    shift
    lanyard__env "$i"
    netns_spawn "$i" "$NETNS_TMP/h$i.jsonl" "$NETNS_TMP/h$i.err" \
        "${HENV[@]}" "$LANYARD_BIN" serve --json --nick "host$i" --data-dir "$NETNS_TMP/h$i" --port 7717 "$@"
    SERVE_PID[i]=$NETNS_PID
}

id_in() {
    lny "$1" 10 id --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
