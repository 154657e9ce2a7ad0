"""Benchmark symdiff's array programs against the peers of issue 21 ("Targets"), side by side.

    python benchmarks/arrays.py [--quick] [--builds K] [--rounds R] [--append] [--report JSON]

Cases: the Rosenbrock sum (build, and gradient per call at n = 1,000 and 10^6), an exponential fit
over m = 10^6 data points (value and gradient wrt a, b, c), the Lennard-Jones energy of N = 200
atoms on a line (gradient; pairs i < j), and the memory a Rosenbrock gradient takes beyond its result.
Builds (string -> ready callable, and the first call at n) run each in a fresh process, the tools
taking turns, median of K; calls are timed in one process, the tools taking turns batch after batch
(about 2 ms each), best batch of at least R rounds (a shared machine only ever adds time). Before any timing, every tool's result is checked against a reference
(scipy.optimize.rosen_der, NumPy written by hand) to 1e-9 relative; a tool whose compile_grad raises
is reported "not supported", a wrong one is not timed. Prints Markdown, writes JSON to
benchmarks/results/ (git-ignored); --append also appends the Markdown to benchmarks/RESULTS.md.
--quick: one build each, three rounds, 10^5 in place of 10^6 (the targets are read at full size only).
Nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # symdiff from this checkout, as benchmarks/run.py measures it
# One BLAS thread: after each call OpenBLAS's idle threads spin for a while, and on two shared cores
# they took the core from the work that followed (the exponential fit by hand, dot products between
# exps: 29.6 ms with two threads, 7.1 ms with one; JAX, timed next, 18.0 against 12.5 ms). A dot
# product of 10^6 takes 0.1 ms on one thread. Set before NumPy loads; the fresh processes inherit it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy  # noqa: E402
from tools import fresh_c_cache  # noqa: E402
from worker import calls_lasting  # noqa: E402

ROSENBROCK = "sum(100*(x[i + 1] - x[i]^2)^2 + (1 - x[i])^2 for i in range(len(x) - 1))"
EXPONENTIAL_FIT = "sum((a*exp(-b*t[i]) + c - y[i])^2 for i in range(len(t)))"
LENNARD_JONES = (
    "sum(4*((1/(x[j] - x[i]))^12 - (1/(x[j] - x[i]))^6) for i in range(len(x)) for j in range(i + 1, len(x)))"
)
BACKENDS = ("python", "numpy", "c")
BUILD_TOOLS = ("symdiff-python", "symdiff-numpy", "symdiff-c", "jax", "casadi")
TOLERANCE = 1e-9  # relative to the reference's largest entry
BUILD_TIMEOUT_S = 240.0  # one fresh-process build (CasADi SX at n = 10^6 takes about 16 s here)


class Unavailable(Exception):
    """A tool that cannot run a case: not installed, or compile_grad refuses the program."""


# --- data and the peers written by hand ---------------------------------------------------------


def rosenbrock_point(n: int):
    return numpy.random.default_rng(7).uniform(0.5, 1.5, n)


def fit_data(m: int):
    """Decay data t, y with noise, and a point (a, b, c) away from the fit (its gradient is not small)."""
    rng = numpy.random.default_rng(11)
    t = numpy.linspace(0.0, 10.0, m)
    y = 2.0 * numpy.exp(-0.7 * t) + 0.5 + rng.normal(0.0, 0.01, m)
    return (1.5, 0.5, 0.3), t, y


def atoms(count: int):
    """Positions on a line near the potential's minimum spacing, increasing (no two atoms meet)."""
    return 1.12 * numpy.arange(count) + numpy.random.default_rng(5).uniform(-0.05, 0.05, count)


def rosen_der_loop(x: list) -> list:
    """The Rosenbrock gradient as a pure-Python loop written by hand (the issue's 0.36 ms at n = 1,000)."""
    gradient = [0.0] * len(x)
    for i in range(len(x) - 1):
        xi = x[i]
        d = x[i + 1] - xi * xi
        gradient[i] += -400.0 * xi * d - 2.0 * (1.0 - xi)
        gradient[i + 1] += 200.0 * d
    return gradient


def fit_numpy(a: float, b: float, c: float, t, y):
    """Value and gradient of the exponential fit in NumPy written by hand."""
    e = numpy.exp(-b * t)
    r = a * e + c - y
    re = r @ e
    return r @ r, (2.0 * re, -2.0 * a * (r @ (e * t)), 2.0 * r.sum())


