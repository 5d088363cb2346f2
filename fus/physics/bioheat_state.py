r"""A kept Pennes bioheat state, advanced piece by piece at the power a caller chooses.

:class:`BioheatState` holds the temperature, the CEM43 dose and the maximum temperature of one
grid and medium, and :meth:`BioheatState.advance` moves them forward by a given time at a given
drive power. It is the one time-stepping loop of fus: :func:`fus.physics.bioheat.simulate` walks
a whole :class:`~fus.physics.bioheat.Schedule` through it, and a closed-loop controller calls it
every few seconds with the power it has just decided.

.. math::

    \rho c \, \partial_t T = \nabla \cdot (k \nabla T) - w_b c_b (T - T_a) + Q(x, t), \qquad
    Q(x, t) = Q_{ref,j}(x) \, \frac{P \, d}{P_{ref}}

(H. H. Pennes, J. Appl. Physiol. 1, 93-122 (1948)), ``P`` the drive power [W], ``d`` the duty
cycle (a pulsed drive is represented by its time-averaged power ``P d``) and ``Q_ref,j`` the
absorbed power density [W/m^3] of heat source ``j`` (one per focus point or sub-target) at the
reference drive power ``P_ref``.

Time stepping. The caller never chooses an unstable step: a piece of length ``L`` is divided into
``ceil(L / (safety * dt_max))`` equal sub-steps of :func:`fus.kernels.bioheat_step`, ``dt_max``
the monotone limit of :func:`fus.kernels.stable_time_step`. The CEM43 dose
(:func:`fus.kernels.cem43`, exact for a temperature linear in time within each step, fed the two
ping-pong temperature buffers, so nothing is copied) accrues after every sub-step unless
``dose_interval`` asks for coarser updates; the maximum temperature is tracked at the same
instants.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from fus.backend import asnumpy, get_backend
from fus.checks import finite_scalar
from fus.errors import InvalidParameterError
from fus.kernels import bioheat_step, cem43
from fus.kernels.bioheat import bioheat_buffer
from fus.physics.bioheat_grid import BioheatCoefficients, bioheat_coefficients, stable_time_step

__all__ = ["DEFAULT_SAFETY", "BioheatState", "check_safety"]

log = logging.getLogger("fus.physics.bioheat")

#: Fraction of the monotone step limit used by default. Forward Euler's O(dt) error on a smooth
#: heating pattern (4 mm Gaussian, 1 C rise; tests/test_bioheat.py) is ~0.19 % of the rise at 0.5
#: and ~0.3 % at 0.9; 0.5 keeps the Green's-function check within 2e-3 C at twice the steps.
DEFAULT_SAFETY: float = 0.5

#: Most coefficient sets kept per cache (one per time step; one per time step, target and power):
#: a closed loop that changes the power at every call must not grow memory without bound.
_CACHE_SIZE = 8


def _probe(rho_c: Any, conductivity: Any, perfusion: Any, spacing: Any, ta: float, boundary: Any) -> BioheatCoefficients:
    """Coefficients at the monotone limit itself (validates the medium, finds dt_max)."""
    dt_max = stable_time_step(rho_c, conductivity, perfusion, spacing, boundary)
    if not math.isfinite(dt_max):
        dt_max = 3600.0  # nothing couples or cools: any step is exact for Q alone; cap at 1 h
    return bioheat_coefficients(
        rho_c, conductivity, perfusion, spacing, dt_max, arterial_temperature=ta, boundary=boundary
    )


def _sources(source: Any, xp: Any, shape: tuple[int, ...]) -> dict[Hashable, Any]:
    """The heat sources as {key: float64 array of the backend}; one array is keyed 0."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        if not source:
            raise InvalidParameterError("source", "an empty mapping", "needs at least one heat source (or give None)")
        items = list(source.items())
    else:
        items = [(0, source)]
    out: dict[Hashable, Any] = {}
    for key, value in items:
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer, str)):
            raise InvalidParameterError("source", f"key {key!r}", "keys must be ints or strs (one per focus point / sub-target)")
        name = "source" if not isinstance(source, Mapping) else f"source[{key!r}]"
        q = xp.asarray(value, dtype=np.float64)
        if tuple(q.shape) != shape:
            raise InvalidParameterError(name, f"array of shape {tuple(q.shape)}", f"must have the grid's shape {shape}")
        if not bool(xp.isfinite(q).all()):
            raise InvalidParameterError(name, "non-finite values", "must be finite [W/m^3]")
        out[int(key) if isinstance(key, np.integer) else key] = q
    return out


