"""The command line against hostile surroundings (issue 19, items 2-6 and 16): output names that would
inject C, standard streams that are full, closed or undecodable, files that are links or long, and
values that make no sense. Each case gets one message and exit status 2, and nothing half-written."""

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

import symdiff
from symdiff import files
from symdiff.cli import main
from symdiff.files import generated_by_symdiff

FULL = "error: cannot write to standard output: No space left on device\n"
# Long enough that its header quotes more than the first 2,048 bytes symdiff used to look at.
LONG = " + ".join(f"sin(x{i})" for i in range(300))
PROGRAM = "\n".join(f"u{i} = sin(x{i})" for i in range(300)) + "\n" + " + ".join(f"u{i}" for i in range(300))


def run(*args, stdin=None, stdout=subprocess.PIPE, unbuffered=True, preexec_fn=None, cwd=None):
    """symdiff as its own process; PYTHONUNBUFFERED changes how Python writes standard output."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    env.update(LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8", **({"PYTHONUNBUFFERED": "1"} if unbuffered else {}))
    return subprocess.run([sys.executable, "-m", "symdiff", *args], input=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, env=env, preexec_fn=preexec_fn, cwd=cwd)


def errors(result) -> str:
    return result.stderr.decode("utf-8")


# --- item 2: the -o name of --lang c goes into an #include line --------------------------------------

@pytest.mark.parametrize(
    ("name", "message"),
    [
        ('a"b.c', "error: --lang c: 'a\"b.c' cannot go into an #include line; name the file with letters, digits "
                  "and _ . + - only, starting with a letter, digit or _\n"),
        ("x\n__attribute__((constructor)) void f(void) {}\n.c",
         "error: --lang c: 'x\\n__attribute__((constructor)) void f(void) {}\\n.c' cannot go into an #include line; "
         "name the file with letters, digits and _ . + - only, starting with a letter, digit or _\n"),
        ("-grad.c", "error: --lang c: '-grad.c' cannot go into an #include line; name the file with letters, digits "
                    "and _ . + - only, starting with a letter, digit or _\n"),
        ("a b.c", "error: --lang c: 'a b.c' cannot go into an #include line; name the file with letters, digits "
                  "and _ . + - only, starting with a letter, digit or _\n"),
        ("x.h", "error: --lang c: the output file name must end in .c (its header is NAME.h), got 'x.h'\n"),
        ("grad", "error: --lang c: the output file name must end in .c (its header is NAME.h), got 'grad'\n"),
        ("grad.C", "error: --lang c: the output file name must end in .c (its header is NAME.h), got 'grad.C'\n"),
    ],
)
def test_c_file_names_that_cannot_be_included_safely_are_refused(tmp_path, capsys, name, message):
    assert main(["grad", "x^2", "--lang", "c", "-o", str(tmp_path / name)]) == 2
    assert capsys.readouterr() == ("", message)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_may_have_any_name_and_odd_safe_names_are_included_as_is(tmp_path, capsys):
    folder = tmp_path / 'my "odd" folder'
    folder.mkdir()
    assert main(["grad", "x^2", "--lang", "c", "-o", str(folder / "v1.2+x-y.c")]) == 0
    source = (folder / "v1.2+x-y.c").read_text()
    assert '#include "v1.2+x-y.h"\n' in source
    assert "double v1_2_x_y_value_and_grad(" in (folder / "v1.2+x-y.h").read_text()


def test_the_header_and_the_source_are_never_the_same_file(tmp_path, capsys):
    source, header = tmp_path / "grad.c", tmp_path / "grad.h"
    header.symlink_to("grad.c")
    assert main(["grad", "x^2", "--lang", "c", "-o", str(source)]) == 2
    assert capsys.readouterr().err == f"error: {header} and {source} are the same file\n"
    assert header.is_symlink() and not source.exists()


# --- item 3: standard output is flushed and checked --------------------------------------------------

COMMANDS = {
    "grad": ["grad", "x1*x2 + sin(x1)"],
    "grad --lang c": ["grad", "x1*x2 + sin(x1)", "--lang", "c"],
    "check": ["check", "x1*x2 + sin(x1)"],
    "eval": ["eval", "x1*x2 + sin(x1)", "--at", "x1=2,x2=3"],
    "explain": ["explain", "x1*x2 + sin(x1)", "--at", "x1=2,x2=3"],
    "graph": ["graph", "x1*x2 + sin(x1)"],
    "--version": ["--version"],
}


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_full_standard_output_is_one_message_and_exit_2(command, unbuffered):
    with open("/dev/full", "wb") as full:
        result = run(*COMMANDS[command], stdout=full, unbuffered=unbuffered)
    assert (result.returncode, errors(result)) == (2, FULL)


def test_a_full_standard_output_in_process(capsys, monkeypatch):
    with open("/dev/full", "w", encoding="utf-8") as full:
        monkeypatch.setattr(sys, "stdout", full)
        assert main(["eval", "x^2", "--at", "x=3"]) == 2
    assert capsys.readouterr().err == FULL


def test_a_short_write_is_not_success(tmp_path):
    """A file size limit stops the module part way, as a full disk does: the old code exited 0 with
    the first 100 KiB of the module when Python's standard output was unbuffered."""
    expression = " + ".join(f"sin(x{i})" for i in range(3000))
    with open(tmp_path / "grad.py", "wb") as output:
        result = run("grad", expression, stdout=output,
                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, 100 * 1024)))
    assert (result.returncode, errors(result)) == (2, "error: cannot write to standard output: File too large\n")


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
def test_a_closed_pipe_is_one_message_and_exit_2(unbuffered):
    reading, writing = os.pipe()
    os.close(reading)  # nobody will ever read: the first write fails with EPIPE
    try:
        result = run("grad", "x^2", stdout=writing, unbuffered=unbuffered)
    finally:
        os.close(writing)
    assert (result.returncode, errors(result)) == (2, "error: cannot write to standard output: Broken pipe\n")


