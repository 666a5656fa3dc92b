"""Exact accounting of tensor memory: the bytes of torch storages alive, counted as ops create
them, plus the numpy arrays allocated meanwhile (the fused kernels' saved h and z live there)."""
from __future__ import annotations

import tracemalloc


class LiveBytes:
    """Context manager: peak bytes of tensor storages created inside it and still alive.

    An op's output that shares the storage of one of its inputs (a view such as ``x[t]`` or
    ``w.t()``, an in-place op) is not new memory and is not counted: data and parameters made
    before the context never count, however they are indexed inside it.

    With `numpy`, memory allocated through Python's allocators inside the context counts too
    (tracemalloc: numpy's array data, which torch.from_numpy tensors share, such as the fused
    kernels' saved h and z; but also any other array or Python object made meanwhile, e.g. a
    plan's dynamic-programming tables). The two are combined at every torch op::

        peak >= max over the intervals between ops of
                (torch bytes alive in the interval, at most) + (traced bytes' peak in the interval)

    an upper bound that is tight when the intervals are short. `live` is torch's part alone;
    :meth:`now` adds the traced bytes alive. tracemalloc is started (and stopped on exit) unless
    it runs already; its peak is reset at each op, so nested contexts share one peak."""

    _warm = False
    _open: list["LiveBytes"] = []  # the contexts counting numpy, outermost first

    def __init__(self, numpy: bool = False) -> None:
        import weakref

        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self
        self.live = self.peak = 0
        self.numpy = numpy
        self._sizes: dict[int, int] = {}
        self._high = 0  # the most torch bytes alive since the last combination (_combine)
        self._base = 0  # traced bytes alive on entry
        self._started = False

        def track(t: "torch.Tensor") -> None:
            st = t.untyped_storage()
            key, n = st.data_ptr(), st.nbytes()
            if n == 0 or key in tracker._sizes:
                return
            tracker._sizes[key] = n
            tracker.live += n
            tracker._high = max(tracker._high, tracker.live)
            tracker.peak = max(tracker.peak, tracker.live)
            weakref.finalize(st, tracker._free, key)

        def dense(x: object) -> list["torch.Tensor"]:
            """The strided tensors in `x` (tensors, nested in tuples, lists and dicts); sparse
            tensors have no storage of their own: their dense parts are counted as made."""
            if isinstance(x, torch.Tensor):
                return [x] if x.layout == torch.strided else []
            if isinstance(x, (tuple, list)):
                return [t for y in x for t in dense(y)]
            if isinstance(x, dict):
                return [t for y in x.values() for t in dense(y)]
            return []

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                tracker._combine()
                out = func(*args, **(kwargs or {}))
                seen = {t.untyped_storage().data_ptr() for t in dense(args) + dense(kwargs or {})}
                for t in dense(out):
                    if t.untyped_storage().data_ptr() not in seen:
                        track(t)
                tracker._combine()
                return out

        self._mode = Mode()

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def _combine(self) -> None:
        """Fold the interval since the last call into the `peak` of every open context counting
        numpy (they share tracemalloc's one peak), and start a new interval."""
        if not self.numpy or not tracemalloc.is_tracing():
            return
        traced, traced_peak = tracemalloc.get_traced_memory()
        for t in LiveBytes._open:
            t.peak = max(t.peak, t._high + max(traced_peak - t._base, 0))
            t._high = t.live
            t._base = min(t._base, traced)  # memory made before entry and freed since: new bytes fill its place
        tracemalloc.reset_peak()

    def now(self) -> int:
        """Bytes alive now that the context counts: torch's plus (with `numpy`) the traced ones."""
        if not (self.numpy and tracemalloc.is_tracing()):
            return self.live
        traced = tracemalloc.get_traced_memory()[0]
        self._base = min(self._base, traced)
        return self.live + traced - self._base

    def __enter__(self) -> "LiveBytes":
        if self.numpy and not LiveBytes._warm:  # the first op in a dispatch mode imports modules: not the user's memory
            import torch

            with self._mode:
                torch.zeros(1) + 0
            self._sizes.clear()
            self.live = self.peak = self._high = 0
            LiveBytes._warm = True
        if self.numpy:
            if not tracemalloc.is_tracing():
                tracemalloc.start()
                self._started = True
            self._combine()  # the outer contexts' interval up to here
            self._base = tracemalloc.get_traced_memory()[0]
            LiveBytes._open.append(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)
        self._combine()
        if self in LiveBytes._open:
            LiveBytes._open.remove(self)
        if self._started:
            tracemalloc.stop()
            self._started = False
