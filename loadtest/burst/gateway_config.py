"""gateway_config.py - the burst benchmark's gateway configs, made from the shipped YAML as text.

The benchmark must measure the gateway *as shipped* (configs/gateway.yaml), so it starts from
that file and changes only what a benchmark has to change:

- the supervisor plugin goes: the benchmark starts the worker itself, with vLLM's default knobs,
  where the supervisor would start it with its profile's (configs/gateway-external.yaml does the
  same by hand);
- relative paths (`admission`, `degradation`, a plugin's `path`, `keys_file`) become absolute,
  because the generated file lives elsewhere and the gateway takes them from the file's folder;
- with a compressed clock (tlab-sim --time-scale F), every timeout and SLO that is in the
  workload's time is divided by F (SCALED_MS, SCALED_S), so a deadline means the same simulated time;
- for the static sweep, keys of the queue plugin's config are set (`max_inflight`, and any other
  given), added when absent.

Plugins cannot be changed with --set, hence a file. The YAML is edited as text (python3 has no
YAML parser in its standard library): block and flow mappings both work, and the result is
always checked with `tlab-gateway --check-config` before a run uses it.
"""
import os
import re

# Keys whose value is a time in the workload's clock, in ms (scaled by 1/time_scale, at least
# the given minimum) and in s (integer, at least 1). Unknown keys are left alone, so a new key of
# this kind belongs here. e2e_ms and deadline keys are for the SLO autopilot (issue 16).
SCALED_MS = {"first_byte_timeout_ms": 1, "total_timeout_ms": 1, "sse_keepalive_ms": 1, "queue_timeout_ms": 1,
             "cold_start_timeout_ms": 1, "slo_p95_ms": 1, "e2e_ms": 1, "slo_e2e_ms": 1, "tick_ms": 10}
SCALED_S = {"stats_window_s": 1}
PATH_KEYS = ("admission", "degradation", "path", "keys_file")


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _item_block(lines, name):
    """(start, end) of the plugins list item `- name: NAME` (end exclusive), or None."""
    pat = re.compile(r"^(\s*)-\s+name:\s*['\"]?" + re.escape(name) + r"['\"]?\s*(#.*)?$")
    for i, line in enumerate(lines):
        m = pat.match(line)
        if not m:
            continue
        ind = len(m.group(1))
        j = i + 1
        # The item runs while lines are blank or indented deeper than its dash.
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > ind):
            j += 1
        while j > i + 1 and not lines[j - 1].strip():
            j -= 1
        return i, j
    return None


def drop_plugin(text, name):
    lines = text.split("\n")
    b = _item_block(lines, name)
    if b:
        del lines[b[0]:b[1]]
    return "\n".join(lines)


def absolute_paths(text, base_dir):
    def fix(m):
        key, val = m.group(2), m.group(3)
        quoted = val[:1] in "'\""
        raw = val.strip("'\"")
        if not raw or raw.startswith("/"):
            return m.group(0)
        return f"{m.group(1)}{key}: {os.path.normpath(os.path.join(base_dir, raw))}{m.group(4) or ''}" if not quoted else \
            f"{m.group(1)}{key}: \"{os.path.normpath(os.path.join(base_dir, raw))}\"{m.group(4) or ''}"
    pat = re.compile(r"^(\s*(?:-\s+)?)(" + "|".join(PATH_KEYS) + r"):[ \t]*([^\s#]+)([ \t]+#.*)?$", re.M)
    return pat.sub(fix, text)


def scale_times(text, time_scale):
    """Divides every SCALED_MS / SCALED_S value by time_scale (block or flow style)."""
    if time_scale == 1:
        return text

    def sub(keys):
        nonlocal text
        pat = re.compile(r"(?<![\w.])(" + "|".join(keys) + r")(\s*:\s*)(\d+(?:\.\d+)?)")

        def fix(m):
            v = float(m.group(3)) / time_scale
            lo = keys[m.group(1)]
            if v < lo:
                v = lo
            return f"{m.group(1)}{m.group(2)}{int(round(v))}"
        text = pat.sub(fix, text)
    sub(SCALED_MS)
    sub(SCALED_S)
    return text


def set_plugin_keys(text, plugin, values):
    """Sets each key of `values` in the config mapping of plugin `plugin` (added when absent)."""
    lines = text.split("\n")
    b = _item_block(lines, plugin)
    if not b:
        raise ValueError(f"the config has no '{plugin}' plugin to set {', '.join(values)} in")
    start, end = b
    block = lines[start:end]
    dash = _indent(block[0])
    for key, val in values.items():
        done = False
        for k, line in enumerate(block):
            m = re.match(r"^(.*?(?:[{,]\s*|^\s*))" + re.escape(key) + r"(\s*:\s*)([^,}\s#]+)(.*)$", line)
            if m and not line.lstrip().startswith("#"):
                block[k] = f"{m.group(1)}{key}{m.group(2)}{val}{m.group(4)}"
                done = True
                break
        if done:
            continue
        cfg = next((k for k, line in enumerate(block) if re.match(r"^\s*config:", line)), None)
        if cfg is None:
            block.insert(1, " " * (dash + 2) + f"config: {{{key}: {val}}}")
        elif "{" in block[cfg]:
            block[cfg] = block[cfg].replace("{", f"{{{key}: {val}, ", 1).replace(", }", "}")
        else:
            block.insert(cfg + 1, " " * (_indent(block[cfg]) + 2) + f"{key}: {val}")
    lines[start:end] = block
    return "\n".join(lines)


def static_gate(text, n):
    """A static gate: the autopilot's adaptive limit off and fixed at n (the queue's max_inflight
    caps it too); deadlines and their admission stay as shipped."""
    m = re.search(r"^autopilot:\n((?:[ #].*\n|\n)*)", text, flags=re.M)
    if not m:
        return text + f"\nautopilot:\n  enabled: false\n  max_limit: {n}\n"
    block = re.sub(r"^(  enabled:).*$", r"\1 false", m.group(1), flags=re.M)
    block = re.sub(r"^(  max_limit:).*$", rf"\1 {n}", block, flags=re.M)
    return text[:m.start(1)] + block + text[m.end(1):]


def make(shipped_path, time_scale, queue_set=None, drop=("supervisor",)):
    """The config text for one benchmark gateway: the shipped file with the changes above."""
    with open(shipped_path) as f:
        text = f.read()
    for name in drop:
        text = drop_plugin(text, name)
    text = absolute_paths(text, os.path.dirname(os.path.abspath(shipped_path)))
    if queue_set and "max_inflight" in queue_set:
        text = static_gate(text, queue_set["max_inflight"])
    if queue_set:
        text = set_plugin_keys(text, "queue", queue_set)
    return scale_times(text, time_scale)  # after the sets, so a set timeout is in the workload's clock too
