#!/usr/bin/env bash
# tests/netns/transfer.sh - push and pull between two "lab machines" (network
# namespaces on a private bridge, see lib.sh), peers found by mDNS (safe: the
# multicast never leaves our namespaces).
#
#   h2: lanyard serve --json --accept-all --share SHARE
#   h1: lanyard send host2 -- TREE BIG      (a one-shot node that finds host2 by nick)
#       -> exit 0; every file under h2's download dir has the source's sha256;
#          the empty folder and the unicode names arrive
#   h1: lanyard ls host2 share --json; lanyard get host2 share/big.bin --to DIR
#       -> the pulled copy has the same sha256
#
# Env: LANYARD_BIN (default: target/debug/lanyard under the repo root),
#      LANYARD_REQUIRE_NETNS=1 (fail instead of skip without root/netns),
#      LANYARD_KEEP_TMP=1 (keep the scratch dir with all logs), BIG_MIB (default 200).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

need_root
command -v python3 >/dev/null || die "python3 not found"
command -v sha256sum >/dev/null || die "sha256sum not found"

# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
lanyard_bin

BIG_MIB=${BIG_MIB:-200}
PORT=7717

netns_setup 2
TMP=$NETNS_TMP
log "lanyard binary: $LANYARD_BIN"

netns_on_failure() {
    echo "---- transfer: FAILED (exit $1); diagnostics ----" >&2
    for f in "$TMP"/h2.jsonl "$TMP"/h2.err "$TMP"/*.out "$TMP"/*.stderr; do
        [ -e "$f" ] || continue
        echo "== $f" >&2
        grep -v '"progress"' "$f" | tail -n 30 >&2 || true
    done
}

# The source: a tree with unicode names, an empty file, an empty folder, and a big file.
SRC=$TMP/src
TREE="$SRC/cours réseau"
mkdir -p "$TREE/td 1/données" "$TREE/vide/encore vide"
echo "bonjour" >"$TREE/td 1/données/été.txt"
: >"$TREE/td 1/empty.bin"
for n in 1 2 3 4 5; do head -c $((n * 40000)) /dev/urandom >"$TREE/td 1/f$n.dat"; done
printf 'x' >"$TREE/日本語 🎉.md"
BIG=$SRC/big.bin
head -c $((BIG_MIB << 20)) /dev/urandom >"$BIG"
SHARE=$TMP/share/pub
mkdir -p "$SHARE"
cp "$BIG" "$SHARE/big.bin"

host_env 2
netns_spawn 2 "$TMP/h2.jsonl" "$TMP/h2.err" "${HENV[@]}" "$LANYARD_BIN" serve --json --accept-all \
    --nick host2 --data-dir "$TMP/h2" --download-dir "$TMP/in2" --share "$SHARE" --port "$PORT"
wait_for "$PATIENCE" grep -q '"listening"' "$TMP/h2.jsonl" || die "h2 did not start"

# Hashes of every file under a dir, as "hash  relative/path" lines.
hashes() (cd "$1" && find . -type f ! -path './.lanyard-partial/*' -print0 | sort -z | xargs -0 -r sha256sum)

log "push: tree + ${BIG_MIB} MiB file, h1 -> host2 (found by mDNS)"
t0=$(netns_now_ms)
lny 1 $((PATIENCE * 5)) send host2 --data-dir "$TMP/h1" -- "$TREE" "$BIG" >"$TMP/send.out" 2>"$TMP/send.stderr" ||
    die "send failed: $(tail -n 3 "$TMP/send.stderr")"
t1=$(netns_now_ms)
log "push took $((t1 - t0)) ms: $(tr '\n' ' ' <"$TMP/send.out")"
diff <(hashes "$TREE") <(hashes "$TMP/in2/cours réseau") >&2 || die "tree differs after push"
[ -d "$TMP/in2/cours réseau/vide/encore vide" ] || die "empty folder missing"
[ "$(sha256sum <"$BIG")" = "$(sha256sum <"$TMP/in2/big.bin")" ] || die "big file differs after push"
# The partial folder goes once empty; if it is there, it must hold nothing.
[ -z "$(ls -A "$TMP/in2/.lanyard-partial" 2>/dev/null)" ] || die "partial files left behind"
grep -q '"event":"done"' "$TMP/h2.jsonl" || die "no done event on the receiver"

log "pull: ls + get share/big.bin from host2"
lny 1 "$PATIENCE" ls host2 pub --json --data-dir "$TMP/h1" >"$TMP/ls.out" 2>"$TMP/ls.stderr" || die "ls failed"
python3 - "$TMP/ls.out" "$((BIG_MIB << 20))" <<'PY' || die "ls output wrong"
import json, sys
entries = json.load(open(sys.argv[1]))
assert [(e["name"], e["kind"], e["size"]) for e in entries] == [("big.bin", "File", int(sys.argv[2]))], entries
PY
lny 1 $((PATIENCE * 5)) get host2 pub/big.bin --to "$TMP/pulled" --data-dir "$TMP/h1" >"$TMP/get.out" 2>"$TMP/get.stderr" ||
    die "get failed: $(tail -n 3 "$TMP/get.stderr")"
[ "$(sha256sum <"$BIG")" = "$(sha256sum <"$TMP/pulled/big.bin")" ] || die "pulled file differs"

log "a refused pull is a clear error"
if lny 1 "$PATIENCE" get host2 pub/../../etc/passwd --to "$TMP/pulled" --data-dir "$TMP/h1" >/dev/null 2>"$TMP/bad.stderr"; then
    die "get outside the share succeeded"
fi
[ "$(wc -l <"$TMP/bad.stderr")" -eq 1 ] || die "error is not one line: $(cat "$TMP/bad.stderr")"

netns_check_drops
echo "transfer: ok"
