#!/usr/bin/env bash
# benches/known_peer.sh - how long does a one-shot `lanyard say` take to reach a peer that its
# data dir already knows, with no node running on that data dir and no mDNS?  Prints figures;
# never asserts on timing.
#
# One `lanyard serve --no-mdns --port 0` (nick ada) runs for the whole run.  A second data dir
# (nick bob) meets it once with `say --peer 127.0.0.1:PORT`.  Then each round times, from just
# before the process starts to its exit (exit 0 = delivered and acknowledged):
#     known:      lanyard say ada "..." --no-mdns --data-dir BOB
#                 (the remembered address is dialled at start: the path under test)
#     by address: lanyard say ada "..." --no-mdns --data-dir BOB --peer 127.0.0.1:PORT
#                 (the baseline)
# Only 127.0.0.1 and --no-mdns are used; HOME and the XDG dirs point into a temporary folder, so
# the user's config and data are neither read nor written.
#
# Env: LANYARD_BIN (default target/release/lanyard under the repo root; build it with
#      `cargo build --release`), ROUNDS (default 10), TARGET_MS (default 100),
#      LANYARD_KEEP_TMP=1 to keep the temporary folder and the server's log.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${LANYARD_BIN:-$ROOT/target/release/lanyard}
ROUNDS=${ROUNDS:-10}
TARGET_MS=${TARGET_MS:-100}
[ -x "$BIN" ] || {
    echo "no lanyard binary at $BIN (cargo build --release, or set LANYARD_BIN)" >&2
    exit 1
}

TMP=$(mktemp -d)
SERVE_PID=
cleanup() {
    if [ -n "$SERVE_PID" ]; then
        kill "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
    fi
    if [ "${LANYARD_KEEP_TMP:-}" = 1 ]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

# A private environment; env execs lanyard, so a background one's $! is lanyard itself.
ENV=(env -i PATH="$PATH" HOME="$TMP/home" XDG_CONFIG_HOME="$TMP/home/config" XDG_DATA_HOME="$TMP/home/data" LANYARD_NO_MDNS=1 LANYARD_NO_LOCALSEND=1)
lny() { "${ENV[@]}" "$BIN" "$@"; }

now_ns() { date +%s%N; }

"${ENV[@]}" "$BIN" serve --json --no-mdns --port 0 --nick ada --data-dir "$TMP/ada" --download-dir "$TMP/downloads" \
    >"$TMP/ada.jsonl" 2>"$TMP/ada.err" &
SERVE_PID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(grep '"event":"listening"' "$TMP/ada.jsonl" | sed -n 's/.*"addr":"[^"]*:\([0-9]*\)".*/\1/p' | head -n 1 || true)
    [ -n "$PORT" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || {
        echo "serve exited: $(tail -n 5 "$TMP/ada.err")" >&2
        exit 1
    }
    sleep 0.1
done
[ -n "$PORT" ] || {
    echo "serve did not report its port within 10 s" >&2
    exit 1
}
PEER=127.0.0.1:$PORT

# Bob meets ada once, by address: from now on his data dir remembers where she listens.
lny say ada "hello" --no-mdns --nick bob --data-dir "$TMP/bob" --peer "$PEER" --timeout 10 2>/dev/null

# round ARGS... : the milliseconds one `say` took, or "failed".
round() {
    local t0 t1
    t0=$(now_ns)
    if lny say ada "round" --no-mdns --data-dir "$TMP/bob" --timeout 10 "$@" 2>/dev/null; then
        t1=$(now_ns)
        echo $(((t1 - t0) / 1000000))
    else
        echo failed
    fi
}

summary() { # summary LABEL FIGURES...
    local label=$1
    shift
    local sorted n
    sorted=$(printf '%s\n' "$@" | grep -v failed | sort -n || true)
    n=$(printf '%s\n' "$sorted" | grep -c . || true)
    if [ "$n" -eq 0 ]; then
        printf '%-11s all %s rounds failed\n' "$label" "$#"
        return
    fi
    local median min max
    median=$(printf '%s\n' "$sorted" | sed -n "$(((n + 1) / 2))p")
    min=$(printf '%s\n' "$sorted" | head -n 1)
    max=$(printf '%s\n' "$sorted" | tail -n 1)
    printf '%-11s median %4s ms  min %4s ms  max %4s ms  (%s of %s rounds delivered; each: %s)\n' \
        "$label" "$median" "$min" "$max" "$n" "$#" "$*"
}

known=()
by_address=()
for _ in $(seq "$ROUNDS"); do
    known+=("$(round)")
    by_address+=("$(round --peer "$PEER")")
done

echo "lanyard say to a known peer, one-shot, no node running on its data dir, --no-mdns, loopback"
echo "binary: $BIN; $ROUNDS rounds each; target for 'known': median <= $TARGET_MS ms"
summary known "${known[@]}"
summary "by address" "${by_address[@]}"
