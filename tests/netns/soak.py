#!/usr/bin/env python3
"""tests/netns/soak.py - the chaos soak's engine, used by tests/netns/soak.sh (2 minutes, in CI)
and benches/soak.sh (any length, prints figures). The shell script builds the lab (lib.sh:
namespaces ${SOAK_P}h1..h6 on one bridge ${SOAK_P}br) and mounts a small tmpfs; this engine
does the rest and exits 0 only when every check holds.

The lab: h1..h5 run `lanyard serve --json --accept-all` (h5's download dir is the small tmpfs,
which fills up), h6 runs the TUI in tmux and trusts the others (auto-accept); every command on
h6 names its data dir with `--data-dir` and so goes to the TUI's node over control.sock.

For SOAK_S seconds, actions drawn from a seeded RNG (a shuffled deck, so every kind comes up in
every round of the deck): direct and #all chat (`say`), sends of small files, folders and big
files to one or several peers (relayed), pulls (`get` from `--share`d folders), cancels from the
sending and the receiving side (`lanyard cancel`, `x` in the TUI), stops and restarts (SIGTERM,
SIGINT, `q` in the TUI), `kill -9` and restart, link faults (nft `numgen random` loss on a host's
input, a `tc tbf` rate limit on a host's downlink, its link down for 5 s) and a filler file that
takes the tmpfs's last free bytes for a few seconds. Then every fault is undone, every node
started, the lab converges, transfers settle, and the checks run (see check_* below). Every
node's RSS and open file descriptors are sampled every SAMPLE_S seconds.

The seed decides which actions come, in which order, on which hosts, with which files; the
machine's timing decides what they meet, so a replay (SOAK_SEED=...) repeats the work, not
every interleaving.

usage: soak.py (everything from the environment, see Config)
"""

import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback

N = 6
TUI = 6
TMPFS_HOST = 5
# The lab's steady machine: never stopped or killed, so that one node's memory and open files
# are followed in one process through the whole soak (every other node is restarted at random).
STEADY = 1
PORT = 7717
FINAL = ("done", "failed", "rejected", "cancelled")
MIB = 1 << 20
PREFIX = 4096  # bytes of a file that identify it (every source is random data)


def now():
    return time.monotonic()


class Config:
    def __init__(self):
        e = os.environ
        self.prefix = e["SOAK_P"]
        self.tmp = e["SOAK_TMP"]
        self.bin = e["LANYARD_BIN"]
        self.tmpfs = e["SOAK_TMPFS"]
        self.seconds = float(e.get("SOAK_S", "120"))
        self.seed = int(e["SOAK_SEED"])
        self.patience = float(e.get("PATIENCE", "120"))
        self.big_mib = int(e.get("BIG_MIB", "64"))
        self.big_at_once = int(e.get("SOAK_BIG_AT_ONCE", "1"))
        self.warm_s = float(e.get("SOAK_WARM_S", "30"))
        self.settle = float(e.get("SOAK_SETTLE_S", "60"))
        self.sample_s = float(e.get("SAMPLE_S", "2"))
        self.rss_max_mib = float(e.get("SOAK_RSS_MAX_MIB", "64"))
        self.flat_pct = float(e.get("SOAK_FLAT_PCT", "10"))
        # Every host's downlink, as on a lab's LAN (tc tbf on its bridge port; 0: unlimited), so
        # that big transfers last seconds and the chaos meets them mid-way.
        self.link_mbit = int(e.get("SOAK_LINK_MBIT", "100"))
        self.max_down = 2
        self.max_cmds = 14
        # A deliberate fault, to prove a check can fail: corrupt-received (flip a byte of one
        # received file before the checks), keep-partial (leave a fake partial of a cancelled
        # send), lose-chat (delete an acknowledged line from a receiver's report).
        self.inject = e.get("SOAK_INJECT", "")
        # Only these kinds of action (comma-separated names of ACTIONS), to look at one closely.
        self.only = [x.strip() for x in e.get("SOAK_ACTIONS", "").split(",") if x.strip()]


C = Config()
LOG = open(os.path.join(C.tmp, "soak.log"), "a", buffering=1)
T0 = now()
LOCK = threading.RLock()


def log(msg, loud=False):
    line = "%7.1fs %s" % (now() - T0, msg)
    LOG.write(line + "\n")
    if loud:
        print("%s [soak] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def ns(i):
    return "%sh%d" % (C.prefix, i)


def data_dir(i):
    return os.path.join(C.tmp, "h%d" % i)


def download_dir(i):
    return os.path.join(C.tmpfs, "in") if i == TMPFS_HOST else os.path.join(C.tmp, "in%d" % i)


def share_dir(i):
    return os.path.join(C.tmp, "src%d" % i, "share%d" % i)


def src_dir(i):
    return os.path.join(C.tmp, "src%d" % i)


def home_env(i):
    h = os.path.join(C.tmp, "home%d" % i)
    for d in (".config", ".local/share", ".local/state", ".cache", "run"):
        os.makedirs(os.path.join(h, d), exist_ok=True)
    os.chmod(os.path.join(h, "run"), 0o700)
    env = ["HOME=" + h, "XDG_CONFIG_HOME=%s/.config" % h, "XDG_DATA_HOME=%s/.local/share" % h,
           "XDG_STATE_HOME=%s/.local/state" % h, "XDG_CACHE_HOME=%s/.cache" % h,
           "XDG_RUNTIME_DIR=%s/run" % h, "RUST_BACKTRACE=1", "PATH=" + os.environ.get("PATH", "")]
    if i != TUI:
        env.append("LANYARD_DATA_DIR=" + data_dir(i))
    # More for every lanyard process (space-separated NAME=VALUE), e.g. to compare allocator
    # tunings: SOAK_NODE_ENV=GLIBC_TUNABLES=glibc.malloc.arena_max=2
    env.extend(x for x in os.environ.get("SOAK_NODE_ENV", "").split() if "=" in x)
    return env


def lanyard_argv(i, args, timeout):
    """A one-shot command on host i. Host TUI names its data dir with --data-dir (after the
    subcommand, before any `--`), the others through LANYARD_DATA_DIR."""
    args = list(args)
    if i == TUI:
        args[1:1] = ["--data-dir", data_dir(i)]
    return ["ip", "netns", "exec", ns(i), "timeout", "-k", "5", str(int(timeout)), "env", "-i",
            *home_env(i), C.bin, *args]


def run(i, args, timeout=30):
    """(rc, stdout, stderr) of a one-shot command on host i."""
    t = now()
    try:
        p = subprocess.run(lanyard_argv(i, args, timeout), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout + 15)
        out, err, rc = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), p.returncode
    except subprocess.TimeoutExpired:
        out, err, rc = "", "harness: no exit after %d s" % (timeout + 15), 124
    with open(os.path.join(C.tmp, "cmds.log"), "a") as f:
        f.write("h%d %s -> %d in %.1fs\n%s%s\n" % (i, " ".join(shlex.quote(a) for a in args), rc,
                                                 now() - t, out[-2000:], err[-2000:]))
    return rc, out, err


def sh(argv, check=True):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), p.returncode, p.stderr.decode(errors="replace").strip()))
    return p.returncode


def json_lines(text):
    out = []
    for line in text.splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict):
            out.append(o)
    return out


HASHES = {}


def sha256_file(path):
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in HASHES:
        HASHES[key] = sha256_uncached(path)
    return HASHES[key]