def test_a_closed_standard_output_is_one_message_and_exit_2():
    result = run("eval", "x^2", "--at", "x=3", stdout=None, preexec_fn=lambda: os.close(1))
    assert (result.returncode, errors(result)) == (2, "error: cannot write to standard output: Bad file descriptor\n")


def test_a_closed_standard_output_does_not_stop_writing_a_file(tmp_path):
    result = run("grad", "x^2", "-o", str(tmp_path / "g.py"), stdout=None, preexec_fn=lambda: os.close(1))
    assert (result.returncode, errors(result)) == (0, "")
    assert (tmp_path / "g.py").read_text() == symdiff.gradient_source("x^2")


# --- item 4: a .c and its .h are written both or neither ---------------------------------------------

def test_a_foreign_source_file_leaves_no_new_header_behind(tmp_path, capsys):
    source = tmp_path / "grad.c"
    source.write_text("int main(void) { return 0; }\n")
    assert main(["grad", "x^2", "--lang", "c", "-o", str(source)]) == 2
    assert capsys.readouterr().err == f"error: {source} exists and was not generated by symdiff; use --force to replace it\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["grad.c"]
    assert source.read_text() == "int main(void) { return 0; }\n"


@pytest.mark.parametrize("existed", [True, False], ids=["replacing", "new"])
def test_a_failed_second_rename_puts_the_first_file_back(tmp_path, capsys, monkeypatch, existed):
    source, header = tmp_path / "grad.c", tmp_path / "grad.h"
    if existed:
        assert main(["grad", "x^2", "--lang", "c", "-o", str(source)]) == 0
    before = {path.name: path.read_text() for path in tmp_path.iterdir()}
    replace = os.replace

    def replace_all_but_the_source(temporary, target):
        if str(target).endswith(".c"):
            raise OSError(28, "No space left on device")
        replace(temporary, target)

    monkeypatch.setattr(os, "replace", replace_all_but_the_source)
    assert main(["grad", "x^3", "--lang", "c", "-o", str(source)]) == 2
    assert capsys.readouterr().err == f"error: cannot write {source}: No space left on device\n"
    assert {path.name: path.read_text() for path in tmp_path.iterdir()} == before
    assert header.exists() == existed


def test_write_all_checks_every_target_before_writing_any(tmp_path):
    (tmp_path / "b.txt").write_text("mine\n")
    with pytest.raises(symdiff.SymdiffError, match="b.txt exists and was not generated by symdiff"):
        files.write_all([(tmp_path / "a.txt", "new\n"), (tmp_path / "b.txt", "new\n")])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b.txt"]


# --- item 5: symdiff's own files are recognised whatever their length ---------------------------------

@pytest.mark.parametrize(
    ("expression", "lang", "name"),
    [(LONG, "python", "g.py"), (PROGRAM, "python", "g.py"), (LONG, "numpy", "g.py"), (LONG, "c", "g.c")],
    ids=["python", "python program", "numpy", "c"],
)
def test_a_long_expression_can_be_written_twice(tmp_path, capsys, expression, lang, name):
    target = tmp_path / name
    for _ in range(2):
        assert main(["grad", expression, "--lang", lang, "-o", str(target)]) == 0, capsys.readouterr().err
    assert generated_by_symdiff(target)


def test_a_foreign_file_with_a_long_first_line_is_still_foreign(tmp_path):
    foreign = tmp_path / "notes.py"
    foreign.write_text(f'"""{"x" * 100_000}\n\n    indented\n\nwritten by hand; Generated by symdiff is quoted later\n"""\n')
    assert not generated_by_symdiff(foreign)
    foreign.write_text(f'"""{"x" * 100_000}\n\n    indented\n\nGenerated by symdiff 0.1.0. Do not edit.\n"""\n')
    assert generated_by_symdiff(foreign)


