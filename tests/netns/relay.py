"""tests/netns/relay.py - reads a receiver's `serve --json` lines for tests/netns/relay.sh.

    relay.py reached FILE SINCE_MS MIN_BYTES TIMEOUT_S
        wait until FILE has a receive `progress` line written at or after SINCE_MS with
        bytes >= MIN_BYTES; print "TS_MS BYTES PEER" (exit 1 on timeout)
    relay.py drops FILE SINCE_MS [CUT_MS]
        did a receiver's progress ever go back (a transfer started again from less than it had)?
        Over the running receive `progress` lines written at or after SINCE_MS, in order: one
        JSON object with `peak` (the most bytes shown), `drop` (the largest fall below the
        highest value seen so far, 0 if it never fell), `drop_from` / `drop_to` (that fall),
        `lines`, `restarts`: the receive transfer_started / error lines written after CUT_MS
        (default SINCE_MS), evidence that the incoming stream was cut and attached again, and
        `resumed`: the most bytes a progress line after CUT_MS counted as not moved (resumed)
    relay.py grep FILE SINCE_MS EVENT...
        print the lines of those events written at or after SINCE_MS
    relay.py row FILE PEER VIA NAME
        FILE holds `lanyard transfers --json` lines: its last receive is done with nothing
        failed, from PEER, through the relay VIA ("" for none), named NAME; print it (exit 1
        and say what differs if not)
"""

import json
import sys
import time


def lines(path):
    try:
        raw = open(path, "rb").read().split(b"\n")
    except FileNotFoundError:
        return
    for line in raw:
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict):
            yield o


def receiving(o, since):
    return (o.get("event") == "progress" and o.get("direction") == "receive"
            and o.get("ts_ms", 0) >= since)


def reached(path, since, min_bytes, timeout):
    deadline = time.monotonic() + timeout
    while True:
        for o in lines(path):
            if receiving(o, since) and o.get("bytes", 0) >= min_bytes:
                # Relayed: the relay's nick ("via"); the sender's id is "peer".
                print(o["ts_ms"], o["bytes"], o.get("via") or o.get("peer", "-"))
                return 0
        if time.monotonic() >= deadline:
            return 1
        time.sleep(0.05)


def drops(path, since, cut):
    peak, drop, drop_from, drop_to, n, restarts, resumed = 0, 0, None, None, 0, [], 0
    for o in lines(path):
        if receiving(o, since) and o.get("state") == "running":
            n += 1
            b = o.get("bytes", 0)
            if o.get("ts_ms", 0) > cut:
                resumed = max(resumed, o.get("resumed") or 0)
            if peak - b > drop:
                drop, drop_from, drop_to = peak - b, peak, b
            peak = max(peak, b)
        elif (o.get("event") in ("transfer_started", "error") and o.get("ts_ms", 0) > cut
              and o.get("direction") == "receive"):
            restarts.append(o)
    print(json.dumps({"peak": peak, "drop": drop, "drop_from": drop_from, "drop_to": drop_to,
                      "lines": n, "restarts": restarts, "resumed": resumed}))
    return 0


def grep(path, since, events):
    for o in lines(path):
        if o.get("event") in events and o.get("ts_ms", 0) >= since:
            print(json.dumps(o))
    return 0


def row(path, peer, via, name):
    rows = [o for o in lines(path) if o.get("direction") == "receive"]
    if not rows:
        print("no receive row", file=sys.stderr)
        return 1
    r = rows[-1]
    want = {"state": "done", "failed": 0, "peer": peer, "via": via or None, "name": name}
    wrong = {k: r.get(k) for k, v in want.items() if r.get(k) != v}
    if wrong:
        print("receive row differs: %r (wanted %r)" % (wrong, want), file=sys.stderr)
        return 1
    print("%s from %s via %s: %s" % (r["state"], r["nick"], r.get("via"), r["name"]))
    return 0


def main(argv):
    cmd, path = argv[1], argv[2]
    if cmd == "reached":
        return reached(path, int(argv[3]), int(argv[4]), float(argv[5]))
    if cmd == "drops":
        return drops(path, int(argv[3]), int(argv[4] if len(argv) > 4 else argv[3]))
    if cmd == "grep":
        return grep(path, int(argv[3]), set(argv[4:]))
    if cmd == "row":
        return row(path, argv[3], argv[4], argv[5])
    sys.exit("relay.py: unknown command %r" % cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
