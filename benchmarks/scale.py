"""How symdiff's build grows with size: Rosenbrock with n terms, up to a million-node expression.

    python benchmarks/scale.py [N ...]        (default: 1000 10000 62502)

Each size is built in a fresh process (string -> ready callable, then one call) and reports its
text length, AST nodes, tape entries, wall time per stage and the process's peak memory, as a
Markdown table. Rosenbrock with n variables has 16 (n - 1) - 1 AST nodes: n = 62,502 is the
smallest with a million (2.8 MB of text, 0.56 million tape entries); n = 100,000 has 1.6 million.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(n: int) -> dict:
    """One build in this process; run through main() in a fresh interpreter per size."""
    import resource
    import time

    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from cases import rosenbrock

    import symdiff
    from symdiff.api import paused_gc
    from symdiff.codegen.python import render
    from symdiff.core.expr import postorder
    from symdiff.core.lower import lower
    from symdiff.core.parse import parse
    from symdiff.core.simplify import simplify_sweep
    from symdiff.limits import Limits

    text = rosenbrock(n)
    limits = Limits(max_chars=len(text))
    start = time.perf_counter()
    gradient = symdiff.compile_grad(text, limits=limits)
    gradient(*[0.5] * len(gradient.inputs))
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    entries = len(gradient.programs.tape.instrs)
    del gradient
    # The same pipeline again, stage by stage, for where the time goes.
    stages, clock = {}, time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        stages[name] = now - clock
        clock = now

    with paused_gc():
        tree = parse(text)
        lap("parse")
        nodes = sum(1 for _ in postorder(tree))
        clock = time.perf_counter()
        tape = lower(tree, text)
        del tree
        lap("lower")
        adjoint = simplify_sweep(tape, tape.inputs)
        lap("reverse + simplify")
        source = render(adjoint, functions=("grad",))
        lap("render")
        compile(source, "<scale>", "exec")
        lap("compile")
    return {"n": n, "chars": len(text), "nodes": nodes, "entries": entries, "build_s": total, "peak_mb": peak,
            "stages": stages}


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]))))
        return 0
    sizes = [int(arg) for arg in sys.argv[1:]] or [1000, 10_000, 62_502]
    print("| n | text | AST nodes | tape entries | build + first call | peak memory | parse / lower / reverse+simplify / render / compile |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        run = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True)
        if run.returncode:
            print(f"| {n:,} | failed: {run.stderr.strip().splitlines()[-1]} |||||")
            continue
        r = json.loads(run.stdout)
        stages = " / ".join(f"{seconds:.2f}" for seconds in r["stages"].values())
        print(f"| {n:,} | {r['chars'] / 1e6:.2f} MB | {r['nodes']:,} | {r['entries']:,} | {r['build_s']:.1f} s | "
              f"{r['peak_mb']:,.0f} MB | {stages} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
