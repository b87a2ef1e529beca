#!/usr/bin/env bash
# tests/netns/soak.sh - a chaos soak: six lab machines doing random work from a seeded RNG while
# nodes are stopped, killed and cut off, then checks that nothing was lost, doubled, half-written
# or leaked.
#
#   h1..h5: lanyard serve --json --accept-all --share ... (h5's download dir: a small tmpfs)
#   h6:     the TUI in tmux (trusts the others); its commands name its data dir (--data-dir)
#
# For SOAK_S seconds (default 120): direct and #all chat, sends (small files, folders, BIG_MIB
# files) to one and several peers, pulls, cancels from either side (`lanyard cancel`, `x` in the
# TUI), stops (SIGTERM, SIGINT, `q`) and kill -9 with restarts, link faults (nft loss on a host's
# input, tc tbf on its downlink, its link down 5 s), the tmpfs filled for a few seconds. Then the
# faults are undone, every node runs, and the checks print (tests/netns/soak.py says what each
# one reads): every acknowledged chat line stored exactly once at its receiver; every transfer
# reported verified byte-identical at every recipient; nothing half-written under a final name;
# no partial data after a cancel; every paused transfer finished after its node came back; no
# "failed authentication" (no corruption is injected); every node still serving; per node, RSS
# and open fds flat (median of the last third of the chaos within 10 % of the first third; a
# minute each from SOAK_S >= 180 on) and RSS <= 64 MiB. The run fails if the lab itself dropped
# packets it did not mean to (netns_check_drops; the soak's own drops happen on input and on the
# bridge, where that check does not count them).
#
# A failing run prints the seed that replays it: SOAK_SEED=N bash tests/netns/soak.sh
#
# Env: LANYARD_BIN (default target/debug/lanyard), SOAK_S (120), SOAK_SEED (default: random),
#      BIG_MIB (64), SOAK_SETTLE_S (60: how long transfers may take to end after the chaos),
#      SAMPLE_S (2), SOAK_ACTIONS (only these kinds, comma-separated names from soak.py ACTIONS),
#      SOAK_NODE_ENV (NAME=VALUE ... for every lanyard process, e.g. an allocator tuning to compare),
#      SOAK_INJECT (corrupt-received | keep-partial | lose-chat | down-node: break the run on
#      purpose to see a check catch it), PATIENCE, LANYARD_REQUIRE_NETNS=1, LANYARD_KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

NETNS_LOG_TAG=${NETNS_LOG_TAG:-soak}
need_root
for c in python3 tmux tc nft mount; do
    command -v "$c" >/dev/null || die "$c not found (Debian: python3, tmux, iproute2, nftables, mount)"
done

# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
if [ "${SOAK_RELEASE:-0}" = 1 ]; then lanyard_release_bin; else lanyard_bin; fi

SOAK_SEED=${SOAK_SEED:-$(((RANDOM << 15) | RANDOM))}
SOAK_S=${SOAK_S:-120}
TMPFS_MIB=${TMPFS_MIB:-160} # an offer must leave 64 MiB free: ~96 MiB of room for what arrives
export SOAK_SEED SOAK_S LANYARD_BIN

netns_setup 6
TMP=$NETNS_TMP
SOAK_TMPFS=$TMP/tmpfs
mkdir -p "$SOAK_TMPFS"
mount -t tmpfs -o "size=${TMPFS_MIB}m" tmpfs "$SOAK_TMPFS" || die "cannot mount a tmpfs on $SOAK_TMPFS"

# The TUI's tmux server and the tmpfs go before the namespaces and the scratch dir.
soak_cleanup() {
    if [ -S "$TMP/tmux.sock" ]; then
        env -u TMUX tmux -S "$TMP/tmux.sock" capture-pane -p -t tui >"$TMP/screen.last" 2>/dev/null || true
        env -u TMUX tmux -S "$TMP/tmux.sock" kill-server 2>/dev/null || true
    fi
    if mountpoint -q "$SOAK_TMPFS" 2>/dev/null; then
        umount "$SOAK_TMPFS" 2>/dev/null || umount -l "$SOAK_TMPFS" 2>/dev/null || true
    fi
}
trap 'rc=$?; soak_cleanup; netns_teardown "$rc"' EXIT
trap 'soak_cleanup; netns_teardown 130; trap - EXIT; exit 130' INT
trap 'soak_cleanup; netns_teardown 143; trap - EXIT; exit 143' TERM

netns_on_failure() {
    echo "---- soak: FAILED (exit $1, seed $SOAK_SEED); the last actions ----" >&2
    tail -n 40 "$TMP/soak.log" >&2 2>/dev/null || true
    echo "---- replay: SOAK_SEED=$SOAK_SEED SOAK_S=$SOAK_S bash tests/netns/soak.sh ----" >&2
}

log "binary $LANYARD_BIN; seed $SOAK_SEED; ${SOAK_S}s of chaos; h5 downloads to a ${TMPFS_MIB} MiB tmpfs"
rc=0
SOAK_P=$NETNS_P SOAK_TMP=$TMP SOAK_TMPFS=$SOAK_TMPFS PATIENCE=$PATIENCE python3 "$HERE/soak.py" || rc=$?
netns_check_drops
if ((rc != 0)); then
    die "soak failed (seed $SOAK_SEED); replay with SOAK_SEED=$SOAK_SEED SOAK_S=$SOAK_S bash tests/netns/soak.sh"
fi
echo "soak: ok (seed $SOAK_SEED, ${SOAK_S}s)"
