"""A strict numpy-backed stand-in for the part of CuPy that fus uses, on the emulated device.

With ``FUS_GPU_EMULATION=1`` the CUDA backend's array module is :func:`load`'s module instead of
``cupy``. It is strict where CuPy is strict, so that a GPU-only mistake fails here as it would on a
GPU:

- every module, ``ndarray`` and ``flags`` attribute it offers must exist in the installed real
  CuPy (checked by introspection when first used): a name CuPy lacks raises ``AttributeError``;
- a device array is not a numpy array: ``numpy.asarray(device_array)`` raises ``TypeError`` as
  CuPy does, mixing a numpy array into a device operation raises ``TypeError``; ``asnumpy`` /
  ``.get()`` are the way out;
- reductions and scalar indexing return 0-d device arrays (as CuPy does), not numpy scalars;
- ``RawModule`` / ``RawKernel`` run the kernels of the emulation library
  (:mod:`fus.backend.emulation`) with the grid, block and argument tuple they are given, and
  refuse what a GPU would silently misread: a Python float or int (CuPy passes them as 64-bit), a
  scalar of the wrong width, an array where a scalar is expected or the reverse, a dtype other
  than the kernel parameter's, the wrong number of arguments.

The device memory is host memory; ``cuda.runtime`` reports one device, "fus emulated CUDA device".
"""

from __future__ import annotations

import re
import types
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from fus.errors import BackendUnavailableError, KernelLaunchError

__all__ = ["load", "ndarray"]

DEVICE_NAME = "fus emulated CUDA device (CPU)"
_HOST_OK = {"asarray", "array", "ascontiguousarray", "asanyarray", "asfortranarray"}


@lru_cache(maxsize=None)
def _real() -> Any:
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001 - any import failure means no reference
        raise BackendUnavailableError(
            "the emulated GPU checks every CuPy name it offers against the installed CuPy, which does "
            f"not import ({exc.__class__.__name__}: {exc}): install fus[test] (cupy-cuda13x)"
        ) from exc
    return cupy


@lru_cache(maxsize=None)
def _real_names(path: str) -> frozenset[str]:
    obj = _real()
    for part in path.split(".")[1:]:
        obj = getattr(obj, part)
    return frozenset(dir(obj))


def _require(path: str, name: str) -> None:
    if name not in _real_names(path):
        raise AttributeError(f"{path} has no attribute {name!r} (the installed CuPy lacks it, so a GPU would fail here too)")


# ---------------------------------------------------------------------------------------------- arrays
def _unwrap(x: Any, host_ok: bool) -> Any:
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        if host_ok or x.ndim == 0:
            return x
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, host_ok) for v in x)
    return x


