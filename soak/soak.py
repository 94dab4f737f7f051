#!/usr/bin/env python3
"""Soak test driver for tokengate (standard library only). Started by soak/run, which builds the binaries.

    soak.py --tokengate BIN --devidp BIN --work DIR --minutes N

Starts the ZITADEL double (examples/devidp) and tokengate on loopback, warms a pool of tokens, then sends mixed
traffic from THREADS keep-alive connections for N minutes while the double is killed (SIGKILL) and restarted twice.

Traffic mix (per request):
  cached   90%  a token of the warm pool (WARM_POOL valid tokens, all checked once before the run)
  fresh     9%  a valid token tokengate has not cached: the next one of a large pool that is never warmed. A token is
                used again only after REUSE_AFTER s (longer than the default cache TTL of 60 s), so every use is a
                cache miss. If the pool runs short the request becomes a cached one (counted as `fresh shortfall`).
  garbage   1%  unknown well-formed tokens, mangled valid tokens, bad characters, wrong scheme, empty, overlong,
                two Authorization headers, no token at all. Never allowed.

Phases: `warm-up` (WARMUP_SECS of the same mix, so that the cache and tokengate's memory reach the size they keep;
see WARMUP_SECS), then `soak` (N minutes, with the restarts at 1/3 and 2/3). A restart window runs from
the kill until WINDOW_GRACE s after the restarted double printed `ready`; a request belongs to it if its time span
overlaps it.

PASS requires: no 200 for garbage; outside the windows no non-200 for cached or fresh tokens and no 5xx (or
connection error) at all; inside the windows no non-200 for cached tokens and some 503s for fresh ones (the outage
was seen); tokengate alive; VmRSS at the end <= VmRSS at the end of warm-up + 10% + 5 MiB.
"""

import argparse
import array
import collections
import gzip
import http.client
import json
import os
import random
import re
import signal
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

THREADS = int(os.environ.get("SOAK_THREADS", "16"))
# Total requests per second to aim at; 0: as fast as the THREADS connections go (closed loop).
RATE = float(os.environ.get("SOAK_RATE", "0"))
WARM_POOL = 1000
FRESH_POOL = int(os.environ.get("SOAK_FRESH_POOL", "60000"))
REUSE_AFTER = 65.0
# Two cache TTLs (60 s each) and a little: a fresh token stays cached for one TTL, so the entry count levels off
# after one; tokengate's resident memory (the cache's own structures, the allocator's arenas) levels off after about
# two, as a 65 s warm-up showed (40 MiB at 65 s, then 48.5 MiB flat from 110 s to the end).
WARMUP_SECS = float(os.environ.get("SOAK_WARMUP_SECS", "125"))
DOWN_SECS = 5.0
WINDOW_GRACE = 3.0
RSS_SLACK_RATIO = 0.10
RSS_SLACK_BYTES = 5 * 1024 * 1024

CATEGORIES = ["cached", "fresh", "garbage"]
CACHED, FRESH, GARBAGE = 0, 1, 2
PHASES = ["warm-up", "soak"]
GARBAGE_KINDS = ["unknown", "mangled", "badchars", "scheme", "empty", "overlong", "double", "none"]


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_ticks(pid):
    """CPU ticks (user + system) of the whole process and of tokengate's introspection worker thread."""
    def ticks(path):
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    total = worker = None
    try:
        total = ticks(f"/proc/{pid}/stat")
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip().startswith("tokengate-intro"):
                    worker = ticks(f"/proc/{pid}/task/{tid}/stat")
    except (OSError, IndexError, ValueError):
        pass
    return total, worker


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return None


def metric_digest(text):
    """A few counters from /metrics, summed per name and label set: {name{labels}: value}."""
    wanted = ("tokengate_cache_lookups_total", "tokengate_cache_refreshes_total", "tokengate_assertions_signed_total",
              "tokengate_introspection_requests_total", "tokengate_idp_errors_total",
              "tokengate_introspection_coalesced_total")
    out = {}
    for line in text.splitlines():
        if line.startswith(wanted):
            name, _, value = line.rpartition(" ")
            try:
                v = float(value)
            except ValueError:
                continue
            if v:
                out[name] = int(v)
    return out