def _initial(initial_temperature: Any, xp: Any, shape: tuple[int, ...]) -> Any:
    """The initial temperature as a float32 array of the grid's shape, range-checked [C]."""
    t_init = xp.asarray(initial_temperature, dtype=np.float64)  # the range check sees the values given
    if t_init.ndim == 0:
        t_init = xp.full(shape, float(t_init), dtype=np.float64)
    if tuple(t_init.shape) != shape:
        raise InvalidParameterError("initial_temperature", f"array of shape {tuple(t_init.shape)}", f"must be a number or have the grid's shape {shape}")
    t_lo, t_hi = float(xp.min(t_init)), float(xp.max(t_init))
    if not (-5.0 <= t_lo and t_hi <= 100.0):  # NaN fails too
        hint = " (kelvin given? 37 C is 310.15 K)" if t_hi > 200 else ""
        raise InvalidParameterError("initial_temperature", t_hi if t_hi > 100 else t_lo, f"must lie within [-5, 100] C{hint}")
    return t_init.astype(np.float32)


def check_safety(safety: Any, option: str = "safety") -> float:
    """The time-step safety factor as a float in (0, 1], else InvalidParameterError naming ``option``."""
    v = finite_scalar(option, safety, positive=True)
    if v > 1:
        raise InvalidParameterError(option, safety, "must be in (0, 1]: 1 is the monotone limit")
    return v