def sha256_uncached(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(MIB)
            if not b:
                return h.hexdigest()
            h.update(b)


# ---------------------------------------------------------------------------------------------
# Sources: every file the soak sends or shares is random, with a size no other file has, and
# is recorded by the path it takes at a receiver, its sha256 and its first PREFIX bytes.

SOURCES = {}  # relpath at a receiver -> {"sha", "size", "prefix", "owner"}  (owner: sid or "pI")
USED_SIZES = set()
RNG = random.Random(C.seed)
FILE_RNG = random.Random(C.seed ^ 0x5EED)  # sizes, apart from the action deck


def unique_size(lo, hi):
    while True:
        s = FILE_RNG.randint(lo, hi)
        if s not in USED_SIZES:
            USED_SIZES.add(s)
            return s


def make_file(path, size, rel, owner):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h = hashlib.sha256()
    first = b""
    with open(path, "wb") as f:
        left = size
        while left:
            b = os.urandom(min(left, MIB))
            if len(first) < PREFIX:
                first += b[:PREFIX - len(first)]
            h.update(b)
            f.write(b)
            left -= len(b)
    with LOCK:
        SOURCES[rel] = {"sha": h.hexdigest(), "size": size, "prefix": first, "owner": owner}


# ---------------------------------------------------------------------------------------------
# Nodes

class Node:
    def __init__(self, i):
        self.i = i
        self.proc = None  # serve's Popen (h1..h5)
        self.pid = None
        self.up = False
        self.starts = 0
        self.id = None
        self.busy = False  # being stopped / restarted

    def events_path(self, k):
        return os.path.join(C.tmp, "h%d.%d.jsonl" % (self.i, k))


NODES = {i: Node(i) for i in range(1, N + 1)}
TSOCK = os.path.join(C.tmp, "tmux.sock")


def tmux(*args, check=False):
    p = subprocess.run(["ip", "netns", "exec", ns(TUI), "env", "-u", "TMUX", "tmux", "-S", TSOCK, *args],
                       stdin=subprocess.DEVNULL, capture_output=True)
    if check and p.returncode != 0:
        raise RuntimeError("tmux %s: %s" % (" ".join(args), p.stderr.decode(errors="replace").strip()))
    return p.stdout.decode(errors="replace")


def keys(*names):
    """Keys typed one by one, a moment apart: an Escape followed at once by a key would reach
    the TUI as Alt+key."""
    for k in names:
        tmux("send-keys", "-t", "tui", k)
        time.sleep(0.3)


def focus_transfers():
    """Shift-Tab until the footer shows the Transfers pane's keys (the focused pane names its
    keys there); Escape first leaves typing or a dialog."""
    keys("Escape")
    for _ in range(7):
        rows = [r for r in screen().splitlines() if r.strip()]
        if rows and "x cancel" in rows[-1]:
            return True
        keys("BTab")
    return False


def screen():
    return tmux("capture-pane", "-p", "-t", "tui")


def wait(pred, timeout, step=0.2):
    deadline = now() + timeout
    while True:
        v = pred()
        if v:
            return v
        if now() >= deadline:
            return v
        time.sleep(step)


def listening(path):
    try:
        with open(path, "rb") as f:
            for o in json_lines(f.read().decode(errors="replace")):
                if o.get("event") == "listening":
                    return o
    except FileNotFoundError:
        pass
    return None


def start_node(i):
    n = NODES[i]
    n.starts += 1
    k = n.starts
    if i == TUI:
        env = home_env(i) + ["LANYARD_LOG=info", "LANYARD_LOG_FILE=%s/tui.%d.log" % (C.tmp, k)]
        cmd = ("cd %s && exec env -i TERM=\"$TERM\" %s %s --nick host%d --data-dir %s --download-dir %s --port %d --share %s 2>%s"
               % (shlex.quote(src_dir(i)), " ".join(shlex.quote(e) for e in env), shlex.quote(C.bin), i,
                  shlex.quote(data_dir(i)), shlex.quote(download_dir(i)), PORT, shlex.quote(share_dir(i)),
                  shlex.quote("%s/tui.%d.err" % (C.tmp, k))))
        tmux("-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "120", "-y", "40", "sh", "-c", cmd, check=True)
        pid = tmux("display-message", "-p", "-t", "tui", "#{pane_pid}").strip()
        if not pid.isdigit():
            raise RuntimeError("no pid for the TUI's pane")
        n.pid = int(pid)
        ok = wait(lambda: "Transfers" in screen(), C.patience)
        # Its node is up once its control socket answers.
        ok = ok and wait(lambda: run(i, ["id", "--json"], 20)[0] == 0, C.patience, 0.5)
    else:
        out = open(n.events_path(k), "wb")
        err = open(os.path.join(C.tmp, "h%d.%d.err" % (i, k)), "wb")
        argv = ["ip", "netns", "exec", ns(i), "env", "-i", *home_env(i), C.bin, "serve", "--json",
                "--accept-all", "--nick", "host%d" % i, "--port", str(PORT), "--download-dir",
                download_dir(i), "--share", share_dir(i)]
        n.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        out.close()
        err.close()
        n.pid = n.proc.pid
        ok = wait(lambda: listening(n.events_path(k)) or n.proc.poll() is not None, C.patience)
        ok = ok and n.proc.poll() is None
    if not ok:
        raise RuntimeError("h%d did not start (start %d)" % (i, k))
    n.up = True
    log("h%d started (start %d, pid %d)" % (i, k, n.pid))


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        return st != "Z"
    except (OSError, IndexError):
        return False


def reap(i):
    n = NODES[i]
    if n.proc is not None:
        try:
            n.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass


FINDINGS = []  # (check, text): things seen during the run that a check reports


def stop_node(i, how):
    """how: term, int, kill, quit (TUI's q). Waits until it is gone (SIGKILL after PATIENCE/4)."""
    n = NODES[i]
    n.up = False
    pid = n.pid
    t = now()
    answered = [False]

    def gone():
        # Quitting with transfers running asks first ("2 transfers running — pause them and
        # quit?" over "… · y quit · n stay"), as soon as the TUI draws it (a loaded machine may
        # take seconds): answered once, yes.
        if how == "quit" and not answered[0] and pid_alive(pid) and "pause them and quit?" in screen():
            answered[0] = True
            tmux("send-keys", "-t", "tui", "y")
        return not pid_alive(pid)

    if how == "quit":
        keys("Escape", "q")
    else:
        os.kill(pid, {"term": signal.SIGTERM, "int": signal.SIGINT, "kill": signal.SIGKILL}[how])
    limit = C.patience / 4
    if not wait(gone, limit):
        said = ""
        if i == TUI:
            # What its node said while it stopped (which of its tasks still ran), if anything.
            try:
                with open("%s/tui.%d.log" % (C.tmp, n.starts), errors="replace") as f:
                    lines = [l.strip() for l in f if "shutting down" in l or "WARN" in l]
                said = "".join("\n          " + l[-300:] for l in lines[-6:])
            except OSError:
                pass
        FINDINGS.append(("serving", "h%d did not stop within %d s of %s; killed%s" % (i, limit, how, said)))
        os.kill(pid, signal.SIGKILL)
        wait(lambda: not pid_alive(pid), 10)
    reap(i)
    if i == TUI:
        tmux("kill-server")
    log("h%d stopped by %s in %.1fs" % (i, how, now() - t))


# ---------------------------------------------------------------------------------------------
# Work records

SAYS = []  # {"host", "to", "text", "rc", "id", "t"}
SENDS = {}  # sid -> {"host", "to": [hosts], "kind", "files": [rel], "rc", "out"}
GETS = {}  # gid -> {"host", "from", "path", "name", "to", "rc"}
CANCELS = []  # {"how", "host", "transfer", "dir", "owner", "rc"}
COUNTS = {}
RUNNING = []  # threads of background commands
SEQ = {"s": 0, "g": 0, "c": 0}


def count(key):
    with LOCK:
        COUNTS[key] = COUNTS.get(key, 0) + 1


def background(fn, *args):
    t = threading.Thread(target=guarded, args=(fn,) + args, daemon=True)
    with LOCK:
        RUNNING[:] = [x for x in RUNNING if x.is_alive()]
        RUNNING.append(t)
    t.start()


def guarded(fn, *args):
    try:
        fn(*args)
    except Exception:  # a harness error is a failure of the run, not a lanyard finding
        FINDINGS.append(("harness", traceback.format_exc().strip().splitlines()[-1]))
        log("harness error: " + traceback.format_exc())


def running_cmds():
    with LOCK:
        RUNNING[:] = [x for x in RUNNING if x.is_alive()]
        return len(RUNNING)


def up_hosts(exclude=()):
    return [i for i, n in NODES.items() if n.up and not n.busy and i not in exclude]


def next_id(kind):
    with LOCK:
        SEQ[kind] += 1
        return "%s%04d" % (kind, SEQ[kind])


DELIVERED = re.compile(r"delivered \(message ([0-9a-f]+)\)")


def do_say(host, to, text):
    rec = {"host": host, "to": to, "text": text, "t": now() - T0}
    rc, out, err = run(host, ["say", "host%d" % to if to else "#all", text, "--timeout", "10"], 40)
    rec["rc"] = rc
    m = DELIVERED.search(err + out)
    rec["id"] = m.group(1) if m else None
    with LOCK:
        SAYS.append(rec)
    count("say %s rc=%s" % ("#all" if not to else "direct", 0 if rc == 0 else "!0"))


def do_send(sid):
    s = SENDS[sid]
    args = ["send", *("host%d" % j for j in s["to"]), "--", *s["paths"]]
    rc, out, err = run(s["host"], args, 300)
    s["rc"], s["out"], s["end"] = rc, out + err, now() - T0
    count("send %s rc=%s" % (s["kind"], 0 if rc == 0 else "!0"))
    log("%s from h%d to %s ended %d: %s" % (sid, s["host"], s["to"], rc, (out + err).strip().splitlines()[-1:]))


def do_get(gid):
    g = GETS[gid]
    rc, out, err = run(g["host"], ["get", "host%d" % g["from"], g["path"], "--to", g["to"]], 200)
    g["rc"], g["out"] = rc, out + err
    count("get rc=%s" % (0 if rc == 0 else "!0"))
    log("%s h%d <- h%d %s ended %d" % (gid, g["host"], g["from"], g["path"], rc))


OWNER = re.compile(r"^(?:(s\d{4})-|(p\d+-\d+)\.bin$)")


def owner_of(name):
    """The send (sNNNN) or shared file (pI-K) a transfer's file or offered name belongs to."""
    for cand in (name or "", os.path.basename(name or "")):
        m = OWNER.match(cand)
        if m:
            return m.group(1) or m.group(2)
    return None


# ---------------------------------------------------------------------------------------------
# Actions. Each returns True when done (or started), False when it cannot apply now.

def two_up():
    """Two different running hosts (a, b), or None."""
    ups = up_hosts()
    if len(ups) < 2:
        return None
    a = RNG.choice(ups)
    return a, RNG.choice([j for j in ups if j != a])


def a_say_direct():
    pair = two_up()
    if not pair:
        return False
    a, b = pair
    background(do_say, a, b, "soak direct h%d to h%d #%d" % (a, b, RNG.randrange(10 ** 9)))
    return True


def a_say_all():
    ups = up_hosts()
    if not ups:
        return False
    a = RNG.choice(ups)
    background(do_say, a, 0, "soak #all from h%d #%d" % (a, RNG.randrange(10 ** 9)))
    return True


def running_sends(kind=None):
    return [sid for sid, s in sorted(SENDS.items()) if "rc" not in s and kind in (None, s["kind"])]


def new_send(kind, max_to, host=None, to=None):
    """Start a send (in the background); its id, or None when it cannot start now."""
    ups = up_hosts()
    if len(ups) < 2:
        return None
    if kind == "big" and len(running_sends("big")) >= C.big_at_once:
        return None
    a = host or RNG.choice(ups)
    if to is None:
        k = min(RNG.choice([1, 1, 1, 2, 3][:max_to + 2]), len(ups) - 1, max_to)
        to = RNG.sample([j for j in ups if j != a], k)
    sid = next_id("s")
    base = os.path.join(src_dir(a), sid)
    paths, files = [], []
    if kind == "small":
        for x in "abc"[:RNG.randint(1, 3)]:
            rel = "%s-%s.bin" % (sid, x)
            make_file(os.path.join(base, rel), unique_size(1, 1536 * 1024), rel, sid)
            paths.append(os.path.join(base, rel))
            files.append(rel)
    elif kind == "folder":
        top = "%s-d" % sid
        for sub in ("", "x/", "x/y/")[:RNG.randint(1, 3)]:
            for x in range(RNG.randint(1, 3)):
                rel = "%s/%sf%d.bin" % (top, sub, x)
                make_file(os.path.join(base, rel), unique_size(1, 768 * 1024), rel, sid)
                files.append(rel)
        paths.append(os.path.join(base, top))
    else:
        mib = C.big_mib // 2 if kind == "half" else C.big_mib
        rel = "%s-big.bin" % sid
        make_file(os.path.join(base, rel), unique_size(mib * MIB, mib * MIB + MIB - 1), rel, sid)
        paths.append(os.path.join(base, rel))
        files.append(rel)
    SENDS[sid] = {"host": a, "to": to, "kind": kind, "paths": paths, "files": files, "t": now() - T0}
    log("%s: h%d sends %s (%d files) to %s" % (sid, a, kind, len(files), to))
    background(do_send, sid)
    return sid


SHARED = {}  # host -> [names]


def a_get():
    pair = two_up()
    if not pair:
        return False
    a, b = pair
    name = RNG.choice(SHARED[b])
    gid = next_id("g")
    to = os.path.join(C.tmp, "pull%d" % a, gid)
    GETS[gid] = {"host": a, "from": b, "path": "share%d/%s" % (b, name), "name": name, "to": to, "t": now() - T0}
    background(do_get, gid)
    return True


def transfers(i):
    rc, out, _ = run(i, ["transfers", "--json"], 20)
    return json_lines(out) if rc == 0 else []


def row_of(i, sid, direction, least=5):
    """Host i's running transfer of send sid in that direction, once it has moved least %."""
    for t in transfers(i):
        if (owner_of(t.get("file") or "") == sid and t.get("direction") == direction
                and t.get("state") == "running" and least <= (t.get("percent") or 0) < 90):
            return t
    return None


def cancel_scenario(side):
    """A running big send (one is started when none runs) is cancelled once 5 % has moved:
    with `lanyard cancel` on its sender (side "send") or on a recipient ("receive"), or with x in
    the TUI ("tui", h6 being its sender or a recipient)."""
    if side == "tui" and (not NODES[TUI].up or NODES[TUI].busy):
        return False
    cands = [sid for sid in running_sends("big") if not SENDS[sid].get("claimed")
             and (side != "tui" or TUI in [SENDS[sid]["host"]] + SENDS[sid]["to"])]
    if cands:
        sid = RNG.choice(cands)
    else:
        ups = up_hosts()
        if len(ups) < 2 or (side == "tui" and TUI not in ups):
            return False
        a = RNG.choice(ups)
        if side == "tui" and a != TUI:
            sid = new_send("big", 1, a, [TUI])
        else:
            sid = new_send("big", 1, a)
        if not sid:
            return False
    SENDS[sid]["claimed"] = side
    background(cancel_run, side, sid)
    return True


def cancel_run(side, sid):
    s = SENDS[sid]
    if side == "send" or (side == "tui" and s["host"] == TUI):
        host, direction = s["host"], "send"
    else:
        host, direction = (TUI if side == "tui" else RNG.choice(s["to"])), "receive"
    t = wait(lambda: "rc" in s or not NODES[host].up or row_of(host, sid, direction), 30, 0.3)
    if not isinstance(t, dict):
        count("cancel %s: %s ended first" % (side, s["kind"]))
        log("cancel %s of %s: nothing to cancel on h%d (the send ended, or h%d went down)" % (side, sid, host, host))
        return
    if side == "tui":
        # x cancels the row under the cursor: Home puts it on the oldest running transfer, which
        # may be another one; whatever x cancelled is recorded.
        n = NODES[TUI]
        n.busy = True
        try:
            before = {x["transfer"]: x for x in transfers(TUI) if x.get("state") not in FINAL}
            if not focus_transfers():
                raise RuntimeError("the TUI's footer never showed the Transfers pane's keys (x cancel)")
            keys("Home", "x")
            got = wait(lambda: [x for x in transfers(TUI) if x["transfer"] in before and x.get("state") == "cancelled"], 15, 0.5)
            with open(os.path.join(C.tmp, "tui-x.%d.screen" % len(CANCELS)), "w") as f:
                f.write(screen())
        finally:
            n.busy = False
        for x in got or []:
            own = owner_of(x.get("file") or before[x["transfer"]].get("file") or "")
            CANCELS.append({"how": "x in the TUI", "host": TUI, "transfer": x["transfer"], "dir": x.get("direction"),
                            "owner": own, "peer": x.get("peer"), "rc": 0, "t": now() - T0})
        count("cancel tui: %s" % ("cancelled a row" if got else "cancelled nothing"))
        log("cancel (x in the TUI, aiming at %s of %s): cancelled %s" % (t["transfer"], sid,
            [(x["transfer"], owner_of(x.get("file") or "")) for x in got or []]))
        return
    rc, out, err = run(host, ["cancel", t["transfer"]], 20)
    out += err
    CANCELS.append({"how": "lanyard cancel on the %s's node" % ("sender" if side == "send" else "receiver"),
                    "host": host, "transfer": t["transfer"], "dir": direction, "owner": sid,
                    "peer": t.get("peer"), "rc": rc, "t": now() - T0})
    count("cancel %s rc=%s" % (side, 0 if rc == 0 else "!0"))
    log("cancel (%s) on h%d of %s, %s at %s%%: %d %s" % (side, host, t["transfer"], sid, t.get("percent"), rc, out.strip()))


def restart_later(i, delay):
    time.sleep(delay)
    for attempt in range(10):
        try:
            start_node(i)
            break
        except RuntimeError as e:
            log("restart of h%d failed (%s), again" % (i, e))
            if i != TUI:
                n = NODES[i]
                if n.proc and n.proc.poll() is None:
                    n.proc.kill()
                reap(i)
            else:
                tmux("kill-server")
            time.sleep(1)
    else:
        FINDINGS.append(("serving", "h%d could not be started again" % i))
    NODES[i].busy = False


def stop_and_restart(hows):
    ups = up_hosts(exclude=(STEADY,))
    down = sum(1 for n in NODES.values() if not n.up or n.busy)
    if not ups or down >= C.max_down:
        return False
    busy = sorted({h for sid in running_sends() for h in [SENDS[sid]["host"]] + SENDS[sid]["to"]} & set(ups))
    i = RNG.choice(busy if busy and RNG.random() < 0.7 else ups)
    how = RNG.choice(hows + (["quit"] if i == TUI and "kill" not in hows else []))
    delay = RNG.uniform(1, 6)
    NODES[i].busy = True
    count("stop %s" % how)

    def go():
        stop_node(i, how)
        restart_later(i, delay)
    background(go)
    return True


def a_stop():
    return stop_and_restart(["term", "int"])


def a_kill():
    return stop_and_restart(["kill"])


FAULTED = set()


def neighbours_batch(i):
    lines = ["link set eth0 up", "route replace 224.0.0.0/4 dev eth0"]
    for j in range(1, N + 1):
        if j != i:
            lines.append("neigh replace 10.99.0.%d lladdr 02:99:00:00:%02x:%02x nud permanent dev eth0" % (10 + j, j // 256, j % 256))
    return "\n".join(lines) + "\n"


def link_rate(i, mbit):
    """Host i's downlink: tc tbf on its port in the bridge's namespace, where what it drops is
    meant (netns_check_drops counts only the hosts' own send errors). 0: no limit."""
    br = ["ip", "netns", "exec", C.prefix + "br", "tc", "qdisc"]
    if mbit:
        sh(br + ["replace", "dev", "h%d" % i, "root", "tbf", "rate", "%dmbit" % mbit, "burst", "64kb", "latency", "50ms"])
    else:
        sh(br + ["del", "dev", "h%d" % i, "root"], check=False)


def clear_fault(i, kind):
    if kind == "loss":
        sh(["ip", "netns", "exec", ns(i), "nft", "delete", "table", "inet", "soak"], check=False)
    elif kind == "rate":
        link_rate(i, C.link_mbit)
    elif kind == "down":
        subprocess.run(["ip", "-n", ns(i), "-batch", "-"], input=neighbours_batch(i).encode(), capture_output=True, check=True)
    FAULTED.discard((i, kind))
    log("h%d: %s cleared" % (i, kind))


def fault(kind):
    free = [i for i in range(1, N + 1) if not any(f[0] == i for f in FAULTED)]
    if not free:
        return False
    i = RNG.choice(free)
    if kind == "loss":
        pct = RNG.randint(2, 10)
        secs = RNG.uniform(5, 15)
        rules = ("table inet soak {\n chain input {\n  type filter hook input priority 0; policy accept;\n"
                 "  numgen random mod 100 < %d drop\n }\n}\n" % pct)
        subprocess.run(["ip", "netns", "exec", ns(i), "nft", "-f", "-"], input=rules.encode(), capture_output=True, check=True)
        what = "%d%% loss on its input for %.0f s" % (pct, secs)
    elif kind == "rate":
        mbit = RNG.choice([10, 20, 40])
        secs = RNG.uniform(5, 15)
        link_rate(i, mbit)
        what = "downlink limited to %d Mbit/s for %.0f s" % (mbit, secs)
    else:
        secs = 5
        sh(["ip", "-n", ns(i), "link", "set", "eth0", "down"])
        what = "link down for 5 s"
    FAULTED.add((i, kind))
    count("fault %s" % kind)
    log("h%d: %s" % (i, what))

    def later():
        time.sleep(secs)
        clear_fault(i, kind)
    background(later)
    return True


FILLER = os.path.join(C.tmpfs, "filler")


def tmpfs_free():
    st = os.statvfs(C.tmpfs)
    return st.f_bavail * st.f_frsize


def a_fill():
    """Somebody else's file takes the tmpfs's last free bytes for a few seconds, while h5
    receives a file of BIG_MIB/2 when there is still room for its offer (its download dir's
    free space less the 64 MiB margin): disk full mid-transfer."""
    if FILLING.is_set():
        return False
    FILLING.set()
    sid = None
    if NODES[TMPFS_HOST].up and not NODES[TMPFS_HOST].busy and tmpfs_free() > (64 + C.big_mib // 2 + 8) * MIB:
        ups = up_hosts(exclude=(TMPFS_HOST,))
        if ups:
            sid = new_send("half", 1, RNG.choice(ups), [TMPFS_HOST])
    background(fill_run, sid, RNG.uniform(3, 8))
    return True


FILLING = threading.Event()


def fill_run(sid, hold):
    try:
        fill_hold(sid, hold)
    finally:
        FILLING.clear()


def fill_hold(sid, hold):
    if sid:
        t = wait(lambda: "rc" in SENDS[sid] or row_of(TMPFS_HOST, sid, "receive", 1), 30, 0.2)
        log("tmpfs: filling %s" % ("while h%d receives %s" % (TMPFS_HOST, sid) if isinstance(t, dict) else "(%s ended first)" % sid))
    free = tmpfs_free()
    if free < 2 * MIB:
        return
    with open(FILLER, "wb") as f:
        left = free - 256 * 1024
        z = bytes(MIB)
        try:
            while left > 0:
                f.write(z[:min(left, MIB)])
                left -= MIB
        except OSError:
            pass
    count("fault tmpfs filled")
    log("tmpfs: a filler took %d MiB" % (free // MIB))
    time.sleep(hold)
    os.unlink(FILLER)
    log("tmpfs: filler removed")


ACTIONS = {
    "say direct": (a_say_direct, 10),
    "say #all": (a_say_all, 4),
    "send small": (lambda: bool(new_send("small", 3)), 5),
    "send folder": (lambda: bool(new_send("folder", 3)), 3),
    "send big": (lambda: bool(new_send("big", 2)), 2),
    "get": (a_get, 3),
    "cancel (sender)": (lambda: cancel_scenario("send"), 2),
    "cancel (receiver)": (lambda: cancel_scenario("receive"), 2),
    "x in the TUI": (lambda: cancel_scenario("tui"), 1),
    "stop": (a_stop, 2),
    "kill -9": (a_kill, 2),
    "loss": (lambda: fault("loss"), 1),
    "rate limit": (lambda: fault("rate"), 1),
    "link down": (lambda: fault("down"), 1),
    "fill tmpfs": (a_fill, 1),
}


# ---------------------------------------------------------------------------------------------
# Sampling: RSS and open fds of every node's current process.

SAMPLES = []  # (t, host, pid, rss_kib, fds)
SAMPLING = threading.Event()


def sampler():
    while not SAMPLING.is_set():
        t = now() - T0
        for i, n in NODES.items():
            if not n.up or n.pid is None:
                continue
            try:
                with open("/proc/%d/status" % n.pid) as f:
                    rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
                fds = len(os.listdir("/proc/%d/fd" % n.pid))
            except (OSError, StopIteration):
                continue
            SAMPLES.append((t, i, n.pid, rss, fds))
        SAMPLING.wait(C.sample_s)


# ---------------------------------------------------------------------------------------------
# The run

def setup():
    for i in range(1, N + 1):
        for d in (src_dir(i), share_dir(i), download_dir(i), os.path.join(C.tmp, "pull%d" % i)):
            os.makedirs(d, exist_ok=True)
        SHARED[i] = []
        for k in range(3):
            name = "p%d-%d.bin" % (i, k)
            make_file(os.path.join(share_dir(i), name), unique_size(64 * 1024, 6 * MIB), name, "p%d-%d" % (i, k))
            SHARED[i].append(name)
    for i in range(1, N + 1):
        rc, out, err = run(i, ["id", "--json"], C.patience)
        if rc != 0:
            raise RuntimeError("h%d: lanyard id failed: %s" % (i, err.strip()))
        NODES[i].id = json.loads(out)["id"]
    for i in range(1, N + 1):
        link_rate(i, C.link_mbit)
    for i in range(1, N + 1):
        start_node(i)
    converge("start")
    for j in range(1, N):
        rc, _, err = run(TUI, ["trust", "host%d" % j], 30)
        if rc != 0:
            raise RuntimeError("h6: trust host%d failed: %s" % (j, err.strip()))


def peers_ok(i):
    rc, out, _ = run(i, ["peers", "--json"], 30)
    if rc != 0:
        return False
    try:
        listed = json.loads(out)
    except ValueError:
        return False
    online = {p.get("nick") for p in listed if isinstance(p, dict) and p.get("online") is True}
    return all("host%d" % j in online for j in range(1, N + 1) if j != i)


def converge(what):
    t = now()
    for i in range(1, N + 1):
        if not wait(lambda: peers_ok(i), C.patience, 1):
            raise RuntimeError("%s: h%d does not list every other host online after %d s" % (what, i, C.patience))
    log("%s: every host lists every other online (%.1f s)" % (what, now() - t), loud=True)


# The kinds of action that stop, kill or cut nodes off; the warm-up does all the others.
FAULTS = ("stop", "kill -9", "loss", "rate limit", "link down", "fill tmpfs")


def warm_up():
    """Before the chaos, SOAK_WARM_S seconds of the same work without a fault (chat, sends,
    gets, cancels), then a wait for quiet: each process reaches its working set (the allocator
    keeps what the busiest moment took), so the first window of the chaos measures a node at
    work, not one growing into it."""
    t = now()
    work(C.warm_s, [x for x in ACTIONS if x not in FAULTS], "warm-up")
    wait(lambda: not running_cmds(), C.patience, 0.5)
    log("warm-up: %d sends, %d says, %d gets in %.1f s" % (len(SENDS), len(SAYS), len(GETS), now() - t), loud=True)


def work(seconds, names, what):
    """Actions of the kinds named, drawn from a shuffled deck, for that many seconds."""
    names = sorted(names)
    if C.only:
        names = [x for x in names if x in C.only]
    deck = []
    end = now() + seconds
    last_note = last_reclaim = now()
    while now() < end:
        if not deck:
            deck = [name for name in names for _ in range(ACTIONS[name][1])]
            RNG.shuffle(deck)
        name = deck.pop(0)
        if running_cmds() < C.max_cmds:
            try:
                ok = ACTIONS[name][0]()
            except Exception:
                FINDINGS.append(("harness", "%s: %s" % (name, traceback.format_exc().strip().splitlines()[-1])))
                log("harness error in %s: %s" % (name, traceback.format_exc()))
                ok = True
        else:
            ok = False
        if ok:
            count("action " + name)
        elif deck.count(name) < 3:
            # Cannot apply now (no running transfer, too many nodes down...): later in this round.
            deck.insert(RNG.randint(0, len(deck)), name)
        time.sleep(RNG.uniform(0.2, 0.8))
        if now() - last_reclaim >= 10:
            last_reclaim = now()
            guarded(reclaim)
        if now() - last_note >= 15:
            last_note = now()
            log("%s: %.0f s left; %d commands running; %d sends, %d gets, %d says, %d cancels so far"
                % (what, end - now(), running_cmds(), len(SENDS), len(GETS), len(SAYS), len(CANCELS)), loud=True)


STUCK = []  # transfers that never ended


def calm():
    """Undo every fault, start every node, wait for the lab and then for the transfers."""
    deadline = now() + C.patience
    while now() < deadline and (FAULTED or any(n.busy for n in NODES.values()) or FILLING.is_set()):
        time.sleep(0.5)
    for i, kind in list(FAULTED):
        clear_fault(i, kind)
    for i, n in NODES.items():
        if not n.up:
            FINDINGS.append(("serving", "h%d was still down after the chaos" % i))
            start_node(i)
    converge("after the chaos")
    t = now()

    def quiet():
        if running_cmds():
            return False
        for i in range(1, N + 1):
            if any(x.get("state") not in FINAL for x in transfers(i)):
                return False
        return True
    if not wait(quiet, C.settle, 2):
        for i in range(1, N + 1):
            for x in transfers(i):
                if x.get("state") not in FINAL:
                    STUCK.append("h%d: transfer %s (%s %s %s, %s) still %s at %s%% %d s after the lab came back"
                                 % (i, x["transfer"], x.get("direction"), "to" if x.get("direction") == "send" else "from",
                                    x.get("nick"), owner_of(x.get("file") or "") or "?", x.get("state"),
                                    x.get("percent"), C.settle))
        log("settle: still running after %d s: commands %d; %s" % (C.settle, running_cmds(), STUCK), loud=True)
    else:
        log("settle: every command ended, no transfer running (%.1f s)" % (now() - t), loud=True)
    # Interrupted pulls are taken up again the way a person does: the same `get` once more.
    for gid, g in sorted(GETS.items()):
        if g.get("rc") != 0 and not cancelled_owner(gid, g):
            rc, out, err = run(g["host"], ["get", "host%d" % g["from"], g["path"], "--to", g["to"]], 200)
            g["again"] = rc
            log("%s again: %d %s" % (gid, rc, (out + err).strip().splitlines()[-1:]))


def cancelled_owner(gid, g):
    """A pull counts as cancelled when a cancel hit a transfer of its file on its puller while it ran."""
    return any(c["rc"] == 0 and c["owner"] == g["name"][:-4] and c["host"] in (g["host"], g["from"]) for c in CANCELS)


# ---------------------------------------------------------------------------------------------
# Checks

RESULTS = []  # (name, ok, [details])


def result(name, bad, note=""):
    RESULTS.append((name, not bad, bad, note))


def receivers_events():
    """Per serve host: every event line of every start."""
    out = {}
    for i in range(1, N + 1):
        evs = []
        for k in range(1, NODES[i].starts + 1):
            p = NODES[i].events_path(k)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    evs += json_lines(f.read().decode(errors="replace"))
        out[i] = evs
    return out


STRIP_COPY = re.compile(r"^(.*?) \(\d+\)(\.[^./]*)?$")


def source_rel(rel):
    """The source a received path is a copy of: the top-level name may have got ' (N)'."""
    if rel in SOURCES:
        return rel
    parts = rel.split("/")
    m = STRIP_COPY.match(parts[0])
    if m:
        cand = "/".join([m.group(1) + (m.group(2) or "")] + parts[1:])
        if cand in SOURCES:
            return cand
    return None


def walk_final(d):
    """Every file under d outside the partial folder, as relpaths."""
    out = []
    for root, dirs, files in os.walk(d):
        dirs[:] = [x for x in dirs if x != ".lanyard-partial"]
        for f in files:
            out.append(os.path.relpath(os.path.join(root, f), d))
    return out


def partials(d):
    p = os.path.join(d, ".lanyard-partial")
    out = []
    for root, _, files in os.walk(p):
        for f in files:
            out.append(os.path.join(root, f))
    return out


def attribute(path):
    """The source a partial file holds part of (by its first bytes, else its size), or None."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(PREFIX)
    except OSError:
        return None
    if head.strip(b"\0"):
        for rel, s in SOURCES.items():
            if s["prefix"][:len(head)] == head:
                return rel
    for rel, s in SOURCES.items():
        if s["size"] == size:
            return rel
    return None


def have(d, rel):
    """Is a verified copy of source rel under download dir d (its top-level name maybe ' (N)')?"""
    return copy_of(d, rel) is not None


def copy_of(d, rel):
    """The path of an identical copy of source rel under d, or None."""
    s = SOURCES[rel]
    parts = rel.split("/")
    stem, ext = os.path.splitext(parts[0])
    cands = [rel] + ["/".join(["%s (%d)%s" % (stem, k, ext)] + parts[1:]) for k in range(1, 4)]
    if "." not in parts[0] or len(parts) > 1:
        cands += ["/".join(["%s (%d)" % (parts[0], k)] + parts[1:]) for k in range(1, 4)]
    for c in cands:
        p = os.path.join(d, c)
        if os.path.isfile(p) and os.path.getsize(p) == s["size"] and sha256_file(p) == s["sha"]:
            return p
    return None


RECLAIMED = {}  # sid -> the copies checked and then deleted, with when
EARLY_BAD = []  # what those early checks found


def reclaim():
    """Bounds the disk a long soak takes: a big send that exited 0 is checked at once (every
    recipient holds an identical copy, as check_received would find at the end), then its
    copies (not h5's: the tmpfs is meant to fill) and its source are deleted. The end's checks
    count it as checked."""
    for sid in sorted(cancelled_sends()):
        s = SENDS[sid]
        if "rc" in s and s["kind"] in ("big", "half") and not s.get("source_gone"):
            # A cancelled send is never taken up again: its source is needed no more (its hash
            # and first bytes, which the checks use, are kept in memory).
            s["source_gone"] = True
            for rel in s["files"]:
                os.unlink(os.path.join(src_dir(s["host"]), sid, rel))
    for sid in sorted(SENDS):
        s = SENDS[sid]
        if sid in RECLAIMED or s.get("rc") != 0 or s["kind"] not in ("big", "half"):
            continue
        paths = []
        for j in s["to"]:
            for rel in s["files"]:
                p = copy_of(download_dir(j), rel)
                if p is None:
                    EARLY_BAD.append("%s reported verified, but h%d has no identical %s (seen at %.0f s)"
                                     % (sid, j, rel, now() - T0))
                elif j != TMPFS_HOST:
                    paths.append(p)
        RECLAIMED[sid] = {"paths": set(paths), "t": now() - T0}
        for p in paths + ([] if s.get("source_gone") else [os.path.join(src_dir(s["host"]), sid, rel) for rel in s["files"]]):
            try:
                os.unlink(p)
            except OSError as e:
                FINDINGS.append(("harness", "cannot delete %s: %s" % (p, e)))


def inject():
    if not C.inject:
        return
    if C.inject == "corrupt-received":
        for i in range(1, N + 1):
            for rel in walk_final(download_dir(i)):
                p = os.path.join(download_dir(i), rel)
                if os.path.getsize(p) > 0:
                    with open(p, "r+b") as f:
                        b = f.read(1)
                        f.seek(0)
                        f.write(bytes([b[0] ^ 0xFF]))
                    log("INJECTED: flipped the first byte of %s" % p, loud=True)
                    return
    elif C.inject == "keep-partial":
        sid = next((c["owner"] for c in CANCELS if c["rc"] == 0 and c["owner"] in SENDS), None)
        if sid:
            rel = SENDS[sid]["files"][0]
            j = SENDS[sid]["to"][0]
            d = os.path.join(download_dir(j), ".lanyard-partial")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "injected.part"), "wb") as f:
                f.write(SOURCES[rel]["prefix"])
            log("INJECTED: a partial of cancelled %s at h%d" % (sid, j), loud=True)
    elif C.inject == "down-node":
        stop_node(3, "kill")
        log("INJECTED: h3 killed and not started again", loud=True)
    elif C.inject == "lose-chat":
        C.lose_chat = True
        log("INJECTED: one acknowledged line will be missing from its receiver's history", loud=True)


def check_chat(hist):
    """Every acknowledged line (say exited 0) is stored exactly once at each of its receivers."""
    bad = []
    n = copies = 0
    for s in SAYS:
        if s["rc"] != 0:
            continue
        n += 1
        a = s["host"]
        if not s["id"]:
            bad.append("h%d: say exited 0 without naming its message" % a)
            continue
        if s["to"]:
            recips = [s["to"]]
        else:
            mine = [x for x in hist[(a, "#all")] if x.get("id") == s["id"]]
            if len(mine) != 1:
                bad.append("h%d: its own #all line %s is in its history %d times" % (a, s["id"], len(mine)))
                continue
            by_id = {NODES[j].id: j for j in NODES}
            recips = []
            for r in mine[0].get("recipients") or []:
                j = by_id.get(r.get("peer"))
                if j is None:
                    bad.append("h%d: #all line %s went to %s, not a lab host" % (a, s["id"], r.get("peer")))
                elif r.get("state") != "delivered":
                    bad.append("h%d: say exited 0 but #all line %s is %s for h%d" % (a, s["id"], r.get("state"), j))
                else:
                    recips.append(j)
            if not recips:
                # At most two of five others are ever down: a room line always has recipients.
                bad.append("h%d: #all line %s acknowledged with no recipient" % (a, s["id"]))
        for j in recips:
            copies += 1
            conv = (j, "#all") if not s["to"] else (j, a)
            got = [x for x in hist[conv] if x.get("id") == s["id"] and x.get("from") == NODES[a].id]
            if getattr(C, "lose_chat", False) and got:
                got, C.lose_chat = [], False
            if len(got) != 1:
                bad.append("h%d -> h%d: acknowledged line %s (%r) stored %d times" % (a, j, s["id"], s["text"], len(got)))
            elif got[0].get("text") != s["text"]:
                bad.append("h%d -> h%d: line %s stored as %r" % (a, j, s["id"], got[0].get("text")))
    result("every acknowledged chat line stored exactly once at its receiver", bad,
           "%d acknowledged lines, %d stored copies looked for" % (n, copies))


def histories():
    hist = {}
    for i in range(1, N + 1):
        for conv in ["#all"] + [j for j in range(1, N + 1) if j != i]:
            rc, out, err = run(i, ["history", conv if conv == "#all" else "host%d" % conv, "--json"], 60)
            if rc != 0:
                FINDINGS.append(("serving", "h%d: history %s failed: %s" % (i, conv, err.strip())))
            hist[(i, conv)] = json_lines(out)
    return hist


def check_received(evs):
    """Every transfer reported verified is byte-identical at every recipient: a send that exited
    0 (at each recipient), a get that exited 0, every file_received line of a serve node."""
    bad = []
    n = 0
    bad += EARLY_BAD
    gone = set().union(*(r["paths"] for r in RECLAIMED.values()))
    for sid, s in sorted(SENDS.items()):
        if s.get("rc") != 0:
            continue
        for j in s["to"]:
            for rel in s["files"]:
                n += 1
                if sid in RECLAIMED:
                    continue  # checked when it ended (reclaim)
                if not have(download_dir(j), rel):
                    bad.append("%s reported verified, but h%d has no identical %s" % (sid, j, rel))
    for gid, g in sorted(GETS.items()):
        if g.get("rc") == 0 or g.get("again") == 0:
            n += 1
            if not have(g["to"], g["name"]):
                bad.append("%s (h%d get %s) reported verified, but the file differs or is missing" % (gid, g["host"], g["path"]))
    for i, lines in evs.items():
        for o in lines:
            if o.get("event") != "file_received":
                continue
            n += 1
            p = o.get("path") or ""
            rel = None
            for d in [download_dir(i)] + [g["to"] for g in GETS.values() if g["host"] == i]:
                if p.startswith(d + "/"):
                    rel = source_rel(os.path.relpath(p, d))
            if p in gone:
                continue
            if rel is None:
                bad.append("h%d: file_received %s, not a file any host sent" % (i, p))
            elif not os.path.isfile(p) or os.path.getsize(p) != SOURCES[rel]["size"] or sha256_file(p) != SOURCES[rel]["sha"]:
                bad.append("h%d: file_received %s differs from what was sent (or is gone)" % (i, p))
    result("every transfer reported verified is byte-identical at every recipient", bad, "%d file copies" % n)


def check_final_names():
    """Nothing half-written under a final name: every file in a download or pull dir outside
    the partial folder is a whole, identical copy of a source."""
    bad = []
    n = 0
    dirs = [download_dir(i) for i in range(1, N + 1)] + [g["to"] for g in GETS.values()]
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for rel in walk_final(d):
            n += 1
            p = os.path.join(d, rel)
            src = source_rel(rel)
            if src is None:
                bad.append("%s: no source has this name" % p)
            elif os.path.getsize(p) != SOURCES[src]["size"]:
                bad.append("%s: %d bytes, not the %d sent" % (p, os.path.getsize(p), SOURCES[src]["size"]))
            elif sha256_file(p) != SOURCES[src]["sha"]:
                bad.append("%s: the size sent, other bytes (sha256 differs)" % p)
    result("nothing half-written under a final name", bad, "%d files" % n)


def outcome_notes(evs):
    """Per (send, host): the error messages a receiving serve node reported for it."""
    notes = {}
    for i, lines in evs.items():
        owner_of_transfer = {}
        for o in lines:
            t = o.get("transfer")
            if not t:
                continue
            if o.get("event") == "offer":
                for name in o.get("names") or []:
                    own = owner_of(name)
                    if own:
                        owner_of_transfer[t] = own
            elif o.get("event") == "progress" and owner_of(o.get("file") or ""):
                owner_of_transfer.setdefault(t, owner_of(o["file"]))
        for o in lines:
            own = owner_of_transfer.get(o.get("transfer"))
            if own and o.get("direction") == "receive":
                notes.setdefault((own, i), []).append(o)
    return notes


def cancelled_sends():
    return {c["owner"] for c in CANCELS if c["rc"] == 0 and c["owner"] in SENDS}


SPACE = re.compile(r"disk space|disk full", re.I)
SPACE_CODES = ("no_space", "disk_full")  # the typed reasons (serve --json `code`) of the same


def check_cancels_and_paused(evs):
    """No partial data after a cancel; every paused (interrupted) transfer finished once its
    nodes came back; and no partial data left that nothing explains."""
    notes = outcome_notes(evs)
    cancelled = cancelled_sends()
    left = {}  # (owner, host) -> [partial paths]
    unknown = []
    for i in range(1, N + 1):
        for p in partials(download_dir(i)):
            rel = attribute(p)
            (left.setdefault((SOURCES[rel]["owner"], i), []).append(p) if rel else unknown.append((i, p)))
    for g in GETS.values():
        for p in partials(g["to"]):
            rel = attribute(p)
            (left.setdefault((SOURCES[rel]["owner"], g["host"]), []).append(p) if rel else unknown.append((g["host"], p)))
    bad_cancel, bad_paused = [], []
    for (own, i), ps in sorted(left.items()):
        if own in cancelled:
            how = "; ".join("%s h%d" % (c["how"], c["host"]) for c in CANCELS if c["rc"] == 0 and c["owner"] == own)
            bad_cancel.append("%s (%s) was cancelled (%s), h%d still holds %d partial file(s), %d bytes" %
                              (own, SENDS[own]["kind"], how, i, len(ps), sum(os.path.getsize(p) for p in ps)))
    for gid, g in sorted(GETS.items()):
        own = g["name"][:-4]
        if cancelled_owner(gid, g) and (own, g["host"]) in left:
            bad_cancel.append("%s (a pull) was cancelled, h%d still holds its partial" % (gid, g["host"]))
    n_paused = 0
    for sid, s in sorted(SENDS.items()):
        if sid in cancelled:
            continue
        for j in s["to"]:
            got = sid in RECLAIMED or all(have(download_dir(j), rel) for rel in s["files"])
            if got:
                continue
            said = notes.get((sid, j), [])
            mine = [l for l in (s.get("out") or "").splitlines() if "host%d" % j in l]
            if j == TMPFS_HOST and (any(o.get("code") in SPACE_CODES for o in said) or any(
                    SPACE.search(x) for x in [o.get("message") or o.get("reason") or "" for o in said] + mine)):
                continue  # no room on the small tmpfs: refused or ended "disk full", as it should
            started = said or (sid, j) in left or any(
                os.path.exists(os.path.join(download_dir(j), rel.split("/")[0])) for rel in s["files"])
            if not started:
                continue  # its offer never reached h_j (it was down or cut off at the time)
            n_paused += 1
            why = [o.get("message") or o.get("reason") for o in said if o.get("event") in ("error", "cancelled")]
            bad_paused.append("%s (%s, h%d -> h%s): h%d never got all of it (send exited %s; h%d said %s; %d partial file(s) left)"
                              % (sid, s["kind"], s["host"], ",".join(map(str, s["to"])), j, s.get("rc"), j,
                                 why[-2:] or "nothing", len(left.get((sid, j), []))))
    for gid, g in sorted(GETS.items()):
        if g.get("rc") != 0 and not cancelled_owner(gid, g) and g.get("again") != 0:
            bad_paused.append("%s: h%d's get %s from h%d failed and failed again after the lab came back (%s)"
                              % (gid, g["host"], g["path"], g["from"], g.get("again")))
    bad_paused += STUCK
    full_at_tmpfs = any(SPACE.search(o.get("message") or "") or o.get("code") in SPACE_CODES
                        for o in evs.get(TMPFS_HOST, []))
    for i, p in unknown:
        size = os.path.getsize(p)
        if i == TMPFS_HOST and size == 0 and full_at_tmpfs:
            continue  # an empty partial file left by "disk full": its first bytes never fitted
        bad_paused.append("h%d: %s: partial data that no source's first bytes or size match (%d bytes)" % (i, p, size))
    result("no partial data after a cancel", bad_cancel, "%d cancelled sends" % len(cancelled))
    result("every paused transfer finished after its node came back", bad_paused,
           "%d send x recipient pairs checked" % sum(len(s["to"]) for sid, s in SENDS.items() if sid not in cancelled))


def transfer_owners(evs):
    """transfer id -> the send or shared file it moved, from every event line and every
    `transfers --json` answer the soak read."""
    owners = {}
    lines = [o for lst in evs.values() for o in lst]
    with open(os.path.join(C.tmp, "cmds.log"), "rb") as f:
        lines += json_lines(f.read().decode(errors="replace"))
    for o in lines:
        t = o.get("transfer")
        own = owner_of(o.get("file") or "") or next(filter(None, map(owner_of, o.get("names") or [])), None)
        if t and own:
            owners[t] = own
    return owners


def check_auth(evs):
    """No "failed authentication" (or the typed code `tampered`) anywhere: this soak injects no
    corruption."""
    owners = transfer_owners(evs)
    cancelled = cancelled_sends()
    bad, seen = [], set()
    files = sorted(f for f in os.listdir(C.tmp) if re.match(r"(h\d+\.\d+\.(jsonl|err)|tui\.\d+\.(log|err)|cmds\.log)$", f))
    for f in files:
        with open(os.path.join(C.tmp, f), "rb") as fh:
            for k, line in enumerate(fh, 1):
                low = line.lower()
                if b"failed authentication" in low or b'"code":"tampered"' in low.replace(b" ", b""):
                    text = line.decode(errors="replace").strip()
                    m = re.search(r'"transfer":"([0-9a-f]+)"', text) or re.search(r"\b([0-9a-f]{16})\b", text)
                    key = (f.split(".")[0], m.group(1) if m else text)
                    if key not in seen:
                        seen.add(key)
                        own = owners.get(key[1]) if m else None
                        why = ("cancelled: %s" % "; ".join("%s h%d" % (c["how"], c["host"]) for c in CANCELS
                                                          if c["rc"] == 0 and c["owner"] == own)
                               if own in cancelled else "not cancelled")
                        bad.append("%s:%d (%s, %s): %s" % (f, k, own or "?", why, text[:200]))
    result('no "failed authentication" (no corruption was injected)', bad, "%d logs read" % len(files))


def check_serving():
    """Every node still serving: lists every other online, and a line to its neighbour and one
    to #all are acknowledged (those lines join the chat check)."""
    bad = [text for kind, text in FINDINGS if kind == "serving"]
    for i in range(1, N + 1):
        if not peers_ok(i):
            bad.append("h%d: peers --json does not list every other host online" % i)
        before = len(SAYS)
        do_say(i, i % N + 1, "final round h%d to h%d" % (i, i % N + 1))
        do_say(i, 0, "final round #all from h%d" % i)
        for s in SAYS[before:]:
            if s["rc"] != 0:
                bad.append("h%d: final say to %s exited %d" % (i, "h%d" % s["to"] if s["to"] else "#all", s["rc"]))
    result("every node still serving", bad, "peers + 2 says per node")


def window(samples, lo, hi):
    return [x for x in samples if lo <= x[0] < hi]


def check_flat():
    """Per node, RSS and open fds flat: for every process that ran the warm-up and lived into
    the last window of the chaos (a minute each, or a third of the chaos when it lasts under 3
    minutes), the median of its samples in the last window within flat_pct of the first's; a
    node restarted in between has no such process and is shown, not judged (STEADY always is). RSS never above
    rss_max_mib, in any sample of any process."""
    lo, hi = C.t_chaos0, C.t_chaos0 + C.seconds
    w = 60.0 if C.seconds >= 180 else C.seconds / 3
    bad, fig = [], []
    judged = 0
    for i in range(1, N + 1):
        mine = [x for x in SAMPLES if x[1] == i]
        peak = max((x[3] for x in mine), default=0) / 1024
        if peak > C.rss_max_mib:
            at = max(mine, key=lambda x: x[3])
            bad.append("h%d: RSS reached %.1f MiB (> %.0f) at %.0f s" % (i, peak, C.rss_max_mib, at[0]))
        pids = sorted({x[2] for x in mine})
        # A process judged ran the warm-up (started before the chaos) and into the last window: a
        # fresh process grows to its working set, which is not a leak.
        through = [p for p in pids if p == C.warm_pids.get(i) and window([x for x in mine if x[2] == p], hi - w, hi)]
        if not through:
            fig.append("h%d: %d processes (restarted in the chaos), peak RSS %.1f MiB, fds %s..%s: not judged" %
                       (i, len(pids), peak, min((x[4] for x in mine), default="?"), max((x[4] for x in mine), default="?")))
            if i == STEADY:
                bad.append("h%d (never stopped) has no process through both windows" % i)
            continue
        judged += 1
        ps = [x for x in mine if x[2] == through[0]]
        first, last = window(ps, lo, lo + w), window(ps, hi - w, hi)
        r0, r1 = statistics.median(x[3] for x in first) / 1024, statistics.median(x[3] for x in last) / 1024
        f0, f1 = statistics.median(x[4] for x in first), statistics.median(x[4] for x in last)
        fig.append("h%d: RSS %.1f -> %.1f MiB (peak %.1f), fds %g -> %g (pid %d, median of the first and last %.0f s)"
                   % (i, r0, r1, peak, f0, f1, through[0], w))
        if r1 > r0 * (1 + C.flat_pct / 100):
            bad.append("h%d: RSS grew from %.1f to %.1f MiB (median of the first / last %.0f s)" % (i, r0, r1, w))
        if f1 > f0 * (1 + C.flat_pct / 100):
            bad.append("h%d: open fds grew from %g to %g (median of the first / last %.0f s)" % (i, f0, f1, w))
    C.flat_figures = fig
    result("per node, memory and open files flat and RSS <= %.0f MiB" % C.rss_max_mib, bad,
           "%d nodes through both %.0f s windows; %d samples" % (judged, w, len(SAMPLES)))


def check_harness():
    bad = [text for kind, text in FINDINGS if kind == "harness"]
    result("the harness itself ran without error", bad)


def figures(evs):
    moved = 0
    for lines in evs.values():
        for o in lines:
            if o.get("event") == "file_received":
                moved += o.get("size") or 0
    print("\n== soak figures ==")
    print("seed %d; chaos %.0f s; whole run %.0f s; %d sends (%s), %d gets, %d says, %d cancels; %.1f MiB received as verified files by serve nodes"
          % (C.seed, C.seconds, now() - T0, len(SENDS),
             ", ".join("%d %s" % (sum(1 for s in SENDS.values() if s["kind"] == k), k) for k in ("small", "folder", "big", "half")),
             len(GETS), len(SAYS), len(CANCELS), moved / MIB))
    for k in sorted(COUNTS):
        print("  %-40s %d" % (k, COUNTS[k]))
    errs = [o for o in evs.get(TMPFS_HOST, []) if o.get("event") == "error"]
    refused = sum(1 for o in errs if o.get("code") == "no_space" or "disk space" in (o.get("message") or ""))
    full = sum(1 for o in errs if o.get("code") == "disk_full" or "disk full" in (o.get("message") or ""))
    print("  h%d (tmpfs): %d offers refused for space, %d transfers ended by a full disk, %d other errors"
          % (TMPFS_HOST, refused, full, len(errs) - refused - full))
    for line in getattr(C, "flat_figures", []):
        print("  " + line)
    # The whole curve: median RSS (MiB) / fds of each node in each sixth of the chaos.
    lo, step = C.t_chaos0, C.seconds / 6
    print("  RSS MiB / open fds, median of each %.0f s of the chaos (* = the node was restarted in it):" % step)
    for i in range(1, N + 1):
        cells = []
        for k in range(6):
            w = window([x for x in SAMPLES if x[1] == i], lo + k * step, lo + (k + 1) * step)
            restarted = len({x[2] for x in w}) > 1
            cells.append("%5.1f/%-3g%s" % (statistics.median(x[3] for x in w) / 1024, statistics.median(x[4] for x in w),
                                           "*" if restarted else " ") if w else "    -     ")
        print("    h%d  %s" % (i, "  ".join(cells)))


def main():
    print("%s [soak] seed %d, %d s of chaos, %d MiB big files; log %s/soak.log" %
          (time.strftime("%H:%M:%S"), C.seed, C.seconds, C.big_mib, C.tmp), file=sys.stderr, flush=True)
    ok_run = True
    try:
        setup()
        threading.Thread(target=sampler, daemon=True).start()
        warm_up()
        C.t_chaos0 = now() - T0
        C.warm_pids = {i: n.pid for i, n in NODES.items()}
        work(C.seconds, ACTIONS, "chaos")
        log("chaos over after %.0f s; calming down" % (now() - T0 - C.t_chaos0), loud=True)
        calm()
        SAMPLING.set()
        with open(os.path.join(C.tmp, "samples.tsv"), "w") as f:
            f.write("t_s\thost\tpid\trss_kib\tfds\n")
            for x in SAMPLES:
                f.write("%.1f\t%d\t%d\t%d\t%d\n" % x)
        inject()
        evs = receivers_events()
        check_serving()
        hist = histories()
        check_chat(hist)
        check_received(evs)
        check_final_names()
        check_cancels_and_paused(evs)
        check_auth(evs)
        check_flat()
        check_harness()
        figures(evs)
    except Exception:
        traceback.print_exc()
        ok_run = False
    print("\n== soak checks (seed %d) ==" % C.seed)
    failed = 0
    for name, ok, bad, note in RESULTS:
        print("%s  %s%s" % ("PASS" if ok else "FAIL", name, " (%s)" % note if note else ""))
        if not ok:
            failed += 1
            for b in bad[:12]:
                print("        " + b)
            if len(bad) > 12:
                print("        ... and %d more" % (len(bad) - 12))
    sys.stdout.flush()
    return 0 if ok_run and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
