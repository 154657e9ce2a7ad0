"""c_module: Adjoint -> standalone C99 (math.h only) for value and gradient, at one point and over a
batch of points; plus a loader that compiles it with the system C compiler and calls it via ctypes.

The C reads like the Python module (w1, w2, ... and x_bar names, one primitive per line, each
adjoint line commented with the piece of the input it differentiates). Compiled libraries are cached
under a digest of the source, the compiler and its flags, so a second build of the same expression
only loads a file.
"""

from __future__ import annotations

import array
import ctypes
import functools
import hashlib
import itertools
import os
import platform
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .adjoint import Adjoint, Bar, Op, Step, Term
from .backends import CompiledGradient, header_text
from .errors import ArgumentError, CompilerError
from .names import Names, assign_names
from .render import _docstring, _environment, _Printer
from .tape import INPUT, Ref, Tape

# The batch loops carry `#pragma omp parallel for` over tiles and `#pragma omp simd` inside: with
# -fopenmp they use every core and SIMD across points; where the compiler has no OpenMP runtime,
# -fopenmp-simd keeps the SIMD; without either the pragmas are ignored. The first set of flags that
# compiles is used. -ffp-contract=off keeps a*b + c unfused, so results are the same bits with any
# target flags and in SIMD lanes as on the scalar path (GCC contracts by default in GNU C mode).
CFLAGS = ("-O2", "-shared", "-fPIC", "-ffp-contract=off")
# The loader builds for the machine it runs on (the library never leaves the cache, whose digest
# names the CPU), so it may use its vector units: AVX-512 halves the sweep's time against SSE2.
# The .c itself stays portable; a compiler without -march=native falls back to its default target.
TARGET_FLAGS = (("-march=native",), ())
OPENMP_FLAGS = (("-fopenmp",), ("-fopenmp-simd",), ())
# For a program with loops too long for SIMD (SIMD_LINES): -O1, and GCC's register allocator in one
# region with the priority algorithm. On product-300's bodies left scalar that took 3.4 s of compiler
# time against 7.8 s at -O2 (12.3 s with SIMD), for the same per-call time within noise.
LARGE_FLAGS = ("-O1", "-fira-region=one", "-fira-algorithm=priority")
# Below this many points a batch runs on one thread (starting threads costs more than it saves).
PARALLEL_FROM = 4096
# Threads take whole tiles of this many points; inside a tile the SIMD loop has restrict pointers
# and a plain counted loop, which GCC schedules far better than the body of `parallel for simd`
# (1.7x at -O2 on rosenbrock-100 with the data in cache), and each row is read and written in runs.
TILE = 256
# Tiles are handed out schedule(guided): big runs of tiles first, smaller ones at the end. On a
# machine where another process shares a core, a static split waits for the slowed thread (225
# against 158 ns a point on rosenbrock-100 here); guided lets the other threads take its share.

# Identifiers a C99 file that includes math.h may not reuse for a variable: keywords, and every
# name math.h declares (a local `sin` would hide the function).
C_RESERVED = frozenset(
    """auto break case char const continue default do double else enum extern float for goto if inline
    int long register restrict return short signed sizeof static struct switch typedef union unsigned
    void volatile while _Bool _Complex _Imaginary NULL
    acos acosh asin asinh atan atan2 atanh cbrt ceil copysign cos cosh erf erfc exp exp2 expm1 fabs fdim
    floor fma fmax fmin fmod frexp hypot ilogb ldexp lgamma llrint llround log log10 log1p log2 logb
    lrint lround modf nan nearbyint nextafter nexttoward pow remainder remquo rint round scalbln scalbn
    sin sinh sqrt tan tanh tgamma trunc j0 j1 jn y0 y1 yn gamma signgam isnan isinf isfinite isnormal
    signbit fpclassify isgreater isgreaterequal isless islessequal islessgreater isunordered
    HUGE_VAL HUGE_VALF HUGE_VALL INFINITY NAN FP_INFINITE FP_NAN FP_NORMAL FP_SUBNORMAL FP_ZERO
    FP_ILOGB0 FP_ILOGBNAN MATH_ERRNO MATH_ERREXCEPT math_errhandling errno""".split()
)


