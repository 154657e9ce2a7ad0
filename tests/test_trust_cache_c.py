"""Issue 19, items 1 and 12-15: symdiff reads nothing from its cache that someone else could have
written, uses a cached C library only if it carries its own digest, works where the cache cannot be
used, and writes C that compiles cleanly (names C reserves, with or without OpenMP, the header
from C++) with the compiler $CC names, arguments and all. Every planted file lives in a tmp_path
cache ($SYMDIFF_CACHE), never the user's; the tests run as root, so "someone else" is uid 65534."""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from support import needs_compiler

import symdiff
from symdiff import CacheWarning, resources
from symdiff.api import build
from symdiff.codegen import c as c_backend
from symdiff.errors import CompilerError

pytestmark = pytest.mark.usefixtures("private_c_cache")

OTHER_USER = 65534  # nobody
TEXT, POINT = "x*y + cos(x)", (1.0, 2.0)
RIGHT = (2.0 - math.sin(1.0), 1.0)  # d/dx and d/dy of TEXT at POINT


def _gradient(monkeypatch, cache: Path, text: str = TEXT) -> tuple[float, ...]:
    monkeypatch.setenv("SYMDIFF_CACHE", str(cache))
    return symdiff.compile_grad(text, backend="c")(*POINT)


def _predicted(monkeypatch, tmp_path: Path, text: str = TEXT) -> Path:
    """The cached grad library of `text`, built in a scratch cache: its name is the one any cache uses."""
    _gradient(monkeypatch, tmp_path / "scratch", text)
    [library] = (tmp_path / "scratch" / "c").glob("*.so")
    return library


def _compile_library(tmp_path: Path, body: str) -> Path:
    (tmp_path / "planted.c").write_text(body)
    library = tmp_path / "planted.so"
    command = [*c_backend.find_compiler(), "-shared", "-fPIC", "-o", str(library), str(tmp_path / "planted.c")]
    subprocess.run(command, check=True, capture_output=True)
    return library


def _planted_library(tmp_path: Path, marker: Path) -> Path:
    """A library that leaves `marker` behind when it is loaded and whose gradient is (42, 42)."""
    return _compile_library(
        tmp_path,
        "#include <stdio.h>\n"
        f'__attribute__((constructor)) static void planted(void) {{ fclose(fopen("{marker}", "w")); }}\n'
        "void symdiff_grad(const double *x, double *g) { (void) x; g[0] = 42.0; g[1] = 42.0; }\n",
    )


def _mode(path: Path) -> int:
    return path.lstat().st_mode & 0o777


def _plant(cache: Path, name: str, data: bytes, recorded: bytes | None = None) -> Path:
    """`data` as the cached library `name`, its record saying it holds `recorded` (default: `data`),
    so that only the checks after the record (or the owners and modes) can stop it being used."""
    (cache / "c").mkdir(parents=True, mode=0o700, exist_ok=True)
    library = cache / "c" / name
    library.write_bytes(data)
    library.chmod(0o600)
    record = cache / "c" / f"{name}.sha256"
    record.write_text(hashlib.sha256(data if recorded is None else recorded).hexdigest() + "\n")
    record.chmod(0o600)
    return library


# --- item 1: nothing is read from a cache someone else could write; a library carries its digest ---


@needs_compiler
def test_a_library_of_another_expression_under_the_predicted_name_is_rebuilt(monkeypatch, tmp_path):
    target = _predicted(monkeypatch, tmp_path)
    _gradient(monkeypatch, tmp_path / "other", "x*y + sin(x)")
    [other] = (tmp_path / "other" / "c").glob("*.so")
    cache = tmp_path / "cache"
    _plant(cache, target.name, other.read_bytes())  # a whole library of x*y + sin(x): (2.5403..., 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the user's own file: rebuilt silently
        assert _gradient(monkeypatch, cache) == pytest.approx(RIGHT, rel=1e-15)
    assert _gradient(monkeypatch, cache) == pytest.approx(RIGHT, rel=1e-15)  # the rebuilt file, loaded


