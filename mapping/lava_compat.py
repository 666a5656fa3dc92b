"""The one place Lava (lava-nc) and lava-dl's NetX are imported.

lava-nc 0.10.0 declares Python < 3.11. On 3.11 its import fails in
``lava.magma.compiler.var_model``: dataclasses there use a ``ByteEncoder()`` instance (an
unhashable dataclass) as a field default, which Python 3.11's ``dataclasses`` rejects
(``ValueError: mutable default ... use default_factory``); 3.10 allowed it.

:func:`import_lava` relaxes that one check narrowly: while (and only while) Lava's modules
are imported, ``dataclasses._get_field`` is wrapped so that a default whose class is in
:data:`SHARED_DEFAULT_CLASSES` is accepted exactly as Python 3.10 accepted it (the one
instance is shared, as it was on 3.10). Every other class is checked as usual, and the
original function is restored before returning, also on error. On Python 3.10 nothing is
patched. Lava also calls ``multiprocessing.set_start_method('fork')`` at import, which fails
if the start method was already fixed; an identical method is let through (see
:func:`_same_start_method_allowed`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import sys
import threading
from types import SimpleNamespace
from typing import Any, Callable, Iterator

from neurosim.errors import BackendUnavailable

#: (module, qualified name) of the classes whose instances Lava uses as dataclass defaults.
SHARED_DEFAULT_CLASSES: frozenset[tuple[str, str]] = frozenset({
    ("lava.magma.compiler.var_model", "ByteEncoder"),
})

_LOCK = threading.Lock()
_INSTALL_HINT = ("pip install --no-deps --ignore-requires-python lava-nc==0.10.0 "
                 "'asteval>=0.9.31,<0.10' 'networkx<=2.8.7' scipy scikit-learn")
_NETX_HINT = "pip install --no-deps lava-dl==0.6.0 (it also needs torch and matplotlib)"


def _allowed(default: Any) -> bool:
    cls = type(default)
    return (cls.__module__, cls.__qualname__) in SHARED_DEFAULT_CLASSES


@contextlib.contextmanager
def _shared_defaults_allowed() -> Iterator[None]:
    """Accept the listed classes' instances as dataclass defaults inside the block only."""
    if sys.version_info < (3, 11):
        yield
        return
    original: Callable[..., Any] = dataclasses._get_field  # type: ignore[attr-defined]

    def get_field(cls: type, a_name: str, *args: Any, **kwargs: Any) -> Any:
        default = cls.__dict__.get(a_name, dataclasses.MISSING)
        if default is dataclasses.MISSING or not _allowed(default):
            return original(cls, a_name, *args, **kwargs)
        klass = type(default)
        saved = klass.__dict__.get("__hash__", dataclasses.MISSING)
        klass.__hash__ = object.__hash__  # the 3.11 check reads the class's __hash__
        try:
            return original(cls, a_name, *args, **kwargs)
        finally:
            if saved is dataclasses.MISSING:
                del klass.__hash__
            else:
                klass.__hash__ = saved

    with _LOCK:
        dataclasses._get_field = get_field  # type: ignore[attr-defined]
        try:
            yield
        finally:
            dataclasses._get_field = original  # type: ignore[attr-defined]


@contextlib.contextmanager
def _same_start_method_allowed() -> Iterator[None]:
    """Let Lava's import-time ``multiprocessing.set_start_method('fork')`` pass when the
    context is already 'fork' (anything that called ``get_start_method()`` before, e.g.
    tqdm, fixes it, and the call then raises 'context has already been set'). A different
    method already set still raises, reported as BackendUnavailable."""
    import multiprocessing

    original = multiprocessing.set_start_method

    def set_start_method(method: str, force: bool = False) -> None:
        if not force and multiprocessing.get_start_method(allow_none=True) == method:
            return
        original(method, force=force)

    multiprocessing.set_start_method = set_start_method  # type: ignore[assignment]
    try:
        yield
    finally:
        multiprocessing.set_start_method = original  # type: ignore[assignment]


def _import(modules: tuple[str, ...], hint: str, what: str) -> dict[str, Any]:
    loaded = {}
    with _shared_defaults_allowed(), _same_start_method_allowed():
        for name in modules:
            try:
                loaded[name] = importlib.import_module(name)
            except ImportError as exc:
                raise BackendUnavailable(f"{what} is not importable ({exc}); install it with: {hint}") from exc
            except RuntimeError as exc:  # e.g. a start method other than 'fork' already set
                raise BackendUnavailable(f"{what} failed to import: {exc}") from exc
    return loaded


_LAVA_MODULES = (
    "lava.magma.compiler.var_model",
    "lava.magma.core.run_configs",
    "lava.magma.core.run_conditions",
    "lava.proc.lif.process",
    "lava.proc.lif.models",
    "lava.proc.dense.process",
    "lava.proc.dense.models",
    "lava.proc.sparse.process",
    "lava.proc.sparse.models",
    "lava.proc.conv.process",
    "lava.proc.conv.models",
    "lava.proc.io.source",
    "lava.proc.io.sink",
    "lava.proc.monitor.process",
    "lava.magma.core.process.process",
    "lava.magma.core.process.variable",
    "lava.magma.core.process.ports.ports",
    "lava.magma.core.model.py.model",
    "lava.magma.core.model.py.ports",
    "lava.magma.core.model.py.type",
    "lava.magma.core.decorator",
    "lava.magma.core.resources",
    "lava.magma.core.sync.protocols.loihi_protocol",
)