def lennard_jones_numpy(x, pairs=None):
    """The pair energy's gradient written by hand: all pairs i < j at once (triu_indices, or `pairs`
    made beforehand), the contributions added into each atom with bincount (repeated indices add up,
    as a[idx] += v would not)."""
    i, j = numpy.triu_indices(len(x), 1) if pairs is None else pairs
    d = x[j] - x[i]
    s6 = d**-6
    dd = (-48.0 * s6 + 24.0) * s6 / d  # dE/dd of 4(d^-12 - d^-6)
    return numpy.bincount(j, dd, len(x)) - numpy.bincount(i, dd, len(x))


# --- the tools: each returns a ready callable or raises Unavailable --------------------------------


def symdiff_gradient(expr: str, backend: str, wrt=None):
    import symdiff

    try:
        return symdiff.compile_grad(expr, wrt, backend=backend)
    except Exception as error:  # the backends' array support is landing piece by piece
        raise Unavailable(f"not supported: {type(error).__name__}: {str(error)[:80]}") from None


def jax_modules():
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as error:
        raise Unavailable(f"missing: {error}") from None
    jax.config.update("jax_enable_x64", True)
    return jax, jnp


def jax_rosenbrock():
    jax, jnp = jax_modules()

    def f(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    gradient = jax.jit(jax.grad(f))
    return lambda x: gradient(x).block_until_ready()


def casadi_rosenbrock(n: int):
    """CasADi SX with vector operations: one symbol vector, slices, sum1; the gradient as a Function."""
    try:
        import casadi
    except ImportError as error:
        raise Unavailable(f"missing: {error}") from None
    x = casadi.SX.sym("x", n)
    head, tail = x[0 : n - 1], x[1:n]
    f = casadi.sum1(100 * (tail - head**2) ** 2 + (1 - head) ** 2)
    return casadi.Function("g", [x], [casadi.gradient(f, x)])


# --- timing and checking ------------------------------------------------------------------------


def alternate(calls: dict[str, Callable], rounds: int, seconds: float = 0.002, budget: float = 0.5) -> dict[str, float]:
    """Seconds per call of each function: each runs in batches of as many calls as last about
    `seconds` (at least one), the functions taking turns batch after batch so that a slow spell of
    the machine slows them all; the best batch of each counts. Batches shorter than a scheduler's
    time slice, and many rounds of them (at least `rounds`, up to 200 while they last about
    `budget` seconds a function), so that on a shared machine some batches run undisturbed. The
    cycle collector is off while they run, as timeit does."""
    numbers = {name: calls_lasting(call, seconds) for name, call in calls.items()}  # also warms up
    one_round = sum(timed_batch(call, numbers[name]) for name, call in calls.items())
    rounds = max(rounds, min(200, int(budget * len(calls) / max(one_round, 1e-9))))
    best = dict.fromkeys(calls, math.inf)
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, call in calls.items():
                best[name] = min(best[name], timed_batch(call, numbers[name]) / numbers[name])
    finally:
        gc.enable()
    return best


def timed_batch(call: Callable, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        call()
    return time.perf_counter() - start


def relative_error(result, reference) -> float:
    result = numpy.concatenate([numpy.ravel(numpy.asarray(part, dtype=float)) for part in result])
    reference = numpy.concatenate([numpy.ravel(numpy.asarray(part, dtype=float)) for part in reference])
    if result.shape != reference.shape:
        return math.inf
    return float(numpy.max(numpy.abs(result - reference)) / numpy.max(numpy.abs(reference)))


def checked(calls: dict[str, Callable], reference, as_parts: Callable) -> tuple[dict, dict]:
    """(the calls whose result matches `reference`, {name: why not timed} for the others)."""
    good, status = {}, {}
    for name, call in calls.items():
        if isinstance(call, str):
            status[name] = call
            continue
        try:
            error = relative_error(as_parts(call()), reference)
        except Exception as failure:
            status[name] = f"fails: {type(failure).__name__}: {str(failure)[:80]}"
            continue
        if error <= TOLERANCE:
            good[name] = call
        else:
            status[name] = f"wrong gradient (relative error {error:.1e})"
    return good, status


def attempt(make: Callable) -> Callable | str:
    try:
        return make()
    except Unavailable as reason:
        return str(reason)


# --- 1. builds, each in a fresh process -----------------------------------------------------------


def build_in_this_process(tool: str, n: int) -> dict:
    """The Rosenbrock gradient at n, imports and data outside the clock: string -> ready callable
    (symdiff: compile_grad and a call at n = 2, which compiles the entry point, so the same for every
    n; JAX and CasADi build for n: jit, tracing and compiling at its first call; the SX graph of n
    symbols, its gradient, a Function and a first call); then symdiff's first call at n, and a
    steady call after it (best of up to 3): the first less the steady is what a first call still
    costs once."""
    x = rosenbrock_point(n)
    result: dict = {}
    if tool.startswith("symdiff"):
        import symdiff  # noqa: F401

        backend = tool.removeprefix("symdiff-")
        if backend == "c":
            fresh_c_cache()  # the build pays for the compiler
        start = time.perf_counter()
        gradient = symdiff_gradient(ROSENBROCK, backend)
        gradient(x[:2])
        result["ready_s"] = time.perf_counter() - start
        call = lambda: gradient(x)  # noqa: E731
        result["first_s"] = timed_once(call)
    else:
        if tool == "jax":
            jax, _ = jax_modules()
            x = jax.device_put(x)
            start = time.perf_counter()
            gradient = jax_rosenbrock()
            call = lambda: gradient(x)  # noqa: E731
        else:
            import casadi  # noqa: F401

            start = time.perf_counter()
            function = casadi_rosenbrock(n)
            call = lambda: function(x)  # noqa: E731
        call()
        result["ready_s"] = time.perf_counter() - start
    result["call_s"] = min(timed_once(call) for _ in range(3 if result["ready_s"] < 2 else 1))
    if "first_s" in result:
        result["first_extra_s"] = result["first_s"] - result["call_s"]
    return result


def timed_once(call: Callable) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def fresh_process(*arguments: str, timeout: float = BUILD_TIMEOUT_S, env: dict | None = None) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), *arguments]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout ({timeout:.0f} s)"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"status": f"crashed: {done.stderr.strip()[-200:]}"}
    return json.loads(lines[-1])


