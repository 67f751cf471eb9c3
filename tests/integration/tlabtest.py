"""Shared helpers for the integration tests: real processes on 127.0.0.1, free ports, bounded time.

Every process a test starts is registered and stopped by PID at exit (SIGTERM, then SIGKILL),
so a failing test never leaves a server behind. Standard library only.
"""
import atexit
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("TLAB_BIN_DIR", os.path.join(os.getcwd(), "bin"))
SRC = os.environ.get("TLAB_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
PLUGIN_DIR = os.environ.get("TLAB_PLUGIN_DIR", os.path.join(os.path.dirname(BIN), "lib", "plugins"))

_procs = []
_passed = 0
_failed = 0


def check(cond, what):
    """Records one assertion; prints failures. Use finish() at the end."""
    global _passed, _failed
    if cond:
        _passed += 1
    else:
        _failed += 1
        print(f"CHECK failed: {what}", file=sys.stderr, flush=True)
    return cond


def finish():
    # A gateway must leave cleanly on SIGTERM: exit 0 (under ASan this also means no leak).
    for pr in list(_procs):
        if pr.name == "gateway" and pr.alive():
            rc = pr.stop()
            check(rc == 0, f"gateway pid {pr.pid} exited {rc} on SIGTERM:\n{pr.output()[-3000:]}")
    print(f"{_passed} passed, {_failed} failed", flush=True)
    stop_all()
    sys.exit(1 if _failed or _passed == 0 else 0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process in its own session, its output in a log file (in `logdir` when given, else
    a temporary file); registered until stopped, and stopped by PID. `stop_timeout` is how long
    stop() waits after the signal before SIGKILL."""

    def __init__(self, argv, name, env=None, logdir=None, stop_timeout=5.0):
        self.name = name
        self.stop_timeout = stop_timeout
        if logdir:
            self.log = open(os.path.join(logdir, f"{name}.{len(_procs)}.log"), "w")
        else:
            self.log = tempfile.NamedTemporaryFile(prefix=f"tlab-{name}-", suffix=".log", delete=False)
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
        _procs.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def output(self):
        with open(self.log.name, "r", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=None):
        if self.p.poll() is None:
            try:
                self.p.send_signal(sig)
                self.p.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()
        if self in _procs:
            _procs.remove(self)
        return self.p.returncode


def live_procs():
    """The processes started and not stopped yet."""
    return list(_procs)


def stop_all():
    for pr in reversed(list(_procs)):
        pr.stop()


atexit.register(stop_all)


def wait_http(port, path="/health", timeout=10.0, proc=None, want=200):
    """Polls GET path until it answers `want`; raises with the process log on timeout or exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.p.returncode}:\n{proc.output()}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == want:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not answer {want} on {path} within {timeout}s"
                       + (f"\n{proc.output()}" if proc else ""))


def request(port, method, path, body=None, headers=None, timeout=30.0):
    """One HTTP request; returns (status, headers dict lower-cased, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=hdrs)
    r = c.getresponse()
    data = r.read()
    h = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, h, data


class Stream:
    """One streaming POST on its own connection, read line by line as the body arrives.

    The request is sent and the status and headers read at once (`status`, `headers` lower-cased);
    the body is read only when asked: lines() yields each line, read_events(n) stops after n data:
    lines, read() goes to the end. As it reads it keeps
      text    every body line so far, comments (": ...") included, joined with "\n";
      events  (t, payload) per data: line, t in seconds since the request was sent;
      cut     True when the body ended without its proper end (a reset or a missing last chunk).
    Every read waits at most `timeout` seconds (socket.timeout then propagates), and the whole
    body at most `deadline` seconds when given. The connection is closed at the end of the body,
    or by close(), which a test calls to drop a stream midway (the gateway then sees the client go).
    """

    def __init__(self, port, body, path="/v1/chat/completions", headers=None, timeout=30.0, deadline=None):
        self.t0 = time.monotonic()
        self.deadline = self.t0 + deadline if deadline else None
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        self.conn.request("POST", path, body=json.dumps(body) if isinstance(body, (dict, list)) else body, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.text, self.events, self.cut, self.done = "", [], False, False

    def lines(self):
        """Yields each body line (without its newline) as it arrives, recording it first."""
        while not self.done:
            if self.deadline and time.monotonic() > self.deadline:
                raise TimeoutError(f"stream still open after {self.deadline - self.t0:.1f} s")
            try:
                raw = self.resp.readline()
            except (http.client.IncompleteRead, ConnectionError):
                raw, self.cut = b"", True
            if not raw:
                self.close()
                return
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.text += line + "\n"
            if line.startswith("data: "):
                self.events.append((time.monotonic() - self.t0, line[6:]))
            yield line

    def read_events(self, n):
        """Reads until n data: lines in all have arrived, or the body ends; returns events."""
        for _ in self.lines():
            if len(self.events) >= n:
                break
        return self.events

    def read(self):
        """Reads to the end of the body; returns events."""
        for _ in self.lines():
            pass
        return self.events

    def data(self):
        """The payloads of the data: lines read so far."""
        return [e[1] for e in self.events]

    def close(self):
        self.done = True
        self.conn.close()


def sse_data(text):
    """The payloads of the data: lines of an SSE body already read whole (str or bytes)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return [line[6:] for line in text.split("\n") if line.startswith("data: ")]