@dataclass(frozen=True, slots=True)
class Line:
    target: str  # "double x1_bar", or "x1_bar" when it is declared already
    op: str  # "=", "+=", "-="
    rhs: str
    note: str  # "" or "  // comment"


@dataclass(frozen=True, slots=True)
class Loop:
    """A batch function: tiles of points shared among threads, and in each tile one loop over its
    points whose body is the whole sweep (SIMD across points)."""

    signature: str
    doc: str
    count: str  # the parameters holding the number of points and the point index
    index: str
    start: str  # the first point of a tile, and one past its last
    end: str
    tile: str  # points per tile
    parallel_from: str  # batches at least this large run on several threads (with OpenMP)
    simd: tuple[str, ...]  # the pragma asking for SIMD across a tile's points, or none (a long body)
    scratch: tuple[str, ...]  # "double carry[3][256];": values one part of the body hands to a later one
    parts: tuple[tuple[Line, ...], ...]  # one loop over the tile's points each, in order: loads
    # ("const double x1 = x[1 * n + k]"), the sweep, stores ("grad[k] = x1_bar")

    @property
    def lines(self) -> tuple[Line, ...]:
        return tuple(line for part in self.parts for line in part)


@dataclass(frozen=True, slots=True)
class Wrapper:
    """A function whose body is a few statements calling the loops."""

    signature: str
    doc: str
    body: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Module:
    comment: tuple[str, ...]  # the header comment, line by line
    guard: str  # the header's include guard
    includes: tuple[str, ...]  # "<math.h>", and the .c's own header when it has one
    loops: tuple[Loop, ...]
    wrappers: tuple[Wrapper, ...]  # single points (and value_and_grad over a batch, for big programs)


# value_and_grad_batch shares one sweep up to this many lines; beyond, it runs f's loop then grad's:
# the compiler's time grows faster than linearly with the span that forward values stay alive.
SHARED_SWEEP_LINES = 3000
# A loop body longer than this is left scalar: a vectorised loop is two copies of the body (SIMD and
# remainder) with every value spilled, and GCC's register allocation dominates the build time. Such
# programs are costly per point anyway, and one point (the per-call path) runs scalar code either way.
SIMD_LINES = 2000
# A SIMD body is cut into one loop over the tile per this many gradient rows, so that each loop
# streams a few rows of x and grad instead of all of them at once: with 200 rows in flight the
# prefetchers lose track (rosenbrock-10 moved a byte twice as fast as rosenbrock-100). Values a later
# part needs go through a small array per tile (at most CARRY_SLOTS of them, else no cut).
ROWS_PER_LOOP = 8
CARRY_SLOTS = 32
IDENTIFIER = re.compile(r"\b[A-Za-z_]\w*\b")