def import_lava() -> SimpleNamespace:
    """Import lava-nc and return the pieces neurosim uses as one namespace.

    Fields: LIF, LIFRefractory, Dense, DelayDense, Sparse, DelaySparse, Conv, RingBufferSource
    (``lava.proc.io.source.RingBuffer``), RingBufferSink, Monitor, Loihi2SimCfg, RunSteps,
    plus the process-model building blocks (AbstractProcess, Var, InPort, OutPort,
    PyLoihiProcessModel, PyInPort, PyOutPort, LavaPyType, implements, requires, tag, CPU,
    LoihiProtocol). Raises BackendUnavailable if lava-nc is missing or cannot be imported.
    """
    m = _import(_LAVA_MODULES, _INSTALL_HINT, "lava-nc (Lava)")
    lif, dense, sparse = m["lava.proc.lif.process"], m["lava.proc.dense.process"], m["lava.proc.sparse.process"]
    dec = m["lava.magma.core.decorator"]
    return SimpleNamespace(
        LIF=lif.LIF, LIFRefractory=lif.LIFRefractory,
        Dense=dense.Dense, DelayDense=dense.DelayDense,
        Sparse=sparse.Sparse, DelaySparse=sparse.DelaySparse, Conv=m["lava.proc.conv.process"].Conv,
        RingBufferSource=m["lava.proc.io.source"].RingBuffer,
        RingBufferSink=m["lava.proc.io.sink"].RingBuffer,
        Monitor=m["lava.proc.monitor.process"].Monitor,
        Loihi2SimCfg=m["lava.magma.core.run_configs"].Loihi2SimCfg,
        RunSteps=m["lava.magma.core.run_conditions"].RunSteps,
        AbstractProcess=m["lava.magma.core.process.process"].AbstractProcess,
        Var=m["lava.magma.core.process.variable"].Var,
        InPort=m["lava.magma.core.process.ports.ports"].InPort,
        OutPort=m["lava.magma.core.process.ports.ports"].OutPort,
        PyLoihiProcessModel=m["lava.magma.core.model.py.model"].PyLoihiProcessModel,
        PyInPort=m["lava.magma.core.model.py.ports"].PyInPort,
        PyOutPort=m["lava.magma.core.model.py.ports"].PyOutPort,
        LavaPyType=m["lava.magma.core.model.py.type"].LavaPyType,
        implements=dec.implements, requires=dec.requires, tag=dec.tag,
        CPU=m["lava.magma.core.resources"].CPU,
        LoihiProtocol=m["lava.magma.core.sync.protocols.loihi_protocol"].LoihiProtocol,
    )


_SLAYER = "lava.lib.dl.slayer"


@contextlib.contextmanager
def _slayer_without_init() -> Iterator[None]:
    """Make ``lava.lib.dl.slayer``'s submodules importable without running its ``__init__``.

    NetX's hdf5 module needs only ``slayer.neuron.rf``, but slayer's ``__init__`` also imports
    its object-detection package, which needs OpenCV and torchvision (absent here: torchvision
    has no CPU build for torch 2.13). Inside the block the package is a bare namespace over
    its folder; afterwards the bare entry is removed again (loaded submodules stay), so a
    later plain ``import lava.lib.dl.slayer`` behaves as it would without us.
    """
    import importlib.util
    import types

    spec = importlib.util.find_spec(_SLAYER)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(f"lava-dl NetX is not importable ({_SLAYER} not found); install it with: {_NETX_HINT}")
    shell = types.ModuleType(_SLAYER)
    shell.__path__ = list(spec.submodule_search_locations)
    shell.__spec__ = spec
    sys.modules[_SLAYER] = shell
    try:
        yield
    finally:
        if sys.modules.get(_SLAYER) is shell:
            del sys.modules[_SLAYER]


_NETX_MODULES = ("lava.lib.dl.netx.hdf5", "lava.lib.dl.netx.blocks.process", "lava.lib.dl.netx.blocks.models")


def import_netx() -> SimpleNamespace:
    """Import lava-dl's NetX (``lava.lib.dl.netx``): fields ``hdf5`` (the module), ``Network``
    and ``blocks`` (``lava.lib.dl.netx.blocks.process``).

    Tries the plain import first; if slayer's ``__init__`` fails on its optional image
    dependencies (cv2, torchvision, PIL), retries with :func:`_slayer_without_init`.
    Raises BackendUnavailable if lava-dl (or lava-nc, torch, h5py it needs) is missing.
    """
    import_lava()
    try:
        m = _import(_NETX_MODULES, _NETX_HINT, "lava-dl NetX")
    except BackendUnavailable as exc:
        missing = getattr(exc.__cause__, "name", None)
        if missing not in ("cv2", "torchvision", "PIL"):
            raise
        for name in [k for k in sys.modules if k.startswith("lava.lib.dl.netx")]:
            del sys.modules[name]  # half-imported by the failed attempt
        with _slayer_without_init():
            m = _import(_NETX_MODULES, _NETX_HINT, "lava-dl NetX")
    hdf5 = m["lava.lib.dl.netx.hdf5"]
    return SimpleNamespace(hdf5=hdf5, Network=hdf5.Network, blocks=m["lava.lib.dl.netx.blocks.process"])


@contextlib.contextmanager
def stopped(root: Any) -> Iterator[None]:
    """Stop `root`'s Lava runtime on leaving, also on error; an error while stopping does not
    hide the error that ended the run."""
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        try:
            root.stop()
        except Exception:
            if not failed:
                raise
