"""Optional dependencies: a feature that needs a package the base install does not bring says which extra to
install, instead of a ModuleNotFoundError from deep inside a library."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import UserError


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Imports `module`, or raises UserError naming `feature` and `pip install 'opencodegen[extra]'`."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module and not (e.name or "").startswith(f"{module}."):
            raise  # the package is there but broken: its own error says more
        raise UserError(f"{feature} needs the Python package {module!r}, which is not installed: "
                        f"pip install 'opencodegen[{extra}]'") from None