def start_sim(args=(), port=None, time_scale=None):
    """Starts tlab-sim on a free port; returns (Proc, port) once /health answers 200."""
    port = port or free_port()
    argv = [os.path.join(BIN, "tlab-sim"), "--host", "127.0.0.1", "--port", str(port)]
    if time_scale is not None:
        argv += ["--time-scale", str(time_scale)]
    argv += list(args)
    pr = Proc(argv, "sim")
    wait_http(port, "/health", timeout=30, proc=pr)
    return pr, port


def start_gateway(upstream_port, sets=(), port=None, config=None, wait=True):
    """Starts tlab-gateway on a free port in front of 127.0.0.1:upstream_port."""
    port = port or free_port()
    argv = [os.path.join(BIN, "tlab-gateway")]
    if config:
        argv += ["-c", config]
    argv += ["--set", "listen.host=127.0.0.1", "--set", f"listen.port={port}",
             "--set", f"upstream.url=http://127.0.0.1:{upstream_port}",
             "--set", f"plugin_dir={PLUGIN_DIR}"]
    for s in sets:
        argv += ["--set", s]
    pr = Proc(argv, "gateway")
    if wait:
        wait_http(port, "/health", timeout=10, proc=pr)
    return pr, port


def write_supervised_config(path, worker_port, sim_args, queue="{}", upstream="", top="", supervisor="", log_file=None):
    """Writes a gateway config whose supervisor plugin owns a tlab-sim worker on worker_port, with
    the plugins queue (`queue`: its config mapping in flow style), supervisor and metrics. Extra
    YAML lines, each ending in a newline: `upstream` under upstream: (indented 2), `top` at the top
    level, `supervisor` under the supervisor's config: (indented 6). Returns path."""
    with open(path, "w") as f:
        f.write(f"""upstream:
  url: http://127.0.0.1:{worker_port}
{upstream}{top}plugins:
  - name: queue
    config: {queue}
  - name: supervisor
    config:
      engine: sim
      profile: safe
      profiles_dir: {SRC}/configs/model_profiles
      sim_command: {os.path.join(BIN, "tlab-sim")}
      sim_args: {sim_args}
      stop_grace_s: 3
      log_file: {log_file or path + ".worker.log"}
{supervisor}  - name: metrics
""")
    return path


def start_fault_upstream(mode):
    """Starts fault_upstream.py (a deliberately faulty worker) in `mode` on a free port; returns (proc, port)."""
    port = free_port()
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_upstream.py")
    pr = Proc([sys.executable, script, str(port), mode], f"fault-{mode}")
    deadline = time.monotonic() + 10
    while "ready" not in pr.output():
        if time.monotonic() > deadline or not pr.alive():
            raise RuntimeError(pr.output())
        time.sleep(0.02)
    return pr, port


def metric(port, name, labels=""):
    """Sum of every series of `name` in a /metrics page whose label text contains `labels`
    (None when there is none): gateway and tlab-sim alike."""
    text = request(port, "GET", "/metrics", timeout=5)[2].decode()
    total, seen = 0.0, False
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if m and m.group(1) == name and labels in (m.group(2) or ""):
            total += float(m.group(3))
            seen = True
    return total if seen else None


