"""The processes side_by_side.py starts and watches (start, health waits, CPU time and RSS from
/proc, the machine's other load), and small helpers: quantiles, spreads, CPU lists."""
import os
import statistics
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
import tlabtest  # noqa: E402  (the shared process helpers)

PATHS = ("direct", "nginx", "gateway")  # the three paths measured side by side

# ---------------------------------------------------------------- processes

def start(argv, name, logdir):
    """A child process (tests/integration/tlabtest.py's Proc): its log in logdir, stopped by PID,
    given 10 s after SIGTERM (a draining gateway) before SIGKILL."""
    return tlabtest.Proc(argv, name, logdir=logdir, stop_timeout=10.0)


stop_all = tlabtest.stop_all
free_port = tlabtest.free_port


def http_get(port, path, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read()


def wait_http(port, proc, path="/health", timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.p.returncode}:\n{proc.output()[-3000:]}")
        try:
            if http_get(port, path, 1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer 200 on :{port}{path} within {timeout:.0f} s:\n{proc.output()[-3000:]}")


def proc_tree(pid):
    """pid and its descendants (nginx's workers are children of the master)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pids):
    """utime + stime of these processes, in seconds (processes that have gone count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tick


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class MachineLoad:
    """CPU used by everything on the machine except the processes this script started (they are
    registered in tlabtest.live_procs() or passed in), over a section: the contention the figures saw."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.busy0 = self._busy()
        self.ours0 = self._ours()
        self.load0 = os.getloadavg()[0]

    @staticmethod
    def _busy():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours():
        pids = [os.getpid()]
        for pr in tlabtest.live_procs():
            pids += proc_tree(pr.pid)
        # our short-lived children (tlab-bench runs) are accounted through RUSAGE_CHILDREN
        ru = os.times()
        return cpu_seconds(pids) + ru.children_user + ru.children_system

    def result(self):
        dt = time.monotonic() - self.t0
        other = (self._busy() - self.busy0) - (self._ours() - self.ours0)
        return {"seconds": round(dt, 1), "other_cpu_cores": round(max(0.0, other) / dt, 2) if dt > 0 else 0,
                "loadavg_1m_start": round(self.load0, 2), "loadavg_1m_end": round(os.getloadavg()[0], 2)}


def expand_cpus(spec):
    cpus = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        cpus += list(range(int(a), int(b or a) + 1))
    return cpus


def nofile_limit():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def die(code, msg):
    print(f"side_by_side: {msg}", file=sys.stderr)
    stop_all()
    sys.exit(code)


def q(xs, p):
    """The p-th percentile (nearest rank) of xs."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]


def spread(vals, fmt="{:.0f}"):
    """'median (min-max)' of repeated runs."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return fmt.format(vals[0])
    return f"{fmt.format(statistics.median(vals))} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"
