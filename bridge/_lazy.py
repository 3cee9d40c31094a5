"""Package faces that import nothing until a name is asked for (PEP 562)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["lazy_attribute"]


def lazy_attribute(package: str, exports: dict[str, str], name: str) -> Any:
    """``package``'s attribute ``name``, imported from the module ``exports`` names.

    For a package's ``__getattr__``: the value is then set on the package, so the
    next lookup is a plain attribute.
    """
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, package), name)
    setattr(sys.modules[package], name, value)
    return value
