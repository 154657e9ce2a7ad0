"""Benchmark symdiff against SymPy, SymEngine, CasADi and JAX on the suite of issue 4.

    python benchmarks/run.py [--quick] [--timeout S] [--builds K] [--tools a,b] [--cases a,b] [--publish]

Each tool runs on each case in its own process (benchmarks/worker.py) with a timeout; build time is
the median over K fresh processes. Prints Markdown tables, writes JSON to benchmarks/results/ (git-
ignored) and a log-log plot of build time against expression size. A missing peer is reported, not
fatal; a tool that times out on a size is not run on the larger sizes of that family, nor where
a peer's build times at the two sizes before predict more than the timeout (at least linear
growth; reported as "> timeout (est. N s)"); the build targets' peers are always run. What a
target compares is measured again with the tools taking turns: below 1 ms a call, symdiff-python
and SymPy in one process (worker.py --task paired); the NumPy targets' batches, symdiff-numpy, SymPy
and JAX in one process (--task paired-batch); the growth target's two builds, in fresh processes.
--publish also writes benchmarks/RESULTS.md and benchmarks/build_time.png. Nothing here is
asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import suite  # noqa: E402
from tools import TOOLS  # noqa: E402

RESULTS = HERE / "results"
LARGE_BATCH = ("rosenbrock-100", 1_000_000, ("symdiff-numpy", "symdiff-c", "sympy", "jax"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only, one build each")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per tool, case and process")
    parser.add_argument("--builds", type=int, default=None, help="fresh-process builds per case (default 3; 1 quick)")
    parser.add_argument(
        "--budget",
        type=float,
        default=15.5 * 60,
        help="stop starting new runs after this many seconds (then the paired timings and 10^6 points: 20 min in all)",
    )
    parser.add_argument("--tools", help="comma-separated subset of " + ",".join(TOOLS))
    parser.add_argument("--cases", help="comma-separated case names")
    parser.add_argument("--publish", action="store_true", help="also write RESULTS.md and build_time.png here")
    args = parser.parse_args()
    builds = args.builds or (1 if args.quick else 3)
    tools = args.tools.split(",") if args.tools else list(TOOLS)
    cases = [c for c in suite() if (c.quick or not args.quick) and (not args.cases or c.name in args.cases.split(","))]
    # Small cases first, then by length of text: the time budget only ever cuts the largest ones.
    cases.sort(key=lambda c: (not c.quick, 0 if c.quick else len(c.text)))
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    results, skip = [], {}
    for case in cases:
        for tool in tools:
            reason = skip.get(tool) or skip.get((tool, case.family))
            if reason is None and time.perf_counter() - started > args.budget:
                reason = "not run (time budget)"
            # symdiff's own runs are always measured: an estimate from small sizes (fixed costs) overshoots;
            # so are the peers' builds a target compares with (a timeout is a measured bound, an estimate not).
            measured = tool.startswith("symdiff") or case.name == BUILD_TARGET_CASE
            estimate = 0.0 if measured else predicted_build(results, tool, case, cases)
            if reason is None and estimate > args.timeout:
                reason = f"not run: estimated {estimate:.0f} s to build, from its growth at smaller sizes"
            if reason:
                results.append({"tool": tool, "case": case.name, "status": "skipped", "error": reason, "timeout_s": args.timeout})
                continue
            result = measure(tool, case, builds, args.timeout)
            results.append(result)
            print(progress(result), file=sys.stderr, flush=True)
            if result["status"] == "missing":
                skip[tool] = f"missing: {result.get('error', '')}"
            elif result["status"] in ("timeout", "failed") and "build_s" not in result:
                skip[(tool, case.family)] = f"not run: {case.family} at a smaller size {result['status']}"
    pairs = paired_calls(results, tools)
    batch_pairs = paired_batches(results, tools)
    growth = paired_growth(results, tools, args.timeout)
    large = large_batch(tools, args, started) if not args.quick else []
    meta = machine(time.perf_counter() - started, args)
    meta["load_average"] = {"start": load_at_start, "end": os.getloadavg()}
    document = {
        "meta": meta,
        "cases": [case_info(c) for c in cases],
        "results": results,
        "paired": pairs,
        "paired_batch": batch_pairs,
        "paired_growth": growth,
        "large_batch": large,
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for path in (RESULTS / f"bench-{stamp}.json", RESULTS / "latest.json"):
        path.write_text(json.dumps(document, indent=1))
    markdown = tables(document, tools)
    print(markdown)
    plot_path = plot(document, tools, RESULTS / "build_time.png")
    if args.publish:
        path = HERE / "RESULTS.md"
        path.write_text(published(markdown, path.read_text() if path.exists() else ""))
        if plot_path:
            shutil.copyfile(plot_path, HERE / "build_time.png")
    return 0


def published(markdown: str, previous: str) -> str:
    """The suite's tables, then every section of the previous RESULTS.md that they do not replace
    (dated re-runs, the array programs' results of benchmarks/arrays.py, measurements moved there)."""
    titles = {line for line in markdown.splitlines() if line.startswith("## ")}
    sections = re.split(r"(?m)^(?=## )", previous)[1:]
    kept = [section for section in sections if section.splitlines()[0] not in titles]
    return markdown.rstrip("\n") + "\n\n" + "".join(kept) if kept else markdown


def predicted_build(results: list[dict], tool: str, case, cases) -> float:
    """The build time of `tool` on `case` extrapolated from its two largest smaller sizes in the
    family (power law, exponent at least 1; linear from one size); 0 when none was measured."""
    sizes = {c.name: c.size for c in cases if c.family == case.family}
    measured = sorted(
        (sizes[r["case"]], r.get("build_median_s", r["build_s"]))
        for r in results
        if r["tool"] == tool and r["case"] in sizes and sizes[r["case"]] < case.size and r.get("build_s")
    )
    if not measured:
        return 0.0
    size, seconds = measured[-1]
    exponent = 1.0
    if len(measured) > 1 and seconds > measured[-2][1]:
        exponent = max(1.0, math.log(seconds / measured[-2][1]) / math.log(size / measured[-2][0]))
    return seconds * (case.size / size) ** exponent


def run_worker(tool: str, case_name: str, task: str, timeout: float, points: int | None = None) -> dict:
    command = [sys.executable, str(HERE / "worker.py"), tool, case_name, "--task", task]
    if points:
        command += ["--points", str(points)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    started = time.perf_counter()
    try:
        out, err = process.communicate(timeout=timeout)
        status = None if process.returncode == 0 else f"crashed (exit {process.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        status = "timeout"
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"tool": tool, "case": case_name}
    result["wall_s"] = time.perf_counter() - started  # the process, imports included
    if status:
        result["stage_reached"] = result.get("status", "none")
        result["status"] = status
        result.setdefault("error", f"{status} after {timeout:.0f} s" if status == "timeout" else err.strip()[-300:])
    return result


def measure(tool: str, case, builds: int, timeout: float) -> dict:
    result = run_worker(tool, case.name, "measure", timeout)
    samples = [result["build_s"]] if "build_s" in result else []
    # Builds of more than a few seconds run once: repeating them would spend the budget. Those under
    # 2 s repeat, and symdiff-python's under 6 s: its Rosenbrock n = 10,000 (about 4 s) against
    # n = 1,000 is a target.
    longest = 6.0 if tool == "symdiff-python" else 2.0
    if result["status"] == "ok" and builds > 1 and samples[0] < longest:
        for _ in range(builds - 1):
            extra = run_worker(tool, case.name, "build", timeout)
            if "build_s" in extra:
                samples.append(extra["build_s"])
    if samples:
        result["build_samples"] = samples
        result["build_median_s"] = statistics.median(samples)
    return result


PAIRED = ("symdiff-python", "sympy")
PAIRED_BELOW_US = 1000.0  # calls this short are compared again, alternating in one process


def paired_calls(results: list[dict], tools) -> list[dict]:
    """symdiff-python against SymPy per call, in one process each case (see worker.paired), where
    both ran and a call is short enough for noise to decide between separate processes."""
    if not all(tool in tools for tool in PAIRED):
        return []
    index = {(r["tool"], r["case"]): r for r in results}
    found = []
    for (tool, case), result in index.items():
        other = index.get((PAIRED[1], case), {})
        if tool == PAIRED[0] and 0 < result.get("call_us", 1e9) < PAIRED_BELOW_US and "call_us" in other:
            found.append(run_worker(",".join(PAIRED), case, "paired", 60.0))
    return found


BUILD_TARGET_CASE = "rosenbrock-1000"  # the build targets: symdiff against SymEngine, SymPy and CasADi here
GROWTH = ("rosenbrock-1000", "rosenbrock-10000")  # the growth target: the second's build over the first's


def paired_growth(results: list[dict], tools, timeout: float, rounds: int = 3) -> dict:
    """symdiff-python's builds of the growth target's two sizes again, taking turns in fresh
    processes (small, large, small, ...): the main loop builds them minutes apart, and this shared
    machine's speed drifts by a third over minutes. The median of each; {} when not run."""
    ran = {r["case"] for r in results if r["tool"] == "symdiff-python" and r.get("build_s")}
    if "symdiff-python" not in tools or not set(GROWTH) <= ran:
        return {}
    samples: dict[str, list[float]] = {case: [] for case in GROWTH}
    for _ in range(rounds):
        for case in GROWTH:
            result = run_worker("symdiff-python", case, "build", timeout)
            if "build_s" in result:
                samples[case].append(result["build_s"])
    if not all(samples.values()):
        return {}
    medians = {case: statistics.median(values) for case, values in samples.items()}
    print(f"{'paired growth':>15} {medians}", file=sys.stderr, flush=True)
    return {"samples": samples, "median_s": medians, "ratio": medians[GROWTH[1]] / medians[GROWTH[0]]}


# The NumPy backend's batch targets: against SymPy and JAX on these cases, alternating in one process.
PAIRED_BATCH = ("symdiff-numpy", "sympy", "jax")
PAIRED_BATCH_CASES = ("textbook-1", "textbook-2", "textbook-3", "rosenbrock-100")


def paired_batches(results: list[dict], tools) -> list[dict]:
    """symdiff-numpy's batch against SymPy's and JAX's, in one process each case (worker.paired_batch),
    where symdiff-numpy ran: the targets read these figures where there are some."""
    ran = {r["case"] for r in results if r["tool"] == PAIRED_BATCH[0] and "batch_ns_per_point" in r}
    peers = [tool for tool in PAIRED_BATCH if tool in tools]
    if PAIRED_BATCH[0] not in peers or len(peers) < 2:
        return []
    found = []
    for case in PAIRED_BATCH_CASES:
        if case in ran:
            result = run_worker(",".join(peers), case, "paired-batch", 120.0)
            found.append(result)
            print(f"{'paired batch':>15} {case:<18} {result.get('paired_batch_ns_per_point', result.get('status'))}", file=sys.stderr, flush=True)
    return found


def large_batch(tools, args, started) -> list[dict]:
    name, points, which = LARGE_BATCH
    found = []
    for tool in tools:
        # Kept for the paired timings and this: about three minutes after the last new run starts.
        if tool in which and time.perf_counter() - started < args.budget + 240:
            result = run_worker(tool, name, "batch", args.timeout, points)
            found.append(result)
            print(progress(result), file=sys.stderr, flush=True)
    return found


def progress(result: dict) -> str:
    shown = {k: result.get(k) for k in ("status", "build_s", "call_us", "batch_ns_per_point") if k in result}
    return f"{result['tool']:>15} {result['case']:<18} {shown}"


def case_info(case) -> dict:
    return {
        "name": case.name,
        "family": case.family,
        "size": case.size,
        "chars": len(case.text),
        "inputs": len(case.inputs),
    }


def machine(elapsed: float, args) -> dict:
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": elapsed,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nproc": os.cpu_count(),
        "timeout_s": args.timeout,
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info["cpu"] = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line), "")
    except OSError:
        info["cpu"] = platform.processor()
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    versions = {}
    for package in ("sympy", "symengine", "casadi", "jax", "jaxlib", "numpy", "dask", "matplotlib", "lark"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    sys.path.insert(0, str(HERE.parent))
    from symdiff.version import __version__

    versions["symdiff"] = __version__
    compiler = shutil.which(os.environ.get("CC", "") or "cc") or shutil.which("gcc")
    if compiler:
        versions["cc"] = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    info["versions"] = versions
    return info


# --- reporting ----------------------------------------------------------------------------------


def _cell(result: dict | None, key: str, scale: float = 1.0, digits: int = 3) -> str:
    if result is None:
        return "—"
    if key in result:
        return _number(result[key] * scale, digits)
    status = result.get("status", "")
    if status == "ok":
        return "—"
    if status == "timeout":
        return f"> {result.get('error', 'timeout').split()[-2]} s" if key.startswith("build") else "timeout"
    if status == "failed":
        return "fails: " + result.get("error", "").split(":")[0]
    if status == "skipped":
        error = result.get("error", "")
        if "estimated" in error and key.startswith("build"):
            return f"> {result.get('timeout_s', 60):.0f} s (est. {error.split()[3]} s)"
        return "skipped" if "budget" in error or "estimated" in error else "—"
    return status


def _number(value: float, digits: int = 3) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def tables(document: dict, tools: list[str]) -> str:
    meta, results = document["meta"], document["results"]
    index = {(r["tool"], r["case"]): r for r in results}
    cases = [c["name"] for c in document["cases"]]
    lines = [f"# symdiff benchmarks — {meta['date']}", ""]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    lines += [
        f"Machine: {meta.get('cpu', '?')}, {meta['nproc']} cores, {meta.get('memory_gb', '?')} GB; "
        f"Python {meta['python']}; {versions}.",
        f"Whole run: {meta['elapsed_s'] / 60:.1f} min; timeout {meta['timeout_s']:.0f} s per tool, case and "
        "process. Command: `python benchmarks/run.py`.",
        "",
    ]
    if "load_average" in meta:
        start, end = meta["load_average"]["start"], meta["load_average"]["end"]
        lines += [
            f"Load average (1, 5, 15 min) at start {start[0]:.2f}, {start[1]:.2f}, {start[2]:.2f}; at end "
            f"{end[0]:.2f}, {end[1]:.2f}, {end[2]:.2f} (the machine is shared: absolute times are noisy).",
            "",
        ]
    sections = (
        ("Build time (s): string → ready callable, median of fresh processes", "build_median_s", 1.0),
        ("Per call (µs), one point", "call_us", 1.0),
        ("Batch (ns per point)", "batch_ns_per_point", 1.0),
        ("Peak memory of the measuring process (MB, imports included)", "peak_mb", 1.0),
    )
    for title, key, scale in sections:
        lines += [f"## {title}", "", "| case | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
        for case in cases:
            cells = [_cell(index.get((tool, case)), key, scale) for tool in tools]
            lines.append(f"| {case} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += checked_table(index, cases)
    lines += ops_table(index, cases, tools)
    lines += fresh_batch_table(index, cases)
    lines += large_batch_table(document.get("large_batch", []))
    lines += paired_table(document.get("paired", []))
    lines += paired_batch_table(document.get("paired_batch", []))
    lines += targets(
        _with_paired_batches(index, document.get("paired_batch", [])),
        document.get("paired", []),
        document.get("paired_growth", {}),
    )
    lines += notes(index, tools)
    return "\n".join(lines) + "\n"


def checked_table(index, cases) -> list[str]:
    """symdiff-python's public g(*point), which binds and checks its arguments, beside the generated
    grad() that the per-call table times (and SymPy's lambdify, which checks nothing)."""
    rows = [(case, index.get(("symdiff-python", case), {}), index.get(("sympy", case), {})) for case in cases]
    rows = [(case, mine, sympy) for case, mine, sympy in rows if "checked_call_us" in mine]
    if not rows:
        return []
    lines = [
        "## Per call (µs), symdiff-python: generated grad() vs the checked g(*point)",
        "",
        "| case | grad() | g(*point) | sympy lambdify |",
        "|---|---|---|---|",
    ]
    for case, mine, sympy in rows:
        lines.append(f"| {case} | {_cell(mine, 'call_us')} | {_cell(mine, 'checked_call_us')} | {_cell(sympy, 'call_us')} |")
    return lines + [""]


def ops_table(index, cases, tools) -> list[str]:
    lines = [
        "## Operation counts: gradient / function (ratio)",
        "",
        "symdiff: the simplified program's operations (one per accumulating += too) plus the forward "
        "entries grad() computes; CasADi: SX "
        "instructions; JAX: jaxpr equations; SymPy and SymEngine: count_ops after cse.",
        "",
        "| case | " + " | ".join(tools) + " |",
        "|---|" + "---|" * len(tools),
    ]
    for case in cases:
        cells = []
        for tool in tools:
            result = index.get((tool, case)) or {}
            ops = result.get("ops")
            if not ops:
                cells.append("—")
                continue
            ratio = ops["gradient"] / ops["function"] if ops["function"] else float("nan")
            cells.append(f"{ops['gradient']:,} / {ops['function']:,} ({ratio:.2f})")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return lines + [""]


def fresh_batch_table(index, cases) -> list[str]:
    """symdiff-numpy's batch both ways: into the caller's reused out= (the batch table) and g(*columns),
    which returns new arrays (fresh pages cost about 0.1 ns per byte of results)."""
    rows = [(case, index.get(("symdiff-numpy", case), {})) for case in cases]
    rows = [(case, mine) for case, mine in rows if "fresh_batch_ns_per_point" in mine]
    if not rows:
        return []
    lines = [
        "## Batch (ns per point), symdiff-numpy: reused out= vs new arrays each call",
        "",
        "| case | g.batch(points, out=) | g(*columns) | sympy (NumPy) | jax |",
        "|---|---|---|---|---|",
    ]
    for case, mine in rows:
        peers = [_cell(index.get((peer, case)), "batch_ns_per_point") for peer in ("sympy", "jax")]
        lines.append(
            f"| {case} | {_cell(mine, 'batch_ns_per_point')} | {_cell(mine, 'fresh_batch_ns_per_point')} | "
            + " | ".join(peers)
            + " |"
        )
    return lines + [""]


def paired_table(pairs: list[dict]) -> list[str]:
    pairs = [pair for pair in pairs if pair.get("status") == "ok"]
    if not pairs:
        return []
    lines = [
        f"## Per call (µs), {PAIRED[0]} grad() and {PAIRED[1]} lambdify alternating in one process",
        "",
        "Each case's two functions timed in 25 alternating runs (best of each), so that a slow spell of "
        "the shared machine slows both: the per-call table's separate processes are a few percent "
        "apart here, either way from run to run.",
        "",
        f"| case | {PAIRED[0]} | {PAIRED[1]} | ratio |",
        "|---|---|---|---|",
    ]
    for pair in pairs:
        mine, theirs = (pair["paired_call_us"][tool] for tool in PAIRED)
        lines.append(f"| {pair['case']} | {_number(mine)} | {_number(theirs)} | {theirs / mine:.2f} |")
    return lines + [""]


def paired_batch_table(pairs: list[dict]) -> list[str]:
    pairs = [pair for pair in pairs if pair.get("status") == "ok"]
    if not pairs:
        return []
    columns = list(pairs[0]["paired_batch_ns_per_point"])
    lines = [
        "## Batch (ns per point), NumPy targets: the tools alternating in one process",
        "",
        "Each case's batches (10^5 points) timed in 15 alternating runs (best of each), as the per-call "
        "pairing is: a textbook batch lasts about a millisecond, and the batch table's separate "
        "processes flip by more than the tools differ. The targets below read these figures. In "
        "brackets, the cores each used (process CPU time over wall time while it ran): NumPy runs on one, "
        "JAX spreads a batch over every core that is free.",
        "",
        "| case | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for pair in pairs:
        figures, cores = pair["paired_batch_ns_per_point"], pair.get("cores", {})
        cells = [
            "—" if c not in figures else f"{_number(figures[c])} ({cores[c]:.1f})" if c in cores else _number(figures[c])
            for c in columns
        ]
        lines.append(f"| {pair['case']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _with_paired_batches(index: dict, pairs: list[dict]) -> dict:
    """The results, with the batch figures of the cases measured alternating in one process (the
    out= batch and the new-arrays batch of symdiff-numpy, and the peers' batches) taken from there."""
    merged = dict(index)
    for pair in pairs:
        if pair.get("status") != "ok":
            continue
        for name, ns in pair["paired_batch_ns_per_point"].items():
            tool, fresh = name.removesuffix(" (new arrays)"), name.endswith(" (new arrays)")
            key = "fresh_batch_ns_per_point" if fresh else "batch_ns_per_point"
            merged[tool, pair["case"]] = merged.get((tool, pair["case"]), {}) | {key: ns}
    return merged


def large_batch_table(results: list[dict]) -> list[str]:
    if not results:
        return []
    lines = [f"## Batch at 10^6 points, {LARGE_BATCH[0]} (ns per point)", "", "| tool | ns per point |", "|---|---|"]
    for result in results:
        lines.append(f"| {result['tool']} | {_cell(result, 'batch_ns_per_point')} |")
    return lines + [""]


def _ratio(index, mine: tuple, theirs: tuple, key: str, mine_key: str | None = None):
    a, b = index.get(mine, {}), index.get(theirs, {})
    if mine_key is not None:  # symdiff's figure under another key (the NumPy batch with new arrays)
        return b[key] / a[mine_key] if a.get(mine_key) and b.get(key) else None
    if key in a and key in b and a[key] and b[key]:
        return b[key] / a[key]  # > 1: symdiff is faster
    if key in a and b.get("status") == "timeout" and key.startswith("build"):
        return f"> {float(b.get('error', '0 0 0').split()[-2]) / a[key]:.0f}"
    return None


def _verdict(value, goal: float) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, str):
        return f"{value}× (peer timed out): met" if float(value[2:]) >= goal else f"{value}×"
    return f"{value:.2f}× — {'met' if value >= goal else 'not met'}"


def targets(index, paired: list[dict], growth: dict) -> list[str]:
    lines = [
        "## Issue-4 targets (ratios from this run; > 1 means symdiff is faster; NumPy batches paired where measured)",
        "",
        "| target | measured |",
        "|---|---|",
    ]
    build = "build_median_s"
    row = ("symdiff-python", "rosenbrock-1000")
    lines.append(
        f"| Build Rosenbrock 1000: ≥ 5× faster than SymEngine | "
        f"{_verdict(_ratio(index, row, ('symengine', 'rosenbrock-1000'), build), 5)} |"
    )
    lines.append(
        f"| Build Rosenbrock 1000: ≥ 100× faster than SymPy | "
        f"{_verdict(_ratio(index, row, ('sympy', 'rosenbrock-1000'), build), 100)} |"
    )
    casadi = _ratio(index, row, ("casadi", "rosenbrock-1000"), build)
    lines.append(
        f"| Build Rosenbrock 1000: within 2.5× of CasADi | "
        f"{'not measured' if casadi is None else f'symdiff takes {1 / casadi:.2f}× CasADi — ' + ('met' if 1 / casadi <= 2.5 else 'not met')} |"
    )
    small, large = (
        index.get(("symdiff-python", "rosenbrock-1000"), {}),
        index.get(("symdiff-python", "rosenbrock-10000"), {}),
    )
    if growth:  # the builds taking turns (paired_growth)
        ratio, how = growth["ratio"], f"medians {growth['median_s'][GROWTH[1]]:.2f} / {growth['median_s'][GROWTH[0]]:.3f} s, taking turns"
    elif build in small and build in large:
        ratio, how = large[build] / small[build], "medians of the build table"
    if growth or (build in small and build in large):
        lines.append(
            f"| Build: n = 10,000 costs ≤ 12× n = 1,000 | {ratio:.1f}× ({how}) — {'met' if ratio <= 12 else 'not met'} |"
        )
    worst = None
    for (tool, case), result in index.items():
        if tool == "symdiff-python" and result.get("ops") and result["ops"]["function"]:
            ratio = result["ops"]["gradient"] / result["ops"]["function"]
            worst = max(worst or (0, ""), (ratio, case))
    if worst:
        lines.append(
            f"| ops(gradient) ≤ 3 × ops(function) on every case | worst {worst[0]:.2f} ({worst[1]}) — "
            f"{'met' if worst[0] <= 3 else 'not met'} |"
        )
    compared = {
        case: (r["call_us"], index[("sympy", case)]["call_us"])
        for (tool, case), r in index.items()
        if tool == "symdiff-python" and "call_us" in r and "call_us" in index.get(("sympy", case), {})
    }
    for pair in paired:  # the alternating measurement, where there is one
        if pair.get("status") == "ok" and pair["case"] in compared:
            compared[pair["case"]] = tuple(pair["paired_call_us"][tool] for tool in PAIRED)
    slower = [case for case, (mine, theirs) in compared.items() if mine > theirs]
    lines.append(
        f"| Python per call (generated grad) no slower than SymPy lambdify(cse=True), paired where under "
        f"{PAIRED_BELOW_US:.0f} µs | {len(compared) - len(slower)} of {len(compared)} cases"
        f"{'; slower on ' + ', '.join(slower) if slower else ''} |"
    )
    ratios = [
        (r["call_us"] / r["value_call_us"], case)
        for (tool, case), r in index.items()
        if tool == "symdiff-python" and r.get("value_call_us")
    ]
    if ratios:
        top = max(ratios)
        lines.append(
            f"| Python gradient call ≤ 3× function call (generated grad and f, taking turns) | worst {top[0]:.2f} ({top[1]}) — "
            f"{'met' if top[0] <= 3 else 'not met'} |"
        )
    batch, fresh = "batch_ns_per_point", "fresh_batch_ns_per_point"
    for mine_key, how in ((None, "into a reused out="), (fresh, "new arrays each call")):
        numpy_vs_sympy = [
            (_ratio(index, ("symdiff-numpy", c), ("sympy", c), batch, mine_key), c) for (t, c) in index if t == "symdiff-numpy"
        ]
        numpy_vs_sympy = [(v, c) for v, c in numpy_vs_sympy if isinstance(v, float)]
        if numpy_vs_sympy:
            low = min(numpy_vs_sympy)
            lines.append(
                f"| NumPy batch ({how}) faster than SymPy's NumPy lambdify everywhere | worst {low[0]:.2f}× "
                f"({low[1]}) — {'met' if low[0] > 1 else 'not met'} |"
            )
    for mine_key, how in ((None, "into a reused out="), (fresh, "new arrays each call")):
        for case in ("textbook-1", "textbook-2", "textbook-3"):
            value = _ratio(index, ("symdiff-numpy", case), ("jax", case), batch, mine_key)
            lines.append(f"| NumPy batch ({how}) faster than JAX jit+vmap, {case} | {_verdict(value, 1.0001)} |")
        value = _ratio(index, ("symdiff-numpy", "rosenbrock-100"), ("jax", "rosenbrock-100"), batch, mine_key)
        lines.append(f"| NumPy batch ({how}) within 2× of JAX, Rosenbrock 100 (10^5 points) | {_verdict(value, 0.5)} |")
    for case in ("rosenbrock-1000", "product-300"):
        for peer in ("casadi", "symengine"):
            value = _ratio(index, ("symdiff-c", case), (peer, case), "call_us")
            lines.append(f"| C per call beats {peer}, {case} | {_verdict(value, 1.0001)} |")
    value = _ratio(index, ("symdiff-c", "rosenbrock-100"), ("jax", "rosenbrock-100"), "batch_ns_per_point")
    lines.append(f"| C batch beats JAX jit+vmap per point, Rosenbrock 100 | {_verdict(value, 1.0001)} |")
    return lines + [""]


def notes(index, tools) -> list[str]:
    lines = ["## Notes", ""]
    seen = set()
    for tool in tools:
        for (name, _), result in index.items():
            if name == tool and result.get("note") and (tool, result["note"]) not in seen:
                seen.add((tool, result["note"]))
                lines.append(f"- {tool}: {result['note']}.")
    failures = sorted({(t, r.get("error", "")[:120]) for (t, _), r in index.items() if r.get("status") == "failed"})
    for tool, error in failures:
        lines.append(f"- {tool} failed: {error}")
    mismatch = []
    for (tool, case), result in index.items():
        reference = index.get(("symdiff-python", case), {}).get("check")
        if (
            reference
            and result.get("check")
            and abs(result["check"][1] - reference[1]) > 1e-6 * (1 + abs(reference[1]))
        ):
            mismatch.append(f"{tool} on {case}")
    lines.append(
        "- Gradients agree across tools (first partial and sum of partials at one point)"
        + (f", except {', '.join(mismatch)}." if mismatch else ".")
    )
    return lines + [""]


def plot(document: dict, tools: list[str], path: Path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return None
    chars = {c["name"]: c["chars"] for c in document["cases"]}
    figure, axes = plt.subplots(figsize=(8, 5.5))
    for tool in tools:
        points = sorted(
            (chars[r["case"]], r["build_median_s"])
            for r in document["results"]
            if r["tool"] == tool and "build_median_s" in r
        )
        if points:
            axes.plot(*zip(*points), marker="o", label=tool, linewidth=1)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("expression size (characters)")
    axes.set_ylabel("build time, string → ready callable (s)")
    axes.set_title(f"Build time vs expression size ({document['meta']['date']})")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    sys.exit(main())