@needs_compiler
@pytest.mark.parametrize("damage", ["truncated", "empty", "text", "foreign"])
def test_a_damaged_or_foreign_library_is_rebuilt_not_used(monkeypatch, tmp_path, damage):
    target = _predicted(monkeypatch, tmp_path)
    cache = tmp_path / "cache"
    if damage == "truncated":  # cut after it was written: loading it would die of SIGBUS
        planted = _plant(cache, target.name, target.read_bytes()[:600], recorded=target.read_bytes())
    elif damage == "foreign":  # loads, has the functions, lacks the digest
        foreign = "void symdiff_grad(const double *x, double *g) { g[0] = g[1] = x[0]; }\n"
        planted = _plant(cache, target.name, _compile_library(tmp_path, foreign).read_bytes())
    else:  # recorded as they are: dlopen refuses them
        planted = _plant(cache, target.name, {"empty": b"", "text": b"not a library\n"}[damage])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _gradient(monkeypatch, cache) == pytest.approx(RIGHT, rel=1e-15)
    assert planted.read_bytes() == target.read_bytes()  # the same build, now in place


@needs_compiler
@pytest.mark.parametrize(
    "weakness", ["file of another user", "file writable by others", "folder writable by others", "root of another user"]
)
def test_a_library_someone_else_could_have_written_is_never_loaded(monkeypatch, tmp_path, weakness):
    target = _predicted(monkeypatch, tmp_path)
    marker = tmp_path / "constructor-ran"
    cache = tmp_path / "cache"
    planted = _plant(cache, target.name, _planted_library(tmp_path, marker).read_bytes())
    if weakness == "file of another user":
        os.chown(planted, OTHER_USER, OTHER_USER)
    elif weakness == "file writable by others":
        planted.chmod(0o666)
    elif weakness == "folder writable by others":
        (cache / "c").chmod(0o777)
    else:
        os.chown(cache, OTHER_USER, OTHER_USER)
    with pytest.warns(CacheWarning) as caught:
        monkeypatch.setenv("SYMDIFF_CACHE", str(cache))
        gradient = symdiff.compile_grad(TEXT, backend="c")
        assert gradient(*POINT) == pytest.approx(RIGHT, rel=1e-15)
        assert gradient.value(*POINT) == 2.0 + math.cos(1.0)  # a second library: no second warning
    assert not marker.exists()
    assert [str(warning.message) for warning in caught if warning.category is CacheWarning] == [str(caught[0].message)]
    if weakness.startswith("file"):  # the user's own folder: the file is replaced by a good build
        assert planted.read_bytes() == target.read_bytes()
        assert planted.stat().st_uid == os.geteuid() and _mode(planted) == 0o700
    else:  # a folder someone else may write: nothing in it is read or written
        assert sorted(path.name for path in (cache / "c").iterdir()) == [target.name, f"{target.name}.sha256"]