def builds(sizes: tuple[int, ...], repeats: int) -> dict:
    """{tool: {n: result}}: the median of `repeats` fresh processes, the tools and sizes taking turns."""
    samples: dict = {tool: {n: [] for n in sizes} for tool in BUILD_TOOLS}
    status: dict = {}
    for _ in range(repeats):
        for n in sizes:
            for tool in BUILD_TOOLS:
                if (tool, n) in status:
                    continue
                result = fresh_process("--build", tool, str(n))
                if "ready_s" in result:
                    samples[tool][n].append(result)
                else:
                    status[tool, n] = result.get("status", "failed")
                print(f"build {tool:>15} n = {n:<8} {result}", file=sys.stderr, flush=True)
    table: dict = {tool: {} for tool in BUILD_TOOLS}
    for tool in BUILD_TOOLS:
        for n in sizes:
            runs = samples[tool][n]
            if (tool, n) in status and not runs:
                table[tool][n] = {"status": status[tool, n]}
            elif runs:
                keys = [key for key in runs[0] if key.endswith("_s")]
                table[tool][n] = {key: statistics.median(run[key] for run in runs) for key in keys} | {
                    "runs": len(runs)
                }
    return table


def build_worker(tool: str, n: int) -> int:
    try:
        result = build_in_this_process(tool, n)
    except Unavailable as reason:
        result = {"status": str(reason)}
    except ImportError as error:
        result = {"status": f"missing: {error}"}
    print(json.dumps(result), flush=True)
    return 0


# --- 2.-4. calls in one process -------------------------------------------------------------------


def rosenbrock_calls(n: int, rounds: int) -> dict:
    from scipy.optimize import rosen_der

    x = rosenbrock_point(n)
    listed = x.tolist()
    gradients = {
        backend: attempt(lambda backend=backend: symdiff_gradient(ROSENBROCK, backend)) for backend in BACKENDS
    }
    calls: dict = {}
    python = gradients["python"]
    calls["symdiff-python g(x)"] = python if isinstance(python, str) else (lambda: python(listed))
    if not isinstance(python, str):
        generated = python.grad_function
        calls["symdiff-python grad_function"] = lambda: generated(listed)
    for backend in ("numpy", "c"):
        gradient = gradients[backend]
        calls[f"symdiff-{backend}"] = gradient if isinstance(gradient, str) else (lambda g=gradient: g(x))
    calls["scipy rosen_der"] = lambda: rosen_der(x)
    calls["Python loop by hand"] = lambda: rosen_der_loop(listed)
    jax_call = attempt(jax_rosenbrock)
    if not isinstance(jax_call, str):
        jax, _ = jax_modules()
        on_device = jax.device_put(x)
        first = timed_once(lambda: jax_call(on_device))  # trace and compile
        calls["jax jit(grad)"] = lambda: jax_call(on_device)
    else:
        calls["jax jit(grad)"], first = jax_call, None
    start = time.perf_counter()
    function = attempt(lambda: casadi_rosenbrock(n))
    casadi_build = time.perf_counter() - start
    calls["casadi SX"] = function if isinstance(function, str) else (lambda: function(x))
    as_parts = lambda result: result if type(result) is tuple else (result,)  # noqa: E731
    good, status = checked(calls, (rosen_der(x),), as_parts)
    times = alternate(good, rounds)
    notes = {"jax first call (trace, compile)": first}
    if not isinstance(function, str):
        notes["casadi build (SX, gradient, Function)"] = casadi_build
    return {"n": n, "tools": list(calls), "seconds": times, "status": status, "notes": notes}


