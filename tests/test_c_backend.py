"""The C backend's batch loops: tiles of points (a partial last tile, one point, batches on either
side of the threading threshold) give the same bits as single points; big programs build cheaply:
point bodies cut into parts give the bits of whole ones, and only what is called is compiled."""

from __future__ import annotations

import subprocess

import pytest
from support import needs_compiler

import symdiff
from symdiff.api import build
from symdiff.codegen import c as c_backend

try:
    import numpy
except ImportError:  # the test extra does not need NumPy
    numpy = None

needs_numpy = pytest.mark.skipif(numpy is None, reason="NumPy is not installed")


pytestmark = pytest.mark.usefixtures("private_c_cache")


@pytest.fixture(scope="module")
def gradient():
    return symdiff.compile_grad("exp(sin(x)*y) / (1 + x^2) + atan2(y, x) + z*x^3", backend="c")


SIZES = (1, 2, c_backend.TILE - 1, c_backend.TILE, c_backend.TILE + 1, 3 * c_backend.TILE + 7)
SIZES += (c_backend.PARALLEL_FROM - 1, c_backend.PARALLEL_FROM, c_backend.PARALLEL_FROM + 1)


@needs_compiler
@needs_numpy
@pytest.mark.parametrize("n", SIZES)
def test_every_tile_gives_the_bits_of_single_points(gradient, n):
    points = numpy.random.default_rng(n).uniform(0.2, 2.0, (3, n))
    values, grads = gradient.batch(points, value=True, grad=True)
    assert (gradient.batch(points) == grads).all() and (gradient.batch(points, value=True, grad=False) == values).all()
    for k in sorted({0, n // 2, n - 1, min(n - 1, c_backend.TILE - 1), min(n - 1, c_backend.TILE)}):
        assert tuple(grads[:, k]) == gradient(*points[:, k]), k
        assert values[k] == gradient.value(*points[:, k]), k


@needs_compiler
@needs_numpy
@pytest.mark.parametrize("n", (c_backend.TILE + 3, c_backend.PARALLEL_FROM + 1))
def test_a_batch_writes_every_point_of_a_partial_last_tile(gradient, n):
    out = numpy.full((3, n), numpy.nan), numpy.full((3, n), numpy.nan)
    values = numpy.full(n, numpy.nan)
    points = numpy.random.default_rng(5).uniform(0.2, 2.0, (3, n))
    gradient.batch(points, out=out[0])
    gradient.batch(points, value=True, grad=True, out=(values, out[1]))
    assert not numpy.isnan(out[0]).any() and not numpy.isnan(values).any() and (out[0] == out[1]).all()


def test_the_loops_tile_points_and_keep_simd_inside():
    source = c_backend.render_c(build("x*y + sin(x)*start + end").adjoint)[0]
    assert f"#pragma omp parallel for schedule(guided) if (n >= {c_backend.PARALLEL_FROM})" in source
    assert f"for (long start_ = 0; start_ < n; start_ += {c_backend.TILE}) {{" in source  # `start` is an input
    assert "#pragma omp simd\n#endif\n        for (long k = start_; k < end_; ++k) {" in source


def test_each_gradient_entry_is_computed_and_stored_before_the_next_is_started():
    source = c_backend.render_c(build("100*(y - x^2)^2 + (1 - x)^2 + 100*(z - y^2)^2 + (1 - y)^2").adjoint)[0]
    grad = source[source.index("void symdiff_grad_batch") :]
    assert grad.index("grad[k] = x_bar;") < grad.index("const double z = ") < grad.index("grad[2 * n + k] = z_bar;")


def test_statements_are_scheduled_on_demand_unless_a_read_would_see_a_later_update():
    Stmt = c_backend.Stmt
    a, b = Stmt("a", "=", "x"), Stmt("b", "=", "y")
    store_b, store_a = Stmt("", "=", "b", reads=("b",), target="out[0]"), Stmt("", "=", "a", reads=("a",), target="out[1]")
    # Each store just after what it reads: b is computed when its store needs it, not before a.
    assert c_backend._scheduled((a, b, store_b, store_a)) == (b, store_b, a, store_a)
    # c reads a before a += 1; on demand, store_a would pull a's update before c: the order is kept.
    c, late = Stmt("c", "=", "a", reads=("a",)), Stmt("a", "+=", "1.0")
    store_c = Stmt("", "=", "c", reads=("c",), target="out[2]")
    program = (a, c, late, store_a, store_c)
    assert c_backend._scheduled(program) == program


@needs_compiler
@needs_numpy
def test_long_programs_batch_through_the_point_function_with_cheap_flags_and_the_same_bits(monkeypatch):
    text = "exp(sin(x)*y) / (1 + x^2) + atan2(y, x) + z*x^3"
    fast = symdiff.compile_grad(text, backend="c")
    monkeypatch.setattr(c_backend, "SIMD_LINES", 3)
    cheap = symdiff.compile_grad(text, backend="c")
    assert "#pragma omp simd" not in cheap.source and "#pragma omp simd" in fast.source
    assert "symdiff_grad_at(n, x_ + k, grad + k);" in cheap.source  # z and x are inputs
    assert c_backend.library_flags(c_backend.library_module(cheap._module, "symdiff_grad")) == c_backend.LARGE_FLAGS
    points = numpy.random.default_rng(9).uniform(0.2, 2.0, (3, c_backend.PARALLEL_FROM + 5))
    values, grads = cheap.batch(points, value=True, grad=True)
    assert (grads == fast.batch(points)).all() and (values == fast.batch(points, value=True, grad=False)).all()
    assert cheap(0.5, 1.5, 2.5) == fast(0.5, 1.5, 2.5)
    assert cheap.value_and_grad(0.5, 1.5, 2.5) == fast.value_and_grad(0.5, 1.5, 2.5)


# Long enough to cut at a few lines a part; sin(x_i) is read far from where it is computed.
CUT = " + ".join(f"100*(x{i + 1} - x{i}^2)^2 + sin(x{i})*x{i + 2}" for i in range(1, 9)) + " + sin(x1)*cos(x9)"


@needs_compiler
@needs_numpy
@pytest.mark.parametrize("part_lines", (1, 7, 40))
def test_a_point_body_cut_into_parts_gives_the_bits_of_the_whole_one_and_the_python_numbers(monkeypatch, part_lines):
    whole = symdiff.compile_grad(CUT, backend="c")
    monkeypatch.setattr(c_backend, "PART_LINES", part_lines)
    monkeypatch.setattr(c_backend, "SIMD_LINES", 3)  # the batch calls the cut point function too
    cut = symdiff.compile_grad(CUT, backend="c")
    grad_at = next(point for point in cut._module.points if point.name == "symdiff_grad_at")
    assert len(grad_at.parts) > 1 and "carry[" in cut.source and "static void symdiff_grad_at_part2(" in cut.source
    assert not any(point.parts for point in whole._module.points)
    reference = symdiff.compile_grad(CUT)
    points = numpy.random.default_rng(part_lines).uniform(0.2, 2.0, (len(reference.inputs), 37))
    values, grads = cut.batch(points, value=True, grad=True)
    assert (grads == whole.batch(points)).all() and (values == whole.batch(points, value=True, grad=False)).all()
    for k in (0, 17, 36):
        point = points[:, k]
        assert cut(*point) == whole(*point) == tuple(grads[:, k])
        assert cut.value(*point) == whole.value(*point) == values[k]
        assert cut.value_and_grad(*point) == whole.value_and_grad(*point)
        assert cut(*point) == pytest.approx(reference(*point), rel=1e-13)


def test_a_cut_stores_each_carried_value_after_its_last_update_and_loads_it_before_its_first_use(monkeypatch):
    monkeypatch.setattr(c_backend, "PART_LINES", 5)
    module = c_backend.c_module(build(CUT).adjoint)
    for point in module.points:
        assert len(point.parts) > 2
        values = {line.target.split()[-1] for part in point.parts for line in part.lines if " " in line.target}
        stored: dict[str, int] = {}
        for number, part in enumerate(point.parts):
            declared: set[str] = set()
            for position, line in enumerate(part.lines):
                read = set(c_backend.IDENTIFIER.findall(line.rhs)) & values
                assert read <= declared, (point.name, number, line)  # each part defines what it reads first
                if line.target.startswith("carry["):
                    stored[line.target] = number
                    assert all(other.target.split()[-1] != line.rhs for other in part.lines[position + 1 :])
                elif line.rhs.startswith("carry["):
                    assert stored[line.rhs] < number  # a value of an earlier part
                if line.target.startswith(("const double ", "double ")):
                    declared.add(line.target.split()[-1])


def test_a_body_stays_whole_if_a_part_would_update_an_earlier_parts_adjoint(monkeypatch):
    monkeypatch.setattr(c_backend, "PART_LINES", 2)
    Stmt = c_backend.Stmt
    body = (Stmt("a", "=", "x"), Stmt("b", "=", "a", reads=("a",)), Stmt("c", "=", "b", reads=("b",)))
    assert c_backend._pieces(body, "carry")[1] != (body,)  # cut before c
    late = (*body, Stmt("a", "+=", "1.0", reads=("a",)))  # updates a, homed in the first part
    assert c_backend._pieces(late, "carry") == (0, (late,))
    cut = next(point for point in c_backend.c_module(build("sin(x*y) + x").adjoint).points if point.name == "symdiff_grad_at")
    assert cut.parts  # a program the core builds is cut


def test_a_body_stays_whole_if_it_would_carry_too_many_values(monkeypatch):
    monkeypatch.setattr(c_backend, "PART_LINES", 2)
    monkeypatch.setattr(c_backend, "POINT_CARRY_SLOTS", 1)
    assert not any(point.parts for point in c_backend.c_module(build(CUT).adjoint).points)


@needs_compiler
def test_a_cut_source_is_standalone_c99(monkeypatch, tmp_path):
    monkeypatch.setattr(c_backend, "PART_LINES", 3)
    monkeypatch.setattr(c_backend, "SIMD_LINES", 3)
    source, header = c_backend.render_c(build(CUT).adjoint, "cut", "cut.h")
    (tmp_path / "cut.c").write_text(source)
    (tmp_path / "cut.h").write_text(header)
    compiler = c_backend.find_compiler()
    command = [*compiler, "-std=c99", "-pedantic", "-Wall", "-Werror", "-fopenmp-simd", "-c", "cut.c"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@needs_compiler
@needs_numpy
def test_only_what_is_called_is_compiled_and_each_library_serves_its_wrappers(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMDIFF_CACHE", str(tmp_path))
    libraries = lambda: sorted(path.name for path in tmp_path.rglob("*.so"))  # noqa: E731
    gradient = symdiff.compile_grad("x*y + sin(x)*z", backend="c")
    assert libraries() == []
    assert gradient(1.0, 2.0, 3.0) == pytest.approx((2.0 + 3.0 * numpy.cos(1.0), 1.0, numpy.sin(1.0)), rel=1e-15)
    assert len(libraries()) == 1
    gradient.grad_array(numpy.array([1.0, 2.0, 3.0]))
    assert len(libraries()) == 1  # the same function
    gradient.batch(numpy.ones((3, 5)))
    gradient.value(1.0, 2.0, 3.0)
    assert len(libraries()) == 3
    again = symdiff.compile_grad("x*y + sin(x)*z", backend="c")
    again(1.0, 2.0, 3.0)
    assert len(libraries()) == 3  # cached by source: a second build only loads


def test_a_library_module_holds_its_function_what_it_calls_and_their_wrappers(monkeypatch):
    short = c_backend.c_module(build("x*y").adjoint)
    batch = c_backend.library_module(short, "symdiff_grad_batch")
    assert [loop.name for loop in batch.loops] == ["symdiff_grad_batch"] and not batch.points and not batch.wrappers
    monkeypatch.setattr(c_backend, "SIMD_LINES", 3)
    module = c_backend.c_module(build(CUT).adjoint, shared_sweep_lines=3)  # value_and_grad: f, then grad
    grad = c_backend.library_module(module, "symdiff_grad")
    assert [point.name for point in grad.points] == ["symdiff_grad_at"] and not grad.loops
    assert [wrapper.name for wrapper in grad.wrappers] == ["symdiff_grad", "symdiff_grad_batch"]
    both = c_backend.library_module(module, "symdiff_value_and_grad_batch")
    assert [point.name for point in both.points] == ["symdiff_f_at", "symdiff_grad_at"]
    assert {wrapper.name for wrapper in both.wrappers} == {wrapper.name for wrapper in module.wrappers}


@needs_compiler
@needs_numpy
@pytest.mark.parametrize("n", (1, c_backend.TILE + 1, c_backend.PARALLEL_FROM + 3))
def test_a_body_cut_into_loops_gives_the_bits_of_single_points(n):
    text = " + ".join(f"100*(x{i + 1} - x{i}^2)^2 + sin(x{i})*x{i + 2}" for i in range(1, 21))
    gradient = symdiff.compile_grad(text, backend="c")
    grad_loop = gradient.source[gradient.source.index("void symdiff_grad_batch") :].split("\n}\n")[0]
    assert grad_loop.count("#pragma omp simd") == 3 and "carry[" in grad_loop  # 22 rows, 8 a loop
    points = numpy.random.default_rng(n).uniform(0.2, 2.0, (22, n))
    values, grads = gradient.batch(points, value=True, grad=True)
    assert (gradient.batch(points) == grads).all()
    for k in sorted({0, n // 2, n - 1}):
        assert tuple(grads[:, k]) == gradient(*points[:, k])
        assert values[k] == gradient.value(*points[:, k])


@needs_compiler
def test_grad_array_takes_lists_and_arrays_and_refuses_a_wrong_length(gradient):
    import array

    from symdiff.errors import ArgumentError

    point = [0.5, 1.5, 2.5]
    assert tuple(gradient.grad_array(point)) == tuple(gradient.grad_array(array.array("d", point))) == gradient(*point)
    for bad in ([1.0, 2.0], [1.0, 2.0, 3.0, 4.0], ["a", "b", "c"]):
        with pytest.raises(ArgumentError):
            gradient.grad_array(bad)