def mib(n):
    return f"{n / 1048576:.1f} MiB" if n is not None else "n/a"


def http_get(url, timeout=2.0, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


class Processes:
    """The double and tokengate, with the double's kill and restart."""

    def __init__(self, args):
        self.args = args
        self.idp = None
        self.idp_listen = "127.0.0.1:0"
        self.tokengate = None
        self.tg_url = None
        self.issuer = None
        self.idp_starts = 0

    def start_idp(self, tokens):
        self.idp_starts += 1
        out = open(os.path.join(self.args.work, f"devidp.{self.idp_starts}.log"), "w")
        self.idp = subprocess.Popen(
            [self.args.devidp, "--listen", self.idp_listen, "--dir", os.path.join(self.args.work, "idp"),
             "--tokens", str(tokens)],
            stdout=subprocess.PIPE, stderr=out, text=True)
        self.write_pid("devidp", self.idp.pid)
        first = []
        proc = self.idp

        def read_stdout():
            first.append(proc.stdout.readline())
            proc.stdout.read()  # keep draining, so that the double never blocks on a full pipe

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not first and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        line = first[0] if first else ""
        if not line.startswith("ready "):
            raise RuntimeError(f"devidp did not start: {line!r} (see {out.name})")
        issuer = line.split()[1]
        if self.issuer is None:
            self.issuer = issuer
            self.idp_listen = issuer.split("://", 1)[1]
        elif issuer != self.issuer:
            raise RuntimeError(f"the restarted double has another issuer: {issuer} != {self.issuer}")

    def write_pid(self, name, pid):
        # For soak/run's clean-up if this driver is killed before its own `stop`.
        with open(os.path.join(self.args.work, name + ".pid"), "w") as f:
            f.write(str(pid))

    def kill_idp(self):
        self.idp.send_signal(signal.SIGKILL)
        self.idp.wait()

    def start_tokengate(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGATE_")}
        env.update({
            "TOKENGATE_IDP__ISSUER": self.issuer,
            "TOKENGATE_IDP__KEY_FILE": os.path.join(self.args.work, "idp", "key.json"),
            "TOKENGATE_SERVER__LISTEN": "127.0.0.1:0",
            "TOKENGATE_IDP__TIMEOUT": "1s",
        })
        path = os.path.join(self.args.work, "tokengate.log")
        self.tokengate = subprocess.Popen([self.args.tokengate], env=env, stdout=open(path, "w"),
                                          stderr=subprocess.STDOUT)
        self.write_pid("tokengate", self.tokengate.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.tokengate.poll() is not None:
                raise RuntimeError(f"tokengate exited at start (see {path})")
            m = re.search(r"tokengate listening on ([0-9.]+:[0-9]+)", open(path).read())
            if m:
                self.tg_url = f"http://{m.group(1)}"
                if http_get(self.tg_url + "/readyz")[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"tokengate did not become ready (see {path})")

    def stop(self):
        for p in (self.tokengate, self.idp):
            if p is not None and p.poll() is None:
                p.terminate()
        for p in (self.tokengate, self.idp):
            if p is not None:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for name in ("tokengate", "devidp"):
            try:
                os.remove(os.path.join(self.args.work, name + ".pid"))
            except OSError:
                pass


class FreshPool:
    """Hands out valid tokens that tokengate has not cached: each is reused only after REUSE_AFTER seconds."""

    def __init__(self, tokens):
        self.tokens = tokens
        self.last = [float("-inf")] * len(tokens)
        self.next = 0
        self.lock = threading.Lock()
        self.shortfall = 0

    def take(self, now):
        with self.lock:
            i = self.next
            if now - self.last[i] < REUSE_AFTER:
                self.shortfall += 1
                return None
            self.last[i] = now
            self.next = (i + 1) % len(self.tokens)
            return self.tokens[i]


class Recorder:
    """Per-thread compact record of every request: start, end (s since t0), phase, category, kind, status."""

    def __init__(self):
        self.start = array.array("d")
        self.end = array.array("d")
        self.phase = array.array("B")
        self.cat = array.array("B")
        self.kind = array.array("B")
        self.status = array.array("H")

    def add(self, start, end, phase, cat, kind, status):
        self.start.append(start)
        self.end.append(end)
        self.phase.append(phase)
        self.cat.append(cat)
        self.kind.append(kind)
        self.status.append(status)


class Load:
    def __init__(self, host, port, warm, fresh, t0):
        self.host, self.port = host, port
        self.warm = warm
        self.fresh = fresh
        self.t0 = t0
        self.phase = 0
        self.stop = threading.Event()
        self.recorders = [Recorder() for _ in range(THREADS)]
        self.threads = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(THREADS)]

    def garbage(self, rnd):
        kind = rnd.randrange(len(GARBAGE_KINDS))
        name = GARBAGE_KINDS[kind]
        b64 = string.ascii_letters + string.digits + "-_"
        if name == "unknown":
            return kind, [("Authorization", "Bearer " + "".join(rnd.choice(b64) for _ in range(43)))]
        if name == "mangled":
            t = rnd.choice(self.warm)
            i = rnd.randrange(len(t))
            c = rnd.choice([x for x in b64 if x != t[i]])
            return kind, [("Authorization", "Bearer " + t[:i] + c + t[i + 1:])]
        if name == "badchars":
            junk = "".join(rnd.choice(string.punctuation + " äö") for _ in range(rnd.randrange(1, 40)))
            return kind, [("Authorization", "Bearer x" + junk)]
        if name == "scheme":
            return kind, [("Authorization", rnd.choice(["Basic dXNlcjpwYXNz", "Token " + rnd.choice(self.warm),
                                                        rnd.choice(self.warm)]))]
        if name == "empty":
            return kind, [("Authorization", rnd.choice(["Bearer", "Bearer ", "Bearer    "]))]
        if name == "overlong":
            return kind, [("Authorization", "Bearer " + "a" * (8 * 1024 + rnd.randrange(1, 100)))]
        if name == "double":
            return kind, [("Authorization", "Bearer " + rnd.choice(self.warm)),
                          ("Authorization", "Bearer " + rnd.choice(self.warm))]
        return kind, []

    def worker(self, index):
        rnd = random.Random(index * 7919 + int(self.t0))
        rec = self.recorders[index]
        conn = None
        paths = ["/verify", "/verify/api/items", "/verify/"]
        interval = THREADS / RATE if RATE > 0 else 0
        next_at = time.monotonic() + rnd.random() * interval
        while not self.stop.is_set():
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at = max(next_at + interval, time.monotonic() - 1)
            start = time.monotonic() - self.t0
            r = rnd.random()
            kind = 0
            if r < 0.01:
                cat = GARBAGE
                kind, headers = self.garbage(rnd)
            else:
                token = self.fresh.take(start) if r < 0.10 else None
                if token is not None:
                    cat = FRESH
                else:
                    cat = CACHED
                    token = rnd.choice(self.warm)
                headers = [("Authorization", "Bearer " + token)]
            path = rnd.choice(paths)
            status = 0
            for attempt in range(2):
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                    conn.putrequest("GET", path, skip_accept_encoding=True)
                    for k, v in headers:
                        conn.putheader(k, v)
                    conn.endheaders()
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                    if resp.will_close:
                        conn.close()
                        conn = None
                    break
                except (http.client.HTTPException, OSError):
                    # A keep-alive connection the server closed between two requests: retry once on a new one.
                    if conn is not None:
                        conn.close()
                    conn = None
                    status = 0
            rec.add(start, time.monotonic() - self.t0, self.phase, cat, kind, status)
        if conn is not None:
            conn.close()

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokengate", required=True)
    ap.add_argument("--devidp", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--minutes", type=float, default=5)
    args = ap.parse_args()
    soak_secs = args.minutes * 60
    procs = Processes(args)
    failures = []
    try:
        log(f"starting the double ({WARM_POOL} + {FRESH_POOL} tokens) and tokengate; work dir {args.work}")
        procs.start_idp(WARM_POOL + FRESH_POOL)
        procs.start_tokengate()
        with open(os.path.join(args.work, "idp", "tokens.txt")) as f:
            tokens = [line.strip() for line in f if line.strip()]
        warm, fresh = tokens[:WARM_POOL], tokens[WARM_POOL:]
        log(f"tokengate {procs.tg_url} (pid {procs.tokengate.pid}), double {procs.issuer}")

        # Warm the pool: every warm token checked once and allowed.
        host, port = procs.tg_url.split("://")[1].split(":")
        port = int(port)
        bad = []

        def warm_some(part):
            c = http.client.HTTPConnection(host, port, timeout=10)
            for t in part:
                c.request("GET", "/verify", headers={"Authorization": "Bearer " + t})
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    bad.append(r.status)
            c.close()

        ts = [threading.Thread(target=warm_some, args=(warm[i::THREADS],)) for i in range(THREADS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if bad:
            raise RuntimeError(f"warming the pool: {len(bad)} of {WARM_POOL} tokens not allowed: {collections.Counter(bad)}")
        log(f"pool of {WARM_POOL} tokens warmed; {WARMUP_SECS:.0f} s of mixed traffic to fill the cache")

        t0 = time.monotonic()
        load = Load(host, port, warm, FreshPool(fresh), t0)
        rss_series = []

        hz = os.sysconf("SC_CLK_TCK")
        cpu_series = []  # (t, process ticks, worker-thread ticks, load average)

        def sample_rss(label):
            v = rss_bytes(procs.tokengate.pid)
            now = time.monotonic() - t0
            rss_series.append((now, label, v))
            cpu_series.append((now, *cpu_ticks(procs.tokengate.pid), loadavg()))
            return v

        load.start()
        sample_rss("start")
        deadline = t0 + WARMUP_SECS
        while time.monotonic() < deadline:
            time.sleep(min(10, max(0, deadline - time.monotonic())))
            sample_rss("warm-up")
        rss_warm = sample_rss("warm-up end")
        load.phase = 1
        soak0 = time.monotonic() - t0
        log(f"warm-up done, VmRSS {mib(rss_warm)}; soak for {args.minutes:g} min, restarts at 1/3 and 2/3")

        windows = []
        for k in (1, 2):
            at = t0 + soak0 + soak_secs * k / 3
            while time.monotonic() < at:
                time.sleep(min(10, max(0, at - time.monotonic())))
                if time.monotonic() < at:
                    sample_rss("soak")
            kill_t = time.monotonic() - t0
            procs.kill_idp()
            log(f"restart {k}: double killed (SIGKILL) at t={kill_t:.1f}s; down for {DOWN_SECS:.0f} s")
            time.sleep(DOWN_SECS)
            procs.start_idp(0)
            ready_t = time.monotonic() - t0
            windows.append((kill_t, ready_t + WINDOW_GRACE, ready_t))
            log(f"restart {k}: double ready again at t={ready_t:.1f}s (window until t={ready_t + WINDOW_GRACE:.1f}s)")
            sample_rss("soak")
        end_at = t0 + soak0 + soak_secs
        while time.monotonic() < end_at:
            time.sleep(min(10, max(0, end_at - time.monotonic())))
            sample_rss("soak")
        rss_end = sample_rss("end")
        soak_end = time.monotonic() - t0
        load.finish()
        tg_alive = procs.tokengate.poll() is None
        status, body = http_get(procs.tg_url + "/metrics")
        cache_entries = None
        m = re.search(rb"^tokengate_cache_entries\S*\s+([0-9.e+]+)", body, re.M) if status == 200 else None
        if m:
            cache_entries = int(float(m.group(1)))
        digest = metric_digest(body.decode(errors="replace")) if status == 200 else {}
        idp_stats = http_get(procs.issuer + "/dev/stats")[1].decode(errors="replace")
    finally:
        procs.stop()

    # ---- analysis ----
    def in_window(s, e):
        for a, b, _ in windows:
            if s <= b and e >= a:
                return True
        return False

    # (phase, where, category, status) -> count; where is "outside" or "window".
    table = collections.Counter()
    garbage_by_kind = collections.Counter()
    violations = collections.Counter()
    examples = {}
    window_counts = [collections.Counter() for _ in windows]
    n_total = 0
    with gzip.open(os.path.join(args.work, "requests.csv.gz"), "wt") as out:
        out.write("start_s,end_s,phase,category,kind,status,window\n")
        for rec in load.recorders:
            for i in range(len(rec.status)):
                s, e, ph, cat, kind, st = rec.start[i], rec.end[i], rec.phase[i], rec.cat[i], rec.kind[i], rec.status[i]
                win = ph == 1 and in_window(s, e)
                where = "window" if win else "outside"
                table[(ph, where, cat, st)] += 1
                n_total += 1
                kname = GARBAGE_KINDS[kind] if cat == GARBAGE else ""
                if cat == GARBAGE:
                    garbage_by_kind[(kname, st)] += 1
                out.write(f"{s:.4f},{e:.4f},{PHASES[ph]},{CATEGORIES[cat]},{kname},{st},{int(win)}\n")
                problem = None
                if cat == GARBAGE and st == 200:
                    problem = "200 for an invalid token"
                elif not win and cat != GARBAGE and st != 200:
                    problem = f"{st or 'connection error'} for a valid {CATEGORIES[cat]} token outside a window"
                elif not win and (st >= 500 or st == 0):
                    problem = f"{st or 'connection error'} outside a window"
                elif win and cat == CACHED and st != 200:
                    problem = f"{st or 'connection error'} for a cached token during a restart window"
                if problem:
                    violations[problem] += 1
                    examples.setdefault(problem, f"t={s:.2f}s {PHASES[ph]} {CATEGORIES[cat]} {kname}")
                if win:
                    for w, (a, b, _) in enumerate(windows):
                        if s <= b and e >= a:
                            window_counts[w][(cat, st)] += 1

    # Stalls: spans of the soak, outside the windows, in which no request completed for a second or more.
    ends = sorted(e for rec in load.recorders for e, ph in zip(rec.end, rec.phase) if ph == 1)
    stalls = []
    for a, b in zip(ends, ends[1:]):
        if b - a >= 1.0 and not in_window(a, b):
            stalls.append((a, b))

    # ---- report ----
    def statuses():
        return sorted({k[3] for k in table})

    cols = statuses()
    print()
    print("=" * 100)
    print(f"soak summary: {args.minutes:g} min soak after {WARMUP_SECS:.0f} s warm-up, {THREADS} threads"
          f"{f' at {RATE:g} req/s' if RATE else ''}, "
          f"pools {WARM_POOL} warm + {FRESH_POOL} fresh tokens")
    print("=" * 100)
    head = f"{'phase':<8} {'where':<8} {'category':<8} {'total':>9} " + " ".join(
        f"{(str(c) if c else 'conn-err'):>8}" for c in cols)
    print(head)
    print("-" * len(head))
    for ph in (0, 1):
        for where in ("outside", "window"):
            for cat in (CACHED, FRESH, GARBAGE):
                counts = [table[(ph, where, cat, c)] for c in cols]
                if sum(counts) == 0:
                    continue
                print(f"{PHASES[ph]:<8} {where:<8} {CATEGORIES[cat]:<8} {sum(counts):>9} " +
                      " ".join(f"{n:>8}" for n in counts))
    print("-" * len(head))
    print(f"{'all':<8} {'':<8} {'':<8} {n_total:>9} " +
          " ".join(f"{sum(v for k, v in table.items() if k[3] == c):>8}" for c in cols))
    print()
    print("garbage by kind (status: count): " + "; ".join(
        f"{k}: " + ", ".join(f"{st}x{n}" for (kk, st), n in sorted(garbage_by_kind.items()) if kk == k)
        for k in GARBAGE_KINDS if any(kk == k for kk, _ in garbage_by_kind)))
    print()
    print("restart windows (s since traffic start; window = kill .. ready + 3 s):")
    for w, (a, b, ready) in enumerate(windows):
        c = window_counts[w]
        def part(cat):
            return ", ".join(f"{st or 'conn-err'}x{n}" for (cc, st), n in sorted(c.items()) if cc == cat) or "-"
        print(f"  #{w + 1}: kill {a:7.1f}  ready {ready:7.1f} (down {ready - a:.1f} s)  window end {b:7.1f}  |  "
              f"cached: {part(CACHED)}  |  fresh: {part(FRESH)}  |  garbage: {part(GARBAGE)}")
    soak_n = sum(v for k, v in table.items() if k[0] == 1)
    warm_n = sum(v for k, v in table.items() if k[0] == 0)
    soak_dur = soak_end - soak0
    print()
    print(f"throughput: warm-up {warm_n / soak0:.0f} req/s, soak {soak_n / soak_dur:.0f} req/s "
          f"({soak_n} requests in {soak_dur:.0f} s)")
    mix = collections.Counter()
    for k, v in table.items():
        if k[0] == 1:
            mix[k[2]] += v
    print("soak mix: " + ", ".join(f"{CATEGORIES[c]} {100 * mix[c] / max(1, soak_n):.2f}%" for c in (CACHED, FRESH, GARBAGE))
          + f"; fresh-pool shortfall (became cached): {load.fresh.shortfall}")
    print(f"tokengate cache entries at the end: {cache_entries}; double (last process): {idp_stats.strip()}")
    limit = rss_warm * (1 + RSS_SLACK_RATIO) + RSS_SLACK_BYTES if rss_warm else None
    flat = rss_warm is not None and rss_end is not None and rss_end <= limit
    print()
    print(f"tokengate VmRSS: warm-up end {mib(rss_warm)}, end {mib(rss_end)}, limit {mib(limit)} "
          f"(warm-up + 10% + 5 MiB) -> {'flat' if flat else 'GROWING'}")
    print("VmRSS series (t s: MiB): " + "  ".join(
        f"{t:.0f}:{v / 1048576:.1f}" for t, _, v in rss_series if v is not None))
    # CPU: where a miss's cost goes (each introspection signs an RSA client assertion on the one worker thread).
    steps = []
    for (ta, pa, wa, _), (tb, pb, wb, lb) in zip(cpu_series, cpu_series[1:]):
        if tb - ta >= 1 and None not in (pa, pb, wa, wb):
            steps.append((tb, 100 * (pb - pa) / hz / (tb - ta), 100 * (wb - wa) / hz / (tb - ta), lb))
    if steps:
        print("CPU per sample (t s: tokengate % / introspection-thread % of one core / load avg): " + "  ".join(
            f"{t:.0f}:{p:.0f}/{w:.0f}/{la}" for t, p, w, la in steps))
    print("stalls outside the windows (no request completed for >= 1 s): " + (", ".join(
        f"t={a:.1f}-{b:.1f}s ({b - a:.1f} s)" for a, b in stalls) or "none"))
    print("tokengate counters at the end: " + ", ".join(f"{k} {v}" for k, v in sorted(digest.items())))
    print(f"per-request records: {os.path.join(args.work, 'requests.csv.gz')}")
    print()

    for problem, n in sorted(violations.items()):
        failures.append(f"{n} x {problem} (first: {examples[problem]})")
    for w, c in enumerate(window_counts):
        if not any(st == 503 for (cat, st) in c if cat == FRESH):
            failures.append(f"window #{w + 1}: no 503 for fresh tokens, so the outage was not observed")
    if len(windows) != 2:
        failures.append(f"{len(windows)} restarts instead of 2")
    if not tg_alive:
        failures.append("tokengate died during the run")
    if not flat:
        failures.append(f"VmRSS grew from {mib(rss_warm)} to {mib(rss_end)} (limit {mib(limit)})")
    if failures:
        print("soak/run: FAIL (" + "; ".join(failures) + ")")
        return 1
    print("soak/run: PASS")
    return 0


if __name__ == "__main__":
    # SIGTERM (soak/run's clean-up) unwinds like Ctrl-C, so that `finally` stops the processes.
    signal.signal(signal.SIGTERM, lambda *_: (print("soak/run: FAIL (terminated)"), sys.exit(143)))
    try:
        sys.exit(main())
    except RuntimeError as e:
        print(f"soak/run: FAIL ({e})")
        sys.exit(1)
    except KeyboardInterrupt:
        print("soak/run: FAIL (interrupted)")
        sys.exit(130)
