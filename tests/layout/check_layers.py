#!/usr/bin/env python3
"""The core's layout rules, checked on the built objects and on the sources.

Usage: check_layers.py SOURCE_DIR CORE_OBJECT_DIR [--report] [--exports BUILD_DIR]

The folder order is read from core/src/README.md (the folders named there, top to bottom), so the
README and this check cannot disagree. Rules:
  1. no circle between files: file A calls (or reads a global of) file B and B, directly or not, A;
  2. a file calls only files of its own folder or of a folder below it;
  3. a file includes only headers of its own folder, of a folder below it, or core/common;
  4. core/common (the library the tools share) includes nothing of core/src;
  5. the tools (loadtest/) and the plugins include nothing of core/src;
  6. public versus internal names, as libuv's uv_ and uv__: a name in core/src or core/common
     that starts with the SDK's `tlab_` is one core/include/tlab/plugin.h declares; the core's
     own names start with `tlab__`;
  7. with --exports: tlab-gateway exports no tlab name, and each plugin exports tlab_plugin_entry
     alone (the core's symbols stay hidden, as jansson's check-exports test checks its own).
"Calls" come from the objects: each object's undefined symbols matched against the symbols the
others define (nm), which sees calls through macros and inline functions that a grep would miss.
--report prints the per-file and per-folder graphs as well.
"""
import collections
import os
import re
import subprocess
import sys

# Comments and string literals, blanked before looking for C names.
CODE_ONLY = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"', re.S)

# Circles still to remove, each named with why it is still here. An entry that no longer occurs
# fails the check too, so the list cannot outlive the circle.
KNOWN_CIRCLES = set()

# Benchmarks of core internals, which link the core as a unit test does (docs/architecture.md).
CORE_INTERNAL_TOOLS = {'loadtest/perf/admission_cost.c'}


def folder_order(src):
    order = []
    with open(os.path.join(src, 'core/src/README.md')) as f:
        for name in re.findall(r'`([a-z_]+)/`', f.read()):
            if os.path.isdir(os.path.join(src, 'core/src', name)) and name not in order:
                order.append(name)
    return order


def folder_of(rel):  # 'policy/lua/x.c' -> 'policy'
    return rel.split('/', 1)[0]


def object_graph(objdir, core):
    """Objects of sources that still exist (a build folder keeps the objects of moved files)."""
    defs, undef = {}, {}
    for dirpath, _, files in os.walk(objdir):
        for f in files:
            if not f.endswith('.c.o'):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), objdir)[:-2]
            if not os.path.exists(os.path.join(core, rel)):
                continue
            out = subprocess.run(['nm', os.path.join(dirpath, f)], capture_output=True, text=True, check=True).stdout
            undef[rel] = set()
            for line in out.splitlines():
                p = line.split()
                if len(p) == 2 and p[0] == 'U':
                    undef[rel].add(p[1])
                elif len(p) == 3 and p[1] in 'TDBRCVW':
                    defs[p[2]] = rel
    edges = collections.defaultdict(set)
    for f, syms in undef.items():
        for s in syms:
            if s in defs and defs[s] != f:
                edges[f].add(defs[s])
    return sorted(undef), edges


