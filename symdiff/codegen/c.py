"""The C printer: the core's Program -> standalone C99 (math.h only). c_module prints the gradient
Program (build_program: f, grad, value_and_grad) at one point and over a batch of points;
program_module the jvp, Jacobian and Hessian Programs at one point; an array program's (loops over
arrays) are plain loops over whole arrays instead (array_module, array_program_module). Plus a
loader that compiles C with the system C compiler and loads it for ctypes.

The Program decides what is computed, read and guarded, and in which branch; this module chooses
names, schedules statements on demand (_scheduled: the same data flow, shorter live ranges), cuts
long functions on statements, and prints if blocks one level deep. C does not raise, so Checks
and lines kept only to raise are dropped (a point outside a domain gives nan, as in f).

The C reads like the Python module (w1, w2, ... and x_bar names, one primitive per line, each
adjoint line commented with the piece of the input it differentiates). Compiled libraries are cached
under a digest of the source, the compiler and its flags, so a second build of the same expression
only loads a file.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.adjoint import Adjoint, ArrayBar, Bar, Op, Prefix, Suffix
from ..core.bounds import add, bounds, combine
from ..core.expr import Affine, Length
from ..core.forward import Dot
from ..core.primitives import TABLE
from ..core.printing import affine_text
from ..core.program import (
    Append,
    Assign,
    Check,
    Entry,
    Header,
    If,
    Index,
    Matrix,
    Program,
    Rows,
    Scalar,
    Section,
    Suffixes,
    Vector,
    build_program,
    result_terms,
)
from ..core.program import Loop as ProgramLoop
from ..core.tape import COUNTER, INPUT, LENGTH, READ, REDUCTIONS, Ref, Tape
from ..errors import CompilerError
from ..files import move_into_place
from ..resources import private_folder, templates, trusted_cache, trusted_file
from ..version import __version__
from .names import Names, assign_names, usable
from .python import NUMBERED, TITLES, Printer

# The batch loops carry `#pragma omp parallel for` over tiles and `#pragma omp simd` inside: with
# -fopenmp they use every core and SIMD across points; where the compiler has no OpenMP runtime,
# -fopenmp-simd with SIMD_MACRO keeps the SIMD (that flag defines no macro of its own); without
# either the pragmas are left out by #if (a compiler warns of pragmas it does not know). The first
# set of flags that compiles is used. -ffp-contract=off keeps a*b + c unfused, so results are the same bits with any
# target flags and in SIMD lanes as on the scalar path (GCC contracts by default in GNU C mode).
CFLAGS = ("-O2", "-shared", "-fPIC", "-ffp-contract=off")
# The loader builds for the machine it runs on (the library never leaves the cache, whose digest
# names the CPU), so it may use its vector units: AVX-512 halves the sweep's time against SSE2.
# The .c itself stays portable; a compiler without -march=native falls back to its default target.
TARGET_FLAGS = (("-march=native",), ())
SIMD_MACRO = "SYMDIFF_OPENMP_SIMD"
OPENMP_FLAGS = (("-fopenmp",), ("-fopenmp-simd", f"-D{SIMD_MACRO}"), ())
# A library without SIMD loops holds straight-line point code. There GCC's dead store elimination
# grows with the square of a function's stores to memory, which the carried values of a cut body are
# (1.0 s of product-1000's 2.1 s at -O1), and temporary expression replacement makes the RTL of a
# chain of calls costly (a chain of 10,000 sines: 6.0 s with it, 3.0 s without; -O0 2.6 s); neither
# changes the time of a call. Beyond SIMD_LINES lines, -O1 as well: about half the time of -O2
# (rosenbrock-1000: 0.6 against 0.9 s), and one point of such a program is a fraction of a call's
# overhead from Python.
POINT_FLAGS = ("-fno-dse", "-fno-tree-dse", "-fno-tree-ter")
LARGE_FLAGS = ("-O1", *POINT_FLAGS)
# Branches nested deeper than DEEP_BRANCHES are built at -O0: GCC's post-reload CSE and second
# scheduling pass grow much faster than the number of blocks and flags such a chain makes (where()
# 300 deep: over 300 s at -O2, 15 s for the gradient alone at -O1, 0.5 s at -O0), and if-converted
# SIMD loops gain little where every lane runs a chain of hundreds of tests.
DEEP_BRANCHES = 24
DEEP_FLAGS = ("-O0",)
# An array program's loops are built at -O2 (CFLAGS): the loops are short and run n times.
ARRAY_FLAGS = ()
# Below this many points a batch runs on one thread (starting threads costs more than it saves).
PARALLEL_FROM = 4096
# Threads take whole tiles of this many points; inside a tile the SIMD loop has restrict pointers
# and a plain counted loop, which GCC schedules far better than the body of `parallel for simd`
# (1.7x at -O2 on rosenbrock-100 with the data in cache), and each row is read and written in runs.
TILE = 256
# Tiles are handed out schedule(guided): big runs of tiles first, smaller ones at the end. On a
# machine where another process shares a core, a static split waits for the slowed thread (225
# against 158 ns a point on rosenbrock-100 here); guided lets the other threads take its share.

# Names a C variable may not have, so a user's name or definition with one of them is renamed
# (trailing underscores, as Python's keywords are: int -> int_): the keywords of C99 to C23 and of
# GNU C (the loader compiles in GNU mode), what math.h and the compiler define as macros (M_PI with
# _DEFAULT_SOURCE, lowercase linux and unix in GNU mode, other machines' names), every function
# math.h declares (a local `sin` would hide the function), and the macros of the generated files.
# Names beginning with _X or __ are the implementation's (C99 7.1.3): they get a v in front.
_C_KEYWORDS = """auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef union
    unsigned void volatile while alignas alignof bool constexpr false nullptr static_assert thread_local
    true typeof typeof_unqual asm noreturn NULL errno"""
_MATH_FUNCTIONS = """acos acosh asin asinh atan atan2 atanh cbrt ceil copysign cos cosh drem erf erfc exp exp2
    exp10 expm1 fabs fdim finite floor fma fmax fmin fmod frexp gamma hypot ilogb isinf isnan j0 j1 jn
    ldexp lgamma lgamma_r llrint llround log log10 log1p log2 logb lrint lround modf nan nearbyint
    nextafter nexttoward nextdown nextup pow pow10 remainder remquo rint round roundeven scalb scalbln
    scalbn significand sin sincos sinh sqrt tan tanh tgamma trunc y0 y1 yn"""
_MATH_MACROS = """fpclassify isfinite isgreater isgreaterequal isinf isless islessequal islessgreater isnan
    isnormal isunordered signbit iscanonical iseqsig issignaling issubnormal iszero math_errhandling
    signgam float_t double_t MAXFLOAT HUGE HUGE_VAL HUGE_VALF HUGE_VALL INFINITY NAN MATH_ERRNO
    MATH_ERREXCEPT FP_INFINITE FP_NAN FP_NORMAL FP_SUBNORMAL FP_ZERO FP_ILOGB0 FP_ILOGBNAN FP_LLOGB0
    FP_LLOGBNAN FP_FAST_FMA FP_FAST_FMAF FP_FAST_FMAL FP_INT_UPWARD FP_INT_DOWNWARD FP_INT_TOWARDZERO
    FP_INT_TONEARESTFROMZERO FP_INT_TONEAREST DOMAIN SING OVERFLOW UNDERFLOW TLOSS PLOSS X_TLOSS"""
_MATH_CONSTANTS = "M_E M_LOG2E M_LOG10E M_LN2 M_LN10 M_PI M_PI_2 M_PI_4 M_1_PI M_2_PI M_2_SQRTPI M_SQRT2 M_SQRT1_2 SNAN"
_TYPE_SUFFIXES = ("", "f", "l", "f32", "f64", "f128", "f32x", "f64x")
_PREDEFINED = """linux unix i386 i486 i586 i686 sun sparc mips vax hppa m68k mc68000 mc68010 mc68020 ns32000 pyr
    sequent tahoe u3b u3b2 u3b5 u3b15 u370 ibm032 interdata gcos os bsd4_2 bsd4_3 MIPSEL MIPSEB R3000 R4000
    ppc powerpc PPC"""
# The header's spelling of restrict: C99's keyword, nothing in C++ and C89 (only the pointer is
# qualified, which does not change the function's type). And the array of the digest a library
# built by the loader carries.
RESTRICT = "SYMDIFF_RESTRICT"
DIGEST_SYMBOL = "symdiff_library_digest"
C_RESERVED = frozenset(
    [*_C_KEYWORDS.split(), *_MATH_FUNCTIONS.split(), *_MATH_MACROS.split(), *_PREDEFINED.split()]
    + [name + suffix for name in _MATH_CONSTANTS.split() for suffix in _TYPE_SUFFIXES]
    + [RESTRICT, SIMD_MACRO, DIGEST_SYMBOL]
    + [name for row in TABLE.values() for name in re.findall(r"([A-Za-z_]\w*)\(", row.c)]  # what the code calls
)
_IMPLEMENTATION = re.compile(r"_[A-Z_]")


@dataclass(frozen=True, slots=True)
class Stmt:
    """One statement of a body before it is cut into parts and printed: the variable it assigns and
    those it reads, by name, and the branch it runs in (Tape.paths, Step.path), so that the cutting
    and the printing never read C text back."""

    name: str  # the variable it assigns; "" for a store into an array element (`target`)
    op: str  # "=", "+=", "-="
    rhs: str
    note: str = ""  # "" or "  // comment"
    reads: tuple[str, ...] = ()  # the variables it reads, its branch's condition or flag included
    path: tuple[tuple[int, bool], ...] = ()  # runs only in this branch
    test: str = ""  # the truth value its block tests (w2, !w2, a flag); "" outside every branch
    target: str = ""  # the array element a store writes (grad[1 * n])
    const: bool = True  # a forward value: const where it is declared by its assignment
    load: bool = False  # loads an input from x: a later part loads it again instead of carrying it


@dataclass(frozen=True, slots=True)
class Line:
    """A printed line: `target op rhs;`, or a control line (`if (w2) {`, `}`: no op)."""

    target: str  # "double x1_bar", or "x1_bar" when it is declared already
    op: str  # "=", "+=", "-=", or "" for a control line
    rhs: str
    note: str  # "" or "  // comment"
    indent: str = ""  # four spaces inside a branch's block (blocks never nest: see _Tests)

    @property
    def text(self) -> str:
        return f"{self.indent}{self.target} {self.op} {self.rhs};" if self.op else f"{self.indent}{self.target}"


@dataclass(frozen=True, slots=True)
class Part:
    """A static function holding one piece of a long point body."""

    signature: str
    doc: str
    unused: tuple[str, ...]  # "(void) n;" for each parameter the body does not read (-Wunused-parameter)
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a batch, in straight-line code: input i is x[i * n], gradient entry j goes to
    grad[j * n] (n = 1: one point's arrays). A long body is cut into static parts that hand values
    on through a small array, `carry`."""

    name: str
    signature: str
    declaration: str  # the signature as the header spells it (restrict as RESTRICT)
    doc: str
    unused: tuple[str, ...]  # "(void) n;" for each parameter the body does not read
    scratch: tuple[str, ...]  # "double carry[12];" when the body is cut
    lines: tuple[Line, ...]  # the body, when it is not cut
    parts: tuple[Part, ...]  # else its pieces, in order
    calls: tuple[str, ...]  # and the calls of the pieces ("symdiff_grad_at_part1(n, x, grad, carry);")

    @property
    def length(self) -> int:
        return len(self.lines) + sum(len(part.lines) for part in self.parts)


