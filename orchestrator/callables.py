"""Loading the Python callables flows name (`module.path:function`).

A flow file may only reach code in modules the configuration allows
(`BATON_PYTHON_MODULES`, default `examples`): a flow author can wire up the agents and
actions the team installed, but cannot make Baton import anything else. The flows folder
is searched first, so a team keeps its agents next to its flows.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_import_lock = threading.Lock()


class CallableError(ValueError):
    pass


class CallableLoader:
    def __init__(self, allowed: Sequence[str], search_path: Path | None = None) -> None:
        self.allowed = tuple(m.strip() for m in allowed if m.strip())
        self.search_path = search_path
        self._cache: dict[str, Callable[..., Any]] = {}

    def is_allowed(self, module: str) -> bool:
        return any(a == "*" or module == a or module.startswith(a + ".") for a in self.allowed)

    def load(self, dotted: str) -> Callable[..., Any]:
        found = self._cache.get(dotted)
        if found is not None:
            return found
        module_name, _, attr = dotted.partition(":")
        if not self.is_allowed(module_name):
            raise CallableError(
                f"module {module_name!r} is not allowed; allowed modules: "
                + (", ".join(self.allowed) or "none")
                + " (set BATON_PYTHON_MODULES to allow more)")
        with _import_lock:
            added = False
            if self.search_path is not None and str(self.search_path) not in sys.path:
                sys.path.insert(0, str(self.search_path))
                added = True
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise CallableError(f"cannot import {module_name!r}: {exc}") from None
            except Exception as exc:  # the module itself is broken
                raise CallableError(
                    f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
            finally:
                if added:
                    sys.path.remove(str(self.search_path))
        target = getattr(module, attr, None)
        if target is None:
            raise CallableError(f"{module_name!r} has no {attr!r}")
        if not callable(target):
            raise CallableError(f"{dotted!r} is not callable")
        owner = getattr(target, "__module__", None)
        if not isinstance(owner, str) or not self.is_allowed(owner):
            # e.g. `from subprocess import run` inside an allowed module: not its own code
            raise CallableError(f"{dotted!r} comes from module {owner!r}, which is not allowed; "
                                "flows may only call functions defined in allowed modules")
        self._cache[dotted] = target
        return target
