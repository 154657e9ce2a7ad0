"""Every example in the README and in docs/*.md runs and shows what it claims."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from support import HAVE_COMPILER

import symdiff

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(kind, document=README):
    if not document.exists():
        pytest.skip(f"{document.name} is not beside the tests (installed without the repository)")
    return [body for language, body in BLOCK.findall(document.read_text()) if language == kind]


def run_python(body, document):
    if 'backend="c"' in body and not HAVE_COMPILER and os.environ.get("CI") != "true":
        return  # the C backend's example needs a compiler (on CI a missing one fails)
    if body.startswith('"""Value and gradient of f = '):
        expression = body.split("\n", 1)[0].removeprefix('"""Value and gradient of f = ')
        assert body == symdiff.gradient_source(expression), f"{document.name}'s generated module is out of date"
    exec(compile(body, document.name, "exec"), {"__name__": "readme_example"})


def run_console(body):
    for command in re.split(r"^(?=\$ )", body, flags=re.M):
        if not command.strip():
            continue
        first, _, expected = command.partition("\n")
        result = subprocess.run(symdiff_command(first.removeprefix("$ ")), capture_output=True, text=True)
        assert result.stdout + result.stderr == expected, first


def symdiff_command(line):
    words = shlex.split(line)
    assert words[0] == "symdiff", line
    return [sys.executable, "-m", "symdiff", *words[1:]]


def test_python_examples_run():
    examples = blocks("python")
    assert len(examples) >= 3
    for body in examples:
        run_python(body, README)


def test_console_examples_print_what_they_show():
    examples = blocks("console")
    assert len(examples) >= 3
    for body in examples:
        run_console(body)


def test_readme_fits_on_a_few_screens():
    assert len(README.read_text().splitlines()) <= 300


@pytest.mark.parametrize("document", DOCS, ids=lambda path: path.name)
def test_docs_examples_run(document):
    examples = blocks("python", document) + blocks("console", document)
    for body in blocks("python", document):
        run_python(body, document)
    for body in blocks("console", document):
        run_console(body)
    assert examples or document.name in PROSE_ONLY, f"{document.name} has no example to run"


# Documents that are tables and prose, with no example to run.
PROSE_ONLY = {"performance.md", "reliability.md"}


def test_setup_command_runs_the_main_job(tmp_path):
    (main_job,) = [body for body in blocks("sh") if body.startswith("pip install . && ")]
    for part in main_job.strip().removeprefix("pip install . && ").split(" && "):
        result = subprocess.run(symdiff_command(part), capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, (part, result.stderr)
    assert (tmp_path / "textbook_grad.py").read_text() == symdiff.gradient_source("x1*x2 + sin(x1)")


def test_function_table_lists_every_user_function():
    from symdiff.core import primitives

    text = README.read_text() if README.exists() else pytest.skip("no README")
    table = text.split("| function | meaning | partial derivatives |")[1].split("\n\n")[0]
    listed = set(re.findall(r"`(\w+)\(", table))
    assert listed == set(primitives.user_functions())