@dataclass(frozen=True, slots=True)
class Loop:
    """A batch function: tiles of points shared among threads, and in each tile one loop over its
    points whose body is the whole sweep (SIMD across points)."""

    name: str
    signature: str
    declaration: str
    doc: str
    unused: tuple[str, ...]  # "(void) x;" for each parameter the body does not read
    count: str  # the parameters holding the number of points and the point index
    index: str
    start: str  # the first point of a tile, and one past its last
    end: str
    tile: str  # points per tile
    parallel_from: str  # batches at least this large run on several threads (with OpenMP)
    scratch: tuple[str, ...]  # "double carry[3][256];": values one part of the body hands to a later one
    parts: tuple[tuple[Line, ...], ...]  # one loop over the tile's points each, in order: loads
    # ("const double x1 = x[1 * n + k]"), the sweep, stores ("grad[k] = x1_bar")

    @property
    def lines(self) -> tuple[Line, ...]:
        return tuple(line for part in self.parts for line in part)


@dataclass(frozen=True, slots=True)
class Wrapper:
    """A function whose body is a few statements calling other functions (`needs`, by name)."""

    name: str
    signature: str
    declaration: str
    doc: str
    body: tuple[str, ...]
    needs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Module:
    comment: tuple[str, ...]  # the header comment, line by line
    guard: str  # the header's include guard
    restrict: str  # the header's macro for restrict (RESTRICT)
    simd: str  # the macro that enables `omp simd` without OpenMP (SIMD_MACRO)
    includes: tuple[str, ...]  # "<math.h>", and the .c's own header when it has one
    points: tuple[Point, ...]  # the sweeps at one point (f_at, grad_at, value_and_grad_at)
    loops: tuple[Loop, ...]  # the SIMD batches of short programs
    wrappers: tuple[Wrapper, ...]  # single points, and batches of long programs (a loop of points)
    depth: int = 0  # how deep its deepest branch is nested (where() in where() ...)
    arrays: bool = False  # an array program's functions (array_module): loops, no batch
    helpers: tuple[str, ...] = ()  # static functions the others call, line by line (array_module)


# value_and_grad shares one sweep up to this many lines; beyond, it runs f then grad: the compiler's
# time grows faster than linearly with the span that forward values stay alive.
SHARED_SWEEP_LINES = 3000
# A batch whose body is longer than this loops over points calling the point function: a vectorised
# loop is two copies of the body (SIMD and remainder) with every value spilled, and GCC's register
# allocation dominates the build time. Such programs are costly per point anyway.
SIMD_LINES = 2000
# A SIMD body is cut into one loop over the tile per this many gradient rows, so that each loop
# streams a few rows of x and grad instead of all of them at once: with 200 rows in flight the
# prefetchers lose track (rosenbrock-10 moved a byte twice as fast as rosenbrock-100). Values a later
# part needs go through a small array per tile (at most CARRY_SLOTS of them, else no cut).
ROWS_PER_LOOP = 8
CARRY_SLOTS = 32
# A point body is cut into static functions of about this many lines: GCC's time grows faster than
# the length of a function (rosenbrock-10000's gradient at -O1: 12 s in one function, 5-6 s in parts
# of 300 lines; product-1000's: 1.9 s against 0.8 s; a chain of 100,000 sines does not build in one).
# Longer parts cost more again (10,000 sines: 2.6 s at 100 or 300 lines, 4.2 s at 1,000), shorter ones
# cost arithmetic (rosenbrock-10000: 10.5 s at 50). The values a later part reads go through `carry`
# on the stack, at most POINT_CARRY_SLOTS of them (1 MB), else the body stays whole.
PART_LINES = 300
POINT_CARRY_SLOTS = 1 << 17
IDENTIFIER = re.compile(r"\b[A-Za-z_]\w*\b")


def c_module(
    adjoint: Adjoint, prefix: str = "symdiff", header: str | None = None, shared_sweep_lines: int = SHARED_SWEEP_LINES
) -> Module:
    tape = adjoint.tape
    if tape.loops or tape.arrays:
        return array_module(adjoint, prefix, header)
    names = c_names(tape, adjoint.wrt, prefix)
    printer = Printer(tape, names, "c")
    x, grad, value, n, k, start, end, carry = _own_names(names)
    inputs, outputs = len(tape.inputs), len(adjoint.wrt)
    # value_and_grad's entry is built only when its shared sweep is printed (short programs).
    program = {entry.name: entry for entry in build_program(adjoint, ("f", "grad")).entries}
    printed: dict[int, Stmt] = {}  # id(Assign) -> its statement: entries share forward lines
    tests = _Tests(tape, names)  # one per module: a branch's flag has the same name in every function

    def bodies(at, value_at: str, shared: bool) -> tuple[tuple[Stmt, ...], ...]:
        """f's, grad's and (when `shared`, and short) value_and_grad's lines, with the arrays laid
        out by `at(array, row)` (inputs load their row of x), scheduled on demand (_scheduled)."""

        def lines(name: str, value: bool) -> tuple[Stmt, ...]:
            if name not in program:
                program.update((entry.name, entry) for entry in build_program(adjoint, (name,)).entries)
            entry = program[name]
            stores = [(at(grad, i), term) for result in entry.results if isinstance(result, Vector)
                      for i, term in enumerate(result.terms)]
            stores += [(value_at, tape.output)] if value else []
            stmts = _entry_stmts(entry, printer, lambda tangent, row: at(x, row), stores, printed)
            return tests.branched(_scheduled(stmts, names.value))

        f_lines = lines("f", True)
        grad_lines = lines("grad", False)
        both = ()
        if shared and len(grad_lines) <= shared_sweep_lines:
            both = lines("value_and_grad", True)
        return f_lines, grad_lines, both if len(both) <= shared_sweep_lines else ()

    # One point, strided: input i at x[i * n] (the batch of a long program calls it at x + k).
    point_lines = bodies(lambda array, row: f"{array}[{row} * {n}]" if row else f"{array}[0]", f"{value}[0]", True)
    shared = bool(point_lines[2])

    def batch_at(array: str, row: int) -> str:  # element `row` of point k in a batch laid out row by row
        return f"{array}[{k}]" if row == 0 else f"{array}[{row} * {n} + {k}]"

    simd = max(map(len, point_lines[:2])) <= SIMD_LINES
    batch_lines = bodies(batch_at, f"{value}[{k}]", shared) if simd else ((), (), ())
    wrt = ", ".join(f"d/d{name}" for name in adjoint.wrt) or "nothing"
    at, where = f"input i is {x}[i * {n}]", f"input i of point {k} is {x}[i * {n} + {k}]"
    both = f"Value and gradient at {n} points: {value}[{k}], {grad}[j * {n} + {k}]"
    kinds = [  # name, outputs, doc of the point function, doc of the batch
        (
            "f",
            (value,),
            f"f at one point ({at}) into {value}[0].",
            f"f at {n} points: {value}[{k}] = f(point {k}); {where}.",
        ),
        (
            "grad",
            (grad,),
            f"The gradient ({wrt}) at one point ({at}), entry j into {grad}[j * {n}].",
            f"The gradient ({wrt}) at {n} points into {grad}[j * {n} + {k}]; {where}.",
        ),
        (
            "value_and_grad",
            (value, grad),
            f"Value into {value}[0] and gradient into {grad}[j * {n}] at one point ({at}), from one sweep.",
            f"{both}, from one forward sweep.",
        ),
    ][: 3 if shared else 2]
    points, loops, batch_wrappers = [], [], []
    for (kind, outs, point_doc, batch_doc), lines, batch_body in zip(kinds, point_lines, batch_lines):
        params = (f"long {n}", f"const double *restrict {x}", *(f"double *restrict {out}" for out in outs))
        points.append(_point(f"{prefix}_{kind}_at", params, point_doc, lines, carry))
        name = f"{prefix}_{kind}_batch"
        signature, declaration = _signature("void", name, params)
        if batch_body and len(lines) <= SIMD_LINES:
            scratch, cut = _cut(batch_body, k, start, carry)
            parts = tuple(map(_printed, cut))
            unused = _unused(params[1:], tuple(line for part in parts for line in part))  # the loop reads n
            loops.append(
                Loop(
                    name,
                    signature,
                    declaration,
                    batch_doc,
                    unused,
                    n,
                    k,
                    start,
                    end,
                    str(TILE),
                    str(PARALLEL_FROM),
                    scratch,
                    parts,
                )
            )
            continue
        call = f"{prefix}_{kind}_at({', '.join((n, f'{x} + {k}', *(f'{out} + {k}' for out in outs)))});"
        body = (
            "#ifdef _OPENMP",  # without -fopenmp the pragma would be an unknown one (-Wunknown-pragmas)
            f"#pragma omp parallel for schedule(guided) if ({n} >= {PARALLEL_FROM})",
            "#endif",
            f"for (long {k} = 0; {k} < {n}; ++{k}) {{",
            f"    {call}",
            "}",
        )
        batch_wrappers.append(
            Wrapper(name, signature, declaration, f"{batch_doc} One point at a time.", body, (f"{prefix}_{kind}_at",))
        )
    if not shared:
        batch_wrappers.append(
            _wrapper(
                "void",
                f"{prefix}_value_and_grad_batch",
                (f"long {n}", f"const double *restrict {x}", f"double *restrict {value}", f"double *restrict {grad}"),
                f"{both} (f's loop, then grad's).",
                (f"{prefix}_f_batch({n}, {x}, {value});", f"{prefix}_grad_batch({n}, {x}, {grad});"),
                (f"{prefix}_f_batch", f"{prefix}_grad_batch"),
            )
        )

    single = f"const double *restrict {x}"
    both_body = (
        (f"{prefix}_value_and_grad_at(1, {x}, &{value}, {grad});",)
        if shared
        else (f"{prefix}_f_at(1, {x}, &{value});", f"{prefix}_grad_at(1, {x}, {grad});")
    )
    wrappers = [
        _wrapper(
            "double",
            f"{prefix}_f",
            (single,),
            f"f at one point: {x}[0..{inputs - 1}] are the inputs in order.",
            (f"double {value};", f"{prefix}_f_at(1, {x}, &{value});", f"return {value};"),
            (f"{prefix}_f_at",),
        ),
        _wrapper(
            "void",
            f"{prefix}_grad",
            (single, f"double *restrict {grad}"),
            f"The gradient at one point, into {grad}[0..{outputs - 1}] ({wrt}).",
            (f"{prefix}_grad_at(1, {x}, {grad});",),
            (f"{prefix}_grad_at",),
        ),
        _wrapper(
            "double",
            f"{prefix}_value_and_grad",
            (single, f"double *restrict {grad}"),
            "Value (returned) and gradient at one point" + ("." if shared else " (f, then the gradient)."),
            (f"double {value};", *both_body, f"return {value};"),
            (f"{prefix}_value_and_grad_at",) if shared else (f"{prefix}_f_at", f"{prefix}_grad_at"),
        ),
    ]
    wrappers += batch_wrappers
    text = _gradient_comment(Header("gradient", tape.source, tape.inputs, adjoint.wrt), names)
    layout = (
        f"One point is an array of {inputs} doubles, the inputs in order. A batch of {n} points is laid out",
        f"input by input: input i of point {k} is {x}[i * {n} + {k}], and gradient entry j is {grad}[j * {n} + {k}].",
        f"Compile with -O2; add -fopenmp to run batches of {PARALLEL_FROM} points or more on every core with SIMD",
        f"across points (-fopenmp-simd -D{SIMD_MACRO}: SIMD only). The header also serves C++.",
    )
    comment = (*text, "", *layout)
    includes = ("<math.h>",) + ((f'"{header}"',) if header else ())
    depth = max(map(len, tape.paths), default=0)
    return Module(
        comment, _guard(prefix), RESTRICT, SIMD_MACRO, includes, tuple(points), tuple(loops), tuple(wrappers), depth
    )