def _wrap(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        out = object.__new__(ndarray)
        out._a = x
        return out
    if isinstance(x, np.generic):
        return _wrap(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _call(fn: Callable[..., Any], args: tuple, kwargs: dict, host_ok: bool = False) -> Any:
    return _wrap(fn(*_unwrap(args, host_ok), **{k: _unwrap(v, host_ok) for k, v in kwargs.items()}))


class _Flags:
    """``ndarray.flags``: only what ``cupy._core.flags.Flags`` has (no ``writeable``)."""

    __slots__ = ("_f",)

    def __init__(self, f: Any) -> None:
        self._f = f

    def __getattr__(self, name: str) -> Any:
        _require("cupy._core.flags.Flags", name)
        return {"c_contiguous": self._f.c_contiguous, "f_contiguous": self._f.f_contiguous, "owndata": self._f.owndata}[name]


class _MemoryPointer:
    __slots__ = ("ptr",)

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


class ndarray:  # noqa: N801 - the CuPy name
    """A device array of the emulated device (host memory behind CuPy's interface)."""

    __slots__ = ("_a",)
    __array_priority__ = 100
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None, order: str = "C") -> None:
        if memptr is not None or strides is not None:
            raise TypeError("the emulated device does not support memptr / strides")
        self._a = np.empty(shape, dtype=dtype, order=order)

    # -- the way out, and the refusal of implicit conversion
    def get(self, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True) -> np.ndarray:
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr: Any, stream: Any = None) -> None:
        self._a[...] = np.asarray(arr)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if ufunc.__name__ not in _real_names("cupy"):
            return NotImplemented
        return _call(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func: Any, types_: Any, args: tuple, kwargs: dict) -> Any:
        mod = _module()
        for part in func.__module__.split(".")[1:]:
            if part.startswith("_"):
                continue
            mod = getattr(mod, part, None)
            if mod is None:
                return NotImplemented
        try:
            target = getattr(mod, func.__name__)
        except AttributeError:
            return NotImplemented
        return target(*args, **kwargs)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {
            "shape": self._a.shape,
            "typestr": self._a.dtype.str,
            "descr": self._a.dtype.descr,
            "data": (self._a.ctypes.data, False),
            "strides": None if self._a.flags.c_contiguous else self._a.strides,
            "version": 3,
        }

    # -- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: _Flags(self._a.flags))
    data = property(lambda self: _MemoryPointer(self._a.ctypes.data))
    T = property(lambda self: _wrap(self._a.T))

    @property
    def real(self) -> Any:
        return _wrap(self._a.real)

    @property
    def imag(self) -> Any:
        return _wrap(self._a.imag)

    @property
    def device(self) -> Any:
        return _module().cuda.Device(0)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        _require("cupy.ndarray", name)
        value = getattr(self._a, name)
        if callable(value):
            return lambda *a, **k: _call(value, a, k)
        return _wrap(value)

    # -- indexing and Python protocols
    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._a[_unwrap(key, True)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_unwrap(key, True)] = _unwrap(value, True)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __bool__(self) -> bool:
        return bool(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __complex__(self) -> complex:
        return complex(self._a)

    def __index__(self) -> int:
        return self._a.__index__()

    def __format__(self, spec: str) -> str:
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __repr__(self) -> str:
        return repr(self._a)

    def __str__(self) -> str:
        return str(self._a)

    def __copy__(self) -> "ndarray":
        return _wrap(self._a.copy())

    def __deepcopy__(self, memo: Any) -> "ndarray":
        return _wrap(self._a.copy())


def _binary(name: str) -> Callable[..., Any]:
    op = getattr(np.ndarray, name)

    def method(self: ndarray, other: Any) -> Any:
        res = op(self._a, _unwrap(other, False))
        if res is NotImplemented:
            return NotImplemented
        if name.startswith("__i"):
            return self
        return _wrap(res)

    method.__name__ = name
    return method


for _name in (
    "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift lt le gt ge eq ne".split()
):
    for _form in (f"__{_name}__", f"__r{_name}__", f"__i{_name}__"):
        if hasattr(np.ndarray, _form):
            setattr(ndarray, _form, _binary(_form))
for _form in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(ndarray, _form, (lambda op: lambda self: _wrap(op(self._a)))(getattr(np.ndarray, _form)))


# ---------------------------------------------------------------------------------------------- kernels
class RawKernel:
    """One kernel of a :class:`RawModule`, launched on the emulated device."""

    def __init__(self, module: "RawModule", name: str) -> None:
        from fus.backend.emulation import emulation_library

        self.name = name
        self.module = module
        self._dev = emulation_library(_variant())
        if not self._dev.has_kernel(name) or not re.search(rf"\b{re.escape(name)}\s*\(", module.code):
            raise KernelLaunchError(f"emulated GPU: the module's source defines no kernel {name!r}")
        self.params = self._dev.signature(name)

    def __call__(self, grid: Any, block: Any, args: Any, *, shared_mem: int = 0, stream: Any = None, enable_cooperative_groups: bool = False) -> None:
        from fus.backend.emulation import as_ctypes

        if not isinstance(grid, tuple) or not isinstance(block, tuple):
            raise TypeError("grid and block must be tuples (as CuPy requires)")
        if not isinstance(args, (tuple, list)):
            raise TypeError("args must be a tuple")
        if len(args) != len(self.params):
            raise KernelLaunchError(f"kernel {self.name}: {len(args)} arguments for {len(self.params)} parameters")
        values = []
        for i, (a, p) in enumerate(zip(args, self.params)):
            where = f"kernel {self.name}: argument {i} (parameter type {p})"
            if p.endswith("*"):
                if not isinstance(a, ndarray):
                    raise KernelLaunchError(f"{where}: got {type(a).__module__}.{type(a).__name__}, needs a device array")
                base = {"complex64": "float32", "complex128": "float64"}.get(a.dtype.name, a.dtype.name)
                if base + "*" != p:
                    raise KernelLaunchError(f"{where}: got a {a.dtype} array")
                if not a._a.flags.c_contiguous:
                    raise KernelLaunchError(f"{where}: the array is not C-contiguous")
                values.append(as_ctypes(a._a.ctypes.data, p))
            else:
                if isinstance(a, (float, int)) and not isinstance(a, np.generic):
                    raise KernelLaunchError(f"{where}: a Python {type(a).__name__}, which CuPy passes as a 64-bit value")
                if not isinstance(a, np.generic) or a.dtype.name != p:
                    raise KernelLaunchError(f"{where}: got {type(a).__name__}")
                values.append(as_ctypes(a.item(), p))
        self._dev.launch(self.name, grid, block, values)


class RawModule:
    """Kernel source text and options, as CuPy's; kernels come from the emulation library."""

    def __init__(self, code: str | None = None, *, path: str | None = None, options: tuple = (), backend: str = "nvrtc", translate_cucomplex: bool = False, name_expressions: Any = None, jitify: bool = False) -> None:
        if not isinstance(code, str) or path is not None:
            raise TypeError("the emulated device takes RawModule(code=<source text>)")
        self.code = code
        self.options = tuple(options)
        self.backend = backend

    def compile(self, log_stream: Any = None) -> None:
        return None

    def get_function(self, name: str) -> RawKernel:
        return RawKernel(self, name)


# ---------------------------------------------------------------------------------------------- modules
class _Checked(types.ModuleType):
    """A (sub)module whose names must exist in the real CuPy at the same path."""

    def __init__(self, path: str, own: dict[str, Any], numpy_ns: Any = None) -> None:
        super().__init__(path)
        self._path = path
        self._numpy = numpy_ns
        for k, v in own.items():
            object.__setattr__(self, k, v)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        _require(self._path, name)
        target = getattr(self._numpy, name, None) if self._numpy is not None else None
        if target is None:
            raise AttributeError(f"{self._path}.{name} exists in CuPy but is not emulated: add it to fus.backend.emulated_cupy")
        if isinstance(target, type) or not callable(target):
            value = target
        else:
            host_ok = name in _HOST_OK

            def value(*args: Any, **kwargs: Any) -> Any:
                return _call(target, args, kwargs, host_ok)

            value.__name__ = name
        object.__setattr__(self, name, value)
        return value


def _asarray(a: Any, dtype: Any = None, order: Any = None, *, blocking: bool = False) -> ndarray:
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else _wrap(a._a.astype(dtype))
    return _wrap(np.array(a, dtype=dtype, order=order or "K", copy=True))  # host -> device: a copy


def _array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", subok: bool = False, ndmin: int = 0, *, blocking: bool = False) -> ndarray:
    return _wrap(np.array(_unwrap(obj, True), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def _ascontiguousarray(a: Any, dtype: Any = None) -> ndarray:
    x = _asarray(a, dtype)
    return x if x._a.flags.c_contiguous else _wrap(np.ascontiguousarray(x._a))


def _asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True) -> np.ndarray:
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def _get_array_module(*args: Any) -> Any:
    return _module() if any(isinstance(a, ndarray) for a in args) else np


def _meminfo() -> tuple[int, int]:
    total = avail = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) * 1024
                elif line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        total = avail = 8 << 30
    return avail, total


class _Device:
    def __init__(self, device: int | None = None) -> None:
        if device not in (None, 0):
            raise ValueError(f"the emulated device has one device (0), not {device}")
        self.id = 0
        self.compute_capability = "90"

    def use(self) -> None:
        return None

    def synchronize(self) -> None:
        return None

    def __enter__(self) -> "_Device":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def _properties(device: int) -> dict[str, Any]:
    return {"name": DEVICE_NAME.encode(), "major": 9, "minor": 0, "totalGlobalMem": _meminfo()[1], "multiProcessorCount": 2, "maxThreadsPerBlock": 1024, "sharedMemPerBlock": 49152, "warpSize": 32}


class _Stream:
    null: "_Stream"

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False) -> None:
        self.ptr = 0

    def synchronize(self) -> None:
        return None

    def __enter__(self) -> "_Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def use(self) -> "_Stream":
        return self


