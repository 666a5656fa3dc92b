"""The one hardened reading layer for untrusted HDF5 files (native, NIR and NetX loaders).

A loader gives a :class:`FileKind` (how its errors name what it expects) and a body that reads
its schema through an :class:`H5Reader`; the layer opens the file and guarantees that every
failure is one :class:`FileFormatError` naming the file and the field, an HDF5 path with
attributes written ``group@attr`` (``@dt`` for a root attribute).

What is checked before anything is read:

- the path is a regular file and HDF5 opens it;
- members are reached through hard links only (no soft or external links);
- attributes: HDF5 type class (strings or plain numbers only) and shape (scalars or at most
  16 values) before decoding, since decoding some corrupt types crashes HDF5;
- datasets: dtype kind (no compound, array, reference or variable-length data) and that the
  file stores the bytes the shape claims (no virtual or external storage), before allocating;
- global heap collections (where HDF5 keeps variable-length strings) are intact before the
  first variable-length string is read: HDF5 1.14 can loop forever on a corrupt one;
- memory: the bytes a loader will allocate, from sizes the file declares (attributes and
  dataset shapes, read before any data), stay within a memory budget (:func:`memory_budget`).

Memory budget. Every loader (``neurosim.load``/``load_result``, ``neurosim info``, NIR and NetX)
takes ``memory_budget=`` (bytes); without it the environment variable ``NEUROSIM_MEMORY_BUDGET``
(bytes, or with a suffix k, M, G, T: ``NEUROSIM_MEMORY_BUDGET=4G``) decides, and without that
a quarter of the memory available now (what is loaded must still fit in memory when it is
simulated) (``MemAvailable`` of /proc/meminfo, else physical memory).
A file whose declared sizes need more is refused before anything is allocated, with one
FileFormatError naming the file and the field, the bytes needed and the budget.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Optional, TypeVar, Union

import h5py
import numpy as np
from h5py import h5t

from .errors import FileFormatError
from .memory import available_memory
from .paths import file_problem

PathLike = Union[str, "os.PathLike[str]"]
T = TypeVar("T")
Budget = Optional[Union[int, float, str]]  # a memory budget: bytes, text such as "2G", or None (the default)

REAL, INT, FLOAT = "iuf", "iu", "f"  # dtype kinds of numeric datasets
MAX_RATIO = 1100  # deflate cannot compress beyond about 1032:1; a larger claim is not data
TYPE_CLASSES = {h5t.INTEGER: "integer", h5t.FLOAT: "float", h5t.STRING: "string", h5t.COMPOUND: "compound",
                h5t.ENUM: "enum", h5t.VLEN: "variable-length sequence", h5t.ARRAY: "array",
                h5t.OPAQUE: "opaque", h5t.REFERENCE: "reference", h5t.BITFIELD: "bitfield"}
BUDGET_ENV = "NEUROSIM_MEMORY_BUDGET"
BUDGET_FRACTION = 0.25  # of the memory available: what is loaded must still be simulated (state, buffers, records)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
READ_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, OverflowError, IndexError)


@dataclass(frozen=True)
class FileKind:
    """How one schema's loader names what it expects in its one-line errors.

    expected: said of a path that is no regular file (``"...; expected <expected>"``);
    unopened: the message when HDF5 cannot open the file, with ``{exc}``;
    intact: said when reading raised (``"cannot be read (...); expected <intact>"``);
    heap_first: check the global heap before reading anything (files that keep strings there).
    """

    expected: str
    unopened: str
    intact: str
    heap_first: bool = False


def memory_budget(budget: Budget = None) -> int:
    """The memory budget of a loader in bytes: `budget` when given, else the environment
    variable ``NEUROSIM_MEMORY_BUDGET``, else a quarter of :func:`available_memory`. Text may carry
    a suffix K, M, G or T (powers of 1024). ValueError (one line) for anything but a positive size."""
    source = "memory_budget"
    if budget is None:
        budget = os.environ.get(BUDGET_ENV) or None
        source = BUDGET_ENV
    if budget is None:
        return max(1, int(available_memory() * BUDGET_FRACTION))
    value: Optional[float] = None
    if isinstance(budget, str):
        text = budget.strip().upper().removesuffix("B").removesuffix("I")
        unit = text[-1:] if text[-1:] in _UNITS and text[-1:] else ""
        try:
            value = float(text[: len(text) - len(unit)]) * _UNITS[unit]
        except ValueError:
            value = None
    elif isinstance(budget, (int, float)) and not isinstance(budget, bool):
        value = float(budget)
    if value is None or not (math.isfinite(value) and value >= 1):
        raise ValueError(f"{source}: expected a positive number of bytes (e.g. 2000000000 or 2G), got {budget!r}")
    return int(value)


def budget_problem(need: int, budget: int, what: str) -> Optional[str]:
    """The refusal message when `need` bytes (for `what`) exceed `budget`, else None."""
    if need <= budget:
        return None
    return (f"{what} would need {need} bytes ({need / 2**30:.3g} GiB), more than the memory budget of "
            f"{budget} bytes ({budget / 2**30:.3g} GiB); raise it with {BUDGET_ENV} or memory_budget= "
            "if the file is trusted")


class H5Reader:
    """Checked access to one open untrusted HDF5 file; `current` is the field being read (it
    names the field when an unexpected exception escapes the schema code). `budget`: the memory
    budget in bytes (:func:`memory_budget`); :meth:`reserve` counts what the loader allocates."""

    def __init__(self, path: PathLike, budget: Budget = None) -> None:
        self.path = os.fsdecode(os.fspath(path))
        self.current = ""
        self.heap_checked = False  # global_heap_problem ran (before the first variable-length string)
        try:
            self.budget = memory_budget(budget)
        except ValueError as exc:
            raise FileFormatError(self.path, "", str(exc)) from None
        self.reserved = 0  # bytes counted against the budget so far

    def reserve(self, need: int, field: str, what: str = "the data declared here") -> None:
        """Count `need` more bytes against the budget; refuse the file at `field` beyond it."""
        self.reserved += int(need)
        problem = budget_problem(self.reserved, self.budget, what if self.reserved == need else
                                 f"{what} (with the {self.reserved - int(need)} bytes read before it)")
        if problem:
            self.fail(field, problem)

    def fail(self, field: str, message: str) -> NoReturn:
        """Raise the FileFormatError of this file at `field`."""
        raise FileFormatError(self.path, field, message)

    def read(self, kind: FileKind, body: Callable[[h5py.File], T]) -> T:
        """Open the file and run `body` on it; every failure becomes one FileFormatError."""
        problem = file_problem(self.path)
        if problem:
            self.fail("", f"{problem}; expected {kind.expected}")
        try:
            f = h5py.File(self.path, "r")
        except OSError as exc:
            raise FileFormatError(self.path, "", kind.unopened.format(exc=exc)) from None
        with f:
            try:
                if kind.heap_first:
                    self.check_heap("")
                return body(f)
            except FileFormatError:
                raise
            except READ_ERRORS as exc:
                raise FileFormatError(self.path, self.current, f"cannot be read ({type(exc).__name__}: {exc}); "
                                                               f"expected {kind.intact}") from None

    def check_heap(self, field: str) -> None:
        """Refuse the file at `field` if a global heap collection is corrupt (checked once)."""
        if not self.heap_checked:
            problem = global_heap_problem(self.path)
            if problem:
                self.fail(field, problem)
            self.heap_checked = True

    # ---------------------------------------------------------------- attributes
    def attr(self, obj: Any, key: str, where: str, expected: str, text: bool = False) -> Any:
        """Attribute `key` of `obj`; its HDF5 type class and size are checked before it is read
        (decoding some corrupt types crashes HDF5, so only strings and plain numbers are read)."""
        field = f"{where}@{key}"
        self.current = field
        if key not in obj.attrs:
            self.fail(field, f"missing attribute; expected {expected}")
        aid = obj.attrs.get_id(key)
        cls = aid.get_type().get_class()
        wanted = (h5t.STRING,) if text else (h5t.INTEGER, h5t.FLOAT)
        if cls not in wanted:
            self.fail(field, f"expected {expected}, got an attribute of HDF5 type class "
                             f"{TYPE_CLASSES.get(cls, cls)}")
        if aid.shape is None or len(aid.shape) > 1 or math.prod(aid.shape) > 16:
            self.fail(field, f"expected {expected}, got an attribute of shape {aid.shape}")
        if text and aid.get_type().is_variable_str():
            self.check_heap(field)
        return obj.attrs[key]

    def attr_str(self, obj: Any, key: str, where: str, choices: Optional[tuple[str, ...]] = None,
                 expected: str = "") -> str:
        """Text attribute `key` of `obj` (UTF-8; one of `choices` when given)."""
        expected = expected or (f"one of {list(choices)}" if choices else "a string")
        value = self.attr(obj, key, where, expected, text=True)
        if isinstance(value, (bytes, np.bytes_)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                self.fail(f"{where}@{key}", "expected a UTF-8 string")
        if not isinstance(value, str):
            self.fail(f"{where}@{key}", f"expected {expected}, got {describe(value)}")
        if choices and value not in choices:
            self.fail(f"{where}@{key}", f"expected {expected}, got {value!r}")
        return value

    def attr_int(self, obj: Any, key: str, where: str, lo: int, hi: int) -> int:
        """Whole-number attribute `key` of `obj` in [lo, hi]."""
        value = self.attr(obj, key, where, f"a whole number in [{lo}, {hi}]")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            self.fail(f"{where}@{key}", f"expected a whole number in [{lo}, {hi}], got {describe(value)}")
        if not lo <= int(value) <= hi:
            self.fail(f"{where}@{key}", f"expected a whole number in [{lo}, {hi}], got {int(value)}")
        return int(value)

    def attr_real(self, obj: Any, key: str, where: str) -> float:
        """Real-number attribute `key` of `obj`."""
        value = self.attr(obj, key, where, "a real number")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            self.fail(f"{where}@{key}", f"expected a real number, got {describe(value)}")
        return float(value)

    # ------------------------------------------------------------ groups and datasets
    def follow(self, parent: Any, name: str, field: str, what: str = "data") -> Any:
        """Member `name` of group `parent` reached through a hard link, or None when absent."""
        self.current = field
        link = parent.get(name, getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            self.fail(field, f"expected {what} stored in this file, found {type(link).__name__}")
        return parent[name]

    def member(self, parent: Any, name: str, where: str, kind: type, what: str) -> Any:
        """Hard-linked member `name` of `parent`, which must be a `kind` (group or dataset)."""
        field = f"{where}/{name}" if where else name
        obj = self.follow(parent, name, field, what)
        if obj is None:
            self.fail(field, f"missing; expected {what}")
        if not isinstance(obj, kind):
            self.fail(field, f"expected {what}, found {type(obj).__name__}")
        return obj

    def data(self, d: h5py.Dataset, field: str) -> Any:
        """The contents of dataset `d` once the file is known to store them (:func:`storage_problem`)."""
        self.current = field
        problem = storage_problem(d)
        if problem:
            self.fail(field, problem)
        self.reserve(declared_bytes(d), field, "this dataset")
        return d[()]


def plain_dtype(dtype: np.dtype, kinds: str, text: bool = False) -> bool:
    """True for numbers of a kind in `kinds` (no fields, no sub-arrays), or, with `text`, a string dtype."""
    if text and h5py.check_string_dtype(dtype) is not None:
        return True
    return dtype.kind in kinds and dtype.names is None and dtype.subdtype is None


def attr_text(path: str, obj: Any, key: str, choices: Optional[tuple[str, ...]] = None) -> str:
    """Text attribute `key` of the open HDF5 object `obj` of file `path`, type-checked before it
    is read (a string, not an array, compound or other type; UTF-8; one of `choices`)."""
    return H5Reader(path).attr_str(obj, key, "", choices)


def declared_bytes(d: h5py.Dataset) -> int:
    """Bytes the shape and dtype of dataset `d` declare (nothing is read)."""
    return math.prod(d.shape or ()) * d.dtype.itemsize if d.shape is not None else 0


def storage_problem(d: h5py.Dataset) -> Optional[str]:
    """Why reading dataset `d` must not be tried, or None: data kept outside this file, or a
    size the file cannot hold (checked before anything is allocated)."""
    need = math.prod(d.shape or ()) * d.dtype.itemsize
    if d.shape is None or need == 0:
        return None
    if d.is_virtual:
        return "expected data stored in this file, found a virtual dataset"
    plist = d.id.get_create_plist()
    if plist.get_external_count():
        return "expected data stored in this file, found external raw storage"
    have = d.id.get_storage_size()
    limit = have if plist.get_nfilters() == 0 else have * MAX_RATIO
    if need > limit:
        return (f"claims shape {d.shape} ({need} bytes) but the file stores only {have} bytes of it; "
                "expected the data itself")
    return None


def global_heap_problem(path: str) -> Optional[str]:
    """Why the file's global heap collections (where HDF5 keeps variable-length strings) must
    not be read, or None. HDF5 1.14 walks a collection's objects by their sizes and loops
    forever on a corrupt one (e.g. a free-space object of size 0), so before anything of
    variable length is read every collection is walked here first: its objects must add up
    exactly to its size. (A collection: 'GCOL', version 1, its size >= 4096 bytes as a
    little-endian 8-byte length; objects: index u16, references u16, 4 reserved bytes, size
    u64, data padded to 8 bytes; index 0 is the free space, whose size covers its header.)"""
    import mmap

    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            at = m.find(b"GCOL")
            while at >= 0:
                size = int.from_bytes(m[at + 8:at + 16], "little") if at + 16 <= len(m) else 0
                if m[at + 4:at + 5] == b"\x01" and 4096 <= size <= len(m) - at:
                    p = 16
                    while size - p >= 16:
                        index = int.from_bytes(m[at + p:at + p + 2], "little")
                        length = int.from_bytes(m[at + p + 8:at + p + 16], "little")
                        need = 16 + (length + 7) // 8 * 8 if index else length
                        if need == 0 or need > size - p:
                            return (f"global heap collection at byte {at} is corrupt (object at byte {at + p} "
                                    f"of size {length}); expected an intact HDF5 file")
                        p += need
                at = m.find(b"GCOL", at + 4)
    return None


def describe(value: Any) -> str:
    """A short description of a value read from a file, for error messages."""
    if isinstance(value, np.ndarray):
        shown = f" {value.tolist()}" if value.size <= 8 and value.dtype.kind in "biuf" else ""
        return f"an array{shown} of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:120]
