"""The one module that knows where the grammar, the templates and the user's cache live, and when
the cache may be read.

In a wheel the grammar and templates are package data (symdiff/grammars, symdiff/templates); in a
source checkout they are the top-level grammars/ and templates/ folders beside the package. The
cache ($SYMDIFF_CACHE, else $XDG_CACHE_HOME/symdiff or ~/.cache/symdiff) holds compiled C
libraries and the parser's tables. Invariant: nothing is read from it unless the cache root, the
folder of its kind and the file are owned by the current user and writable by nobody else (as
OpenSSH's StrictModes treats the files it trusts); folders symdiff creates are 0700.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import tempfile
import warnings
from functools import cache
from pathlib import Path

import jinja2

from .errors import CacheWarning

_PACKAGE = Path(__file__).resolve().parent


@cache
def resource_dir(kind: str) -> Path:
    """The folder holding `kind` ("grammars" or "templates")."""
    for candidate in (_PACKAGE / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"symdiff is installed without its {kind}/ folder")


def grammar_text(name: str) -> str:
    return (resource_dir("grammars") / name).read_text(encoding="utf-8")


@cache
def templates() -> jinja2.Environment:
    """The one Jinja environment every template is rendered with (shared between threads once built)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def templates_dir() -> Path:
    return resource_dir("templates")


def cache_root() -> Path:
    base = os.environ.get("SYMDIFF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "symdiff"
    )
    return Path(base)


def trusted_cache(kind: str) -> Path | None:
    """cache_root()/kind (its real path), created 0700 with any missing parents, when symdiff may
    read it: the cache root and this folder are directories owned by the current user that no one
    else can write. None where the folder cannot be made (a read-only home, a file or a dangling
    link in the way: that only costs time, so silently) or cannot be trusted (a CacheWarning, once)."""
    root = cache_root()
    folder = root / kind
    try:
        _make_private_folders(folder)
    except OSError:
        return None
    for path in (root, folder):
        real = Path(os.path.realpath(path))
        try:
            problem = _distrust(real, os.lstat(real), stat.S_ISDIR)
        except OSError:
            return None
        if problem:
            warn_once(f"symdiff does not use its cache {folder}: {problem}; it works without it")
            return None
    return Path(os.path.realpath(folder))


def trusted_file(path: Path) -> bool:
    """Whether symdiff may read `path`, a file in a trusted_cache() folder: a regular file (not a
    link) owned by the current user that no one else can write. One that exists but fails the rule
    is removed (the folder is the user's own), with a CacheWarning once, so that it is rebuilt."""
    try:
        problem = _distrust(path, os.lstat(path), stat.S_ISREG)
    except OSError:
        return False
    if problem:
        warn_once(f"symdiff did not read a file of its cache in {path.parent}: {problem}; it is rebuilt")
        try:
            path.unlink()
        except OSError:
            pass
    return not problem


def make_private(path: Path) -> None:
    """Make a file symdiff wrote itself (through a library that honours the umask) readable and
    writable by its owner only, so that a later process trusts it."""
    try:
        if os.lstat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:
        pass


@cache
def private_folder() -> Path:
    """A 0700 folder of this process's own, removed when it exits: where the cache cannot be used."""
    folder = Path(tempfile.mkdtemp(prefix="symdiff-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@cache
def warn_once(message: str) -> None:
    """A CacheWarning, at most once per process for each message (attributed to "symdiff", not to a
    line of symdiff's that would be printed with it)."""
    warnings.warn_explicit(message, CacheWarning, "symdiff", 0, module="symdiff")


def _make_private_folders(folder: Path) -> None:
    """Create `folder` and its missing parents with mode 0700 (Path.mkdir gives parents 0777 - umask)."""
    missing = []
    for path in (folder, *folder.parents):
        if os.path.isdir(path):
            break
        missing.append(path)
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not os.path.isdir(path):  # a file or a dangling link where the folder would go
                raise


def _distrust(path: Path, info: os.stat_result, kind) -> str | None:
    """Why `path` (with lstat `info`) may not be read, or None if it may."""
    if not kind(info.st_mode):
        return f"{path} is not a {'folder' if kind is stat.S_ISDIR else 'regular file'}"
    if os.name != "posix":  # no owners and modes to compare (Windows)
        return None
    user = os.geteuid()
    if info.st_uid != user:
        return f"{path} belongs to user {info.st_uid}, not to you ({user})"
    if info.st_mode & 0o022:
        return f"{path} is writable by others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None
