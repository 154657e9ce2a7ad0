"""Where symdiff's build time goes: stage timings and a cProfile of the core pipeline.

    python benchmarks/profile_build.py rosenbrock-1000 [rosenbrock-10000 nested-sin-100000 ...] [--top N]

For each case: wall time per stage (parse, lower, reverse, simplify, render, compile of the
generated module, first call), then the functions with the most own time under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.setrecursionlimit(10_000)

from cases import by_name  # noqa: E402


def stages(text: str) -> list[tuple[str, float]]:
    from symdiff.api import Gradient, Programs
    from symdiff.codegen.python import render
    from symdiff.core.lower import lower
    from symdiff.core.parse import parse
    from symdiff.core.reverse import reverse
    from symdiff.core.simplify import simplify

    timings, start = [], time.perf_counter()

    def lap(name):
        nonlocal start
        now = time.perf_counter()
        timings.append((name, now - start))
        start = now

    tree = parse(text)
    lap("parse")
    tape = lower(tree, text)
    lap("lower")
    raw = reverse(tape)
    lap("reverse")
    adjoint = simplify(raw)
    lap("simplify")
    source = render(adjoint)
    lap("render")
    compile(source, "<profile>", "exec")
    lap("compile (CPython)")
    gradient = Gradient(Programs(tape, adjoint))
    gradient(*[0.5] * len(tape.inputs))
    lap("Gradient + first call")
    return timings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    import symdiff

    for name in args.cases:
        case = by_name(name)
        print(f"\n=== {name}: {len(case.text):,} characters, {len(case.inputs):,} inputs")
        for stage, seconds in stages(case.text):
            print(f"  {stage:<24} {seconds:8.3f} s")
        profile = cProfile.Profile()
        profile.enable()
        gradient = symdiff.compile_grad(case.text)
        gradient(*[0.5] * len(gradient.inputs))
        profile.disable()
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