def _gradient_comment(header: Header, names: Names) -> tuple[str, ...]:
    """A gradient module's comment, line by line, from the Program's header: "Generated by symdiff"
    first (where symdiff looks for it before overwriting a file), then the expression (a program
    with definitions one statement a line), the inputs (with the parameter a renamed one became)."""
    lines = [line.strip() for line in header.source.splitlines() if line.strip()]
    if len(lines) == 1:
        expression = (f"Value and gradient of f = {' '.join(header.source.split())}",)
    else:
        expression = ("Value and gradient of the program", "", *(f"    {line}" for line in lines))
    inputs = ", ".join(
        name if names.params[name] == name else f"{name} (parameter {names.params[name]})" for name in header.inputs
    )
    text = (
        f"Generated by symdiff {__version__}, C99 backend (math.h only). Do not edit: regenerate it with symdiff.",
        "",
        *expression,
        "",
        f"Inputs, in order: {inputs or 'none'}.",
        f"Gradient with respect to: {', '.join(header.wrt) or 'nothing'}.",
    )
    return tuple(line.replace("*/", "* /") for line in text)


def _guard(prefix: str) -> str:
    """The header's include guard (a macro, so no variable may have its name)."""
    return re.sub(r"\W", "_", prefix).upper() + "_H"


def _signature(result: str, name: str, params: tuple[str, ...]) -> tuple[str, str]:
    """The definition's signature and the header's declaration, where restrict is spelt RESTRICT."""
    signature = f"{result} {name}({', '.join(params)})"
    return signature, f"{result} {name}({', '.join(param.replace('*restrict ', f'*{RESTRICT} ') for param in params)})"


def _wrapper(result: str, name: str, params: tuple[str, ...], doc: str, body: tuple[str, ...], needs) -> Wrapper:
    return Wrapper(name, *_signature(result, name, params), doc, body, tuple(needs))


def _unused(params: tuple[str, ...], lines: tuple[Line, ...]) -> tuple[str, ...]:
    """`(void) name;` for each parameter that `lines` never mention: C's way to say it is unused on
    purpose (a point of one input has no stride n to read), for -Wextra's -Wunused-parameter."""
    read = {name for line in lines for name in IDENTIFIER.findall(f"{line.target} {line.rhs}")}
    return tuple(f"(void) {name};" for param in params if (name := param.split()[-1]) not in read)


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
        "restrict": module.restrict,
        "simd": module.simd,
        "includes": module.includes,
        "helpers": module.helpers,
        "points": module.points,
        "loops": module.loops,
        "wrappers": module.wrappers,
    }
    environment = templates()
    return environment.get_template("c.c.j2").render(**fields), environment.get_template("c.h.j2").render(**fields)


def library_module(module: Module, entry: str) -> Module:
    """What the function `entry` needs of `module`: itself, what it calls, and every other wrapper of
    those (a few statements each), so that one library built from it serves them all."""
    wrappers = {wrapper.name: wrapper for wrapper in module.wrappers}
    wanted: set[str] = set()
    stack = [entry]
    while stack:
        name = stack.pop()
        if name not in wanted:
            wanted.add(name)
            stack.extend(wrappers[name].needs if name in wrappers else ())
    for wrapper in module.wrappers:  # in order: a wrapper comes after the wrappers it calls
        if set(wrapper.needs) <= wanted:
            wanted.add(wrapper.name)
    return replace(
        module,
        points=tuple(point for point in module.points if point.name in wanted),
        loops=tuple(loop for loop in module.loops if loop.name in wanted),
        wrappers=tuple(wrapper for wrapper in module.wrappers if wrapper.name in wanted),
    )


# Every entry point a C module may define (gradient modules and derivative Programs).
ENTRIES = ("f", "grad", "value_and_grad", "jvp", "jacobian", "value_and_jacobian", "hessian", "hvp")
ONES = "ones"  # prefix_ones: the static function that makes a product's buffer of suffixes (array_module)
ZEROS = "zeros"  # prefix_zeros: the same for the buffer of their tangents (array_program_module)


def c_names(tape: Tape, wrt: tuple[str, ...], prefix: str = "symdiff") -> Names:
    """Python's naming rule (names.assign_names) with C's reserved names as well: an input `double`
    is double_, `_Bool` is v_Bool, and a definition named `int` labels its value w3 (as a definition
    named `lambda` does in Python). The functions and the include guard of a module with this
    `prefix` are reserved too (a local `symdiff_grad_at` would hide the function)."""
    functions = re.compile(rf"{re.escape(prefix)}_(({'|'.join(ENTRIES)})(_at(_part\d+)?|_batch)?|{ONES}|{ZEROS})")

    def usable_in_c(name: str) -> bool:
        return (
            usable(name)
            and name not in C_RESERVED
            and not _IMPLEMENTATION.match(name)
            and not functions.fullmatch(name)
            and name != _guard(prefix)
        )

    return assign_names(tape, wrt, usable_in_c, lambda name: "v" + name if _IMPLEMENTATION.match(name) else name)


def _own_names(names: Names) -> tuple[str, ...]:
    """The parameters and loop counters of the generated functions, renamed if a user's input or
    definition has the name (as x_ when an input is x)."""
    taken = set(names.values)
    chosen = []
    for base in ("x", "grad", "value", "n", "k", "start", "end", "carry"):
        name = base
        while name in taken:
            name += "_"
        chosen.append(name)
    return tuple(chosen)


def _point(name: str, params: tuple[str, ...], doc: str, stmts: tuple[Stmt, ...], carry: str) -> Point:
    signature, declaration = _signature("void", name, params)
    slots, pieces = _pieces(stmts, carry)
    if len(pieces) == 1:
        lines = _printed(stmts)
        return Point(name, signature, declaration, doc, _unused(params, lines), (), lines, (), ())
    arguments = ", ".join([*(param.split()[-1] for param in params), carry])
    own = (*params, f"double *restrict {carry}")
    parts = []
    for number, piece in enumerate(pieces, 1):
        lines = _printed(piece)
        signature_of_part = _signature("static void", f"{name}_part{number}", own)[0]
        parts.append(Part(signature_of_part, f"{name}, part {number} of {len(pieces)}.", _unused(own, lines), lines))
    calls = tuple(f"{name}_part{number}({arguments});" for number in range(1, len(pieces) + 1))
    doc += f" In {len(pieces)} parts (GCC's time grows faster than a function's length)."
    return Point(name, signature, declaration, doc, (), (f"double {carry}[{max(slots, 1)}];",), (), tuple(parts), calls)


def _homes(pieces: list[list[Stmt]]) -> dict[str, tuple[int, Stmt]]:
    """The piece assigning each variable first (where it is declared), and that statement."""
    home: dict[str, tuple[int, Stmt]] = {}
    for number, piece in enumerate(pieces):
        for stmt in piece:
            if stmt.name:
                home.setdefault(stmt.name, (number, stmt))
    return home


def _pieces(stmts: tuple[Stmt, ...], carry: str) -> tuple[int, tuple[tuple[Stmt, ...], ...]]:
    """(carried values, pieces): a point body cut before a new value every PART_LINES statements or
    so. A piece loads the inputs it reads from x again, and other earlier values from carry[slot],
    each just before its first use; the piece that computes such a value stores it after its last
    update, outside any branch (a value of a branch not taken is its declaration's 0.0, which no
    reader in that branch will read). A cut may fall inside a branch's run of statements: the next
    piece opens the block again, testing the carried condition or flag. The body stays whole if it
    is short, if a piece would update an earlier piece's value (only in the reverse sweep's own
    order), or if it would carry more than POINT_CARRY_SLOTS values."""
    cut: list[list[Stmt]] = [[]]
    for stmt in stmts:
        if len(cut[-1]) >= PART_LINES and stmt.op == "=":
            cut.append([])
        cut[-1].append(stmt)
    if len(cut) < 2:
        return 0, (stmts,)
    home = _homes(cut)
    slots: dict[str, int] = {}
    pieces: list[list[Stmt]] = []
    for number, piece in enumerate(cut):
        out: list[Stmt] = []
        loaded: set[str] = set()
        read: set[str] = set()
        for stmt in piece:
            if stmt.op != "=" and home[stmt.name][0] != number:
                return 0, (stmts,)
            read.update(stmt.reads)
            for name in stmt.reads:
                origin, definition = home.get(name, (number, stmt))
                if origin >= number or name in loaded:
                    continue
                loaded.add(name)
                if definition.load:  # an input: load it again
                    out.append(definition)
                else:
                    out.append(Stmt(name, "=", f"{carry}[{slots.setdefault(name, len(slots))}]"))
            out.append(stmt)
        # An input loaded just before the cut serves the next piece, which loads it itself.
        pieces.append([stmt for stmt in out if not stmt.load or stmt.name in read])
    if len(slots) > POINT_CARRY_SLOTS:
        return 0, (stmts,)
    return len(slots), tuple(_store_carried(piece, number, home, slots, carry) for number, piece in enumerate(pieces))


def _store_carried(piece: list[Stmt], number: int, home: dict, slots: dict[str, int], carry: str) -> tuple[Stmt, ...]:
    """`piece` with each value a later piece reads stored into carry after the value's last update,
    and after the run of its branch's statements that update is in (stores run in every branch)."""
    last = {}
    for position, stmt in enumerate(piece):
        if stmt.name in slots and home[stmt.name][0] == number:
            last[stmt.name] = position
    after: dict[int, list[Stmt]] = {}
    for name, position in last.items():
        while piece[position].test and position + 1 < len(piece) and piece[position + 1].test == piece[position].test:
            position += 1
        after.setdefault(position, []).append(Stmt("", "=", name, reads=(name,), target=f"{carry}[{slots[name]}]"))
    out: list[Stmt] = []
    for position, stmt in enumerate(piece):
        out.append(stmt)
        out.extend(after.get(position, ()))
    return tuple(out)