class _Plant:
    """Unpickling it creates the file `marker` (as a planted pickle could run any code)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


_PARSE_BOTH = (
    "from symdiff.core.parse import parse, parse_program; from symdiff.core.printing import expression_text; "
    "print(expression_text(parse('x1*x2 + sin(x1)'))); print(len(parse_program('a = x1*x2; a + 1').definitions))"
)


def _parse_in_a_new_process(cache: Path):
    env = {**os.environ, "SYMDIFF_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-c", _PARSE_BOTH], capture_output=True, text=True, env=env, timeout=120)
    return done.returncode, done.stdout.splitlines(), done.stderr


@pytest.mark.parametrize(
    "weakness",
    ["file of another user", "file writable by others", "folder writable by others", "root writable by others"],
)
def test_parser_tables_someone_else_could_have_written_are_never_unpickled(tmp_path, weakness):
    cache, marker = tmp_path / "cache", tmp_path / "unpickled"
    assert _parse_in_a_new_process(cache) == (0, ["x1 * x2 + sin(x1)", "1"], "")
    tables = sorted((cache / "lark").iterdir())
    assert len(tables) == 2 and all(_mode(path) == 0o600 for path in tables)
    planted = tables[0]
    planted.write_bytes(b"0" * 64 + b"\n" + pickle.dumps(_Plant(str(marker))))
    if weakness == "file of another user":
        os.chown(planted, OTHER_USER, OTHER_USER)
    elif weakness == "file writable by others":
        planted.chmod(0o666)
    elif weakness == "folder writable by others":
        (cache / "lark").chmod(0o777)
    else:
        cache.chmod(0o777)
    code, printed, errors = _parse_in_a_new_process(cache)
    assert (code, printed) == (0, ["x1 * x2 + sin(x1)", "1"]) and not marker.exists()
    reason = f"belongs to user {OTHER_USER}" if weakness == "file of another user" else "is writable by others"
    assert errors.count("CacheWarning") == 1 and reason in errors
    if weakness.startswith("file"):  # removed and written anew, as the user's own
        assert planted.stat().st_uid == os.geteuid() and _mode(planted) == 0o600


@needs_compiler
def test_folders_symdiff_creates_are_private_and_so_are_its_files(tmp_path):
    cache = tmp_path / "made" / "by" / "symdiff"
    script = _PARSE_BOTH + "; import symdiff; print(symdiff.compile_grad('x*y', backend='c')(2.0, 3.0))"
    env = {**os.environ, "SYMDIFF_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert (done.returncode, done.stdout.split()[-2:], done.stderr) == (0, ["(3.0,", "2.0)"], "")
    folders = [tmp_path / "made", tmp_path / "made" / "by", cache, cache / "c", cache / "lark"]
    assert [_mode(folder) for folder in folders] == [0o700] * 5
    files = [*(cache / "c").iterdir(), *(cache / "lark").iterdir()]
    assert len(files) == 4 and all(_mode(path) & 0o077 == 0 for path in files)


# --- item 13: a cache that cannot be used only costs time ---------------------------------------


def _file_at_root(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("a file where the cache folder would go")
    return tmp_path / "file"


def _dangling_link(tmp_path: Path) -> Path:
    (tmp_path / "link").symlink_to(tmp_path / "missing" / "cache")
    return tmp_path / "link"


def _file_at_c(tmp_path: Path) -> Path:
    (tmp_path / "cache").mkdir(mode=0o700)
    (tmp_path / "cache" / "c").write_text("a file where the C folder would go")
    return tmp_path / "cache"


@needs_compiler
@pytest.mark.parametrize("blocked", [_file_at_root, _dangling_link, _file_at_c])
def test_an_unusable_cache_builds_in_a_private_folder(monkeypatch, tmp_path, blocked):
    cache = blocked(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing unsafe happened: no warning
        assert _gradient(monkeypatch, cache) == pytest.approx(RIGHT, rel=1e-15)
    assert not (tmp_path / "missing").exists()
    folder = resources.private_folder()
    assert folder.stat().st_uid == os.geteuid() and _mode(folder) == 0o700


@needs_compiler
def test_the_private_folder_is_removed_when_the_process_ends(tmp_path):
    script = (
        "import symdiff; from symdiff import resources; g = symdiff.compile_grad('x*y', backend='c'); "
        "print(g(2.0, 3.0)); print(resources.private_folder()); print(len(list(resources.private_folder().iterdir())))"
    )
    env = {**os.environ, "SYMDIFF_CACHE": str(_file_at_root(tmp_path))}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    result, folder, count = done.stdout.splitlines()
    assert result == "(3.0, 2.0)" and int(count) >= 1 and not Path(folder).exists()


# --- item 12: every name is renamed where C reserves it -----------------------------------------

# `for` is not here: it is a keyword of symdiff's own grammar (sum(... for i in range(n))).
C_NAMES = """auto break case char const continue default do double else enum extern float goto inline
    int long register restrict return short signed sizeof static struct switch typedef union unsigned void
    volatile while _Bool _Complex _Imaginary _Alignas _Alignof _Atomic _Generic _Noreturn _Static_assert
    _Thread_local alignas alignof bool constexpr false nullptr static_assert thread_local true typeof asm
    M_PI M_E M_PIl M_SQRT2f NAN INFINITY HUGE_VAL HUGE_VALF FP_NAN FP_ZERO MAXFLOAT isnan isinf signbit
    fpclassify math_errhandling errno NULL fabs copysign
    linux unix i386 __LINE__ __FILE__ __STDC__ __STDC_VERSION__ __GNUC__ __x86_64__ __attribute__
    __restrict _Pragma _OPENMP _X __ _
    x n k value grad start end carry x_ n_ v_Bool w1 x_bar
    symdiff_f symdiff_grad symdiff_value_and_grad symdiff_f_at symdiff_grad_at symdiff_grad_batch
    symdiff_value_and_grad_batch symdiff_f_at_part1 symdiff_library_digest SYMDIFF_H SYMDIFF_RESTRICT
    SYMDIFF_OPENMP_SIMD""".split()
AS_INPUTS = " + ".join(f"{number}*{name}*{name}" for number, name in enumerate(C_NAMES, 1))
AS_DEFINITIONS = (
    "\n".join(f"{name} = p*{number} + q" for number, name in enumerate(C_NAMES, 1))
    + "\n"
    + (" + ".join(f"{name}*{name}" for name in C_NAMES))
)


def _standalone(tmp_path: Path, text: str, flags: tuple[str, ...] = ()) -> None:
    source, header = c_backend.render_c(build(text).adjoint, "names", "names.h")
    (tmp_path / "names.c").write_text(source)
    (tmp_path / "names.h").write_text(header)
    for mode in ("-std=c99", "-std=gnu99"):  # GNU mode defines linux and unix
        command = [*c_backend.find_compiler(), mode, "-Wall", "-Wextra", "-Werror", *flags, "-c", "names.c"]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]


@needs_compiler
@pytest.mark.parametrize("text", [AS_INPUTS, AS_DEFINITIONS], ids=["inputs", "definitions"])
def test_names_c_reserves_compile_and_give_the_python_numbers(tmp_path, text):
    _standalone(tmp_path, text)
    reference, gradient = symdiff.compile_grad(text), symdiff.compile_grad(text, backend="c")
    point = [0.5 + 0.01 * i for i in range(len(reference.inputs))]
    assert gradient(*point) == pytest.approx(reference(*point), rel=1e-14)
    assert gradient.value(*point) == pytest.approx(reference.value(*point), rel=1e-14)
    assert [row[0] for row in gradient.batch([[value] for value in point])] == pytest.approx(
        reference(*point), rel=1e-14
    )


def test_renamed_names_are_predictable():
    names = c_backend.c_names(build("int*_Bool + __LINE__*x + symdiff_grad_at*v_Bool").adjoint.tape, ())
    assert names.params == {
        "int": "int_",
        "_Bool": "v_Bool_",  # v_Bool is another input's
        "__LINE__": "v__LINE__",
        "x": "x",  # the generated code's own x becomes x_
        "symdiff_grad_at": "symdiff_grad_at_",
        "v_Bool": "v_Bool",
    }
    definitions = c_backend.c_names(build("int = x*2; n = int + 1; int*n").adjoint.tape, ())
    assert "int" not in definitions.values and "n" in definitions.values  # int labels nothing, as lambda in Python
    source = c_backend.render_c(build("int = x*2; n = int + 1; int*n").adjoint)[0]
    assert "long n_" in source and "const double n = " in source


# --- item 14: clean with and without OpenMP, and a header C++ can use ---------------------------

PROGRAMS = ["x", "2", "x*y + sin(x)*z", "exp(sin(x)*y) / (1 + x^2) + atan2(y, x) + z*x^3"]


@needs_compiler
@pytest.mark.parametrize("flags", [(), ("-fopenmp",), ("-fopenmp-simd",)], ids=["plain", "openmp", "openmp-simd"])
@pytest.mark.parametrize("cut", [False, True], ids=["loops", "parts"])
def test_generated_c_compiles_with_every_warning_as_an_error(monkeypatch, tmp_path, flags, cut):
    if cut:  # point bodies cut into static parts, batches as loops of points
        monkeypatch.setattr(c_backend, "PART_LINES", 3)
        monkeypatch.setattr(c_backend, "SIMD_LINES", 3)
    for text in PROGRAMS:
        _standalone(tmp_path, text, flags)


def _cpp_compiler() -> str | None:
    return next(filter(None, map(shutil.which, ("g++", "clang++", "c++"))), None)


@needs_compiler
@pytest.mark.skipif(_cpp_compiler() is None, reason="no C++ compiler (g++, clang++ or c++)")
def test_the_header_serves_cpp(tmp_path):
    text = "x*y + sin(x)*z"
    source, header = c_backend.render_c(build(text).adjoint, "mine", "mine.h")
    (tmp_path / "mine.c").write_text(source)
    (tmp_path / "mine.h").write_text(header)
    (tmp_path / "main.cpp").write_text(
        '#include <cstdio>\n#include "mine.h"\n'
        "int main() { const double x[3] = {1.0, 2.0, 3.0}; double g[3];\n"
        '    const double value = mine_value_and_grad(x, g); std::printf("%.17g %.17g %.17g %.17g\\n", value, g[0], g[1], g[2]); }\n'
    )
    compiler = _cpp_compiler()
    strict = ["-Wall", "-Wextra", "-Werror", "-pedantic"]
    for command in (
        [compiler, *strict, "-fsyntax-only", "main.cpp"],
        [*c_backend.find_compiler(), "-std=c99", *strict, "-c", "mine.c"],
        [compiler, *strict, "-o", "main", "main.cpp", "mine.o", "-lm"],  # links only with extern "C"
        [str(tmp_path / "main")],
    ):
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    reference = symdiff.compile_grad(text)
    printed = [float(word) for word in done.stdout.split()]
    assert printed == pytest.approx([reference.value(1.0, 2.0, 3.0), *reference(1.0, 2.0, 3.0)], rel=1e-15)


# --- item 15: $CC is honoured, arguments and all, or refused ------------------------------------


@needs_compiler
def test_cc_with_arguments_is_split_like_a_shell_and_used(monkeypatch, tmp_path):
    tools = tmp_path / "my tools"  # a space in the path, quoted in $CC
    tools.mkdir()
    log = tmp_path / "calls.log"
    wrapper = tools / "logging-cc"  # as ccache: a program that runs the compiler it is given
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", shlex.join([str(wrapper), c_backend.find_compiler()[0]]) + " -DSYMDIFF_PROBE=1")
    assert _gradient(monkeypatch, tmp_path / "cache") == pytest.approx(RIGHT, rel=1e-15)
    calls = log.read_text().splitlines()
    assert calls and all("-DSYMDIFF_PROBE=1" in call for call in calls)


@pytest.mark.parametrize(
    ("cc", "named"),
    [("/nonexistent/gcc-42", "'/nonexistent/gcc-42'"), ("gcc; touch pwned", "'gcc;'"), ("'gcc", "cannot read $CC")],
)
def test_cc_naming_no_compiler_is_a_compiler_error(monkeypatch, tmp_path, cc, named):
    monkeypatch.setenv("CC", cc)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CompilerError) as caught:
        symdiff.compile_grad(TEXT, backend="c")
    assert named in str(caught.value) and not (tmp_path / "pwned").exists()
