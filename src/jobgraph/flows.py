"""Registered flows: named functions that build a scheduler from parameters.

``@jg.flow("nightly-build")`` on a function returning a :class:`Scheduler` registers it;
a server finds flows in the modules it is given and through the ``jobgraph.flows`` entry
point group, and clients submit them by name with JSON parameters, checked against the
function's signature before anything runs.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
ENTRY_POINTS = "jobgraph.flows"
_registry: dict[str, Callable[..., Any]] = {}
_SIMPLE = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


class FlowError(ValueError):
    """An unknown flow, or parameters it does not take (a 400 for a server)."""


def flow(name: str) -> Callable[[F], F]:
    """Register the decorated function as the flow ``name`` (it returns a Scheduler)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a flow name must be a non-empty string, not {name!r}")

    def register(fn: F) -> F:
        known = _registry.get(name)
        if known is not None and known is not fn and _where(known) != _where(fn):
            raise ValueError(f"flow {name!r} is already registered by {_where(known)}")
        _registry[name] = fn
        return fn

    return register


def load(modules: Iterable[str] = (), entry_point_group: str = ENTRY_POINTS) -> list[str]:
    """Import ``modules`` and the entry points' modules; return the names of all flows."""
    for module in modules:
        importlib.import_module(module)
    for entry in entry_points(group=entry_point_group):
        entry.load()
    return sorted(_registry)


def describe() -> list[dict[str, Any]]:
    """Each flow with its parameters (name, required, default, type), for clients."""
    return [{"name": name, "params": _params(fn)} for name, fn in sorted(_registry.items())]


def build(name: str, params: Mapping[str, Any] | None) -> Any:
    """Call flow ``name`` with ``params``; :class:`FlowError` says what is wrong."""
    from .scheduler import Scheduler

    fn = _registry.get(name)
    if fn is None:
        known = ", ".join(sorted(_registry)) or "none"
        raise FlowError(f"no flow named {name!r} (registered: {known})")
    params = dict(params or {})
    check_params(name, fn, params)
    scheduler = fn(**params)
    if not isinstance(scheduler, Scheduler):
        raise TypeError(f"flow {name!r} returned {scheduler!r}, not a Scheduler")
    return scheduler


def check_params(name: str, fn: Callable[..., Any], params: Mapping[str, Any]) -> None:
    """The parameters bind to the signature, with the annotated simple types."""
    signature = inspect.signature(fn)
    try:
        signature.bind(**params)
    except TypeError as exc:
        raise FlowError(f"flow {name!r}: {exc}") from None
    hints = _hints(fn)
    for key, value in params.items():
        wanted = _SIMPLE.get(hints.get(key))  # type: ignore[arg-type]
        ok = wanted is None or (isinstance(value, wanted) and not _bool_for_number(value, wanted))
        if not ok:
            kind = hints[key].__name__
            raise FlowError(f"flow {name!r}: parameter {key!r} must be {kind}, not {value!r}")


def _bool_for_number(value: Any, wanted: tuple[type, ...]) -> bool:
    return isinstance(value, bool) and bool not in wanted


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return dict(inspect.get_annotations(fn, eval_str=True))
    except Exception:  # an annotation that does not evaluate: no type checks
        return {}


def _params(fn: Callable[..., Any]) -> list[dict[str, Any]]:
    hints = _hints(fn)
    found = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(param.name)
        found.append(
            {
                "name": param.name,
                "required": param.default is param.empty,
                "default": None if param.default is param.empty else param.default,
                "type": hint.__name__ if hint in _SIMPLE else None,
            }
        )
    return found


def _where(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"