def fit_calls(m: int, rounds: int) -> dict:
    (a, b, c), t, y = fit_data(m)
    listed = (t.tolist(), y.tolist())
    calls: dict = {}
    for backend in BACKENDS:
        gradient = attempt(lambda backend=backend: symdiff_gradient(EXPONENTIAL_FIT, backend, ["a", "b", "c"]))
        data = listed if backend == "python" else (t, y)
        calls[f"symdiff-{backend}"] = (
            gradient if isinstance(gradient, str) else (lambda g=gradient, data=data: g.value_and_grad(a, b, c, *data))
        )
    calls["NumPy by hand"] = lambda: fit_numpy(a, b, c, t, y)
    first = None
    try:
        jax, jnp = jax_modules()

        def loss(a, b, c, t, y):
            return jnp.sum((a * jnp.exp(-b * t) + c - y) ** 2)

        both = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
        on_device = jax.device_put(t), jax.device_put(y)
        run = lambda: jax.block_until_ready(both(a, b, c, *on_device))  # noqa: E731
        first = timed_once(run)
        calls["jax jit(value_and_grad)"] = run
    except Unavailable as reason:
        calls["jax jit(value_and_grad)"] = str(reason)
    value, gradient = fit_numpy(a, b, c, t, y)
    good, status = checked(calls, ((value,), gradient), lambda result: ((result[0],), result[1]))
    times = alternate(good, rounds)
    return {
        "m": m,
        "tools": list(calls),
        "seconds": times,
        "status": status,
        "notes": {"jax first call (trace, compile)": first},
    }


def lennard_jones_calls(count: int, rounds: int) -> dict:
    x = atoms(count)
    listed = x.tolist()
    calls: dict = {}
    for backend in BACKENDS:
        gradient = attempt(lambda backend=backend: symdiff_gradient(LENNARD_JONES, backend))
        data = listed if backend == "python" else x
        calls[f"symdiff-{backend}"] = gradient if isinstance(gradient, str) else (lambda g=gradient, d=data: g(d))
    calls["NumPy by hand (triu_indices + bincount)"] = lambda: lennard_jones_numpy(x)
    pairs = numpy.triu_indices(count, 1)
    calls["the same, indices made beforehand"] = lambda: lennard_jones_numpy(x, pairs)
    first = None
    try:
        jax, jnp = jax_modules()
        i, j = (jnp.asarray(k) for k in numpy.triu_indices(count, 1))

        def energy(x):
            s6 = (x[j] - x[i]) ** -6
            return jnp.sum(4.0 * (s6 * s6 - s6))

        gradient = jax.jit(jax.grad(energy))
        on_device = jax.device_put(x)
        run = lambda: gradient(on_device).block_until_ready()  # noqa: E731
        first = timed_once(run)
        calls["jax jit(grad)"] = run
    except Unavailable as reason:
        calls["jax jit(grad)"] = str(reason)
    as_parts = lambda result: result if type(result) is tuple else (result,)  # noqa: E731
    good, status = checked(calls, (lennard_jones_numpy(x),), as_parts)
    times = alternate(good, rounds)
    notes = {"jax first call (trace, compile)": first}
    return {"atoms": count, "tools": list(calls), "seconds": times, "status": status, "notes": notes}


# --- 5. memory, each tool in a fresh process --------------------------------------------------------

MEMORY_TOOLS = (
    "symdiff-python g(x)",
    "symdiff-python grad_function",
    "Python loop by hand",
    "symdiff-numpy",
    "symdiff-c",
    "scipy rosen_der",
)