def c_module(
    adjoint: Adjoint, prefix: str = "symdiff", header: str | None = None, shared_sweep_lines: int = SHARED_SWEEP_LINES
) -> Module:
    tape = adjoint.tape
    names = c_names(tape, adjoint.wrt)
    printer = _Printer(tape, names, "c")
    x, grad, value, n, k, start, end, carry = _own_names(names)
    inputs, outputs = len(tape.inputs), len(adjoint.wrt)

    def at(array: str, row: int) -> str:  # element `row` of point k in a batch laid out row by row
        return f"{array}[{k}]" if row == 0 else f"{array}[{row} * {n} + {k}]"

    definitions = {  # every tape entry as a line: inputs load their row of x
        index: Line(f"const double {names.value(index)}", "=", at(x, tape.inputs.index(instr.name)), "")
        if instr.op == INPUT
        else Line(f"const double {names.value(index)}", "=", printer.definition(index), "")
        for index, instr in enumerate(tape.instrs)
    }
    value_store = [(Line(f"{value}[{k}]", "=", printer.atom(tape.output), ""), tape.output)]
    grad_stores = [(Line(at(grad, i), "=", printer.atom(term), ""), term) for i, term in enumerate(adjoint.gradient)]
    sweep = _Sweep(tape, definitions, adjoint.steps, _reverse_lines(adjoint.steps, printer))
    points = f"long {n}, const double *restrict {x}"
    where = f"input i of point {k} is {x}[i * {n} + {k}]"
    wrt = ", ".join(f"d/d{name}" for name in adjoint.wrt) or "nothing"
    value_lines = sweep.lines(value_store, reverse=False)
    grad_lines = sweep.lines(grad_stores)
    both_lines = sweep.lines(grad_stores + value_store)
    loops = [
        Loop(
            f"void {prefix}_f_batch({points}, double *restrict {value})",
            f"f at {n} points: {value}[{k}] = f(point {k}); {where}.",
            n,
            k,
            start,
            end,
            str(TILE),
            str(PARALLEL_FROM),
            _simd(value_lines),
            *_cut(value_lines, x, k, start, carry, bool(_simd(value_lines))),
        ),
        Loop(
            f"void {prefix}_grad_batch({points}, double *restrict {grad})",
            f"The gradient ({wrt}) at {n} points into {grad}[j * {n} + {k}]; {where}.",
            n,
            k,
            start,
            end,
            str(TILE),
            str(PARALLEL_FROM),
            _simd(grad_lines),
            *_cut(grad_lines, x, k, start, carry, bool(_simd(grad_lines))),
        ),
    ]
    both = f"void {prefix}_value_and_grad_batch({points}, double *restrict {value}, double *restrict {grad})"
    both_doc = f"Value and gradient at {n} points: {value}[{k}], {grad}[j * {n} + {k}]"
    wrappers = []
    if len(both_lines) <= shared_sweep_lines:
        loops.append(
            Loop(
                both,
                f"{both_doc}, from one forward sweep.",
                n,
                k,
                start,
                end,
                str(TILE),
                str(PARALLEL_FROM),
                _simd(both_lines),
                *_cut(both_lines, x, k, start, carry, bool(_simd(both_lines))),
            )
        )
    else:
        wrappers.append(
            Wrapper(
                both,
                f"{both_doc} (f's loop, then grad's).",
                (f"{prefix}_f_batch({n}, {x}, {value});", f"{prefix}_grad_batch({n}, {x}, {grad});"),
            )
        )
    single = f"const double *restrict {x}"
    wrappers += [
        Wrapper(
            f"double {prefix}_f({single})",
            f"f at one point: {x}[0..{inputs - 1}] are the inputs in order.",
            (f"double {value};", f"{prefix}_f_batch(1, {x}, &{value});", f"return {value};"),
        ),
        Wrapper(
            f"void {prefix}_grad({single}, double *restrict {grad})",
            f"The gradient at one point, into {grad}[0..{outputs - 1}] ({wrt}).",
            (f"{prefix}_grad_batch(1, {x}, {grad});",),
        ),
        Wrapper(
            f"double {prefix}_value_and_grad({single}, double *restrict {grad})",
            "Value (returned) and gradient at one point.",
            (f"double {value};", f"{prefix}_value_and_grad_batch(1, {x}, &{value}, {grad});", f"return {value};"),
        ),
    ]
    text = header_text(_docstring(tape.source, tape, names, adjoint.wrt), "C99 backend (math.h only)")
    text = text.replace("*/", "* /")
    layout = (
        f"One point is an array of {inputs} doubles, the inputs in order. A batch of {n} points is laid out",
        f"input by input: input i of point {k} is {x}[i * {n} + {k}], and gradient entry j is {grad}[j * {n} + {k}].",
        f"Compile with -O2; add -fopenmp to run batches of {PARALLEL_FROM} points or more on every core with SIMD",
        "across points (-fopenmp-simd: SIMD only).",
    )
    comment = (*text.split("\n"), "", *layout)
    guard = re.sub(r"\W", "_", prefix).upper() + "_H"
    includes = ("<math.h>",) + ((f'"{header}"',) if header else ())
    return Module(comment, guard, includes, tuple(loops), tuple(wrappers))


def render_c(
    adjoint: Adjoint, prefix: str = "symdiff", header: str | None = None, shared_sweep_lines: int = SHARED_SWEEP_LINES
) -> tuple[str, str]:
    """The .c and .h texts; `prefix` names the functions (prefix_grad, prefix_grad_batch, ...), and
    the .c includes `header` (the .h's file name) when given."""
    return render_module(c_module(adjoint, prefix, header, shared_sweep_lines))


def render_module(module: Module) -> tuple[str, str]:
    fields = {
        "comment": module.comment,
        "guard": module.guard,
        "includes": module.includes,
        "loops": module.loops,
        "wrappers": module.wrappers,
    }
    environment = _environment()
    return environment.get_template("c.c.j2").render(**fields), environment.get_template("c.h.j2").render(**fields)