def circles(nodes, edges):
    """Tarjan's strongly connected components of more than one node."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(100000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def includes(path):
    with open(path, errors='replace') as f:
        return re.findall(r'^\s*#\s*include\s+"([^"]+)"', f.read(), re.M)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    src, objdir, report = sys.argv[1], sys.argv[2], '--report' in sys.argv
    order = folder_order(src)
    rank = {name: i for i, name in enumerate(order)}
    core = os.path.join(src, 'core/src')
    problems = []
    actual = sorted(d for d in os.listdir(core) if os.path.isdir(os.path.join(core, d)))
    for d in actual:
        if d not in rank:
            problems.append(f'core/src/{d}/ is not named in core/src/README.md')

    nodes, edges = object_graph(objdir, core)
    if not nodes:
        problems.append(f'no objects under {objdir}')
    found = circles(nodes, edges)
    for comp in found:
        if tuple(comp) in KNOWN_CIRCLES:
            print('layout: known circle (still to remove): ' + ' '.join(comp))
        else:
            problems.append('circle between files: ' + ' '.join(comp))
    for known in sorted(KNOWN_CIRCLES):
        if list(known) not in found and all(f in nodes for f in known):
            problems.append('the known circle ' + ' '.join(known) + ' is gone: remove it from KNOWN_CIRCLES')
    for f in nodes:
        for g in sorted(edges.get(f, ())):
            a, b = folder_of(f), folder_of(g)
            if a in rank and b in rank and rank[b] < rank[a]:
                problems.append(f'{f} calls up into {g} ({a}/ is below {b}/)')

    for dirpath, _, files in os.walk(core):
        for f in files:
            if not f.endswith(('.c', '.h')):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), core)
            a = folder_of(rel)
            for inc in includes(os.path.join(dirpath, f)):
                b = inc.split('/', 1)[0] if '/' in inc else a
                if b in rank and a in rank and rank[b] < rank[a]:
                    problems.append(f'core/src/{rel} includes {inc} ({a}/ is below {b}/)')
    for top in ('core/common', 'loadtest', 'plugins'):
        for dirpath, _, files in os.walk(os.path.join(src, top)):
            for f in files:
                if not f.endswith(('.c', '.h')):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), src)
                if rel in CORE_INTERNAL_TOOLS:
                    continue
                for inc in includes(os.path.join(dirpath, f)):
                    first = inc.split('/', 1)[0]
                    if first in rank or first == 'src':
                        problems.append(f'{rel} includes the core-private {inc}')

    sdk = set(re.findall(r'\btlab_[a-z0-9_]+', open(os.path.join(src, 'core/include/tlab/plugin.h')).read()))
    for top in ('core/src', 'core/common'):
        for dirpath, _, files in os.walk(os.path.join(src, top)):
            for f in sorted(files):
                if not f.endswith(('.c', '.h')):
                    continue
                path = os.path.join(dirpath, f)
                with open(path, errors='replace') as fh:
                    code = CODE_ONLY.sub(' ', fh.read())  # a metric name in a string ("tlab_sim:...") is not a C name
                    names = set(re.findall(r'\btlab_[a-z0-9][a-z0-9_]*\b', code)) - sdk
                for name in sorted(names):
                    problems.append(f'{os.path.relpath(path, src)}: {name} has the SDK\'s prefix but is not in tlab/plugin.h '
                                    '(core names start with tlab__)')
    if '--exports' in sys.argv:
        build = sys.argv[sys.argv.index('--exports') + 1]
        def exported(path):
            out = subprocess.run(['nm', '-D', '--defined-only', path], capture_output=True, text=True).stdout
            return {line.split()[-1] for line in out.splitlines() if len(line.split()) == 3}
        gw = os.path.join(build, 'bin/tlab-gateway')
        leaked = sorted(n for n in exported(gw) if n.startswith('tlab'))
        if leaked:
            problems.append(f'tlab-gateway exports {" ".join(leaked)}')
        plugdir = os.path.join(build, 'lib/plugins')
        for f in sorted(os.listdir(plugdir)) if os.path.isdir(plugdir) else []:
            if f.endswith('.so'):
                extra = sorted(n for n in exported(os.path.join(plugdir, f)) if n != 'tlab_plugin_entry')
                if extra:
                    problems.append(f'plugin {f} exports more than tlab_plugin_entry: {" ".join(extra)}')

    if report:
        per_folder = collections.defaultdict(set)
        for f in nodes:
            for g in edges.get(f, ()):
                if folder_of(f) != folder_of(g):
                    per_folder[folder_of(f)].add(folder_of(g))
        print('folders, top to bottom:', ' '.join(order))
        for d in order:
            n = sum(1 for f in nodes if folder_of(f) == d)
            print(f'  {d + "/":10} {n:2} objects, calls: {" ".join(sorted(per_folder[d], key=lambda x: rank.get(x, 99)))}')
        print(f'{len(nodes)} objects, {sum(len(v) for v in edges.values())} calls between files')
    for p in problems:
        print('layout:', p)
    print(f'layout: {len(problems)} problem(s), {len(nodes)} objects, {len(order)} folders')
    sys.exit(1 if problems else 0)


if __name__ == '__main__':
    main()