def wait_metric(port, name, want, timeout=10.0):
    """Polls until metric(port, name) == want; returns whether it got there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(port, name) == want:
            return True
        time.sleep(0.05)
    return False


def health(port):
    """The gateway's GET /health as a dict."""
    return json.loads(request(port, "GET", "/health")[2])


def wait_for(cond, timeout, step=0.1):
    """Polls cond() until it is true or `timeout` seconds pass; returns its last value. An
    exception from cond (a view taken while a process restarts) counts as false."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if cond():
                return True
        except Exception:  # noqa: BLE001
            pass
        time.sleep(step)
    return cond()


def port_free_on(addrs):
    """A port free on every address of `addrs` (127.0.0.x), for servers that share one port."""
    for _ in range(50):
        p = free_port()
        ok = True
        for a in addrs:
            s = socket.socket()
            try:
                s.bind((a, p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p
    raise RuntimeError("no port free on " + " ".join(addrs))


def completion(port, max_tokens=60, headers=None, timeout=60):
    """One non-streaming completion of a 50-word prompt; (status, body), status 0 with the error's
    text when the connection failed or timed out."""
    try:
        st, _, body = request(port, "POST", "/v1/completions",
                              {"model": "Qwen/Qwen2.5-0.5B-Instruct", "prompt": "hello " * 50, "max_tokens": max_tokens,
                               "ignore_eos": True}, headers=headers, timeout=timeout)
        return st, body
    except Exception as e:  # noqa: BLE001 - a reset or a hang is what tests look for
        return 0, str(e).encode()


class Load:
    """`clients` closed-loop clients sending completions (with `headers`) until stop(); results as
    (status, body). set_clients(n) changes how many send: threads beyond n idle."""

    def __init__(self, port, clients, max_tokens=60, headers=None):
        self.port, self.max_tokens, self.headers = port, max_tokens, headers
        self.results, self.stopping, self.n, self.threads = [], False, 0, []
        self.lock = threading.Lock()
        self.set_clients(clients)

    def set_clients(self, n):
        self.n = n
        while len(self.threads) < n:
            th = threading.Thread(target=self.run, args=(len(self.threads),), daemon=True)
            self.threads.append(th)
            th.start()

    def run(self, i):
        while not self.stopping:
            if i >= self.n:
                time.sleep(0.05)
                continue
            r = completion(self.port, self.max_tokens, self.headers)
            with self.lock:
                self.results.append(r)

    def stop(self):
        self.stopping = True
        for th in self.threads:
            th.join(90)
        return self.results


def wait_listening(host, port, timeout, step=0.05):
    """Waits until host:port accepts a TCP connection (a server on another loopback address, which
    wait_http does not reach); returns whether it did within `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(step)
    return False


def start_prometheus(jobs, tmp):
    """Starts a real Prometheus on a free port scraping `jobs` ({job name: ["host:port", ...]})
    every second, its data in `tmp`; returns (Proc, query) once ready, where query(expr) is the
    parsed JSON answer of an instant query (errors included)."""
    import urllib.error
    import urllib.parse
    import urllib.request
    port = free_port()
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        f.write("global: {scrape_interval: 1s}\nscrape_configs:\n" + "".join(
            f"  - job_name: {job}\n    static_configs: [{{targets: [{', '.join(repr(x) for x in targets)}]}}]\n"
            for job, targets in jobs.items()))
    pr = Proc(["prometheus", f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/prometheus-data",
               f"--web.listen-address=127.0.0.1:{port}"], "prometheus")
    wait_http(port, "/-/ready", timeout=30, proc=pr)

    def query(expr):
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            return json.loads(urllib.request.urlopen(url, timeout=10).read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())

    return pr, query


def retry_until(call, status, timeout, step=0.05):
    """Calls call() (returning (status, headers, body)) every `step` s until it answers `status`
    or `timeout` s pass; returns its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        r = call()
        if r[0] == status or time.monotonic() >= deadline:
            return r
        time.sleep(step)