def memory_in_this_process(tool: str, n: int) -> dict:
    """Bytes a Rosenbrock gradient call at n holds at its peak beyond what was held before, two ways:
    the resident set's high-water mark (VmHWM), reset just before the call (Linux: /proc/self/clear_refs);
    and tracemalloc's peak on a second call (which sees Python's and NumPy's allocations, not C's
    malloc). Not resource.getrusage's ru_maxrss: it is also the highest of the process this one was
    started from (a parent with JAX loaded holds more than any call here), so it never moves. The
    result's own size is given beside them."""
    x = rosenbrock_point(n)
    listed = x.tolist()
    if tool == "scipy rosen_der":
        from scipy.optimize import rosen_der

        call = lambda: rosen_der(x)  # noqa: E731
    elif tool == "Python loop by hand":
        call = lambda: rosen_der_loop(listed)  # noqa: E731
    else:
        backend = tool.split()[0].removeprefix("symdiff-")
        gradient = symdiff_gradient(ROSENBROCK, backend)
        gradient(rosenbrock_point(10))  # compiles the entry point outside the measurement
        if tool.endswith("grad_function"):
            generated = gradient.grad_function
            call = lambda: generated(listed)  # noqa: E731
        elif backend == "python":
            call = lambda: gradient(listed)  # noqa: E731
        else:
            call = lambda: gradient(x)  # noqa: E731
    gc.collect()
    release_free_memory()
    with open("/proc/self/clear_refs", "w") as marks:
        marks.write("5")  # resets the high-water mark to the current resident set
    before = resident("VmHWM")
    result = call()
    rss = resident("VmHWM") - before
    size = result_bytes(result)
    del result
    gc.collect()
    tracemalloc.start()
    held = tracemalloc.get_traced_memory()[0]
    call()
    traced = tracemalloc.get_traced_memory()[1] - held
    tracemalloc.stop()
    return {"rss_peak_bytes": rss, "traced_peak_bytes": traced, "result_bytes": size}


def release_free_memory() -> None:
    """Hand the C heap's free pages back (glibc's malloc_trim), so that a call which reuses them shows
    in the resident set; memory_process also fixes glibc's mmap threshold, so that every large block
    is mapped afresh and unmapped when freed, rather than kept in the heap."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the resident set may then miss a call that reuses freed pages


def resident(field: str) -> int:
    """A field of /proc/self/status in bytes: VmRSS, the resident set; VmHWM, its high-water mark."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def result_bytes(result) -> int:
    """The size of a gradient as returned: NumPy arrays' data, or lists with their float objects."""
    if isinstance(result, tuple):
        return sum(result_bytes(part) for part in result) + sys.getsizeof(result)
    if isinstance(result, numpy.ndarray):
        return result.nbytes
    if isinstance(result, list):
        return sys.getsizeof(result) + sum(sys.getsizeof(item) for item in result)
    return sys.getsizeof(result)


def memory_worker(tool: str, n: int) -> int:
    try:
        result = memory_in_this_process(tool, n)
    except Unavailable as reason:
        result = {"status": str(reason)}
    print(json.dumps(result), flush=True)
    return 0


def memory_process(tool: str, n: int) -> dict:
    """memory_in_this_process in a fresh process whose glibc maps every block from 128 kB afresh (a fixed
    threshold: by default it rises to the largest block freed, and later blocks reuse resident heap)."""
    return fresh_process("--memory", tool, str(n), env=os.environ | {"MALLOC_MMAP_THRESHOLD_": "131072"})


def memory(sizes: tuple[int, ...]) -> dict:
    table: dict = {}
    for tool in MEMORY_TOOLS:
        for n in sizes:
            table.setdefault(tool, {})[n] = result = memory_process(tool, n)
            print(f"memory {tool:>28} n = {n:<8} {result}", file=sys.stderr, flush=True)
    return table


# --- reporting ------------------------------------------------------------------------------------