# --- item 6: -o onto a symbolic link writes the link's target and keeps the link ----------------------

def test_a_link_is_followed_and_kept(tmp_path, capsys):
    (tmp_path / "real").mkdir()
    link = tmp_path / "grad.py"
    link.symlink_to(Path("real") / "g.py")  # dangling: the first write creates the target
    for expression in ("x^2", "x^3"):
        assert main(["grad", expression, "-o", str(link)]) == 0, capsys.readouterr().err
        assert link.is_symlink() and os.readlink(link) == os.path.join("real", "g.py")
        assert (tmp_path / "real" / "g.py").read_text() == symdiff.gradient_source(expression)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["grad.py", "real"]
    assert sorted(path.name for path in (tmp_path / "real").iterdir()) == ["g.py"]


def test_a_link_to_a_foreign_file_is_refused(tmp_path, capsys):
    (tmp_path / "mine.py").write_text("# mine\n")
    link = tmp_path / "grad.py"
    link.symlink_to("mine.py")
    assert main(["grad", "x^2", "-o", str(link)]) == 2
    assert capsys.readouterr().err == f"error: {link} exists and was not generated by symdiff; use --force to replace it\n"
    assert link.is_symlink() and (tmp_path / "mine.py").read_text() == "# mine\n"


def test_a_link_loop_is_refused(tmp_path, capsys):
    (tmp_path / "a.py").symlink_to("b.py")
    (tmp_path / "b.py").symlink_to("a.py")
    assert main(["grad", "x^2", "-o", str(tmp_path / "a.py")]) == 2
    assert capsys.readouterr().err == f"error: cannot write {tmp_path / 'a.py'}: Too many levels of symbolic links\n"


# --- item 16: standard input, points and timeouts ------------------------------------------------------

def test_a_closed_standard_input_is_one_message_and_exit_2():
    result = run("grad", "-", preexec_fn=lambda: os.close(0))
    assert (result.returncode, errors(result)) == (2, "error: cannot read standard input: Bad file descriptor\n")
    assert result.stdout == b""


@pytest.mark.parametrize("strict", [True, False], ids=["PYTHONIOENCODING", "locale"])
def test_undecodable_standard_input_is_one_message_and_exit_2(strict):
    env = {"PYTHONIOENCODING": "utf-8"} if strict else {}
    result = subprocess.run([sys.executable, "-m", "symdiff", "grad", "-"], input=b"x\xff^2", capture_output=True,
                            env={**{k: v for k, v in os.environ.items() if k != "PYTHONIOENCODING"},
                                 "LC_ALL": "C.UTF-8", **env})
    assert result.returncode == 2
    assert errors(result) == "error: standard input is not utf-8 text: byte 0xff at offset 1\n"


def test_standard_input_in_process(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    assert main(["grad", "-"]) == 2
    assert capsys.readouterr().err == "error: cannot read standard input: Bad file descriptor\n"


@pytest.mark.parametrize("command", ["eval", "explain", "graph"])
@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("x=1,x=2", "error: --at: x given twice\n"),
        ("x=1, x =2", "error: --at: x given twice\n"),
        ("x=1e999", "error: --at: x=1e999 is not a finite number\n"),
        ("x=-inf", "error: --at: x=-inf is not a finite number\n"),
        ("x=nan", "error: --at: x=nan is not a finite number\n"),
        ("x=-" + "9" * 400, "error: --at: x=-1.000000e+400 is not a finite number\n"),
    ],
)
def test_every_command_refuses_the_same_points(capsys, command, at, message):
    assert main([command, "x^2", "--at", at]) == 2
    assert capsys.readouterr() == ("", message)


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf", "-inf", "soon"])
def test_a_timeout_is_a_positive_finite_number_of_seconds(capsys, timeout):
    with pytest.raises(SystemExit) as done:
        main(["check", "x^2", f"--timeout={timeout}"])
    assert done.value.code == 2
    assert capsys.readouterr().err.endswith(
        f"error: argument --timeout: must be a positive finite number of seconds, got {timeout!r}\n"
    )


def test_long_numbers_are_shortened_in_messages(capsys):
    assert main(["explain", "log(x)", "--at", "x=-" + "9" * 300]) == 2
    assert capsys.readouterr().err == (
        "error: 1:1: log(-1e+300) has no real value at this point (math domain error)\n  log(x)\n  ^^^^^^\n"
    )


def test_a_long_name_with_digits_is_not_a_number(capsys):
    name = "x" + "1" * 30
    assert main(["eval", f"{name}^2", "--at", "y=1"]) == 2
    assert capsys.readouterr().err == f"error: --at: y not in the expression (inputs: {name})\n"