def _cut(stmts: tuple[Stmt, ...], k: str, start: str, carry: str) -> tuple:
    """(scratch, parts): the body cut after every ROWS_PER_LOOP stores. A part re-loads the inputs it
    needs and reads other earlier values from `carry`, stored at the end of the part computing them
    (outside any branch, as in _pieces); a body whose later part would update an earlier part's
    adjoint (only in the reverse sweep's own order), or that needs too many carried values, stays
    one loop."""
    parts: list[list[Stmt]] = [[]]
    for stmt in stmts:
        parts[-1].append(stmt)
        if not stmt.name and sum(not other.name for other in parts[-1]) == ROWS_PER_LOOP:
            parts.append([])
    parts = [part for part in parts if part]
    if len(parts) < 2:
        return (), (tuple(stmts),)
    defined = _homes(parts)
    slots: dict[str, int] = {}
    heads: list[list[Stmt]] = [[] for _ in parts]
    tails: list[list[Stmt]] = [[] for _ in parts]
    for number, part in enumerate(parts):
        taken: set[str] = set()
        for stmt in part:
            if stmt.op != "=" and defined[stmt.name][0] != number:
                return (), (tuple(stmts),)
            for name in stmt.reads:
                origin, definition = defined.get(name, (number, None))
                if origin >= number or name in taken:
                    continue
                taken.add(name)
                if definition.load:  # an input: load it again
                    heads[number].append(definition)
                    continue
                if name not in slots:
                    slots[name] = len(slots)
                    tails[origin].append(Stmt("", "=", name, reads=(name,), target=_element(carry, slots[name], k, start)))
                heads[number].append(Stmt(name, "=", _element(carry, slots[name], k, start)))
    if len(slots) > CARRY_SLOTS:
        return (), (tuple(stmts),)
    scratch = (f"double {carry}[{len(slots)}][{TILE}];",) if slots else ()
    return scratch, tuple(tuple(head + part + tail) for head, part, tail in zip(heads, parts, tails))


def _element(carry: str, slot: int, k: str, start: str) -> str:
    return f"{carry}[{slot}][{k} - {start}]"


