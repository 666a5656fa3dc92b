"""Wall time of README.md's Python examples, each run as a fresh process (imports included) in a
temporary directory, as a new user would run them.

    python bench/readme_example.py [--repeat N]

Prints one line per example and run: the example's heading, wall seconds, and CPU seconds of the
process (user + system), so a figure measured on a busy machine can be told from a slow example.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(text: str) -> list[tuple[str, str]]:
    """(heading above the block, code) of every ```python block of `text`."""
    out, heading = [], ""
    for m in re.finditer(r"^(## [^\n]*)$|^```python\n(.*?)^```$", text, re.M | re.S):
        if m.group(1):
            heading = m.group(1)[3:]
        else:
            out.append((heading, m.group(2)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               MPLBACKEND="Agg")
    for heading, code in python_blocks((ROOT / "README.md").read_text(encoding="utf-8")):
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                script = Path(tmp) / "example.py"
                script.write_text(code, encoding="utf-8")
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run([sys.executable, str(script)], cwd=tmp, env=env, check=True,
                               stdout=subprocess.DEVNULL)
                wall = time.perf_counter() - t0
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            print(f"{heading}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2-core machine: above 2 means waiting for a core)")


if __name__ == "__main__":
    main()