def c_names(tape: Tape, wrt: tuple[str, ...]) -> Names:
    """Python's names (names.assign_names), with inputs that C reserves renamed: double -> double_."""
    names = assign_names(tape, wrt)
    taken = set(names.params.values())
    params = {}
    for name, param in names.params.items():
        candidate = param
        while candidate in C_RESERVED or (candidate != param and candidate in taken):
            candidate += "_"
        taken.add(candidate)
        params[name] = candidate
    values = tuple(
        params[instr.name] if instr.op == INPUT else names.value(index) for index, instr in enumerate(tape.instrs)
    )
    return Names(values, params)


def _own_names(names: Names) -> tuple[str, ...]:
    """The parameters of the generated functions, renamed if an input has the name."""
    taken = set(names.params.values())
    chosen = []
    for base in ("x", "grad", "value", "n", "k", "start", "end", "carry"):
        name = base
        while name in taken:
            name += "_"
        chosen.append(name)
    return tuple(chosen)


def _cut(lines: tuple[Line, ...], x: str, k: str, start: str, carry: str, simd: bool) -> tuple:
    """(scratch, parts): the body cut after every ROWS_PER_LOOP stores. A part re-loads the inputs it
    needs and reads other earlier values from `carry`; a body whose later part would update an
    earlier part's adjoint (only in the reverse sweep's own order), or that needs too many carried
    values, stays one loop."""
    parts: list[list[Line]] = [[]]
    for line in lines:
        parts[-1].append(line)
        if "[" in line.target and sum("[" in other.target for other in parts[-1]) == ROWS_PER_LOOP:
            parts.append([])
    parts = [part for part in parts if part]
    if not simd or len(parts) < 2:
        return (), (tuple(lines),)
    defined = {  # the part declaring each value, and its line
        line.target.split()[-1]: (number, line)
        for number, part in enumerate(parts)
        for line in part
        if line.target.startswith(("const double ", "double "))
    }
    slots: dict[str, int] = {}
    heads: list[list[Line]] = [[] for _ in parts]
    tails: list[list[Line]] = [[] for _ in parts]
    for number, part in enumerate(parts):
        taken: set[str] = set()
        for line in part:
            if line.op != "=" and defined[line.target.split()[-1]][0] != number:
                return (), (tuple(lines),)
            for name in IDENTIFIER.findall(line.rhs):
                origin, definition = defined.get(name, (number, None))
                if origin >= number or name in taken:
                    continue
                taken.add(name)
                if definition.rhs.startswith(f"{x}["):  # an input: load it again
                    heads[number].append(definition)
                    continue
                if name not in slots:
                    slots[name] = len(slots)
                    tails[origin].append(Line(f"{carry}[{slots[name]}][{k} - {start}]", "=", name, ""))
                heads[number].append(Line(f"const double {name}", "=", f"{carry}[{slots[name]}][{k} - {start}]", ""))
    if len(slots) > CARRY_SLOTS:
        return (), (tuple(lines),)
    scratch = (f"double {carry}[{len(slots)}][{TILE}];",) if slots else ()
    return scratch, tuple(tuple(head + part + tail) for head, part, tail in zip(heads, parts, tails))


def _simd(lines: tuple[Line, ...]) -> tuple[str, ...]:
    return ("#pragma omp simd",) if len(lines) <= SIMD_LINES else ()


