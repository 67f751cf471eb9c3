"""The Markdown report of side_by_side.py: every figure with its command and the machine it ran on."""
import os

from side_by_side_procs import PATHS, spread



# ---------------------------------------------------------------- report

def report(b, runs, loads, argv_text, started):
    a = b.a
    L = []
    w = L.append
    w(f"Side-by-side run {started} UTC, build `{a.build}`, {os.cpu_count()} CPUs "
      f"({cpu_model()}); pinning: " + (f"proxy on CPU {a.proxy_cpus}, load generator and upstream on CPU {a.client_cpus}"
                                      if b.pin_proxy else "none"))
    w("")
    w(f"```sh\n{argv_text}\n```")
    w("")
    w("Figures are the median of the runs with the range (min-max) in brackets.")
    w("")
    for sec, title in (("latency", "Added latency at concurrency 1"),
                       ("ttft", "Added time to first token at concurrency 1 (SSE, first chunk right after the headers)")):
        if sec not in runs:
            continue
        rs = runs[sec]
        w(f"**{title}** ({rs[0]['rounds']} rounds per run, {len(rs)} runs; µs; "
          "added = through - direct in the same round)")
        w("")
        m = "TTFT" if sec == "ttft" else "e2e"
        w(f"| path | {m} p50 | {m} p99 | added p50 | added p90 | added p99 | p99(path) - p99(direct) |")
        w("|---|---|---|---|---|---|---|")
        w(f"| direct | {spread([r['direct']['p50'] for r in rs])} | {spread([r['direct']['p99'] for r in rs])} | | | | |")
        for p in ("nginx", "gateway"):
            k = f"added_{p}"
            w(f"| {p} | {spread([r[p]['p50'] for r in rs])} | {spread([r[p]['p99'] for r in rs])} | "
              f"{spread([r[k]['p50'] for r in rs])} | {spread([r[k]['p90'] for r in rs])} | {spread([r[k]['p99'] for r in rs])} | "
              f"{spread([r[k]['p99_of_path_minus_p99_direct'] for r in rs])} |")
        w("")
    if "rps" in runs:
        rs = runs["rps"]
        w(f"**Maximum rate with e2e p99 <= {a.service_ms} + {a.p99_budget_ms} ms** (upstream answers after {a.service_ms} ms; "
          f"open loop, constant arrivals, {a.step_s} s per step; {len(rs)} runs)")
        w("")
        w("| path | max req/s | e2e p99 at max (ms) | proxy CPU at max | runs |")
        w("|---|---|---|---|---|")
        for p in PATHS:
            cap = any(r[p]["capped"] for r in rs)
            w(f"| {p} | {spread([r[p]['max_rps'] for r in rs])}{' (at --rps-max)' if cap else ''} | "
              f"{spread([r[p]['p99_at_max'] for r in rs], '{:.1f}')} | "
              f"{spread([100 * r[p]['proxy_cpu_at_max'] if r[p]['proxy_cpu_at_max'] is not None else None for r in rs], '{:.0f}%')} | "
              f"{', '.join(format(r[p]['max_rps'], '.0f') for r in rs)} |")
        w(f"| gateway / nginx | {spread([r['ratio_gateway_nginx'] for r in rs], '{:.2f}')} | | | |")
        w("")
    if "stream" in runs:
        rs = runs["stream"]
        w(f"**Streaming** ({a.chunks} SSE chunks, {a.interval_ms} ms apart; {a.streams} streams open at all times "
          f"(closed loop), {a.stream_s} s window; stalled = first chunk or a gap later than {a.interval_ms} + {a.stall_ms} ms; "
          f"{len(rs)} runs; ms)")
        w("")
        w("| path | streams ok / in window | stalled | TTFT p50 | TTFT p99 | gap p50 | gap p99 | gap max | peak open | proxy CPU |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for p in PATHS:
            w(f"| {p} | {', '.join(str(r[p]['ok']) + '/' + str(r[p]['requests']) for r in rs)} | "
              f"{', '.join(str(r[p]['stalled']) for r in rs)} | {spread([r[p]['ttft_p50'] for r in rs], '{:.2f}')} | "
              f"{spread([r[p]['ttft_p99'] for r in rs], '{:.2f}')} | {spread([r[p]['gap_p50'] for r in rs], '{:.2f}')} | "
              f"{spread([r[p]['gap_p99'] for r in rs], '{:.2f}')} | {spread([r[p]['gap_max'] for r in rs], '{:.1f}')} | "
              f"{spread([r[p]['peak_streams'] for r in rs])} | "
              f"{spread([100 * r[p]['proxy_cpu'] if r[p]['proxy_cpu'] is not None else None for r in rs], '{:.0f}%')} |")
        for p in ("nginx", "gateway"):
            k = f"added_{p}"
            w(f"| added by {p} | | | {spread([r[k]['ttft_p50'] for r in rs], '{:.2f}')} | "
              f"{spread([r[k]['ttft_p99'] for r in rs], '{:.2f}')} | {spread([r[k]['gap_p50'] for r in rs], '{:.2f}')} | "
              f"{spread([r[k]['gap_p99'] for r in rs], '{:.2f}')} | | | |")
        w("")
    if "memory" in runs:
        rs = runs["memory"]
        w(f"**Gateway memory with {a.queued} requests queued** (queue max_inflight 4, upstream answering after 600 s; "
          f"{len(rs)} runs; MiB)")
        w("")
        w("| RSS idle | waiting + in flight | RSS with them queued | RSS after the clients left |")
        w("|---|---|---|---|")
        for r in rs:
            w(f"| {r['rss_idle_kib'] / 1024:.1f} | {r['waiting']} + {r['in_flight']} | {r['rss_queued_kib'] / 1024:.1f} | "
              f"{r['rss_after_kib'] / 1024:.1f} |")
        w("")
    if "soak" in runs:
        for r in runs["soak"]:
            w(f"**Gateway soak** ({r['seconds']} s of {a.soak_rate} req/s non-streaming ({a.service_ms} ms upstream) plus "
              f"{a.soak_stream_rate} streams/s of {a.chunks} chunks; RSS in MiB every 30 s)")
            w("")
            w("| t (s) | before the load | " + " | ".join(str(t) for t, _ in r["samples"]) + " | after the load |")
            w("|---|---|" + "---|" * (len(r["samples"]) + 1))
            w(f"| RSS | {r['rss_before_load_kib'] / 1024:.1f} | " + " | ".join(f"{k / 1024:.1f}" for _, k in r["samples"])
              + f" | {r['rss_idle_after_kib'] / 1024:.1f} |")
            w("")
            for name, x in r["load"].items():
                w(f"- {name}: {x['completed']} ok, {x['failed']} failed, {x['throughput']:.0f} req/s, e2e p99 {x['p99_e2el_ms']:.1f} ms")
            w("")
    w("**Machine load during each section** (CPU of processes this script did not start, in cores of "
      f"{os.cpu_count()}; 1-minute load average at start and end)")
    w("")
    for name, ls in loads.items():
        w(f"- {name}: " + "; ".join(f"run {i + 1}: {x['other_cpu_cores']:.2f} cores, load {x['loadavg_1m_start']:.1f} -> "
                                    f"{x['loadavg_1m_end']:.1f}, {x['seconds']:.0f} s" for i, x in enumerate(ls)))
    w("")
    return "\n".join(L)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
