"""One tool on one case, in its own process: `python worker.py TOOL CASE --task build|measure|batch`
(or several tools taking turns: `python worker.py A,B CASE --task paired|paired-batch`).

Prints one JSON object per finished stage (the last line holds everything so far), so that a run
cut short by the timeout still reports what it measured. Build time is string -> ready callable:
the builder and its first call (JIT compilers compile there), after the imports.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # symdiff from this checkout
sys.setrecursionlimit(10_000)  # as a user would; deeper input is the tools' own business

from cases import by_name  # noqa: E402
from tools import fresh_c_cache, load  # noqa: E402

MAX_BATCH_VALUES = 10_000_000  # inputs x points held in memory for the batch timing
BATCH_BUDGET_S = 20.0  # one batch call of the measure task; slower tools are timed on fewer points


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tool")
    parser.add_argument("case")
    parser.add_argument("--task", choices=("build", "measure", "batch", "paired", "paired-batch"), default="measure")
    parser.add_argument("--points", type=int, default=100_000)
    args = parser.parse_args()
    case = by_name(args.case)
    if args.task == "paired":  # TOOL is "a,b"
        return report(paired(args.tool.split(","), case))
    if args.task == "paired-batch":  # TOOL is "a,b,..."
        return report(paired_batch(args.tool.split(","), case, args.points))
    result: dict = {"tool": args.tool, "case": case.name}
    try:
        builder = load(args.tool)
    except ImportError as error:
        return report(result | {"status": "missing", "error": str(error)})
    except Exception as error:  # e.g. no C compiler
        return report(result | {"status": "missing", "error": f"{type(error).__name__}: {error}"})
    if args.tool == "symdiff-c":
        fresh_c_cache()
    point = [0.5 + random.Random(7).random() for _ in case.inputs]
    baseline = peak_mb()
    gc.collect()
    try:
        start = time.perf_counter()
        built = builder(case)
        first = built.call(point)
        result["build_s"] = time.perf_counter() - start
    except (Exception, RecursionError) as error:
        return report(result | {"status": "failed", "error": f"{type(error).__name__}: {str(error)[:300]}"})
    result |= {"status": "ok", "note": built.note, "baseline_mb": baseline, "build_peak_mb": peak_mb()}
    result["check"] = checksum(first)
    report(result)
    if args.task == "build":
        return 0
    if args.task == "batch":  # only the batch timing, at exactly --points points
        if built.batch is not None:
            result |= {
                "batch_points": args.points,
                "batch_ns_per_point": per_point(built.batch, len(case.inputs), args.points),
            }
        if built.fresh_batch is not None:
            result["fresh_batch_ns_per_point"] = per_point(built.fresh_batch, len(case.inputs), args.points)
        return report(result)
    timed = {"call_us": lambda: built.call(point)}  # grad first: it sets the number of calls
    if built.make_value is not None:
        value = built.make_value()
        timed["value_call_us"] = lambda: value(point)
    if built.checked is not None:
        timed["checked_call_us"] = lambda: built.checked(point)
    result |= zip(timed, per_calls(list(timed.values())))
    report(result)
    if built.batch is not None:
        points = max(1000, min(args.points, MAX_BATCH_VALUES // max(1, len(case.inputs))))
        if result["call_us"] * 1e-6 * points > BATCH_BUDGET_S:  # at one call's cost per point, too long
            points = fewer_points(built.batch, len(case.inputs), points)
        result |= {"batch_points": points, "batch_ns_per_point": per_point(built.batch, len(case.inputs), points)}
        if built.fresh_batch is not None and result["batch_ns_per_point"] * points < 2e9:  # under 2 s a call
            result["fresh_batch_ns_per_point"] = per_point(built.fresh_batch, len(case.inputs), points)
        report(result)
    if built.ops is not None:
        result["ops"] = built.ops()
    result["peak_mb"] = peak_mb()
    return report(result)


def report(result: dict) -> int:
    print(json.dumps(result), flush=True)
    return 0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def checksum(gradient) -> list[float]:
    """The first partial and the sum of all, for a cross-tool sanity check."""
    import numpy

    values = numpy.asarray(gradient, dtype=float).reshape(-1)
    return [float(values[0]) if values.size else 0.0, float(values.sum())]


def per_calls(functions, seconds: float = 0.1, rounds: int | None = None) -> list[float]:
    """Microseconds per call of each function: the best of `rounds` runs of as many calls as last
    the quickest about `seconds`, the functions taking turns in each round, so that a slow spell of
    the shared machine slows them all and their ratios hold (grad to f; symdiff to SymPy). Nine
    rounds for calls under 10 us (whose ties flip with five), else five; a shared machine only ever
    adds time. The cycle collector is off while they run, as timeit does."""
    number = max(calls_lasting(function, seconds) for function in functions)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    best = [math.inf] * len(functions)
    try:
        for _ in range(rounds or (9 if seconds / number < 1e-5 else 5)):
            for k, function in enumerate(functions):
                start = time.perf_counter()
                for _ in range(number):
                    function()
                best[k] = min(best[k], time.perf_counter() - start)
    finally:
        if was_enabled:
            gc.enable()
    return [elapsed / number * 1e6 for elapsed in best]


def calls_lasting(function, seconds: float) -> int:
    """How many calls last about `seconds` (at most a million)."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            function()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds or number >= 1_000_000:
            return number
        number *= 10 if elapsed < seconds / 100 else 2