@dataclass(frozen=True)
class _Sweep:
    """Orders a loop body on demand: each store in turn, preceded by whatever it needs that is not
    computed yet, each forward value defined and each adjoint completed just before its first use.

    Values then live from definition to last use, not across the whole sweep: in rosenbrock-1000 a
    handful are live at a time instead of thousands, which is what GCC's register allocation time
    (most of the build) and the spills grow with. An adjoint's own steps keep their order, so the
    sums are the same in the same order, the same bits. If a step reads an adjoint before all of
    that adjoint's steps (no reverse sweep does), the steps keep the reverse sweep's order."""

    tape: Tape
    definitions: dict[int, Line]  # tape entry -> its line (inputs load their row of x)
    steps: tuple[Step, ...]
    step_lines: tuple[Line, ...]

    def lines(self, stores: list[tuple[Line, Term]], reverse: bool = True) -> tuple[Line, ...]:
        out: list[Line] = []
        done: set[tuple[str, int]] = set()
        if reverse and not self._completes_before_reading:
            for line, step in zip(self.step_lines, self.steps):
                for node in _reads(step.term):
                    if node[0] == "ref":  # adjoints are up to date by the order of the steps
                        self._emit(node, done, out)
                out.append(line)
            done.update(("bar", step.target) for step in self.steps)
        for line, term in stores:
            for node in _reads(term):
                self._emit(node, done, out)
            out.append(line)
        if reverse:  # steps no store needs still run (after the stores), as in the reverse sweep
            for target in dict.fromkeys(step.target for step in self.steps):
                self._emit(("bar", target), done, out)
        return tuple(out)

    def _emit(self, root: tuple[str, int], done: set, out: list[Line]) -> None:
        """Post-order: a node's lines after those of everything it reads."""
        stack = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if node in done:
                continue
            if ready:
                done.add(node)
                out.extend(self._node_lines(node))
                continue
            stack.append((node, True))
            stack.extend((read, False) for read in reversed(self._node_reads(node)) if read not in done)

    def _node_reads(self, node: tuple[str, int]) -> list[tuple[str, int]]:
        kind, index = node
        if kind == "ref":
            return [("ref", a.index) for a in self.tape.instrs[index].args if isinstance(a, Ref)]
        return [read for i in self._steps_of.get(index, ()) for read in _reads(self.steps[i].term)]

    def _node_lines(self, node: tuple[str, int]) -> list[Line]:
        kind, index = node
        return (
            [self.definitions[index]] if kind == "ref" else [self.step_lines[i] for i in self._steps_of.get(index, ())]
        )

    @functools.cached_property
    def _steps_of(self) -> dict[int, list[int]]:
        steps: dict[int, list[int]] = {}
        for number, step in enumerate(self.steps):
            steps.setdefault(step.target, []).append(number)
        return steps

    @functools.cached_property
    def _completes_before_reading(self) -> bool:
        last = {target: numbers[-1] for target, numbers in self._steps_of.items()}
        return all(
            last.get(index, -1) < number
            for number, step in enumerate(self.steps)
            for kind, index in _reads(step.term)
            if kind == "bar"
        )


def _reads(term: Term) -> list[tuple[str, int]]:
    """The forward values ("ref", i) and adjoints ("bar", i) a term reads, in order of appearance."""
    found, stack = {}, [term]
    while stack:
        item = stack.pop()
        if isinstance(item, Ref):
            found[("ref", item.index)] = None
        elif isinstance(item, Bar):
            found[("bar", item.index)] = None
        elif isinstance(item, Op):
            stack.extend(reversed(item.args))
    return list(found)


def _reverse_lines(steps: tuple[Step, ...], printer: _Printer) -> tuple[Line, ...]:
    declared: set[int] = set()
    lines = []
    for step in steps:
        target = printer.names.adjoint(step.target)
        if step.target not in declared:
            declared.add(step.target)
            target = f"double {target}"
        note = "" if step.origin is None else f"  // {printer.source_definition(step.origin)}"
        lines.append(Line(target, step.mode, printer.atom(step.term), note))
    return tuple(lines)


# --- compiling and loading ----------------------------------------------------------------------


def find_compiler() -> str:
    """$CC, else cc, gcc or clang on the PATH."""
    for candidate in filter(None, (os.environ.get("CC"), "cc", "gcc", "clang")):
        found = shutil.which(candidate)
        if found:
            return found
    raise CompilerError(
        "no C compiler found (looked for $CC, cc, gcc and clang); install one, or use the python or numpy backend"
    )


def cache_dir() -> Path:
    base = os.environ.get("SYMDIFF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "symdiff"
    )
    return Path(base) / "c"


