"""Fingerprints of cached jobs, and the reasons a job would run.

A fingerprint is a SHA-256 over the job's *parts*: its name, its code, its arguments,
a digest of each requirement's result, the contents of its input files and the values
of its declared environment variables. The parts are kept with each success, so that a
later run can say which of them changed (``explain``) and can skip hashing an input file
whose size and modification time are unchanged.

Everything hashed is encoded canonically (sorted keys, sorted sets, explicit types), so a
fingerprint is the same in every process and under every ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import glob
import hashlib
import inspect
import json
import operator
import os
import pathlib
import pickle
import stat
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .job import CORO_FUNCTION, FUNCTION, SHELL, Job

Parts = dict[str, Any]


class Undigestable(Exception):
    """A value has no canonical encoding (its digest would not be stable)."""


# -- canonical encoding ---------------------------------------------------------------


_SIMPLE = frozenset({str, int, float, bool, type(None)})


def _encode(value: Any, out: list[bytes]) -> None:
    """Append a canonical, typed encoding of ``value`` to ``out``."""
    kind = type(value)
    if (kind is tuple or kind is list) and all(type(v) in _SIMPLE for v in value):
        # Fast path for the usual arguments: the repr of these types is canonical.
        out.append(f"{kind.__name__}:{value!r};".encode())
    elif value is None or isinstance(value, (bool, int, float, complex)):
        out.append(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, str):
        out.append(b"str:%d:" % len(value.encode()) + value.encode() + b";")
    elif isinstance(value, (bytes, bytearray)):
        out.append(b"bytes:%d:" % len(value) + bytes(value) + b";")
    elif isinstance(value, (list, tuple)):
        out.append(f"{type(value).__name__}:{len(value)}[".encode())
        for item in value:
            _encode(item, out)
        out.append(b"]")
    elif isinstance(value, (set, frozenset)):
        _encode_sorted(type(value).__name__, ([item] for item in value), out)
    elif isinstance(value, Mapping):
        _encode_sorted("dict", ([k, v] for k, v in value.items()), out)
    else:
        _encode_object(value, out)


def _encode_sorted(kind: str, entries: Iterable[list[Any]], out: list[bytes]) -> None:
    encoded = []
    for entry in entries:
        part: list[bytes] = []
        for item in entry:
            _encode(item, part)
        encoded.append(b"".join(part))
    out.append(f"{kind}:{len(encoded)}{{".encode())
    out.extend(sorted(encoded))
    out.append(b"}")


def _encode_object(value: Any, out: list[bytes]) -> None:
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if isinstance(value, enum.Enum):
        out.append(f"enum:{kind}.{value.name};".encode())
    elif isinstance(value, pathlib.PurePath):
        out.append(f"path:{value.as_posix()};".encode())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        out.append(f"dataclass:{kind}(".encode())
        _encode({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, out)
        out.append(b")")
    elif hasattr(value, "__slots__") and type(value).__name__ == "ShellResult":
        _encode([value.returncode, value.stdout, value.stderr], out)
    elif isinstance(value, functools.partial):
        out.append(b"partial(")
        _encode([code_of(value.func), value.args, value.keywords], out)
        out.append(b")")
    elif callable(value) and hasattr(value, "__qualname__"):
        out.append(f"callable:{value.__module__}.{value.__qualname__};".encode())
    else:
        # Last resort: pickle, which is deterministic for plain objects of one version.
        try:
            out.append(f"pickle:{kind}:".encode() + pickle.dumps(value, protocol=4) + b";")
        except Exception as exc:
            raise Undigestable(f"{kind} cannot be encoded: {exc}") from exc


def digest(value: Any) -> str:
    """A stable SHA-256 of ``value``; raises :class:`Undigestable` when there is none."""
    out: list[bytes] = []
    _encode(value, out)
    return hashlib.sha256(b"".join(out)).hexdigest()


def digest_portably(value: Any) -> tuple[str | None, bool]:
    """:func:`try_digest` of ``value``, and whether that digest is the same everywhere.

    That is, in every process and after a pickle round trip. It is not when some object
    in it has no canonical encoding but its pickle, which may follow the hash seed (a set
    inside an object) or change in a round trip. (Conservative: a string holding that
    encoding's tag counts as such an object.) A value with no digest counts as portable:
    what requires it never has a stamp.
    """
    out: list[bytes] = []
    try:
        _encode(value, out)
    except (Undigestable, RecursionError):
        return None, True
    encoded = b"".join(out)
    return hashlib.sha256(encoded).hexdigest(), b"pickle:" not in encoded


def portable(value: Any) -> bool:
    """Whether ``value`` digests the same everywhere (see :func:`digest_portably`)."""
    return digest_portably(value)[1]


def try_digest(value: Any) -> str | None:
    """Like :func:`digest`, or None when the value cannot be digested."""
    try:
        return digest(value)
    except Undigestable:
        return None
    except RecursionError:
        return None


# -- the parts of a fingerprint -------------------------------------------------------


def code_of(fn: Any) -> str:
    """A job's code: the qualified name and source of a function (or its bytecode)."""
    target = inspect.unwrap(fn) if callable(fn) else fn
    if isinstance(target, functools.partial):
        return f"partial({code_of(target.func)})"
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):
        source = ""
    code = getattr(target, "__code__", None)
    # The bytecode too: two lambdas on one line share their source line.
    compiled = _code_text(code) if code is not None else repr(type(target))
    return f"{name}\n{source}\n{compiled}"


