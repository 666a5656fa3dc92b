"""The pip extra of neurosim that brings each optional dependency, for the one line the command
line prints when a command needs a package that is not installed (neurosim.cli.app.main):

    neurosim: error: train: needs the 'torch' package, which is not installed here; install it with: pip install 'neurosim[train]'

instead of an ImportError traceback. Extras (pyproject.toml): train (torch, scikit-learn),
mapping (nir, Brian2), fast (numba), gpu (CuPy), peers (snnTorch, nirtorch).
"""
from __future__ import annotations

from typing import Optional

# top-level module name -> extra that installs it
EXTRAS = {
    "torch": "train", "sklearn": "train",
    "nir": "mapping", "brian2": "mapping",
    "numba": "fast", "llvmlite": "fast",
    "cupy": "gpu", "cupyx": "gpu", "cupy_backends": "gpu",
    "snntorch": "peers", "nirtorch": "peers",
}


def failed_import(exc: BaseException) -> Optional[ImportError]:
    """The ImportError of an optional module (a key of EXTRAS) in the chain of `exc` (itself,
    its cause or context, e.g. an ImportError re-raised with a hint), or None."""
    seen: set[int] = set()
    e: Optional[BaseException] = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ImportError) and e.name and e.name.split(".")[0] in EXTRAS:
            return e
        e = e.__cause__ or e.__context__
    return None


def missing_extra_message(exc: BaseException, command: Optional[str]) -> Optional[str]:
    """One line naming the missing package and the extra to install, or None when `exc` is not
    about an optional dependency (a bug: the caller re-raises it)."""
    failed = failed_import(exc)
    if failed is None:
        return None
    module = str(failed.name).split(".")[0]
    where = f"{command}: " if command else ""
    install = f"pip install 'neurosim[{EXTRAS[module]}]'"
    if isinstance(failed, ModuleNotFoundError):
        return f"{where}needs the '{module}' package, which is not installed here; install it with: {install}"
    first = (str(failed).splitlines() or [type(failed).__name__])[0][:200]
    return f"{where}the '{module}' package is installed but does not import ({first}); reinstall it with: {install}"