def build_library(source: str, large: bool = False) -> Path:
    """Compile `source` into a shared library (cached by a digest of source, compiler and flags);
    `large` asks for the cheaper LARGE_FLAGS, where the compiler takes them."""
    compiler = find_compiler()
    levels = (LARGE_FLAGS, ()) if large else ((),)
    flags = [CFLAGS, levels, TARGET_FLAGS, OPENMP_FLAGS, _machine()]
    digest = hashlib.sha256("\0".join([source, compiler, repr(flags)]).encode()).hexdigest()[:24]
    folder = cache_dir()
    library = folder / f"symdiff_{digest}.so"
    if library.exists():
        return library
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as work:
            c_file = Path(work) / f"symdiff_{digest}.c"
            c_file.write_text(source, encoding="utf-8")
            built = Path(work) / library.name
            for level, target, openmp in itertools.product(levels, TARGET_FLAGS, OPENMP_FLAGS):
                command = [compiler, *CFLAGS, *level, *target, *openmp, "-o", str(built), str(c_file), "-lm"]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode == 0:
                    break
            if done.returncode != 0:
                raise CompilerError(f"{Path(compiler).name} failed ({done.returncode}):\n{done.stderr.strip()[-2000:]}")
            os.replace(built, library)  # atomic: a concurrent build of the same source is harmless
    except OSError as error:
        raise CompilerError(f"cannot build the C library in {folder}: {error}") from None
    return library