class _Tests:
    """The truth value each branch's block tests. A branch one where() deep tests its condition
    (`w2`, `!w2`); a deeper one a flag computed outside every block (`w15 = w6 && !w7`: `&&` reads
    the condition only where it has a value), as the Python backend does (codegen.python), so that
    blocks never nest: C99 promises only 127 levels of blocks. Flags are numbered on from the tape's
    last entry, names no input or definition may take."""

    def __init__(self, tape: Tape, names: Names):
        self._names, self._first = names, len(tape.instrs) + 1
        self._flags: dict[tuple, str] = {}

    def variable(self, path: tuple) -> str:
        """The variable the block of `path` reads: its condition, or its flag."""
        return self._flags[path] if len(path) > 1 else self._names.value(path[0][0])

    def test(self, path: tuple) -> str:
        if len(path) > 1:
            return self._flags[path]
        ((condition, value),) = path
        return self._names.value(condition) if value else f"!{self._names.value(condition)}"

    def branched(self, stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        """`stmts` (of one function) with their blocks' tests, and the flags each needs computed before
        the first statement of its branch, outermost first."""
        defined: set[tuple] = set()
        out: list[Stmt] = []
        for stmt in stmts:
            if not stmt.path:
                out.append(stmt)
                continue
            missing, path = [], stmt.path
            while len(path) > 1 and path not in defined:
                missing.append(path)
                path = path[:-1]
            for path in reversed(missing):
                defined.add(path)
                flag = self._flags.setdefault(path, f"w{self._first + len(self._flags)}")
                outer, condition = self.test(path[:-1]), self.test(path[-1:])
                out.append(Stmt(flag, "=", f"{outer} && {condition}", reads=(self.variable(path[:-1]), self.variable(path[-1:]))))
            out.append(
                Stmt(
                    stmt.name,
                    stmt.op,
                    stmt.rhs,
                    stmt.note,
                    (*stmt.reads, self.variable(stmt.path)),
                    stmt.path,
                    self.test(stmt.path),
                    stmt.target,
                    stmt.const,
                    stmt.load,
                )
            )
        return tuple(out)


def _printed(stmts: tuple[Stmt, ...]) -> tuple[Line, ...]:
    """The lines of `stmts`: consecutive statements of one branch share an `if` block, one level deep.
    A variable first assigned inside a block is declared just before it, as 0.0, so that code after
    the block sees it and no compiler finds it maybe uninitialised (a where() reads both of its
    operands' variables though it uses one)."""
    lines: list[Line] = []
    block: list[Line] = []
    declarations: list[Line] = []
    declared: set[str] = set()
    test = ""
    for stmt in (*stmts, None):
        if stmt is None or stmt.test != test:
            if test:
                lines += [*declarations, Line(f"if ({test}) {{", "", "", ""), *block, Line("}", "", "", "")]
            if stmt is None:
                break
            block, declarations, test = [], [], stmt.test
        target = stmt.name or stmt.target
        if stmt.name and stmt.name not in declared:
            declared.add(stmt.name)
            if stmt.test:
                declarations.append(Line(f"double {stmt.name}", "=", "0.0", ""))
            else:
                target = f"{'const ' if stmt.const else ''}double {stmt.name}"
        (block if stmt.test else lines).append(Line(target, stmt.op, stmt.rhs, stmt.note, "    " if stmt.test else ""))
    return tuple(lines)


# --- derivative Programs (jvp, Jacobian, Hessian) ------------------------------------------------


def program_module(program: Program, prefix: str = "symdiff", header: str | None = None) -> Module:
    """A jvp, Jacobian or Hessian Program printed as C: one function per entry, at one point,
    `void prefix_entry(const double *point[, const double *direction], double *result, ...)` with one
    output array per result in order (a scalar: one double; a vector: its entries; a matrix: its rows,
    row-major). The Program decides what is computed, where and in which order; this prints it, drops
    its Checks and its unread lines (C does not raise: a point outside a row's domain gives nan, as
    f does), and cuts a long body into parts on its statements. An array program's (loops) prints as
    array_program_module."""
    tape, head = program.tape, program.header
    if tape.arrays or tape.loops:
        return array_program_module(program, prefix, header)
    names = c_names(tape, head.wrt, prefix)
    own = _program_names(names)
    tests = _Tests(tape, names)
    points = []
    for entry in program.entries:
        printer = Printer(tape, names, "c", *NUMBERED.get(entry.name, (False, False)))
        params, outputs = [f"const double *restrict {own['point']}"], []
        if any(param.tangent for param in entry.params):
            params.append(f"const double *restrict {own['direction']}")
        stores = []
        for result in entry.results:
            output = own[result.role]
            params.append(f"double *restrict {output}")
            terms = _result_terms(result)
            outputs.append(f"{output}[{len(terms)}]")
            stores += [(f"{output}[{i}]", term) for i, term in enumerate(terms)]
        point, direction = own["point"], own["direction"]

        def load(tangent: bool, row: int, point=point, direction=direction) -> str:
            return f"{direction if tangent else point}[{row}]"

        stmts = tests.branched(_entry_stmts(entry, printer, load, stores))
        doc = f"{entry.doc} Inputs in {own['point']}[0..{len(tape.inputs) - 1}]"
        if len(params) - len(outputs) > 1:
            doc += f", the direction in {own['direction']}[0..{len(tape.inputs) - 1}]"
        doc += f"; results into {', '.join(outputs)}" + (" (row-major)." if any(
            isinstance(result, Matrix) for result in entry.results) else ".")
        points.append(_point(f"{prefix}_{entry.name}", tuple(params), doc, stmts, own["carry"]))
    title = TITLES[head.kind].format(mode=head.mode)
    comment = (*_header_comment(title, head.source, head.inputs, head.wrt), "",
               "Each function takes one point (the inputs in order) and writes each result into its own array.")
    includes = ("<math.h>",) + ((f'"{header}"',) if header else ())
    depth = max(map(len, tape.paths), default=0)
    return Module(comment, _guard(prefix), RESTRICT, SIMD_MACRO, includes, tuple(points), (), (), depth)


def _header_comment(title: str, source: str, inputs: tuple[str, ...], wrt: tuple[str, ...]) -> tuple[str, ...]:
    """The module's comment from the Program's header: "Generated by symdiff" first (where symdiff
    looks for it before overwriting a file)."""
    lines = [line.strip().replace("*/", "* /") for line in source.splitlines() if line.strip()]
    return (
        f"Generated by symdiff {__version__}, C99 backend (math.h only). Do not edit: regenerate it with symdiff.",
        "",
        f"{title} of",
        "",
        *(f"    {line}" for line in lines),
        "",
        f"Inputs, in order: {', '.join(inputs) or 'none'}.",
        *((f"Derivatives with respect to: {', '.join(wrt)}.",) if wrt else ()),
    )


def _program_names(names: Names) -> dict[str, str]:
    """The parameters of a derivative module's functions, renamed if an input or definition has the name."""
    taken = set(names.values)
    chosen = {}
    for base in ("point", "direction", "carry", "value", "derivative", "gradient", "values", "jacobian", "hessian",
                 "hvp"):
        name = base
        while name in taken:
            name += "_"
        chosen[base] = name
    return chosen


def _result_terms(result) -> tuple:
    match result:
        case Scalar(term=term):
            return (term,)
        case Vector(terms=terms):
            return tuple(terms)
        case Matrix(rows=rows):
            return tuple(term for row in rows for term in row)
    raise AssertionError(f"unexpected result {result!r}")


def _entry_stmts(entry: Entry, printer: Printer, load, stores: list, printed: dict | None = None) -> tuple[Stmt, ...]:
    """The statements of `entry` in the Program's order, each with the branch it runs in (Ifs walked
    with a stack: they nest as deep as the where()s), then the stores of its results. An input or a
    direction's component is loaded (`load(tangent, row)`: the element to read) just before the first
    statement that reads it. `printed`: id(Assign) -> (statement, inputs it reads), shared by the
    entries of a module, whose forward lines are the same nodes."""
    tape, values = printer.tape, printer.names.values
    instrs = tape.instrs
    position = {name: i for i, name in enumerate(tape.inputs)}
    printed = {} if printed is None else printed
    loaded: set[str] = set()
    out: list[Stmt] = []

    def reads_of(leaves) -> tuple[tuple[str, ...], tuple]:
        """The names the leaves read, and (name, tangent, row) for each input among them."""
        names, inputs = [], []
        for leaf in leaves:
            name = printer.leaf(leaf)
            names.append(name)
            of = leaf.of if type(leaf) is Dot else leaf
            if type(of) is Ref and instrs[of.index].op == INPUT:
                inputs.append((name, type(leaf) is Dot, position[instrs[of.index].name]))
        return tuple(dict.fromkeys(names)), tuple(inputs)

    def load_inputs(inputs) -> None:
        for name, tangent, row in inputs:
            if name not in loaded:
                loaded.add(name)
                out.append(Stmt(name, "=", load(tangent, row), load=True))

    def statement(node: Assign, path: tuple) -> tuple[Stmt, tuple]:
        target, term = node.target, node.term
        if type(target) is Ref and type(term) is Op and term.args is instrs[target.index].args:
            rhs = printer.definition(target.index)  # its tape entry: printed once per module
            reads, inputs = reads_of([arg for arg in term.args if type(arg) is Ref])
        else:
            rhs = printer.atom(term)
            reads, inputs = reads_of(_leaves(term))
        note = "; ".join(printer.source_definition(origin) for origin in node.origins)
        name = values[target.index] if type(target) is Ref else printer.leaf(target)
        stmt = Stmt(name, node.mode, rhs, f"  // {note}" if note else "", reads, path, const=type(target) is Ref)
        return stmt, inputs

    stack: list[tuple[tuple, int, tuple]] = [(tuple(entry.body), 0, ())]
    while stack:
        nodes, start, path = stack.pop()
        for number in range(start, len(nodes)):
            node = nodes[number]
            kind = type(node)
            if kind is Assign:
                if not node.read:
                    continue  # kept only to raise outside a domain: C does not raise
                known = printed.get(id(node))
                if known is None or known[0].path != path:
                    known = printed[id(node)] = statement(node, path)
                load_inputs(known[1])
                out.append(known[0])
            elif kind is Check:
                continue  # C does not raise: a check of the domain has nothing to do
            elif kind is Section:
                stack.append((nodes, number + 1, path))
                stack.append((node.body, 0, path))
                break
            elif kind is If:
                stack.append((nodes, number + 1, path))
                condition = node.condition.index
                if node.orelse:
                    stack.append((node.orelse, 0, (*path, (condition, False))))
                if node.body:
                    stack.append((node.body, 0, (*path, (condition, True))))
                break
            else:
                raise AssertionError(f"unexpected node {node!r}")  # a Loop: no builder makes one yet
    for element, term in stores:
        reads, inputs = reads_of(_leaves(term))
        load_inputs(inputs)
        out.append(Stmt("", "=", printer.atom(term), reads=reads, target=element))
    return tuple(out)


def _scheduled(stmts: tuple[Stmt, ...], condition=None) -> tuple[Stmt, ...]:
    """The statements reordered on demand: each store in turn, preceded by whatever it needs that is
    not computed yet (post-order over what each statement reads), each value defined and each
    adjoint completed just before its first use; statements no store needs after them, in order.

    Values then live from definition to last use, not across the whole sweep: in rosenbrock-1000 a
    handful are live at a time instead of thousands, which is what GCC's register allocation time
    (most of the build) and the spills grow with. The Program's order of the updates of one variable
    is kept, so sums are the same in the same order (the same bits). If a statement would then read a
    variable after a later update of it (no Program the core builds does this), the Program's order
    is kept. A statement in a branch needs its conditions (`condition(index)`: the name of entry
    index) as well."""
    current: dict[str, int] = {}  # name -> its last writer so far
    needs: list[list[int]] = []
    writer_after: dict[int, int] = {}  # a write -> the next write of the same variable
    read_from: list[list[int]] = []  # statement -> the writes it reads
    for number, stmt in enumerate(stmts):
        reads = [current[name] for name in stmt.reads if name in current]
        read_from.append(reads)
        wanted = list(reads)
        if stmt.path and condition is not None:
            wanted += [current[name] for index, _ in stmt.path if (name := condition(index)) in current]
        if stmt.name:
            previous = current.get(stmt.name)
            if previous is not None:
                writer_after[previous] = number
                if stmt.op != "=":
                    wanted.append(previous)
            current[stmt.name] = number
        needs.append(wanted)
    done = [False] * len(stmts)
    order: list[int] = []

    def emit(root: int) -> None:
        stack = [(root, False)]
        while stack:
            number, ready = stack.pop()
            if done[number]:
                continue
            if ready:
                done[number] = True
                order.append(number)
                continue
            stack.append((number, True))
            stack.extend((need, False) for need in reversed(needs[number]) if not done[need])

    for number, stmt in enumerate(stmts):
        if not stmt.name:
            emit(number)
    for number in range(len(stmts)):
        emit(number)
    position = [0] * len(stmts)
    for place, number in enumerate(order):
        position[number] = place
    for number, reads in enumerate(read_from):
        for write in reads:
            later = writer_after.get(write)
            if later is not None and later != number and position[later] < position[number]:
                return stmts
    return tuple(stmts[number] for number in order)


def _leaves(term) -> list:
    """The Ref, Bar and Dot leaves of `term`, in order of appearance."""
    found, stack = [], [term]
    while stack:
        item = stack.pop()
        if type(item) is Op:
            stack.extend(reversed(item.args))
        elif type(item) in (Ref, Bar, Dot):
            found.append(item)
    return found


def render_program(program: Program, prefix: str = "symdiff", header: str | None = None) -> tuple[str, str]:
    """The .c and .h texts of a derivative Program (see program_module)."""
    return render_module(program_module(program, prefix, header))

# --- array programs (issue 21) -------------------------------------------------------------------
# The functions of an array program take each scalar input as a double and each array as a pointer to
# its elements (row-major) followed by its lengths, and write the gradient into the caller's arrays:
#     double symdiff_f(double a, const double *x, long x_len);
#     void symdiff_grad(double a, const double *x, long x_len, double *grad, double *x_bar);
#     double symdiff_value_and_grad(double a, const double *x, long x_len, double *grad, double *x_bar);
# grad[j] is the j-th scalar of wrt (no grad when wrt has none), and each array of wrt has its own
# output shaped as the input, every element written. Loops are plain `for` loops over the Program's
# ranges, in the Program's order (the same sums in the same order: Python's bits); the caller checks
# that the lengths keep every read in bounds (core.bounds) before the call. The derivative Programs
# (jvp, hvp, a vector output's Jacobian: array_program_module) take the direction after the inputs and
# write their results the same way (array_outputs):
#     double symdiff_jvp(double a, const double *x, long x_len, double a_dot, const double *x_dot, double *derivative);
#     double symdiff_hvp(/* inputs, direction */, double *grad, double *x_bar, double *hvp, double *x_bar_dot);
#     void symdiff_value_and_jacobian(/* inputs */, double *values, double *jacobian);  /* rows x columns */


@dataclass(frozen=True, slots=True)
class ArrayLayout:
    """The parameters and loop names of an array program's functions."""

    inputs: tuple[str, ...]  # in order: "double a", "const double *restrict x", "long x_len", ...
    lengths: dict[tuple[str, int], str]  # (array, dimension) -> the parameter holding that length
    indices: dict[str, str]  # a loop index as the user wrote it -> its C name
    grad: str  # the output of the scalars of wrt, in order ("" when wrt has none)
    adjoints: dict[str, str]  # each array of wrt -> its output (x_bar)
    counter: str  # the index of the loops that zero those outputs
    own: dict[str, str]  # the derivative entries' outputs and locals by role: derivative, hvp, values, jacobian, columns


def array_layout(tape: Tape, names: Names, wrt: tuple[str, ...]) -> ArrayLayout:
    """Parameter names free of the user's and of C's: `x_len` for a 1-D x, `W_len0, W_len1` for a 2-D W
    (underscores appended where a name is taken); loop indices keep the user's names where C allows."""
    dims = dict(tape.arrays)
    generated = {READ, COUNTER, LENGTH}
    taken = set(names.params.values())
    taken |= {name for instr, name in zip(tape.instrs, names.values) if instr.op not in generated}
    # and the names the code gives adjoints and a product's prefix and suffixes (an index a_bar would hide one)
    taken |= {names.adjoint(index) for index, instr in enumerate(tape.instrs) if instr.op not in generated}
    taken |= {names.array_adjoint(array) for array in dims}
    taken |= {f"{names.values[loop.entry]}_{part}" for loop in tape.loops for part in ("before", "after")}
    taken |= {f"{name}_dot" for name in taken}  # their tangents and the direction's components (a_dot, x_dot)

    def free(base: str) -> str:
        name = base if not _IMPLEMENTATION.match(base) else "v" + base
        while name in taken or name in C_RESERVED or not name.isidentifier():
            name += "_"
        taken.add(name)
        return name

    indices = {}
    for loop in (*tape.loops, *((tape.rows,) if tape.rows is not None else ())):  # the rows of a vector output too
        if loop.index not in indices:
            indices[loop.index] = free(loop.index)
    lengths, inputs = {}, []
    for name in tape.inputs:
        param = names.params[name]
        if name not in dims:
            inputs.append(f"double {param}")
            continue
        inputs.append(f"const double *restrict {param}")
        for dim in range(dims[name]):
            lengths[(name, dim)] = free(f"{param}_len" if dims[name] == 1 else f"{param}_len{dim}")
            inputs.append(f"long {lengths[(name, dim)]}")
    adjoints = {name: names.array_adjoint(name) for name in wrt if name in dims}  # taken above: no index has it
    grad = free("grad") if any(name not in dims for name in wrt) else ""
    counter = free("e")
    own = {role: free(role) for role in ("derivative", "hvp", "values", "jacobian", "columns")}
    return ArrayLayout(tuple(inputs), lengths, indices, grad, adjoints, counter, own)


def array_names(tape: Tape, names: Names, layout: ArrayLayout) -> tuple[Names, Names]:
    """The names C code reads (x[i + 1], W[j * W_len1 + k], (double)i, (double)x_len; adjoints
    x_bar[i + 1]), and those the notes read, as the user writes them (W[j, k], i, len(x))."""
    code, notes = list(names.values), list(names.values)
    elements = {}
    for index, instr in enumerate(tape.instrs):
        if instr.op == READ:
            indices, _ = instr.detail
            code[index] = _array_element(names.params[instr.name], instr.name, indices, layout)
            if instr.name in layout.adjoints:
                elements[index] = _array_element(layout.adjoints[instr.name], instr.name, indices, layout)
            shown = ", ".join(affine_text(affine, _user_symbol) for affine in indices)
            notes[index] = f"{names.params[instr.name]}[{shown}]"
        elif instr.op == COUNTER:
            code[index], notes[index] = f"(double){layout.indices[instr.name]}", instr.name
        elif instr.op == LENGTH:
            code[index] = f"(double){layout.lengths[(instr.name, instr.detail)]}"
            notes[index] = _user_symbol(Length(instr.name, instr.detail))
    return Names(tuple(code), names.params, elements), Names(tuple(notes), names.params)


def _array_element(pointer: str, array: str, indices: tuple, layout: ArrayLayout) -> str:
    """Element `indices` of a row-major array: x[i + 1], W[(j + 1) * W_len1 + k]."""
    symbol = _c_symbol(layout)
    flat = affine_text(indices[0], symbol)
    for dim, affine in enumerate(indices[1:], 1):
        row = f"({flat})" if " " in flat else flat
        flat = f"{row} * {layout.lengths[(array, dim)]} + {affine_text(affine, symbol)}"
    return f"{pointer}[{flat}]"


def _c_symbol(layout: ArrayLayout):
    def symbol(name) -> str:
        return layout.lengths[(name.array, name.dim)] if isinstance(name, Length) else layout.indices[name]

    return symbol


def _user_symbol(name) -> str:
    if isinstance(name, Length):
        return f"len({name.array})" if name.dim == 0 else f"len({name.array}, {name.dim})"
    return name


INDENT = "    "


class _CodePrinter(Printer):
    """The Python printer's terms with C's spellings of a product's running prefix (w2_before) and of
    its buffer of suffixes (w2_after[i - start + 1]), and of a loop index as a number ((double)i)."""

    def __init__(self, tape: Tape, names: Names, layout: ArrayLayout):
        super().__init__(tape, names, "c")
        self.layout = layout

    def _leaf(self, node) -> str:
        kind = type(node)
        if kind is Prefix:
            return f"{self.names.values[node.reduction]}_before"
        if kind is Suffixes:
            return f"{self.names.values[node.reduction]}_after"
        if kind is Suffix:  # element i - start + shift of the product's buffer
            loop = self.tape.loop_of(node.reduction)
            offset = combine(Affine(node.shift, ((loop.index, 1),)), loop.start, -1)
            return f"{self.names.values[node.reduction]}_after[{affine_text(offset, _c_symbol(self.layout))}]"
        if kind is Index:
            return f"(double){self.layout.indices[node.name]}"
        return super()._leaf(node)


# Where an array program's function goes when a product's buffer cannot be allocated: it frees its
# buffers and makes every result nan (a label: C keeps labels apart from variables).
OUT_OF_MEMORY = "out_of_memory"


@dataclass(frozen=True, slots=True)
class ArrayOutput:
    """One output parameter of an array program's function: part of result number `result` (role
    `role`). `kind` "scalars": the result's terms at `positions` that are numbers, one double each;
    "array": the term at `positions[0]`, the adjoint of input `array` (or its tangent), shaped as that
    input; "rows": a vector output's values, one per output; "matrix": its Jacobian, one row per
    output, one column per scalar of wrt (an array: one per element, row-major), rows row-major."""

    result: int
    role: str
    kind: str
    positions: tuple[int, ...] = ()
    array: str = ""


def array_outputs(entry: Entry) -> tuple[tuple[ArrayOutput, ...], bool]:
    """The output parameters of an array program's entry, in order, and whether the function returns
    the value (a first result "value", as f, value_and_grad, jvp and hvp do)."""
    returns = bool(entry.results) and type(entry.results[0]) is Scalar and entry.results[0].role == "value"
    outputs: list[ArrayOutput] = []
    for number, result in enumerate(entry.results):
        if type(result) is Scalar:
            if not (number == 0 and returns):
                outputs.append(ArrayOutput(number, result.role, "scalars", (0,)))
        elif type(result) is Vector:
            arrays = [(position, _array_of(term)) for position, term in enumerate(result.terms)]
            scalars = tuple(position for position, array in arrays if not array)
            if scalars:
                outputs.append(ArrayOutput(number, result.role, "scalars", scalars))
            outputs += [
                ArrayOutput(number, result.role, "array", (position,), array) for position, array in arrays if array
            ]
        elif type(result) is Rows:
            outputs.append(ArrayOutput(number, result.role, "rows" if result.role == "values" else "matrix"))
        else:
            raise AssertionError(f"unexpected result {result!r} of an array program")
    return tuple(outputs), returns


def _array_of(term) -> str:
    """The input whose whole adjoint (ArrayBar) or its tangent a result's term is; "" for a number."""
    of = term.of if type(term) is Dot else term
    return of.array if type(of) is ArrayBar else ""


@dataclass(frozen=True, slots=True)
class _RowsLayout:
    """Where a vector output's Jacobian goes: row `row` (the output's number, from its loop's index) of
    the caller's matrix, `columns` (a local holding `width`) wide; input `name` of wrt from column
    `at[name]`. An array's adjoint is a pointer to its first column, so its scatters land in place."""

    row: str  # "i", or "i - 1" for range(1, ...)
    first: str  # the row's first element: "i * columns", "(i - 1) * columns"
    count: str  # how many rows, as C reads it ("x_len - 1"; below zero for an empty range, where loops stop at once)
    columns: str
    width: str
    at: dict[str, str]


def _rows_layout(tape: Tape, layout: ArrayLayout, wrt: tuple[str, ...]) -> _RowsLayout:
    symbol, dims, rows = _c_symbol(layout), dict(tape.arrays), tape.rows
    constant, sizes, at = 0, [], {}
    for name in wrt:
        at[name] = " + ".join(([str(constant)] if constant or not sizes else []) + sizes)
        if name in dims:
            sizes.append(" * ".join(layout.lengths[(name, dim)] for dim in range(dims[name])))
        else:
            constant += 1
    width = " + ".join(([str(constant)] if constant or not sizes else []) + sizes)
    row = affine_text(combine(Affine(0, ((rows.index, 1),)), rows.start, -1), symbol)
    count = affine_text(combine(rows.stop, rows.start, -1), symbol)
    columns = layout.own["columns"]
    first = f"{f'({row})' if ' ' in row else row} * {columns}"
    return _RowsLayout(row, first, count, columns, width, at)


class _ArrayPrinter:
    """Prints the nodes of an array program's entries as C lines, one level of indent per loop."""

    def __init__(self, tape: Tape, names: Names, notes: Names, layout: ArrayLayout, prefix: str, wrt=()):
        self.tape, self.names, self.layout, self.prefix, self.wrt = tape, names, layout, prefix, tuple(wrt)
        self.code = _CodePrinter(tape, names, layout)
        self.notes = Printer(tape, notes, "c")
        self.rows = _rows_layout(tape, layout, self.wrt) if tape.rows is not None else None

    def lines(self, nodes, depth: int, declared: dict[str, int], out: list[Line]) -> None:
        """Appends `nodes`' lines. `declared`: the variables declared in the enclosing blocks, with the
        line declaring each (a value of a loop body is declared in its block, as each iteration
        computes it again)."""
        indent = INDENT * depth
        for node in nodes:
            kind = type(node)
            if kind is Assign:
                if node.read:  # else kept only to raise outside a domain: C does not raise
                    self.assign(node, indent, declared, out)
            elif kind is Section:
                seed = f" (seed {self.code.leaf(node.seed)} = 1)" if node.seed is not None else ""
                out.append(Line(f"// {node.title}{seed}", "", "", "", indent))
                self.lines(node.body, depth, declared, out)
            elif kind is ProgramLoop:
                index, symbol = self.layout.indices[node.index.name], _c_symbol(self.layout)
                start, stop = affine_text(node.start, symbol), affine_text(node.stop, symbol)
                if node.descending:
                    header = f"for (long {index} = {affine_text(add(node.stop, -1), symbol)}; {index} >= {start}; --{index}) {{"
                else:
                    header = f"for (long {index} = {start}; {index} < {stop}; ++{index}) {{"
                out.append(Line(header, "", "", "", indent))
                self.lines(node.body, depth + 1, dict(declared), out)
                out.append(Line("}", "", "", "", indent))
            elif kind is Append:
                self.append(node, indent, declared, out)
            elif kind is not Check:  # a domain check: C does not raise
                raise AssertionError(f"unexpected node {node!r} in an array program")

    def assign(self, node: Assign, indent: str, declared: dict[str, int], out: list[Line]) -> None:
        target, term = node.target, node.term
        note = "  // " + "; ".join(map(self.notes.source_definition, node.origins)) if node.origins else ""
        kind = type(target)
        of = target.of if kind is Dot else target  # a tangent is stored as the value it is the tangent of
        of_kind = type(of)
        if kind is Rows:  # the caller's output, filled row by row (Append)
            return
        if of_kind is ArrayBar:  # the caller's output (or a row's columns), zeroed: elements are added into it
            output, counter = self.code.leaf(target), self.layout.counter
            if self.rows is not None:  # a vector output's row: the adjoint is its columns of the matrix
                rows = self.rows
                place = _sum(f"{self.layout.own['jacobian']} + {rows.first}", rows.at[of.array])
                declared[output] = len(out)
                out.append(Line(f"double *{output}", "=", place, "", indent))
            size = " * ".join(length for (array, _), length in self.layout.lengths.items() if array == of.array)
            zeroing = f"for (long {counter} = 0; {counter} < {size}; ++{counter}) {output}[{counter}]"
            out.append(Line(zeroing, "=", self.code.atom(term), note, indent))
            return
        if of_kind is Suffixes:  # one more element than the product's range, each 1.0 (its tangent: 0.0)
            loop = self.tape.loop_of(of.reduction)
            size = affine_text(combine(add(loop.stop, 1), loop.start, -1), _c_symbol(self.layout))
            call = f"{self.prefix}_{ONES if kind is Suffixes else ZEROS}(&{self.code.leaf(target)}, {size})"
            out.append(Line(f"if (!{call}) goto {OUT_OF_MEMORY};", "", "", note, indent))
            return
        if kind is Ref:
            instrs = self.tape.instrs
            name = self.names.values[target.index]
            same = type(term) is Op and term.args is instrs[target.index].args
            rhs = self.code.definition(target.index) if same else self.code.atom(term)
            constant = instrs[target.index].op not in REDUCTIONS  # a reduction is updated after its start
        elif of_kind is Suffix or (of_kind is Bar and of.index in self.names.elements):
            out.append(Line(self.code.leaf(target), node.mode, self.code.atom(term), note, indent))  # an element
            return
        else:
            name, rhs = self.code.leaf(target), self.code.atom(term)
            # a tangent of a forward value, but not of a sum or product, which is updated after its start
            constant = kind is Dot and of_kind is Ref and self.tape.instrs[of.index].op not in REDUCTIONS
        declaration = declared.get(name)
        if declaration is None and node.mode == "=":
            declared[name] = len(out)
            out.append(Line(f"{'const ' if constant else ''}double {name}", "=", rhs, note, indent))
            return
        if declaration is not None and out[declaration].target.startswith("const "):
            # Assigned again in its block: not a constant after all.
            out[declaration] = replace(out[declaration], target=out[declaration].target.removeprefix("const "))
        out.append(Line(name, node.mode, rhs, note, indent))

    def append(self, node: Append, indent: str, declared: dict[str, int], out: list[Line]) -> None:
        """A vector output's row: its value into values[row], or its partials into the matrix's row (an
        array's adjoint is in place already: its pointer was declared in this row's block)."""
        rows, own = self.rows, self.layout.own
        if node.scalar:
            (term,) = node.terms
            out.append(Line(f"{own[node.role]}[{rows.row}]", "=", self.code.atom(term), "", indent))
            return
        for name, term in zip(self.wrt, node.terms, strict=True):
            if type(term) is ArrayBar:
                if self.code.leaf(term) not in declared:
                    raise AssertionError(f"the row's adjoint of {name} was never zeroed")
                continue
            element = _sum(rows.first, rows.at[name])
            out.append(Line(f"{own[node.role]}[{element}]", "=", self.code.atom(term), "", indent))

    def buffers(self, nodes) -> list[str]:
        """The buffers of the products' suffixes (and of their tangents) that `nodes` fill, in order."""
        return list(dict.fromkeys(self.code.leaf(target) for target in _buffers(nodes)))


def _without_unread(body: tuple, results=()) -> tuple:
    """An entry's body without the values (and tangents of values) a block declares that nothing in the
    block reads (nor `results`, at the top): a loop that recomputes a body (or its tangents) carries
    values only another loop reads (/work/notes/requests-c.md 5). In C such a variable is unused, or
    only updated (-Wunused); every line of it is left out, until none is left (w8_dot in a loop may be
    all that reads w7_dot in the loop around it)."""
    read = {leaf for term in results for leaf in _leaves(term)}
    while True:
        dropped: list = []
        body = _pruned(body, frozenset(), read, dropped)
        if not dropped:
            return body


def _pruned(nodes: tuple, outer: frozenset, read_after: set, dropped: list) -> tuple:
    """One pass over a block (`nodes`, its Sections included) and the loops in it: the variables it
    declares (an `=` not declared by a block around it, `outer`) that nothing reads are dropped."""
    own, level = set(), list(nodes)
    while level:
        node = level.pop()
        if type(node) is Section:
            level.extend(node.body)
        elif type(node) is Assign and node.mode == "=" and type(getattr(node.target, "of", node.target)) is Ref:
            own.add(node.target)
    own -= outer
    nodes = _loops_pruned(nodes, outer | own, dropped)
    read, stack = set(read_after), list(nodes)
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is Assign:
            read.update(_leaves(node.term))
        elif kind is Append:
            read.update(leaf for term in node.terms for leaf in _leaves(term))
        elif kind is ProgramLoop or kind is Section:
            stack.extend(node.body)
    dead = own - read
    if dead:
        dropped.extend(dead)
        nodes = _dropping(nodes, dead)
    return nodes


def _loops_pruned(nodes: tuple, outer: frozenset, dropped: list) -> tuple:
    """`nodes` with each loop in them (through Sections) pruned as a block of its own."""
    out = []
    for node in nodes:
        if type(node) is Section:
            node = replace(node, body=_loops_pruned(node.body, outer, dropped))
        elif type(node) is ProgramLoop:
            node = replace(node, body=_pruned(node.body, outer, set(), dropped))
        out.append(node)
    return tuple(out)


def _dropping(nodes: tuple, dead: set) -> tuple:
    """`nodes` without the Assigns to `dead` targets, in loops and sections too."""
    kept = []
    for node in nodes:
        kind = type(node)
        if kind is Assign and node.target in dead:
            continue
        if kind is ProgramLoop or kind is Section:
            node = replace(node, body=_dropping(node.body, dead))
        kept.append(node)
    return tuple(kept)


def _sum(left: str, right: str) -> str:
    """`left + right`, without adding a zero."""
    return left if right == "0" else f"{left} + {right}"


def _buffers(nodes) -> list:
    """The Suffixes (and Dot(Suffixes)) that `nodes` allocate, in order."""
    found, stack = [], list(reversed(nodes))
    while stack:
        node = stack.pop()
        if type(node) is Assign and type(getattr(node.target, "of", node.target)) is Suffixes:
            found.append(node.target)
        elif type(node) is Section or type(node) is ProgramLoop:
            stack.extend(reversed(node.body))
    return found


def _output_names(outputs: tuple[ArrayOutput, ...], printer: _ArrayPrinter) -> tuple[str, ...]:
    """The parameter each output is: grad, x_bar; derivative; hvp, x_bar_dot; values, jacobian."""
    layout, names = printer.layout, []
    for output in outputs:
        if output.kind == "array":
            adjoint = ArrayBar(output.array)
            names.append(printer.code.leaf(adjoint if output.role == "gradient" else Dot(adjoint)))
        elif output.role == "gradient":
            names.append(layout.grad)
        else:
            names.append(layout.own[output.role])
    return tuple(names)


def _array_function(
    printer: _ArrayPrinter, name: str, entry: Entry, params: tuple[str, ...], doc: str
) -> tuple[Point, bool]:
    """One entry of an array program as a C function (see array_outputs for its outputs), and whether
    it allocates a product's buffers. Results that are numbers are stored at the end; arrays and rows
    are written where they are computed."""
    outputs, returns = array_outputs(entry)
    output_names = _output_names(outputs, printer)
    params = params + tuple(f"double *restrict {output}" for output in output_names)
    buffers = printer.buffers(entry.body)
    lines = [Line(f"double *{buffer}", "=", "NULL", "") for buffer in buffers]
    if printer.rows is not None and printer.wrt:
        lines.append(Line(f"const long {printer.rows.columns}", "=", printer.rows.width, ""))
    body = _without_unread(entry.body, result_terms(entry.results))
    printer.lines(body, 0, {}, lines)
    lines += [Line(f"free({buffer});", "", "", "") for buffer in buffers]
    for output, output_name in zip(outputs, output_names):
        if output.kind == "scalars":
            result = entry.results[output.result]
            terms = (result.term,) if type(result) is Scalar else tuple(result.terms[p] for p in output.positions)
            lines += [Line(f"{output_name}[{j}]", "=", printer.code.atom(term), "") for j, term in enumerate(terms)]
    value = printer.code.atom(entry.results[0].term) if returns else None
    if value is not None or buffers:
        lines.append(Line(f"return{' ' + value if value is not None else ''};", "", "", ""))
    if buffers:  # every result nan, as f gives outside its domain
        lines.append(Line(f"{OUT_OF_MEMORY}:", "", "", "  // a buffer could not be allocated"))
        lines += [Line(f"free({buffer});", "", "", "") for buffer in buffers]
        counter = printer.layout.counter
        for output, output_name in zip(outputs, output_names):
            if output.kind != "scalars":
                size = _output_size(output, printer)
                every = f"for (long {counter} = 0; {counter} < {size}; ++{counter}) {output_name}[{counter}]"
                lines.append(Line(every, "=", "NAN", ""))
        for output, output_name in zip(outputs, output_names):
            if output.kind == "scalars":
                lines += [Line(f"{output_name}[{j}]", "=", "NAN", "") for j in range(len(output.positions))]
        lines.append(Line("return NAN;" if returns else "return;", "", "", ""))
    signature, declaration = _signature("double" if returns else "void", name, params or ("void",))
    code_lines = tuple(line for line in lines if not line.target.startswith("//"))
    unused = _unused(params, code_lines)
    return Point(name, signature, declaration, doc, unused, (), tuple(lines), (), ()), bool(buffers)


def _output_size(output: ArrayOutput, printer: _ArrayPrinter) -> str:
    """How many doubles an array, rows or matrix output holds, as C reads it (at most 0 for no rows)."""
    if output.kind == "array":
        return " * ".join(length for (name, _), length in printer.layout.lengths.items() if name == output.array)
    rows = printer.rows
    if output.kind == "rows":
        return rows.count
    return f"{f'({rows.count})' if ' ' in rows.count else rows.count} * {rows.columns}"


def array_module(adjoint: Adjoint, prefix: str = "symdiff", header: str | None = None) -> Module:
    """An array program's f, grad and value_and_grad as C functions (see ArrayLayout for the ABI), from
    the core's Program."""
    tape = adjoint.tape
    base = c_names(tape, adjoint.wrt, prefix)
    layout = array_layout(tape, base, adjoint.wrt)
    names, notes = array_names(tape, base, layout)
    printer = _ArrayPrinter(tape, names, notes, layout, prefix, adjoint.wrt)
    dims = dict(tape.arrays)
    scalars = [name for name in adjoint.wrt if name not in dims]
    into = [f"{layout.grad}[0..{len(scalars) - 1}] ({', '.join(f'd/d{name}' for name in scalars)})"] if scalars else []
    into += [f"{output} (d/d{name})" for name, output in layout.adjoints.items()]
    points, allocates = [], False
    for entry in build_program(adjoint).entries:
        gradient = any(isinstance(result, Vector) for result in entry.results)
        doc = entry.doc + (f" The gradient into {', '.join(into) or 'nothing'}." if gradient else "")
        point, buffers = _array_function(printer, f"{prefix}_{entry.name}", entry, layout.inputs, doc)
        points.append(point)
        allocates = allocates or buffers
    comment = (*_gradient_comment(Header("gradient", tape.source, tape.inputs, adjoint.wrt), base), "",
               *_array_abi(tape, layout, allocates))
    includes = ("<math.h>",) + (("<stdlib.h>",) if allocates else ()) + ((f'"{header}"',) if header else ())
    helpers = _filler(prefix, ONES) if allocates else ()
    return Module(comment, _guard(prefix), RESTRICT, SIMD_MACRO, includes, tuple(points), (), (), 0, True, helpers)


def array_program_module(program: Program, prefix: str = "symdiff", header: str | None = None) -> Module:
    """An array program's jvp, hvp or vector output's Jacobian (core/derivatives.py) as C functions: the
    inputs as in array_module, then for a jvp or hvp the direction (a_dot, then x_dot: an array's
    elements, its lengths those of x), then one output per part of the results (array_outputs). The
    value, where there is one, is returned."""
    tape, head = program.tape, program.header
    base = c_names(tape, head.wrt, prefix)
    layout = array_layout(tape, base, head.wrt)
    names, notes = array_names(tape, base, layout)
    printer = _ArrayPrinter(tape, names, notes, layout, prefix, head.wrt)
    dims = dict(tape.arrays)
    points, buffers = [], []
    for entry in program.entries:
        params = layout.inputs
        if any(param.tangent for param in entry.params):
            params += tuple(
                f"const double *restrict {base.params[name]}_dot" if name in dims else f"double {base.params[name]}_dot"
                for name in tape.inputs
            )
        outputs, returns = array_outputs(entry)
        doc = entry.doc + _outputs_doc(outputs, _output_names(outputs, printer), returns)
        points.append(_array_function(printer, f"{prefix}_{entry.name}", entry, params, doc)[0])
        buffers += _buffers(entry.body)
    helpers = ()
    if any(type(target) is Suffixes for target in buffers):
        helpers += _filler(prefix, ONES)
    if any(type(target) is Dot for target in buffers):
        helpers += ("",) * bool(helpers) + _filler(prefix, ZEROS)
    title = TITLES[head.kind].format(mode=head.mode)
    comment = (*_header_comment(title, head.source, head.inputs, head.wrt), "",
               *_array_abi(tape, layout, bool(buffers), printer))
    includes = ("<math.h>",) + (("<stdlib.h>",) if buffers else ()) + ((f'"{header}"',) if header else ())
    return Module(comment, _guard(prefix), RESTRICT, SIMD_MACRO, includes, tuple(points), (), (), 0, True, helpers)


def _outputs_doc(outputs: tuple[ArrayOutput, ...], names: tuple[str, ...], returns: bool) -> str:
    """` Returns the value; the gradient into grad[0..1], x_bar; hvp into hvp[0..1], x_bar_dot.`"""
    parts: dict[str, list[str]] = {}
    for output, name in zip(outputs, names):
        size = len(output.positions)
        if output.kind == "scalars":
            name += f"[0..{size - 1}]" if size > 1 else "[0]"
        parts.setdefault(output.role, []).append(name)
    text = ["returns the value"] if returns else []
    text += [f"{'the ' if role in ('gradient', 'derivative') else ''}{role} into {', '.join(where)}"
             for role, where in parts.items()]
    sentence = "; ".join(text)
    return f" {sentence[:1].upper()}{sentence[1:]}." if text else ""


def _filler(prefix: str, name: str) -> tuple[str, ...]:
    """The static function making a product's buffer: `*buffer` resized (one buffer, reused by every
    iteration of the loops around it) and filled with 1.0 (ONES: the suffix products) or 0.0 (ZEROS:
    their tangents); 0 when memory ran out."""
    value, what = ("1.0", "a product's suffixes") if name == ONES else ("0.0", "the tangents of a product's suffixes")
    return (
        f"/* *buffer resized to size doubles (at least one), each {value}: {what}; 0 if memory ran out. */",
        f"static int {prefix}_{name}(double **buffer, long size)",
        "{",
        "    if (size < 1)",
        "        size = 1;",
        "    double *grown = realloc(*buffer, (size_t)size * sizeof(double));",
        "    if (grown == NULL)",
        "        return 0;",
        "    for (long e = 0; e < size; ++e)",
        f"        grown[e] = {value};",
        "    *buffer = grown;",
        "    return 1;",
        "}",
    )


def _array_abi(
    tape: Tape, layout: ArrayLayout, allocates: bool, printer: _ArrayPrinter | None = None
) -> tuple[str, ...]:
    """The comment's account of the parameters, and of the lengths that keep every read in bounds;
    `printer` of a derivative module (its directions and outputs), else a gradient module's."""
    if printer is None:
        outputs = [f"{layout.grad}[j] for the j-th scalar of wrt"] if layout.grad else []
        outputs += [f"{output} shaped as {array}" for array, output in layout.adjoints.items()]
        text = [
            "Each scalar input is a double, each array a pointer to its elements (row-major) followed by its",
            "lengths. The gradient goes into the caller's arrays, every element written:",
            f"{'; '.join(outputs) or 'nothing'}.",
        ]
    else:
        text = [
            "Each scalar input is a double, each array a pointer to its elements (row-major) followed by its",
            "lengths; a direction (jvp, hvp) follows the inputs, in their order: a_dot for a scalar a, x_dot",
            "for an array x (its elements; x's lengths are its lengths). The value is returned; the other",
            "results go into the caller's arrays, every element written: a number's into name[0], a vector's",
            "numbers into name[j] in wrt's order (grad, hvp) and each array's into its own array shaped as",
            "the input (x_bar, x_bar_dot).",
        ]
        if printer.rows is not None:
            rows = printer.rows
            text += [
                f"A vector output's value r goes into {layout.own['values']}[r], its row of partials into",
                f"{layout.own['jacobian']}[r * {rows.columns} + c], {rows.columns} = {rows.width} (one column per",
                f"scalar of wrt, one per element of an array of wrt), for r = 0 to {rows.count} - 1.",
            ]
    if allocates:
        text += [
            "The adjoint of a product keeps the products of its last factors in a buffer from malloc",
            "(stdlib.h), freed before the function returns; should memory run out, every result is nan.",
        ]
    text += [
        "The functions do not check bounds: the caller makes sure that every read stays inside its array",
        "(symdiff's loader checks these before each call):",
    ]
    dims = dict(tape.arrays)
    for bound in bounds(tape):
        where = f"dimension {bound.dim} of {bound.array}" if dims[bound.array] > 1 else bound.array
        low, high = affine_text(bound.lowest, _user_symbol), affine_text(bound.highest, _user_symbol)
        line = f"    {bound.text} reads {where} from {low} to {high}"
        if line not in text:
            text.append(line)
    return tuple(line.replace("*/", "* /") for line in text)


# --- compiling and loading ----------------------------------------------------------------------


def find_compiler() -> tuple[str, ...]:
    """The command that compiles C: $CC split into words as a shell would (it is never run through
    one: `ccache gcc`, `gcc -DX=1`), its program found on the PATH; else cc, gcc or clang."""
    given = os.environ.get("CC", "")
    if given.strip():
        try:
            words = shlex.split(given)
        except ValueError as error:
            raise CompilerError(f"cannot read $CC ({given!r}): {error}") from None
        found = shutil.which(words[0])
        if found is None:
            raise CompilerError(f"$CC names {words[0]!r}, which is not a program that can be run; fix or unset $CC")
        return (found, *words[1:])
    for candidate in ("cc", "gcc", "clang"):
        found = shutil.which(candidate)
        if found:
            return (found,)
    raise CompilerError(
        "no C compiler found (looked for $CC, cc, gcc and clang); install one, or use the python or numpy backend"
    )


def build_library(source: str, level: tuple[str, ...] = ()) -> ctypes.CDLL:
    """`source` compiled into a shared library and loaded; `level` adds flags to CFLAGS (POINT_FLAGS,
    LARGE_FLAGS), used where the compiler takes them.

    Libraries are cached under a digest of the source, the compiler and the flags, which each one
    also carries (DIGEST_SYMBOL). A cached file is loaded only if nobody but the user could have
    written it or its folder (loading runs its constructors) and it is whole, and used only if it
    then carries the digest; else it is rebuilt. Where the cache cannot be used, libraries are
    built in a private folder of this process."""
    command = find_compiler()
    levels = (level, ()) if level else ((),)
    flags = [CFLAGS, levels, TARGET_FLAGS, OPENMP_FLAGS, _machine()]
    digest = hashlib.sha256("\0".join([source, *command, repr(flags)]).encode()).hexdigest()
    name = f"symdiff_{digest[:32]}.so"
    cache = trusted_cache("c")
    writable = cache is not None and os.access(cache, os.W_OK)
    for folder in ([cache] if cache else []) + ([] if writable else [private_folder()]):
        library = _cached(folder / name, digest)
        if library is not None:
            return library
    source += f'\n/* The digest the loader checks. */\nconst char {DIGEST_SYMBOL}[] = "{digest}";\n'
    failure = None
    for folder in ([cache] if writable else []) + [private_folder()]:
        try:
            return _build(source, digest, command, levels, folder / name)
        except OSError as error:  # a full or read-only cache: the private folder next
            failure = error
    raise CompilerError(f"cannot build the C library: {failure}")


def _build(source: str, digest: str, command: tuple[str, ...], levels, library: Path) -> ctypes.CDLL:
    """Compile `source` beside `library` with the first flags that work, load and check it, then
    move it into place (atomically: a concurrent build of the same source is harmless)."""
    with tempfile.TemporaryDirectory(dir=library.parent, prefix=".build-") as work:
        c_file = Path(work) / library.with_suffix(".c").name
        c_file.write_text(source, encoding="utf-8")
        built = Path(work) / library.name
        for extra, target, openmp in itertools.product(levels, TARGET_FLAGS, OPENMP_FLAGS):
            arguments = [*command, *CFLAGS, *extra, *target, *openmp, "-o", str(built), str(c_file), "-lm"]
            done = subprocess.run(arguments, capture_output=True, text=True)
            if done.returncode == 0:
                break
        if done.returncode != 0:
            raise CompilerError(f"{Path(command[0]).name} failed ({done.returncode}):\n{done.stderr.strip()[-2000:]}")
        os.chmod(built, 0o700)  # the compiler follows the umask; only the user may write a cached library
        # Loaded from the build folder, not from `library`: a process that loaded a bad file under
        # that name would be handed the same bad library again.
        loaded = _loaded(built, digest)
        if loaded is None:
            raise CompilerError(f"the library {Path(command[0]).name} built does not load, or lacks its digest")
        record = Path(work) / _record(library).name
        record.write_text(_file_digest(built) + "\n", encoding="ascii")
        os.chmod(record, 0o600)
        move_into_place(built, library)
        move_into_place(record, _record(library))  # last: a reader in between finds no match and rebuilds
    return loaded


def _record(library: Path) -> Path:
    """The file holding the SHA-256 of `library`'s bytes, as they were written."""
    return library.with_name(library.name + ".sha256")


def _file_digest(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _cached(library: Path, digest: str) -> ctypes.CDLL | None:
    """The cached library if it may be loaded and is the one asked for: it and its record are files
    only the user could have written (resources.trusted_file), its bytes are those recorded (a
    truncated library can crash the process that loads it: segments mapped past its end), and once
    loaded it carries `digest` (not a library of another source placed under this name)."""
    record = _record(library)
    if not (trusted_file(library) and trusted_file(record)):
        return None
    try:
        whole = _file_digest(library) == record.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return _loaded(library, digest) if whole else None


def _loaded(path: Path, digest: str) -> ctypes.CDLL | None:
    """The library at `path` if it loads and carries `digest`; None for a damaged, foreign or
    mismatched file."""
    try:
        library = ctypes.CDLL(str(path))
        carried = ctypes.string_at(ctypes.addressof(ctypes.c_char.in_dll(library, DIGEST_SYMBOL)), len(digest))
    except (OSError, ValueError):
        return None
    return library if carried == digest.encode() else None


@functools.cache
def _machine() -> str:
    """What -march=native depends on: the CPU's model and feature flags (Linux), else its family."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            wanted = [line for line in info if line.startswith(("model name", "flags", "Features"))][:2]
    except OSError:
        wanted = []
    return platform.machine() + platform.processor() + "".join(wanted)


def library_flags(module: Module) -> tuple[str, ...]:
    """The flags for a library of `module`: -O2 for SIMD loops, cheaper ones for point code, -O0 for
    branches nested deeper than DEEP_BRANCHES."""
    if module.depth > DEEP_BRANCHES:
        return DEEP_FLAGS
    if module.arrays:
        return ARRAY_FLAGS
    if module.loops:
        return ()
    return LARGE_FLAGS if any(point.length > SIMD_LINES for point in module.points) else POINT_FLAGS


# The C signatures of the entry points (pointers as void*: bytes, ctypes buffers and addresses all pass).
_POINTER, _COUNT = ctypes.c_void_p, ctypes.c_long
SIGNATURES = {
    "symdiff_f": ((_POINTER,), ctypes.c_double),
    "symdiff_grad": ((_POINTER, _POINTER), None),
    "symdiff_value_and_grad": ((_POINTER, _POINTER), ctypes.c_double),
    "symdiff_f_batch": ((_COUNT, _POINTER, _POINTER), None),
    "symdiff_grad_batch": ((_COUNT, _POINTER, _POINTER), None),
    "symdiff_value_and_grad_batch": ((_COUNT, _POINTER, _POINTER, _POINTER), None),
}