def machine(started: float) -> dict:
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": time.perf_counter() - started,
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "load_average_end": os.getloadavg(),
    }
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info["cpu"] = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line), "?")
    versions = {}
    for package in ("numpy", "scipy", "jax", "jaxlib", "casadi"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    from symdiff.version import __version__

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    versions["symdiff"] = f"{__version__} ({commit.stdout.strip() or 'no git'})"
    info["versions"] = versions
    return info


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 0:  # a difference of two timings, within their noise
        return "−" + duration(-seconds)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{_digits(seconds / scale)} {unit}"
    return f"{_digits(seconds * 1e9)} ns"


def _digits(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def megabytes(count: float) -> str:
    return f"{count / 2**20 + 0.0:.2f}".replace("-0.00", "0.00")  # a page less than before is no memory


def size_name(n: int) -> str:
    return f"10^{round(math.log10(n))}" if n >= 10**5 and n == 10 ** round(math.log10(n)) else f"{n:,}"


def call_table(title: str, runs: list[dict], key: str) -> list[str]:
    tools = list(dict.fromkeys(name for run in runs for name in run["tools"]))
    lines = [f"### {title}", "", f"| {key} | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
    for run in runs:
        cells = [
            duration(run["seconds"][tool]) if tool in run["seconds"] else run["status"].get(tool, "—") for tool in tools
        ]
        lines.append(f"| {size_name(run[key])} | " + " | ".join(cells) + " |")
    for run in runs:
        notes = [f"{name} {duration(value)}" for name, value in run["notes"].items() if value is not None]
        if notes:
            lines.append(f"\nAt {key} = {size_name(run[key])}: " + "; ".join(notes) + ".")
    return lines + [""]


def build_tables(table: dict) -> list[str]:
    sizes = sorted({n for per_size in table.values() for n in per_size})
    lines = []
    for title, key in (
        (
            "Build, Rosenbrock: string → ready callable (median of fresh processes; imports and data outside "
            "the clock; symdiff: compile_grad and a call at n = 2, which compiles the entry point; JAX: jit, "
            "tracing and compiling for n at the first call; CasADi: the SX graph of n symbols, gradient, "
            "Function, first call)",
            "ready_s",
        ),
        (
            "Build, Rosenbrock: symdiff's first call at n, less a steady call (what a first call still costs once)",
            "first_extra_s",
        ),
        ("Build, Rosenbrock: a steady call (in the same fresh processes, best of up to 3)", "call_s"),
    ):
        lines += [f"### {title}", "", "| n | " + " | ".join(BUILD_TOOLS) + " |", "|---|" + "---|" * len(BUILD_TOOLS)]
        for n in sizes:
            cells = []
            for tool in BUILD_TOOLS:
                result = table[tool].get(n, {})
                cells.append(duration(result[key]) if key in result else result.get("status", "—"))
            lines.append(f"| {size_name(n)} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def memory_table(table: dict) -> list[str]:
    sizes = sorted({n for per_size in table.values() for n in per_size})
    header = " | ".join(f"n = {size_name(n)}: result | beyond it: RSS, traced" for n in sizes)
    lines = [
        "### Memory of one Rosenbrock gradient call (MB): its result, and the peak beyond it",
        "",
        "Each tool and n in a fresh process. RSS: the resident set's high-water mark (VmHWM), reset just "
        "before the call; traced: tracemalloc's peak on a second call (Python's and NumPy's allocations, "
        "not C's malloc). Beyond the result: the peak less the result's own size (for lists, the list and "
        "its floats; CPython's allocator keeps some 8 bytes more per float resident, which RSS shows).",
        "",
        f"| tool | {header} |",
        "|---|" + "---|---|" * len(sizes),
    ]
    for tool, per_size in table.items():
        cells = []
        for n in sizes:
            result = per_size.get(n, {})
            if "result_bytes" in result:
                beyond = (
                    megabytes(result[key] - result["result_bytes"]) for key in ("rss_peak_bytes", "traced_peak_bytes")
                )
                cells += [megabytes(result["result_bytes"]), ", ".join(beyond)]
            else:
                cells += [result.get("status", "—"), "—"]
        lines.append(f"| {tool} | " + " | ".join(cells) + " |")
    return lines + [""]


def beyond_growth(per_size: dict, key: str) -> float | None:
    """Bytes per element by which the peak beyond the result grows from the smaller n to the larger:
    about 0 for O(1) memory, at least 8 for one more array of doubles."""
    (small, low), (large, high) = sorted(per_size.items())[0], sorted(per_size.items())[-1]
    if large == small or "result_bytes" not in low or "result_bytes" not in high:
        return None
    grown = (high[key] - high["result_bytes"]) - (low[key] - low["result_bytes"])
    return grown / (large - small)


def memory_verdict(table: dict, tool: str, key: str) -> str:
    growth = beyond_growth(table.get(tool, {}), key)
    if growth is None:
        return "not measured (see the tables)"
    what = "RSS" if key == "rss_peak_bytes" else "traced"
    shown = f"{growth + 0.0:.2f}".replace("-0.00", "0.00")
    return f"{tool} ({what}): grows {shown} bytes per element — {'met' if growth < 1 else 'not met'}"


def _seconds(run: dict | None, tool: str) -> float | None:
    return None if run is None else run["seconds"].get(tool)


def _verdict(mine: float | None, theirs: float | None, within: float, what: str) -> str:
    """`mine` against `theirs`: met when mine <= within * theirs."""
    if mine is None or theirs is None:
        return "not measured (see the tables)"
    ratio = mine / theirs
    return (
        f"{duration(mine)} against {duration(theirs)}: {ratio:.2f}× {what} — {'met' if ratio <= within else 'not met'}"
    )


def targets(document: dict) -> list[str]:
    if document["quick"]:
        return ["### Targets", "", "Read at full size only: run without --quick.", ""]
    by_n = {run["n"]: run for run in document["rosenbrock"]}
    small, large = by_n.get(1000), by_n.get(10**6)
    fit, pairs = document["fit"], document["lennard_jones"]
    python_builds = document["builds"]["symdiff-python"]
    ready = [python_builds[n].get("ready_s") for n in sorted(python_builds)]
    if all(value is not None for value in ready) and ready:
        worst = max(ready)
        build = (
            f"{', '.join(duration(v) for v in ready)} at n = "
            f"{', '.join(size_name(n) for n in sorted(python_builds))} — {'met' if worst <= 0.05 else 'not met'}"
        )
    else:
        build = "not measured (see the tables)"
    rows = [
        ("Build, Python backend: string → ready ≤ 50 ms, the same at every n", build),
        (
            "Rosenbrock 10^6: NumPy backend ≥ 2× faster than rosen_der",
            _verdict(_seconds(large, "symdiff-numpy"), _seconds(large, "scipy rosen_der"), 0.5, "rosen_der's time"),
        ),
        (
            "Rosenbrock 10^6: C backend no slower than JAX jit(grad)",
            _verdict(_seconds(large, "symdiff-c"), _seconds(large, "jax jit(grad)"), 1.0, "JAX's time"),
        ),
        (
            "Rosenbrock 1,000: C backend no slower than rosen_der",
            _verdict(_seconds(small, "symdiff-c"), _seconds(small, "scipy rosen_der"), 1.0, "rosen_der's time"),
        ),
        (
            "Rosenbrock 1,000: Python backend g(x) within 1.3× of the hand-written loop",
            _verdict(
                _seconds(small, "symdiff-python g(x)"), _seconds(small, "Python loop by hand"), 1.3, "the loop's time"
            ),
        ),
        (
            "(the same, the generated grad_function called directly)",
            _verdict(
                _seconds(small, "symdiff-python grad_function"),
                _seconds(small, "Python loop by hand"),
                1.3,
                "the loop's time",
            ),
        ),
        (
            "Exponential fit 10^6: NumPy backend no slower than NumPy by hand",
            _verdict(_seconds(fit, "symdiff-numpy"), _seconds(fit, "NumPy by hand"), 1.0, "NumPy by hand's time"),
        ),
        (
            "Exponential fit 10^6: C backend no slower than JAX jit(value_and_grad)",
            _verdict(_seconds(fit, "symdiff-c"), _seconds(fit, "jax jit(value_and_grad)"), 1.0, "JAX's time"),
        ),
        (
            "Lennard-Jones 200: NumPy backend within 1.5× of triu_indices + bincount",
            _verdict(
                _seconds(pairs, "symdiff-numpy"),
                _seconds(pairs, "NumPy by hand (triu_indices + bincount)"),
                1.5,
                "the hand-written time",
            ),
        ),
        (
            "Lennard-Jones 200: C backend no slower than JAX jit(grad)",
            _verdict(_seconds(pairs, "symdiff-c"), _seconds(pairs, "jax jit(grad)"), 1.0, "JAX's time"),
        ),
    ]
    memory = document["memory"]
    rows += [
        (
            "Memory O(1) beyond the result, Python (the peak beyond it grows < 1 byte per element, 10^5 → 10^6)",
            memory_verdict(memory, "symdiff-python grad_function", "traced_peak_bytes"),
        ),
        (
            "(the same, the public g(x) with a list: its arguments are copied)",
            memory_verdict(memory, "symdiff-python g(x)", "traced_peak_bytes"),
        ),
        ("Memory O(1) beyond the result, C", memory_verdict(memory, "symdiff-c", "rss_peak_bytes")),
    ]
    lines = ["### Targets (issue 21)", "", "| target | measured |", "|---|---|"]
    lines += [f"| {target} | {measured} |" for target, measured in rows]
    return lines + [""]


def markdown(document: dict) -> str:
    meta = document["meta"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    start, end = document["load_start"], meta["load_average_end"]
    lines = [
        f"## Array programs (issue 21) — {meta['date']}",
        "",
        f"Machine: {meta['cpu']}, {meta['nproc']} cores; Python {meta['python']}; {versions}. Command: "
        f"`python benchmarks/arrays.py{' --quick' if document['quick'] else ''}` ({meta['elapsed_s'] / 60:.1f} min; "
        f"load average (1, 5, 15 min) at the start {start[0]:.2f}, {start[1]:.2f}, {start[2]:.2f}, at the end "
        f"{end[0]:.2f}, {end[1]:.2f}, {end[2]:.2f}: the machine is shared). Calls: the tools taking turns in one "
        f"process in batches of about 2 ms (or one call), best batch of {document['rounds']} to 200 rounds; builds: median of "
        f"{document['build_repeats']} fresh "
        "processes each. Every result below was checked against rosen_der or NumPy by hand (1e-9 relative) "
        "before it was timed. Python tools take lists, the others NumPy arrays (JAX's already on its device). "
        f"OPENBLAS_NUM_THREADS={document.get('openblas_threads', '?')} (see the script: idle BLAS threads spin).",
        "",
    ]
    lines += build_tables(document["builds"])
    lines += call_table("Rosenbrock gradient, per call", document["rosenbrock"], "n")
    lines += call_table("Exponential fit, value and gradient wrt (a, b, c), per call", [document["fit"]], "m")
    lines += call_table("Lennard-Jones energy's gradient, pairs i < j, per call", [document["lennard_jones"]], "atoms")
    lines += memory_table(document["memory"])
    lines += targets(document)
    return "\n".join(lines) + "\n"


def loaded(path: Path) -> dict:
    """A run's JSON document, with the sizes JSON turned into strings made numbers again."""
    document = json.loads(path.read_text())
    for section in ("builds", "memory"):
        document[section] = {tool: {int(n): v for n, v in sizes.items()} for tool, sizes in document[section].items()}
    return document


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one build each, three rounds, 10^5 for 10^6")
    parser.add_argument("--builds", type=int, default=None, help="fresh-process builds per tool and size (3; 1 quick)")
    parser.add_argument("--rounds", type=int, default=None, help="least alternating rounds per timing (7; 3 quick)")
    parser.add_argument("--append", action="store_true", help="append the Markdown to benchmarks/RESULTS.md")
    parser.add_argument("--report", metavar="JSON", help="print the Markdown of a run's JSON again, measuring nothing")
    parser.add_argument("--build", nargs=2, metavar=("TOOL", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--memory", nargs=2, metavar=("TOOL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        return build_worker(args.build[0], int(args.build[1]))
    if args.memory:
        return memory_worker(args.memory[0], int(args.memory[1]))
    if args.report:
        print(markdown(loaded(Path(args.report))))
        return 0
    try:
        import scipy.optimize  # noqa: F401  # rosen_der: a peer, and the reference every gradient is checked against
    except ImportError:
        print("benchmarks/arrays.py needs SciPy: pip install scipy", file=sys.stderr)
        return 2
    started = time.perf_counter()
    large = 10**5 if args.quick else 10**6
    rounds = args.rounds or (3 if args.quick else 7)
    repeats = args.builds or (1 if args.quick else 3)
    document: dict = {"quick": args.quick, "rounds": rounds, "build_repeats": repeats, "load_start": os.getloadavg()}
    document["openblas_threads"] = os.environ.get("OPENBLAS_NUM_THREADS")
    document["builds"] = builds((10, 1000, large), repeats)
    document["rosenbrock"] = []
    for n in (1000, large):
        document["rosenbrock"].append(rosenbrock_calls(n, rounds))
        print(f"rosenbrock n = {n}: {document['rosenbrock'][-1]}", file=sys.stderr, flush=True)
    document["fit"] = fit_calls(large, rounds)
    print(f"fit: {document['fit']}", file=sys.stderr, flush=True)
    document["lennard_jones"] = lennard_jones_calls(200, rounds)
    print(f"lennard-jones: {document['lennard_jones']}", file=sys.stderr, flush=True)
    document["memory"] = memory((large // 10, large))
    document["meta"] = machine(started)
    text = markdown(document)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (results / f"arrays-{stamp}.json").write_text(json.dumps(document, indent=1, default=str))
    print(text)
    if args.append:
        with open(HERE / "RESULTS.md", "a") as published:
            published.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