@functools.cache
def _machine() -> str:
    """What -march=native depends on: the CPU's model and feature flags (Linux), else its family."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            wanted = [line for line in info if line.startswith(("model name", "flags", "Features"))][:2]
    except OSError:
        wanted = []
    return platform.machine() + platform.processor() + "".join(wanted)


class CGradient(CompiledGradient):
    """g(*point) -> gradient tuple, computed by compiled C; g.batch(points) evaluates many points."""

    backend = "c"

    def __init__(self, programs, adjoint: Adjoint):
        module = c_module(adjoint)
        source, header = render_module(module)
        super().__init__(programs, source)
        self.header = header
        large = any(not loop.simd for loop in module.loops)
        self._library = _bind_library(ctypes.CDLL(str(build_library(source, large))))  # compiled now: errors here

    @functools.cached_property
    def _functions(self) -> dict:
        library = self._library
        pack = struct.Struct(f"{len(self.inputs)}d").pack
        result = struct.Struct(f"{len(self.wrt)}d")
        size, unpack = result.size, result.unpack_from
        f, grad, both = library.symdiff_f, library.symdiff_grad, library.symdiff_value_and_grad

        def call_f(*point):
            return f(_pack(pack, point))

        def call_grad(*point):
            out = ctypes.create_string_buffer(size)
            grad(_pack(pack, point), out)
            return unpack(out)

        def call_both(*point):
            out = ctypes.create_string_buffer(size)
            value = both(_pack(pack, point), out)
            return value, unpack(out)

        return {"f": call_f, "grad": call_grad, "value_and_grad": call_both}

    def grad_array(self, x, out=None):
        """The gradient at one point given as an array of `inputs` float64 values (a NumPy array, or
        any writeable buffer such as array.array("d")): the fast path for optimisers. Returns a NumPy
        array for NumPy input (written into `out` if given), else an array.array("d")."""
        if type(x).__module__.split(".")[0] == "numpy":
            import numpy  # the caller passed NumPy arrays, so NumPy is installed

            if not (x.dtype == numpy.float64 and x.flags.c_contiguous and x.flags.writeable):
                x = numpy.array(x, dtype=numpy.float64)
            result = numpy.empty(len(self.wrt)) if out is None else out
        else:
            x, result = array.array("d", x), array.array("d", self._zero_gradient)
        if len(x) != len(self.inputs) or len(result) != len(self.wrt):
            raise ArgumentError(f"grad_array: expected {len(self.inputs)} inputs and room for {len(self.wrt)} partials")
        self._library.symdiff_grad(_address(x), _address(result))
        return result

    def value_array(self, x) -> float:
        """f at one point given as an array (see grad_array)."""
        if len(x) != len(self.inputs):
            raise ArgumentError(f"value_array: expected {len(self.inputs)} inputs, got {len(x)}")
        try:
            return self._library.symdiff_f(_address(x))
        except TypeError:  # a read-only buffer
            return self._library.symdiff_f(_address(array.array("d", x)))

    @functools.cached_property
    def _zero_gradient(self) -> bytes:
        return bytes(8 * len(self.wrt))

    def batch(self, points, *, value: bool = False, grad: bool = True, out=None):
        """Many points at once, laid out input by input: `points[i][k]` is input i of point k (a NumPy
        array of shape (inputs, n), or a sequence of `inputs` sequences of n numbers).

        Returns the gradients as (wrt, n) (`grad`), the values as (n,) (`value`), or both as a pair:
        NumPy arrays for NumPy input, else lists. `out` (NumPy input only): arrays to write into,
        (values, gradients) when both are asked for."""
        if not (value or grad):
            raise ArgumentError("batch: ask for value, grad or both")
        if type(points).__module__.split(".")[0] == "numpy":
            return self._numpy_batch(points, value, grad, out)
        if out is not None:
            raise ArgumentError("batch: out= needs NumPy arrays")
        columns = [list(map(float, column)) for column in points]
        if len(columns) != len(self.inputs):
            raise ArgumentError(f"batch: expected {len(self.inputs)} rows of points, one per input, got {len(columns)}")
        n = len(columns[0]) if columns else 1
        if any(len(column) != n for column in columns):
            raise ArgumentError("batch: every input needs the same number of points")
        flat = array.array("d", [x for column in columns for x in column])
        values, grads = array.array("d", bytes(8 * n)), array.array("d", bytes(8 * n * len(self.wrt)))
        self._run_batch(n, flat.buffer_info()[0], values.buffer_info()[0], grads.buffer_info()[0], value, grad)
        rows = [list(grads[j * n : (j + 1) * n]) for j in range(len(self.wrt))]
        return _select(list(values), rows, value, grad)

    def _numpy_batch(self, points, value: bool, grad: bool, out):
        import numpy  # the caller passed NumPy arrays, so NumPy is installed

        points = numpy.ascontiguousarray(points, dtype=numpy.float64)
        if points.ndim == 1 and len(self.inputs) == 1:
            points = points.reshape(1, -1)
        if points.ndim != 2 or points.shape[0] != len(self.inputs):
            raise ArgumentError(f"batch: points must have shape ({len(self.inputs)}, n), got {points.shape}")
        n = points.shape[1]
        wanted = [(value, (n,)), (grad, (len(self.wrt), n))]
        given = list(out) if isinstance(out, tuple | list) else [out]
        arrays = []
        for asked, shape in wanted:
            if not asked:
                arrays.append(None)
                continue
            target = given.pop(0) if out is not None else numpy.empty(shape)
            if not (
                isinstance(target, numpy.ndarray)
                and target.shape == shape
                and target.dtype == numpy.float64
                and target.flags.c_contiguous
                and target.flags.writeable
            ):
                raise ArgumentError(f"batch: out must be a writeable C-contiguous float64 array of shape {shape}")
            arrays.append(target)
        values, grads = arrays
        self._run_batch(
            n, points.ctypes.data, values.ctypes.data if value else 0, grads.ctypes.data if grad else 0, value, grad
        )
        return _select(values, grads, value, grad)

    def _run_batch(self, n: int, points: int, values: int, grads: int, value: bool, grad: bool) -> None:
        library = self._library
        if value and grad:
            library.symdiff_value_and_grad_batch(n, points, values, grads)
        elif value:
            library.symdiff_f_batch(n, points, values)
        else:
            library.symdiff_grad_batch(n, points, grads)


def _bind_library(library: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the C signatures (pointers as void*: bytes, ctypes buffers and addresses all pass)."""
    pointer, count = ctypes.c_void_p, ctypes.c_long
    for name, argtypes, restype in (
        ("symdiff_f", (pointer,), ctypes.c_double),
        ("symdiff_grad", (pointer, pointer), None),
        ("symdiff_value_and_grad", (pointer, pointer), ctypes.c_double),
        ("symdiff_f_batch", (count, pointer, pointer), None),
        ("symdiff_grad_batch", (count, pointer, pointer), None),
        ("symdiff_value_and_grad_batch", (count, pointer, pointer, pointer), None),
    ):
        function = getattr(library, name)
        function.argtypes, function.restype = argtypes, restype
    return library


def _select(values, grads, value: bool, grad: bool):
    if value and grad:
        return values, grads
    return values if value else grads


def _address(buffer) -> int:
    """The address of a writeable buffer's first byte (NumPy arrays, array.array, ctypes arrays)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


def _pack(pack, point) -> bytes:
    try:
        return pack(*point)  # bytes pass as a const double *
    except struct.error as error:
        raise ArgumentError(f"point values must be real numbers: {error}") from None
