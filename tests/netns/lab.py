#!/usr/bin/env python3
"""tests/netns/lab.py - the state of a lab of `lanyard serve --json` nodes, read from their event
files DIR/h1.jsonl .. DIR/hN.jsonl (docs/serve-json.md). Used by tests/netns/lab.sh and
benches/lab.sh.

A node's own id is the "id" of its `listening` line. A node *lists* a peer while its last
`peer_up`/`peer_down` for that id is a `peer_up`; it is *complete* while it lists every other node
of the lab; the lab is *converged* while every node is complete.

usage:
  lab.py wait DIR N TIMEOUT_S
      poll until the lab is converged (exit 0) or TIMEOUT_S seconds have passed (exit 1);
      a progress line on stderr every 5 s.
  lab.py report DIR N [STARTS]
      one JSON object on stdout (see report() below).
  lab.py lonely DIR N [K]
      the K (default 3) hosts that list the fewest others, one "I COUNT" line each, fewest first.
  lab.py ids DIR N
      "I ID" for every host whose listening line is there.
  lab.py peers DIR N I FILE
      FILE is host I's `lanyard peers --json`: exit 0 if it lists every other node of the lab
      online (with nick "hostJ" and address 10.99.0.(10+J)), else 1 with the reason on stdout.

STARTS: a file of "I START_MS" lines, when the script started host I's node (default: the ts_ms
of the node's `listening` line).
"""
import collections
import json
import os
import statistics
import sys
import time


class Node:
    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.buf = b""
        self.id = None
        self.listening_ms = None
        self.events = []  # (ts_ms, event, id) for peer_up / peer_down / peer_discovered
        self.warnings = 0
        self.lagged = 0

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read()
        except FileNotFoundError:
            return
        self.pos += len(chunk)
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if not isinstance(o, dict):
                continue
            ev = o.get("event")
            if ev == "listening":
                self.id = o.get("id")
                self.listening_ms = o.get("ts_ms")
            elif ev in ("peer_up", "peer_down", "peer_discovered"):
                self.events.append((o.get("ts_ms") or 0, ev, o.get("id")))
            elif ev == "warning":
                self.warnings += 1
            elif ev == "lagged":
                self.lagged += 1

    def listed(self):
        """The ids this node lists as up now."""
        cur = set()
        for _, ev, ident in self.events:
            if ev == "peer_up":
                cur.add(ident)
            elif ev == "peer_down":
                cur.discard(ident)
        return cur

    def complete_intervals(self, others):
        """[(from_ms, to_ms or None)] while this node listed every id in others."""
        cur, out, since = set(), [], None
        for ts, ev, ident in self.events:
            if ev == "peer_up":
                cur.add(ident)
            elif ev == "peer_down":
                cur.discard(ident)
            else:
                continue
            done = others <= cur
            if done and since is None:
                since = ts
            elif not done and since is not None:
                out.append((since, ts))
                since = None
        if since is not None:
            out.append((since, None))
        return out


class Lab:
    def __init__(self, d, n):
        self.n = n
        self.nodes = [Node(os.path.join(d, "h%d.jsonl" % i)) for i in range(1, n + 1)]

    def poll(self):
        for node in self.nodes:
            node.poll()

    def ids(self):
        return [node.id for node in self.nodes]

    def others(self, k):
        return {node.id for j, node in enumerate(self.nodes) if j != k}

    def counts(self):
        """How many other lab nodes each node lists now (None: its id is not known yet)."""
        known = set(self.ids()) - {None}
        out = []
        for k, node in enumerate(self.nodes):
            out.append(None if node.id is None else len(node.listed() & (known - {node.id})))
        return out

    def converged(self):
        if None in self.ids():
            return False
        return all(self.others(k) <= node.listed() for k, node in enumerate(self.nodes))

    def converged_at(self):
        """The first ts_ms at which every node was complete (None if never)."""
        if None in self.ids():
            return None
        changes = []
        for k, node in enumerate(self.nodes):
            for a, b in node.complete_intervals(self.others(k)):
                changes.append((a, 1))
                if b is not None:
                    changes.append((b, -1))
        complete = 0
        for ts, d in sorted(changes, key=lambda c: (c[0], c[1])):
            complete += d
            if complete == self.n:
                return ts
        return None


def histogram(values):
    return {str(k): v for k, v in sorted(collections.Counter(values).items(), key=lambda kv: (kv[0] is None, kv[0] or 0))}


def read_starts(path, lab):
    starts = {}
    if path:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    starts[int(parts[0])] = int(parts[1])
    for i, node in enumerate(lab.nodes, 1):
        if i not in starts and node.listening_ms is not None:
            starts[i] = node.listening_ms
    return starts


def status_line(lab, elapsed):
    counts = lab.counts()
    done = sum(1 for c in counts if c == lab.n - 1)
    return "t=%.1fs: %d/%d nodes list all %d others; nodes by how many they list: %s" % (
        elapsed, done, lab.n, lab.n - 1, histogram(counts))


