"""Issue 19, items 1 and 12-15: symdiff reads nothing from its cache that someone else could have
written, uses a cached C library only if it carries its own digest, works where the cache cannot be
used, and writes C that compiles cleanly (names C reserves, with or without OpenMP, the header
from C++) with the compiler $CC names, arguments and all. Every planted file lives in a tmp_path
cache ($SYMDIFF_CACHE), never the user's; the tests run as root, so "someone else" is uid 65534."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("private_c_cache")

OTHER_USER = 65534  # nobody


def _mode(path: Path) -> int:
    return path.lstat().st_mode & 0o777


# --- item 1: nothing is read from a cache someone else could write; a library carries its digest ---


class _Plant:
    """Unpickling it creates the file `marker` (as a planted pickle could run any code)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


_PARSE_BOTH = (
    "from symdiff.parse import parse, parse_program; from symdiff.printing import expression_text; "
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