class BioheatState:
    """Temperature, CEM43 dose and maximum temperature of a Pennes problem, advanced on demand.

    Parameters
    ----------
    rho_c, conductivity, perfusion : array_like, shape (n0, n1, n2) (or float)
        rho c [J/m^3/K] (> 0), k [W/m/K] (>= 0), w_b c_b [W/m^3/K] (>= 0).
    spacing : float or (h0, h1, h2)
        Voxel spacing [m].
    source : None, array_like or mapping of (int or str) -> array_like
        Absorbed power density Q_ref [W/m^3] at ``reference_power``, of the grid's shape: None for
        no heating, one array, or one array per focus point / sub-target (chosen per
        :meth:`advance` by ``target``). One array is stored under the key 0.
    reference_power : float
        Drive power [W] at which the sources were computed, > 0.
    initial_temperature : float or array_like
        T at t = 0 [C], within [-5, 100] C.
    arterial_temperature : float
        T_a [C].
    boundary : mapping or sequence, optional
        Per grid face: zero flux or a fixed temperature [C] (see
        :func:`fus.kernels.bioheat_coefficients`).
    safety : float
        Fraction of the monotone step limit used, in (0, 1].
    dose_interval : float, optional
        Accrue dose (and track the maximum temperature) every ``dose_interval`` s, several
        sub-steps per kernel call: faster, the temperature is then taken as linear over that time.
        Default: after every sub-step.

    Attributes
    ----------
    time : float
        Simulated time since the start [s].
    energy : float
        Acoustic energy delivered, the sum of ``power * duty_cycle * duration`` [J].
    n_steps : int
        Sub-steps taken so far.
    time_steps : set of float
        The sub-step lengths used so far [s] (rounded to 1 ns).
    dt_max : float
        Monotone (stable) step limit of the grid and medium [s]; steps use at most
        ``safety * dt_max``.
    safety : float
    reference_power : float
        [W].
    shape : tuple of int
        Grid shape.

    Raises
    ------
    InvalidParameterError
        A bad medium, spacing or boundary; a source of another shape, with non-finite values or a
        key that is not an int or str; an initial temperature out of range (with a hint when it
        looks like kelvin); bad ``reference_power``, ``safety`` or ``dose_interval``. The message
        names the parameter and the value found.

    Examples
    --------
    >>> state = BioheatState(3.7e6, 0.5, 2500.0, 1e-3, q_ref, reference_power=1.0)  # doctest: +SKIP
    >>> state.advance(5.0, 20.0)                     # 5 s at 20 W  # doctest: +SKIP
    >>> state.advance(2.0, 0.0)                      # 2 s cooling  # doctest: +SKIP
    >>> fus.asnumpy(state.dose).max()                # doctest: +SKIP
    """

    def __init__(
        self,
        rho_c: Any,
        conductivity: Any,
        perfusion: Any,
        spacing: Any,
        source: Any = None,
        *,
        reference_power: float = 1.0,
        initial_temperature: Any = 37.0,
        arterial_temperature: float = 37.0,
        boundary: Any = None,
        safety: float = DEFAULT_SAFETY,
        dose_interval: float | None = None,
    ) -> None:
        self.reference_power = finite_scalar("reference_power", reference_power, positive=True)
        self.safety = check_safety(safety)
        self._dose_interval = None if dose_interval is None else finite_scalar("dose_interval", dose_interval, positive=True)
        self._xp = xp = get_backend().xp

        # coefficients at the monotone limit; the steps used are rescaled (a, p, s are linear in dt)
        self._probe = _probe(rho_c, conductivity, perfusion, spacing, arterial_temperature, boundary)
        self.dt_max: float = self._probe.dt_max
        self.shape: tuple[int, ...] = self._probe.shape
        self._sources = _sources(source, xp, self.shape)
        t_init = _initial(initial_temperature, xp, self.shape)

        self._buf = bioheat_buffer(self.shape)
        self._buf[...] = t_init
        self._spare = bioheat_buffer(self.shape)
        self._keep: Any = None
        self._dose = xp.zeros(self.shape, dtype=np.float64)
        self._dose[xp.isnan(self._buf)] = np.nan  # an unknown start temperature: unknown dose, not 0
        self._tmax = self._buf.copy()
        self._coeffs: dict[float, BioheatCoefficients] = {}
        self._with_source: dict[tuple[float, Hashable, float], BioheatCoefficients] = {}

        self.time = 0.0
        self.energy = 0.0
        self.n_steps = 0
        self.time_steps: set[float] = set()

    # -- state -------------------------------------------------------------------------------
    @property
    def temperature(self) -> Any:
        """Current temperature [C], float32 array of the backend, shape :attr:`shape`.

        This is the live buffer, not a copy: the next :meth:`advance` changes or overwrites it
        (the solver ping-pongs between two buffers). Copy it, or use :meth:`snapshot`, to keep it.
        """
        return self._buf

    @property
    def dose(self) -> Any:
        """Accumulated thermal dose [CEM43 min], float64 array of the backend (live, like
        :attr:`temperature`)."""
        return self._dose

    @property
    def max_temperature(self) -> Any:
        """Maximum temperature over every dose update so far [C], float32 array of the backend
        (live)."""
        return self._tmax

    @property
    def targets(self) -> tuple[Hashable, ...]:
        """Keys of the heat sources, in the order given (empty without a source)."""
        return tuple(self._sources)

    def snapshot(self) -> dict[str, Any]:
        """Host numpy copies of the state.

        Returns
        -------
        dict
            ``temperature`` (float32 [C]), ``dose`` (float64 [CEM43 min]), ``max_temperature``
            (float32 [C]) and ``time`` (float [s]).
        """
        return {
            "temperature": asnumpy(self._buf).astype(np.float32, copy=True),
            "dose": asnumpy(self._dose).astype(np.float64, copy=True),
            "max_temperature": asnumpy(self._tmax).astype(np.float32, copy=True),
            "time": float(self.time),
        }

    # -- stepping ----------------------------------------------------------------------------
    def _source_key(self, target: Any) -> Hashable | None:
        """The key of ``target`` among the sources (None when there is none and no target)."""
        if target is None:
            return next(iter(self._sources), None)
        try:
            found = target in self._sources
        except TypeError:  # unhashable
            found = False
        if not found:
            keys = ", ".join(repr(k) for k in self._sources) or "none (no heat source was given)"
            raise InvalidParameterError("target", target, f"is not a heat source of this state (keys: {keys})")
        return target

    def _coefficients(self, dt: float, key: Hashable | None, mean_power: float) -> BioheatCoefficients:
        """Coefficients for step ``dt`` [s] and source ``key`` at time-averaged ``mean_power`` [W]
        (two bounded caches: the medium per dt, the source per dt, key and power)."""
        dkey = round(dt, 12)
        c = self._coeffs.get(dkey)
        if c is None:
            if len(self._coeffs) >= _CACHE_SIZE:
                self._coeffs.clear()
            c = self._probe.with_dt(min(dt, self.dt_max))
            self._coeffs[dkey] = c
        if key is None or mean_power == 0.0:
            return c
        skey = (dkey, key, mean_power)
        cs = self._with_source.get(skey)
        if cs is None:
            if len(self._with_source) >= _CACHE_SIZE:
                self._with_source.clear()
            cs = c.with_source(self._sources[key], mean_power / self.reference_power)
            self._with_source[skey] = cs
        return cs

    def advance(self, duration: float, power: float, *, duty_cycle: float = 1.0, target: Any = None) -> None:
        """Advance the state by ``duration`` seconds at drive ``power``.

        The source is ``Q_ref[target] * power * duty_cycle / reference_power``. The time is split
        into ``ceil(duration / (safety * dt_max))`` equal sub-steps; the dose and the maximum
        temperature are updated after each (or every ``dose_interval`` s).

        Parameters
        ----------
        duration : float
            [s], >= 0 (0 changes nothing).
        power : float
            Acoustic drive power [W], >= 0 (0: cooling).
        duty_cycle : float
            Fraction of the time the drive is on, in (0, 1]; the source uses the time-averaged
            power ``power * duty_cycle``.
        target : int or str, optional
            Key of the heat source to use; default the only (or first) one.

        Raises
        ------
        InvalidParameterError
            A negative or non-finite ``duration`` or ``power``, ``duty_cycle`` outside (0, 1], or
            a ``target`` that is not a key of the sources (the message lists the keys).
        """
        length = finite_scalar("duration", duration, nonnegative=True)
        p = finite_scalar("power", power, nonnegative=True)
        duty = finite_scalar("duty_cycle", duty_cycle)
        if not 0 < duty <= 1:
            raise InvalidParameterError("duty_cycle", duty_cycle, "must be in (0, 1]")
        key = self._source_key(target)
        if length == 0.0:
            return
        mean_power = p * duty
        n = max(1, math.ceil(length / (self.safety * self.dt_max) - 1e-9))
        dt = length / n
        self.time_steps.add(round(dt, 9))
        c = self._coefficients(dt, key, mean_power)
        di = self._dose_interval
        per_call = 1 if di is None else max(1, math.floor(di / dt + 1e-9))
        done = 0
        while done < n:
            k = min(per_call, n - done)
            if k == 1:  # the new map lands in the spare buffer, the old one stays: no copy
                prev = self._buf
                bioheat_step(prev, c, steps=1, out=self._spare, work=prev)
                self._buf, self._spare = self._spare, prev
            else:  # several steps per call ping-pong over the old map: keep it for the dose
                if self._keep is None:
                    self._keep = self._xp.empty_like(self._buf)
                self._keep[...] = self._buf
                prev = self._keep
                bioheat_step(self._buf, c, steps=k, out=self._buf, work=self._spare)
            cem43(self._dose, prev, self._buf, k * dt)
            self._xp.fmax(self._tmax, self._buf, out=self._tmax)
            done += k
        self.n_steps += n
        self.time += length
        self.energy += mean_power * length
        log.debug("bioheat: %.6g s at %.6g W (x%.3g, target %r): %d steps of %.6g s", length, p, duty, key, n, dt)

    def __repr__(self) -> str:
        return (
            f"BioheatState(shape={self.shape}, time={self.time:g} s, energy={self.energy:g} J, "
            f"n_steps={self.n_steps}, dt_max={self.dt_max:g} s, targets={list(self._sources)})"
        )
