# tests/netns/lanyard.sh - what every lanyard namespace script needs; source after lib.sh.
#   lanyard_bin   resolve $LANYARD_BIN (default target/debug/lanyard in the repo; a relative
#                 path is taken from the current dir, else the repo root) or die
#   lanyard_release_bin   the same with the default target/release/lanyard
#   host_env I    HENV=(env ...): a private HOME/XDG per host (and an empty machine-wide
#                 config), so nothing is read from or
#                 written to the real user's files and hosts can't see each other's; the
#                 host's data dir $NETNS_TMP/hI as LANYARD_DATA_DIR (an explicit flag wins)
#   lny I TIMEOUT_S args...   a lanyard command in host I
#   serve_start I [OUT [FLAGS...]]
#                             `serve --json` (nick hostI, port ${PORT:-7717}, then FLAGS) in host I
#                             in the background; events in $NETNS_TMP/OUT.jsonl (OUT defaults to hI),
#                             stderr in OUT.err, pid in SERVE_PID[I]
#   id_in I                   host I's id
#   expect_event FILE TIMEOUT_S KEY=VALUE...
#                             wait for a JSON line of FILE with every KEY equal to VALUE; print it
#   nc_copy FROM TO FILE OUT  FILE over one plain TCP connection (nc, port ${NC_PORT:-7718}) from
#                             host FROM to host TO, written to OUT there; compared with FILE;
#                             prints the ms from the first byte sent to the receiver's exit
# shellcheck shell=bash disable=SC2034

lanyard_bin() {
    lanyard__bin debug
}

lanyard_release_bin() {
    lanyard__bin release
}

lanyard__bin() {
    local here repo profile=$1 build="cargo build --features test-hooks"
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    repo=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null) || repo=$(cd "$here/../.." && pwd)
    [ "$profile" = debug ] || build="cargo build --$profile"
    if [ -z "${LANYARD_BIN:-}" ]; then
        LANYARD_BIN="$repo/target/$profile/lanyard"
    elif [[ $LANYARD_BIN != /* ]]; then
        if [ -e "$PWD/$LANYARD_BIN" ]; then LANYARD_BIN="$PWD/$LANYARD_BIN"; else LANYARD_BIN="$repo/$LANYARD_BIN"; fi
    fi
    [ -x "$LANYARD_BIN" ] || die "lanyard binary not found at $LANYARD_BIN (run '$build' or set LANYARD_BIN)"
}

host_env() {
    local h="$NETNS_TMP/home$1"
    mkdir -p "$h/.config" "$h/.local/share" "$h/.local/state" "$h/.cache" "$h/run"
    chmod 700 "$h/run"
    HENV=(env HOME="$h" XDG_CONFIG_HOME="$h/.config" XDG_DATA_HOME="$h/.local/share"
        XDG_STATE_HOME="$h/.local/state" XDG_CACHE_HOME="$h/.cache"
        XDG_RUNTIME_DIR="$h/run" LANYARD_DATA_DIR="$NETNS_TMP/h$1" LANYARD_SYSTEM_CONFIG=/dev/null RUST_BACKTRACE=1)
}

declare -a SERVE_PID=()

lny() {
    local i=$1 t=$2 HENV
    shift 2
    host_env "$i"
    netns_exec "$i" timeout "$t" "${HENV[@]}" "$LANYARD_BIN" "$@"
}

serve_start() {
    local i=$1 out=${2:-h$1} HENV
    shift $(($# < 2 ? $# : 2))
    host_env "$i"
    netns_spawn "$i" "$NETNS_TMP/$out.jsonl" "$NETNS_TMP/$out.err" \
        "${HENV[@]}" "$LANYARD_BIN" serve --json --nick "host$i" --port "${PORT:-7717}" "$@"
    SERVE_PID[i]=$NETNS_PID
    log "h$i: serve started (pid $NETNS_PID), events in $out.jsonl"
}

id_in() {
    lny "$1" "$PATIENCE" id --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# expect_event FILE TIMEOUT_S KEY=VALUE... : wait for a JSON line with every KEY equal to VALUE
# (VALUE is compared as JSON if it parses as JSON, else as a string).  Prints the object.
expect_event() {
    python3 - "$@" <<'PY'
import json, sys, time
path, timeout, pairs = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
# Each value as JSON (numbers, true, null ...) or as the text given: an id of hex digits that
# happens to hold no letter ("5458491311729046") parses as a number, and is a string in the events.
want = {}
for p in pairs:
    k, v = p.split("=", 1)
    try:
        want[k] = (json.loads(v), v)
    except ValueError:
        want[k] = (v,)
deadline = time.monotonic() + timeout
while True:
    try:
        lines = open(path, "rb").read().split(b"\n")
    except FileNotFoundError:
        lines = []
    for line in lines:
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict) and all(any(o.get(k) == c for c in cs) for k, cs in want.items()):
            print(json.dumps(o))
            sys.exit(0)
    if time.monotonic() >= deadline:
        sys.exit("no event with %r in %s" % ({k: cs[-1] for k, cs in want.items()}, path))
    time.sleep(0.05)
PY
}

# dump_logs SCRIPT EXIT: on failure, the tail of each serve log named in LOGS (its .jsonl and
# .err in $TMP) and every non-empty cmd-*.err.
dump_logs() {
    local f
    echo "---- $1: FAILED (exit $2); diagnostics ----" >&2
    for f in "${LOGS[@]}"; do
        echo "== tail $f.jsonl" >&2
        tail -n 30 "$TMP/$f.jsonl" >&2 2>/dev/null || echo "(none)" >&2
        echo "== tail $f.err" >&2
        tail -n 30 "$TMP/$f.err" >&2 2>/dev/null || echo "(none)" >&2
    done
    for f in "$TMP"/cmd-*.err; do
        [ -s "$f" ] || continue
        echo "== $(basename "$f")" >&2
        cat "$f" >&2
    done
    echo "---- end of diagnostics ----" >&2
}

# count_events FILE KEY=VALUE... : how many JSON lines match.
count_events() {
    python3 - "$@" <<'PY'
import json, sys
path, pairs = sys.argv[1], sys.argv[2:]
want = dict(p.split("=", 1) for p in pairs)
n = 0
for line in open(path, "rb"):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if isinstance(o, dict) and all(str(o.get(k)) == v for k, v in want.items()):
        n += 1
print(n)
PY
}

nc_copy() {
    local from=$1 to=$2 file=$3 out=$4 port=${NC_PORT:-7718} t0 t1 rpid
    netns_spawn "$to" "$out" "$NETNS_TMP/nc_recv.err" nc -l "$port"
    rpid=$NETNS_PID
    # Wait until the listener is up (nc -z would count as the one connection).
    wait_for 5 bash -c "ip netns exec $(netns_name "$to") ss -ltn | grep -q ':$port '" || die "nc listener did not start"
    t0=$(netns_now_ms)
    netns_exec "$from" nc -N "$(netns_addr "$to")" "$port" <"$file" || die "nc sender failed"
    wait "$rpid" || die "nc receiver failed: $(cat "$NETNS_TMP/nc_recv.err")"
    t1=$(netns_now_ms)
    cmp -s "$file" "$out" || die "nc copy differs"
    echo "$((t1 - t0))"
}