def wait(d, n, timeout):
    lab = Lab(d, n)
    t0 = time.monotonic()
    last = t0
    while True:
        lab.poll()
        if lab.converged():
            print(status_line(lab, time.monotonic() - t0), file=sys.stderr)
            return 0
        now = time.monotonic()
        if now - t0 >= timeout:
            print(status_line(lab, now - t0), file=sys.stderr)
            return 1
        if now - last >= 5:
            print(status_line(lab, now - t0), file=sys.stderr)
            last = now
        time.sleep(0.5)


def report(d, n, starts_path=None):
    """JSON: converged (now), converge_ms (first start -> every node complete, or null),
    node_ms (per node: own start -> first complete, null if never), node_median_ms, node_max_ms,
    complete (nodes complete now), counts (how many others each lists now, per node), histogram
    of those, discovered_histogram (distinct peer_discovered ids per node), ups / downs (all
    peer_up / peer_down lines), warnings, lagged, unknown_ids (nodes whose listening line is
    missing)."""
    lab = Lab(d, n)
    lab.poll()
    starts = read_starts(starts_path, lab)
    first_start = min(starts.values()) if starts else None
    at = lab.converged_at()
    node_ms = []
    for k, node in enumerate(lab.nodes):
        iv = node.complete_intervals(lab.others(k)) if node.id and None not in lab.ids() else []
        s = starts.get(k + 1)
        node_ms.append(iv[0][0] - s if iv and s is not None else None)
    ok = [v for v in node_ms if v is not None]
    counts = lab.counts()
    disc = [len({e[2] for e in node.events if e[1] == "peer_discovered"}) for node in lab.nodes]
    out = {
        "n": n,
        "converged": lab.converged(),
        "converge_ms": (at - first_start) if at is not None and first_start is not None else None,
        "start_span_ms": (max(starts.values()) - first_start) if starts else None,
        "node_ms": node_ms,
        "node_median_ms": statistics.median(ok) if ok else None,
        "node_max_ms": max(ok) if ok else None,
        "nodes_ever_complete": len(ok),
        "complete": sum(1 for c in counts if c == n - 1),
        "counts": counts,
        "histogram": histogram(counts),
        "discovered_histogram": histogram(disc),
        "ups": sum(1 for node in lab.nodes for e in node.events if e[1] == "peer_up"),
        "downs": sum(1 for node in lab.nodes for e in node.events if e[1] == "peer_down"),
        "warnings": sum(node.warnings for node in lab.nodes),
        "lagged": sum(node.lagged for node in lab.nodes),
        "unknown_ids": [i for i, node in enumerate(lab.nodes, 1) if node.id is None],
    }
    print(json.dumps(out))
    return 0


def lonely(d, n, k=3):
    lab = Lab(d, n)
    lab.poll()
    ranked = sorted(enumerate(lab.counts(), 1), key=lambda ic: (-1 if ic[1] is None else ic[1], ic[0]))
    for i, c in ranked[:k]:
        print(i, "?" if c is None else c)
    return 0


def ids(d, n):
    lab = Lab(d, n)
    lab.poll()
    for i, node in enumerate(lab.nodes, 1):
        if node.id is not None:
            print(i, node.id)
    return 0


def peers(d, n, i, path):
    lab = Lab(d, n)
    lab.poll()
    want = {node.id: j for j, node in enumerate(lab.nodes, 1) if j != i}
    if None in want:
        print("not every node has printed its listening line yet")
        return 1
    try:
        listed = json.load(open(path))
    except (OSError, ValueError) as e:
        print("peers --json output unreadable: %s" % e)
        return 1
    if not isinstance(listed, list):
        print("peers --json is not a JSON array")
        return 1
    errs, seen = [], set()
    for p in listed:
        if not isinstance(p, dict) or p.get("id") not in want:
            if isinstance(p, dict) and p.get("id") == lab.nodes[i - 1].id:
                errs.append("lists itself")
            continue
        j = want[p["id"]]
        seen.add(p["id"])
        if p.get("online") is not True:
            errs.append("host%d offline" % j)
        if p.get("nick") != "host%d" % j:
            errs.append("host%d has nick %r" % (j, p.get("nick")))
        if not str(p.get("addr", "")).startswith("10.99.0.%d:" % (10 + j)):
            errs.append("host%d at %r" % (j, p.get("addr")))
    missing = sorted(want[k] for k in set(want) - seen)
    if missing:
        errs.append("missing hosts %s" % missing)
    if errs:
        print("; ".join(errs[:10]) + (" ..." if len(errs) > 10 else ""))
        return 1
    print("lists all %d others online (%d entries)" % (len(want), len(listed)))
    return 0


def main(argv):
    try:
        cmd, d, n = argv[1], argv[2], int(argv[3])
        if cmd == "wait":
            return wait(d, n, float(argv[4]))
        if cmd == "report":
            return report(d, n, argv[4] if len(argv) > 4 else None)
        if cmd == "peers":
            return peers(d, n, int(argv[4]), argv[5])
        if cmd == "ids":
            return ids(d, n)
        if cmd == "lonely":
            return lonely(d, n, int(argv[4]) if len(argv) > 4 else 3)
    except (IndexError, ValueError) as e:
        print("lab.py: %s" % e, file=sys.stderr)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