def fewer_points(batch, inputs: int, points: int, probe: int = 1000) -> int:
    """As many points (of `points`, at least `probe`) as one batch call runs in BATCH_BUDGET_S,
    judged by a second call over `probe` points (the first may compile)."""
    columns = numpy_columns(inputs, probe)
    batch(columns)
    start = time.perf_counter()
    batch(columns)
    seconds = time.perf_counter() - start
    return max(probe, min(points, int(BATCH_BUDGET_S / max(seconds, 1e-9) * probe / 4)))


def numpy_columns(inputs: int, points: int):
    import numpy

    return numpy.random.default_rng(11).uniform(0.5, 1.5, (max(inputs, 1), points))


def paired(tools: list[str], case, rounds: int = 25) -> dict:
    """Per-call times of two tools on one case in one process, taking turns (per_calls): their
    ratio holds where separate processes' best runs flip (a few percent apart on the smallest cases)."""
    point = [0.5 + random.Random(7).random() for _ in case.inputs]
    calls = [(lambda call: lambda: call(point))(load(tool)(case).call) for tool in tools]
    best = per_calls(calls, seconds=0.02, rounds=rounds)
    return {"case": case.name, "status": "ok", "paired_call_us": dict(zip(tools, best))}


def paired_batch(tools: list[str], case, points: int, rounds: int = 15) -> dict:
    """Batch times (ns per point) of several tools on one case in one process, taking turns
    (per_calls), as paired() does per call: on the textbook cases a batch lasts about a
    millisecond, and separate processes' best of three flip by more than the tools differ.
    symdiff-numpy is timed both ways (into a reused out=, and returning new arrays); a missing
    peer is left out."""
    columns = numpy_columns(len(case.inputs), points)
    timed: dict = {}
    for tool in tools:
        try:
            built = load(tool)(case)
        except ImportError:
            continue
        timed[tool] = built.batch
        if built.fresh_batch is not None:
            timed[f"{tool} (new arrays)"] = built.fresh_batch
    calls = [functools.partial(batch, columns) for batch in timed.values()]
    for call in calls:
        call()  # warm-up: JIT compilation, buffers, the first use of each entry point
    best = per_calls(calls, seconds=0.02, rounds=rounds)
    ns = {name: us * 1e3 / points for name, us in zip(timed, best)}
    cores = {name: cores_used(call) for name, call in zip(timed, calls)}
    return {"case": case.name, "status": "ok", "points": points, "paired_batch_ns_per_point": ns, "cores": cores}


def cores_used(call, seconds: float = 0.2) -> float:
    """The process's CPU time over wall time while `call` runs again and again: about 1 for one
    thread, more where the tool spreads a batch over several cores (JAX's XLA thread pool, OpenMP)."""
    wall, cpu, calls = time.perf_counter(), time.process_time(), 0
    while calls < 3 or time.perf_counter() - wall < seconds:
        call()
        calls += 1
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def per_point(batch, inputs: int, points: int) -> float:
    """Nanoseconds per point for one batch call over `points` points (best of up to three, after a
    warm-up call). The cycle collector is off while they run, as timeit does, rather than run before
    each: a collection walks the whole heap and leaves the caches cold, which on a small case's
    batch (a millisecond) costs the tool more than its own arithmetic."""
    columns = numpy_columns(inputs, points)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        batch(columns)  # warm-up: JIT compilation, buffers, the allocator's free lists
        best = math.inf
        for _ in range(3 if time.perf_counter() - start < 5 else 1):
            start = time.perf_counter()
            batch(columns)
            best = min(best, time.perf_counter() - start)
    finally:
        if was_enabled:
            gc.enable()
    return best / points * 1e9


if __name__ == "__main__":
    sys.exit(main())