def _code_text(code: Any) -> str:
    """Bytecode and constants, nested code objects included (no addresses)."""
    # Constants through the canonical digest: a frozenset's repr depends on the hash seed.
    consts = [
        _code_text(c) if inspect.iscode(c) else (try_digest(c) or repr(type(c)))
        for c in code.co_consts
    ]
    return str(code.co_code.hex()) + "|" + "|".join(consts)


def _job_code(job: Job) -> str:
    if job._kind == SHELL:
        shell: Any = job
        env = json.dumps(shell.env or {}, sort_keys=True)
        text = f"shell:{shell.command_line}\ncwd={shell.cwd}\nenv={env}"
        return hashlib.sha256(text.encode()).hexdigest()
    fn = job._fn
    if inspect.iscoroutine(fn):
        return f"coroutine:{fn.__qualname__}\n{fn.cr_code.co_code.hex()}"
    try:
        return _code_digest(fn)
    except TypeError:  # an unhashable callable object
        return hashlib.sha256(code_of(fn).encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _code_digest(fn: Any) -> str:
    """``code_of`` hashed, once per function object (thousands of jobs share one)."""
    return hashlib.sha256(code_of(fn).encode()).hexdigest()


def _stamp_code(job: Job) -> str:
    """The code part of a job's stamp: :func:`_job_code`, or a cheaper stand-in for it.

    A function read from a source file stands for its code by that file's size, mtime
    and ctime, its place in it and its bytecode. On the trust the stamp already places in
    input files (a file whose times and size did not change did not change), equal
    stand-ins mean equal code digests, and no source is read (``inspect.getsource``
    tokenizes it: milliseconds, in every fresh process). The ctime, which no copy or
    ``touch`` can set, tells a file rewritten with its old size and mtime (``cp -p``,
    an archive); where a stand-in differs, the fingerprint, which reads the source, decides.
    """
    if job._kind in _USUAL_KINDS:
        try:
            key = _code_key(job._fn)
        except TypeError:  # an unhashable callable object
            key = None
        if key is not None:
            return key
    return _job_code(job)


@functools.lru_cache(maxsize=4096)
def _code_key(fn: Any) -> str | None:
    """A function's code by its source file's size and times (see :func:`_stamp_code`).

    None for anything else (a partial, a callable object, code from no file, or from a
    file named relatively, which another working folder would not find).
    """
    target = inspect.unwrap(fn)
    code = getattr(target, "__code__", None)
    if code is None or isinstance(target, functools.partial):
        return None
    file = code.co_filename
    if not os.path.isabs(file):
        return None
    try:
        info = os.stat(file)
    except OSError:
        return None
    if info.st_mode & _FILE_TYPE != _REGULAR:
        return None
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
    where = f"{file}={info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{code.co_firstlineno}"
    text = f"file-key1\n{name}\n{where}\n{_code_text(code)}"
    return hashlib.sha256(text.encode()).hexdigest()


def _plain_arguments(job: Job) -> str | None:
    """The canonical text of the usual arguments (positional, of plain types), else None.

    It is the same text :func:`_encode` gives ``[args, {}]``, made in one step.
    """
    fn = job._fn
    # Not for a coroutine object (its arguments are in its frame) nor a partial (its bound
    # arguments count too).
    if job._kwargs or type(fn) is functools.partial or isinstance(fn, types.CoroutineType):
        return None
    if all([type(a) in _SIMPLE for a in job._args]):
        return f"list:2[tuple:{job._args!r};dict:0{{}}]"
    return None


def _arguments(job: Job) -> str | None:
    """Digest of the arguments, jobs standing for themselves.

    A job's result counts through the requirement digests instead.
    """
    text = _plain_arguments(job)
    if text is not None:
        return hashlib.sha256(text.encode()).hexdigest()
    return _other_arguments(job)


def _other_arguments(job: Job) -> str | None:
    """:func:`_arguments` of a job whose arguments have no plain text."""

    def strip(value: Any) -> Any:
        if isinstance(value, Job):
            return ("<job>", value.name)
        if isinstance(value, (list, tuple)):
            return type(value)(strip(v) for v in value)
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        return value

    fn = job._fn
    if isinstance(fn, types.CoroutineType):
        return None  # a coroutine object's arguments are hidden in its frame
    bound = [fn.args, fn.keywords] if isinstance(fn, functools.partial) else []
    if not job._data_deps:
        return try_digest([job._args, dict(job._kwargs), *bound])
    return try_digest([strip(job._args), strip(dict(job._kwargs)), *bound])


def expand(patterns: Iterable[str], cwd: str | None = None) -> list[str]:
    """File paths matching ``patterns`` (globs), sorted; a plain path is kept as given."""
    if (
        type(patterns) is tuple
        and len(patterns) == 1
        and cwd is None
        and not glob.has_magic(patterns[0])
    ):
        return [patterns[0]]  # the usual case: one plain path
    found: set[str] = set()
    for pattern in patterns:
        base = os.path.join(cwd, pattern) if cwd and not os.path.isabs(pattern) else pattern
        if glob.has_magic(base):
            found.update(glob.glob(base, recursive=True))
        else:
            found.add(base)
    return sorted(found)


def _file_stat(path: str) -> list[Any]:
    """``[size, mtime_ns, None]`` of a regular file (its hash to come); all None otherwise.

    A folder or a special file has no content to hash: it counts as missing.
    """
    try:
        info = os.stat(path)
    except OSError:
        return [None, None, None]
    if info.st_mode & _FILE_TYPE != _REGULAR:
        return [None, None, None]
    return [info.st_size, info.st_mtime_ns, None]


_FILE_TYPE, _REGULAR = stat.S_IFMT(0o177777), stat.S_IFREG  # S_ISREG, without a call


def _stat_inputs(job: Job) -> dict[str, list[Any]]:
    """``{path: [size, mtime_ns, None]}`` of the job's input files (see :func:`_file_stat`)."""
    paths = expand(job.inputs, getattr(job, "cwd", None))
    if len(paths) == 1:  # the usual case, without a comprehension's frame
        return {paths[0]: _file_stat(paths[0])}
    return {p: _file_stat(p) for p in paths}


def _hash_file(path: str) -> str | None:
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(functools.partial(f.read, 1 << 20), b""):
                sha.update(block)
    except OSError:  # unreadable: its content cannot be known
        return None
    return sha.hexdigest()


def material_of(job: Job) -> tuple[str | None, dict[str, list[Any]]]:
    """The job's stamp material, and its input files as ``{path: [size, mtime_ns, None]}``.

    The material is what the stamp covers but the requirements' results, as one text:
    its name, code, arguments, input files by size and mtime (no file is read) and
    declared environment variables. None when some part cannot be known (the fingerprint
    cannot be either). A whole-graph stamp (``graphstamp.py``) is made of these texts.
    """
    inputs = _stat_inputs(job)
    # The plain arguments' text needs no hashing; other arguments give their digest (never
    # like the text), or None: then there is no stamp.
    args = _plain_arguments(job) or _other_arguments(job)
    if args is None:
        return None, inputs
    fields = [_MATERIAL, job.name, _stamp_code(job), args]
    for path, (size, mtime, _) in inputs.items():  # sorted by expand()
        if size is None:
            return None, inputs
        fields.append(f"{path}={size}:{mtime}")
    if job.env_keys:
        for key in sorted(job.env_keys):
            fields.append(f"{key}={os.environ.get(key)}")
    return "\x00".join(fields), inputs


def materials_of(jobs: Sequence[Job], names: Sequence[str] | None = None) -> list[str | None]:
    """The stamp material of each job (see :func:`material_of`), the usual jobs' in one loop.

    The usual job (a function of positional arguments of plain types, with at most one
    input file named without a pattern, and no environment keys) has its material made
    here, the same text :func:`material_of` makes, without its calls and with no record
    of its files kept: a whole graph's materials are made at every rerun. Any other job
    goes through :func:`material_of`. ``names``: the jobs' names, when known already.
    """
    made: list[str | None] = []
    append, stat_, simple = made.append, os.stat, _SIMPLE
    codes: dict[Any, str] = {}  # by function: most jobs of a graph share a few
    for job, name in zip(jobs, names if names is not None else map(_NAME, jobs), strict=True):
        args, paths, fn = job._args, job.inputs, job._fn
        if (
            job._kind not in _USUAL_KINDS
            or job._kwargs
            or job.env_keys
            or type(fn) is functools.partial
            or len(paths) > 1
            or (paths and ("*" in paths[0] or "?" in paths[0] or "[" in paths[0]))  # globs
        ):
            append(material_of(job)[0])
            continue
        for arg in args:
            if type(arg) not in simple:
                append(material_of(job)[0])
                break
        else:
            try:
                code = codes.get(fn)
                if code is None:
                    code = codes[fn] = _stamp_code(job)
            except TypeError:
                append(material_of(job)[0])  # an unhashable callable
                continue
            if not paths:
                append(f"{_MATERIAL}\x00{name}\x00{code}\x00list:2[tuple:{args!r};dict:0{{}}]")
                continue
            path = paths[0]
            try:
                info = stat_(path)
            except OSError:
                append(None)  # missing: no stamp
                continue
            if info.st_mode & _FILE_TYPE != _REGULAR:
                append(None)  # a folder or a special file counts as missing
                continue
            append(
                f"{_MATERIAL}\x00{name}\x00{code}\x00list:2[tuple:{args!r};dict:0{{}}]"
                f"\x00{path}={info.st_size}:{info.st_mtime_ns}"
            )
    return made


_NAME = operator.attrgetter("name")
_USUAL_KINDS = frozenset({FUNCTION, CORO_FUNCTION})
_MATERIAL = "stamp3"  # the material's first field: a new version matches no older stamp


def stamp_with(material: str | None, requirement_digests: Mapping[str, str | None]) -> str | None:
    """The stamp of a job of this ``material`` (see :func:`material_of`) and requirements.

    The stamp is a digest of everything the fingerprint covers, input files taken by size
    and mtime. Equal stamps mean equal fingerprints, on the trust the fingerprint's own
    fast path makes (a file whose size and mtime are unchanged has unchanged content), so
    an unchanged job is known to be up to date without hashing a file or reading its
    stored parts. None when some part cannot be known.
    """
    if material is None:
        return None
    text = material
    if requirement_digests:
        fields = [material]
        for name, value in sorted(requirement_digests.items()):
            if value is None:
                return None
            fields.append(f"{name}={value}")
        text = "\x01".join(fields)  # a separator apart from the material's own
    return hashlib.sha256(text.encode()).hexdigest()


def stamp_of(
    job: Job, requirement_digests: Mapping[str, str | None]
) -> tuple[str | None, dict[str, list[Any]]]:
    """The job's stamp (see :func:`stamp_with`), and its input files (as :func:`material_of`)."""
    material, inputs = material_of(job)
    return stamp_with(material, requirement_digests), inputs


def sealed(stamp: str, fingerprint: str) -> str:
    """The stamp as a success keeps it: bound to that success's fingerprint.

    A success rewritten without a stamp (by an older jobgraph sharing the store) keeps the
    column's old value; bound to the old fingerprint, it matches nothing any more.
    """
    return stamp[:32] + fingerprint[:32]  # two 128-bit halves


def stat_parts(
    job: Job,
    requirement_digests: Mapping[str, str | None],
    inputs: dict[str, list[Any]] | None = None,
) -> Parts:
    """A job's parts with its input files stat'ed (or as ``inputs`` has them), not hashed."""
    if inputs is None:
        inputs = _stat_inputs(job)
    return {
        "name": job.name,
        "code": _job_code(job),
        "args": _arguments(job),
        "requires": dict(sorted(requirement_digests.items())),
        "inputs": inputs,
        "env": {key: os.environ.get(key) for key in sorted(job.env_keys)},
    }


def hash_inputs(parts: Parts, previous: Parts | None) -> Parts:
    """Fill in the input hashes of ``parts`` (from :func:`stat_parts`), in place.

    The hash of the previous parts is reused when a file's size and mtime agree.
    """
    old_inputs = (previous or {}).get("inputs") or {}
    for path, entry in parts["inputs"].items():
        if entry[0] is None:
            continue
        known = old_inputs.get(path)
        if known and known[0] == entry[0] and known[1] == entry[1]:
            entry[2] = known[2]
        else:
            entry[2] = _hash_file(path)
    return parts


def parts_of(
    job: Job, requirement_digests: Mapping[str, str | None], previous: Parts | None
) -> Parts:
    """Everything a job's fingerprint covers, as JSON-ready data."""
    return hash_inputs(stat_parts(job, requirement_digests), previous)


def fingerprint(parts: Parts) -> str | None:
    """The fingerprint of ``parts``, or None when some part cannot be known (always run)."""
    if parts["args"] is None or any(d is None for d in parts["requires"].values()):
        return None
    if any(v[2] is None for v in parts["inputs"].values()):
        return None  # an input that cannot be read: the job must run
    # A plain canonical text (cheaper than JSON with sorted keys, and just as stable).
    fields = [parts["name"], parts["code"], parts["args"]]
    fields += [f"{k}={v}" for k, v in parts["requires"].items()]  # already sorted
    fields += [f"{p}={v[2]}" for p, v in parts["inputs"].items()]  # sorted by expand()
    fields += [f"{k}={v}" for k, v in parts["env"].items()]  # sorted keys
    return hashlib.sha256("\x00".join(map(str, fields)).encode()).hexdigest()


def missing_outputs(job: Job) -> list[str]:
    """Declared outputs that do not exist (a glob that matches nothing counts as missing)."""
    cwd = getattr(job, "cwd", None)
    missing = []
    for pattern in job.outputs:
        base = os.path.join(cwd, pattern) if cwd and not os.path.isabs(pattern) else pattern
        present = (
            glob.glob(base, recursive=True)
            if glob.has_magic(base)
            else ([base] if os.path.exists(base) else [])
        )
        if not present:
            missing.append(pattern)
    return missing


def is_cached(job: Job) -> bool:
    """True for jobs that may be skipped when unchanged."""
    return bool(job.cache or job.inputs or job.outputs)


def differences(now: Parts, before: Parts | None) -> list[str]:
    """Why ``now`` differs from ``before``, in words (empty when they agree)."""
    if before is None:
        return ["never ran"]
    reasons = []
    if now["code"] != before.get("code"):
        reasons.append("code changed")
    if now["args"] is None:
        reasons.append("arguments cannot be digested")
    elif now["args"] != before.get("args"):
        reasons.append("argument changed")
    for name, value in now["requires"].items():
        if value is None:
            reasons.append(f"requirement {name!r} has a result that cannot be digested")
        elif before.get("requires", {}).get(name) != value:
            reasons.append(f"requirement {name!r} result changed")
    old_inputs = before.get("inputs", {})
    for path, value in now["inputs"].items():
        old = old_inputs.get(path)
        if value[2] is None:
            reasons.append(f"input {path} missing")
        elif old is None or old[2] != value[2]:
            reasons.append(f"input {path} changed")
    for path in old_inputs:
        if path not in now["inputs"]:
            reasons.append(f"input {path} no longer matched")
    old_env = before.get("env", {})
    for key, value in now["env"].items():
        if key not in old_env or old_env[key] != value:
            reasons.append(f"environment variable {key} changed")
    return reasons