_Stream.null = _Stream(null=True)


def _variant() -> str:
    from fus.backend.emulation import emulation_requested

    return emulation_requested() or "fibers"


@lru_cache(maxsize=None)
def _module() -> _Checked:
    real = _real()
    runtime = _Checked("cupy.cuda.runtime", {
        "getDeviceCount": lambda: 1,
        "getDeviceProperties": _properties,
        "runtimeGetVersion": lambda: real.cuda.runtime.runtimeGetVersion(),
        "driverGetVersion": lambda: real.cuda.runtime.runtimeGetVersion(),
        "memGetInfo": _meminfo,
        "deviceSynchronize": lambda: None,
    })
    cuda = _Checked("cupy.cuda", {"Device": _Device, "runtime": runtime, "Stream": _Stream, "get_current_stream": lambda device_id=-1: _Stream.null})
    mod = _Checked("cupy", {
        "__version__": f"{real.__version__} (emulated device)",
        "ndarray": ndarray,
        "asarray": _asarray,
        "array": _array,
        "ascontiguousarray": _ascontiguousarray,
        "asnumpy": _asnumpy,
        "get_array_module": _get_array_module,
        "RawModule": RawModule,
        "RawKernel": RawKernel,
        "cuda": cuda,
        "fft": _Checked("cupy.fft", {}, np.fft),
        "linalg": _Checked("cupy.linalg", {}, np.linalg),
    }, np)
    for name in mod.__dict__:
        if not name.startswith("_"):
            _require("cupy", name)
    return mod


def load() -> Any:
    """The emulated ``cupy`` module (checked against the installed CuPy on first use of each name).

    Raises
    ------
    BackendUnavailableError
        When the real CuPy (the reference for every name) does not import.
    """
    return _module()
