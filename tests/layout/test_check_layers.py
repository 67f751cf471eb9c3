#!/usr/bin/env python3
"""check_layers.py must be able to fail: a fake core with a circle, an up-call, an up-include and a
core name with the SDK's prefix
is built with cc, and each is reported; the same tree without them passes."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, 'check_layers.py')

FILES = {
    'core/include/tlab/plugin.h': 'typedef struct tlab_plugin tlab_plugin;\n',
    'core/src/README.md': '1. `top/` calls\n2. `low/` is called\n',
    'core/src/top/a.c': '#include "low/b.h"\nint a(void) { return b(); }\n',
    'core/src/low/b.h': 'int b(void);\n',
    'core/src/low/b.c': '#include "low/b.h"\nint b(void) { return 1; }\n',
}
BAD = {
    # low calls up into top (and so a circle a -> b -> a), and includes a top header
    'core/src/low/b.c': '#include "low/b.h"\n#include "top/a.h"\nint b(void) { return a(); }\n',
    'core/src/top/a.h': 'int a(void);\n',
    'core/src/top/c.c': 'int tlab_looks_public(void);\nint tlab_looks_public(void) { return 0; }\n',
}


def run(files):
    with tempfile.TemporaryDirectory() as root:
        for rel, text in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w') as f:
                f.write(text)
        objdir = os.path.join(root, 'obj')
        for rel in files:
            if rel.endswith('.c'):
                sub = os.path.relpath(rel, 'core/src')
                out = os.path.join(objdir, sub + '.o')
                os.makedirs(os.path.dirname(out), exist_ok=True)
                subprocess.run(['cc', '-c', '-I', os.path.join(root, 'core/src'), os.path.join(root, rel), '-o', out],
                               check=True)
        p = subprocess.run([sys.executable, CHECK, root, objdir], capture_output=True, text=True)
        return p.returncode, p.stdout


def main():
    rc, out = run(FILES)
    assert rc == 0, out
    rc, out = run({**FILES, **BAD})
    assert rc == 1, out
    for want in ('circle between files: low/b.c top/a.c', 'low/b.c calls up into top/a.c', 'includes top/a.h',
                 'tlab_looks_public has the SDK\'s prefix'):
        assert want in out, f'missing "{want}" in:\n{out}'
    print('check_layers self-test: 2 passed, 0 failed')


if __name__ == '__main__':
    main()
