"""The digital twin of an MR-guided focused-ultrasound treatment: a closed loop that can be tested.

Every dynamic of the simulated scanner the loop runs what a treatment runs::

    truth (Pennes bioheat at its own fine step, heat source cached per focus, scaled by power)
      -> simulated scanner (complex images: PRF phase, noise, drift, faults)
      -> PRF thermometry (fus.mr.thermometry, the code `fus replay` uses, drift correction included)
      -> controller (PID, MPC or binary) inside the interlocks (always on; power zero on any doubt)
      -> the power applied until the next decision.

Timing: dynamic ``k`` is acquired at ``t_k = k * period`` (the true temperature is sampled then)
and reaches the controller at ``t_k + latency``; the power it decides holds from then until the
next decision; the watchdog is looked at at every event and when its deadline passes. The run is
deterministic for a seed (scanner noise is the only randomness) on either backend.

Model mismatch: the controller's view of the plant (its priors, its auto-tuned gains) comes from
a step response of the same bioheat model with the absorption and the perfusion scaled by
``[model] absorption_scale`` / ``perfusion_scale``; the truth is the phantom as it is.
"""

from __future__ import annotations

import logging
import math
import time as _time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fus.backend import asnumpy, get_backend
from fus.control.types import Command, Measurement, Reason
from fus.errors import FusError, InvalidParameterError
from fus.pipelines.scenario import Scenario
from fus.pipelines.twin_build import build_twin

__all__ = ["TwinResult", "run_twin"]

log = logging.getLogger(__name__)


@dataclass
class TwinResult:
    """What a twin run produced (host arrays).

    Attributes
    ----------
    log : list of dict
        One row per decision (dynamic): times, power, ROI statistics (measured and true),
        controller state, interlock status, reason.
    summary : dict
        The figures of merit (see :func:`summarise`).
    times : ndarray
        Acquisition times [s] of the recorded frames.
    true_temperature, measured_temperature : ndarray or None
        (n, *grid) and (n, slices, rows, cols) float32 [C] at the acquisition times (when frames kept).
    true_dose, measured_dose, true_max_temperature : ndarray
        Final CEM43 [min] on the grid and on the images; the grid's peak temperature [C].
    twin : Twin
        The built twin (phantom, scanner, plan, ROIs) for the writers.
    """

    log: list
    summary: dict
    times: np.ndarray
    true_temperature: Any
    measured_temperature: Any
    true_dose: np.ndarray
    measured_dose: np.ndarray
    true_max_temperature: np.ndarray
    twin: Any
    images: list = field(default_factory=list)
    measured_times: Any = None


class _Clock:
    """The scanner's schedule with its timing faults: which dynamics come, and when."""

    def __init__(self, period: float, latency: float, duration: float, faults: list) -> None:
        self.period = period
        self.latency = latency
        self.duration = duration
        self.faults = faults

    def dynamics(self) -> list[tuple[int, float, float, bool]]:
        """(index, acquisition time, available time, dropped) for every dynamic of the run."""
        out = []
        n = int(math.floor(self.duration / self.period + 1e-9))
        drops = {i: int(f.params["count"]) for i, f in enumerate(self.faults) if f.kind == "drop"}
        lates = {i: int(f.params["count"]) for i, f in enumerate(self.faults) if f.kind == "late"}
        for k in range(1, n + 1):
            t = k * self.period
            avail = t + self.latency
            dropped = False
            for i, f in enumerate(self.faults):
                if t + 1e-9 < f.at_s:
                    continue
                if f.kind == "drop" and drops[i] > 0:
                    drops[i] -= 1
                    dropped = True
                if f.kind == "late" and lates[i] > 0:
                    lates[i] -= 1
                    delay = f.params["delay_s"]
                    avail += 1.5 * self.period if delay is None else float(delay)
            out.append((k, t, avail, dropped))
        return out


def _active(faults: list, kind: str, t: float) -> list:
    return [f for f in faults if f.kind == kind and t + 1e-9 >= f.at_s]


def run_twin(scenario: Scenario, *, progress: bool = False, keep_frames: bool = True, keep_images: bool = False) -> TwinResult:
    """Run the closed loop of ``scenario`` to its end and return the log, the summary and the maps.

    Raises
    ------
    InvalidParameterError, DataError
        A bad scenario value (named). Errors inside the loop do not raise: they trip the
        interlocks (``loop_exception`` / ``controller_exception``), the power goes to zero and
        the reason is recorded.
    """
    wall0 = _time.perf_counter()
    twin = build_twin(scenario, progress=progress)
    twin.keep_images = keep_images
    s = twin
    xp = get_backend().xp
    period, latency = s.scanner_settings.dynamic_period, s.scanner_settings.latency
    clock = _Clock(period, latency, scenario.duration, scenario.faults)
    events = clock.dynamics()
    pending: list[tuple[float, int, float, Any, bool]] = []  # (available, index, t_acq, image, repeated)
    rows: list[dict] = []
    frames_true: list[np.ndarray] = []
    frames_meas: list[np.ndarray] = []
    frame_times: list[float] = []
    images_kept: list = []
    command = Command(0.0, Reason.WAIT)
    power = 0.0
    target_key = 0
    energy_since = 0.0
    time_since = 0.0
    prev_image = None
    stopped = False
    goal_time = None
    now = 0.0
    ev_i = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=scenario.duration, unit="s", desc="twin", bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]")

    def advance_to(t_next: float) -> None:
        nonlocal now, energy_since, time_since
        dt = t_next - now
        if dt <= 1e-12:
            return
        key = s.source_key(target_key, now)
        s.state.advance(dt, power, target=key)
        s.interlocks.account(power, dt)
        energy_since += power * dt
        time_since += dt
        now = t_next
        if bar is not None:
            bar.update(dt)

    def decide(index: int, t_acq: float, image: Any, repeated: bool) -> None:
        nonlocal command, power, target_key, energy_since, time_since, prev_image, stopped, goal_time
        row: dict[str, Any] = {"dynamic": index, "time_s": t_acq, "available_s": now}
        try:
            dyn = s.thermometry.process(xp.asarray(image), t_acq, s.noise_for(t_acq))
            applied = energy_since / time_since if time_since > 0 else 0.0
            energy_since = time_since = 0.0
            corr = s.magnitude_correlation(image)
            m = Measurement(
                index=index, time=t_acq, temperature=dyn.temperature, sigma_t=dyn.sigma_t, mask=dyn.mask,
                dose=s.thermometry.dose.dose, applied_power=applied, available_time=now,
                magnitude_correlation=corr, repeated=repeated,
            )
            ctrl = s.controller
            if stopped:
                cmd = s.interlocks.check(m, Command(0.0, Reason.GOAL_REACHED, stop=True), now)
            else:
                if _active(scenario.faults, "controller_exception", t_acq) and not s.exception_fired:
                    s.exception_fired = True
                    msg = _active(scenario.faults, "controller_exception", t_acq)[0].params["message"]

                    def boom(_m: Measurement) -> Command:
                        raise RuntimeError(msg)

                    cmd = s.interlocks.guard(boom, m, now)
                else:
                    cmd = s.interlocks.guard(ctrl.update, m, now)
            row.update(s.row_statistics(m, dyn))
        except InvalidParameterError as exc:
            # too few measured voxels for the drift fit: the thermometry cannot be trusted
            reason = Reason.THERMOMETRY_NAN if exc.name == "drift" else Reason.LOOP_EXCEPTION
            cmd = s.interlocks.fail(reason, now, f"{type(exc).__name__}: {exc}")
        except FusError as exc:  # bad data inside the loop: fail safe, record
            cmd = s.interlocks.fail(Reason.LOOP_EXCEPTION, now, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - anything: power zero, recorded
            log.exception("twin: loop exception at t = %.2f s", now)
            cmd = s.interlocks.fail(Reason.LOOP_EXCEPTION, now, f"{type(exc).__name__}: {exc}")
        if cmd.stop and cmd.reason == Reason.GOAL_REACHED and goal_time is None:
            goal_time = now
            stopped = True
        command = cmd
        power = cmd.power
        target_key = cmd.target
        prev_image = image
        row.update({"power_W": power, "target": cmd.target, "reason": str(cmd.reason), "stop": bool(cmd.stop), "detail": cmd.detail})
        row.update({f"ctrl_{k}": v for k, v in cmd.state.items()})
        row.update({f"il_{k}": v for k, v in s.interlocks.status().items()})
        row.update(s.true_statistics(t_acq_state.get(index)))
        rows.append(row)

    t_acq_state: dict[int, dict] = {}
    last_arrival = 0.0
    meas_times: list[float] = []
    while True:
        next_acq = events[ev_i][1] if ev_i < len(events) else math.inf
        next_avail = min((p[0] for p in pending), default=math.inf)
        deadline = last_arrival + s.interlocks.limits.watchdog_factor * period + 1e-6
        t_next = min(next_acq, next_avail, scenario.duration, deadline if deadline > now + 1e-9 else math.inf)
        advance_to(t_next)
        trip = s.interlocks.check_timeout(now)
        if trip is not None and power > 0:
            power = 0.0
            rows.append({"dynamic": -1, "time_s": now, "available_s": now, "power_W": 0.0, "target": target_key, "reason": str(trip.reason), "stop": True, "detail": trip.detail, **{f"il_{k}": v for k, v in s.interlocks.status().items()}})
        if now >= scenario.duration - 1e-9 and t_next == scenario.duration:
            break
        if t_next == next_acq:
            index, t_acq, avail, dropped = events[ev_i]
            ev_i += 1
            truth = asnumpy(s.state.temperature)
            t_acq_state[index] = s.truth_sample(truth)
            if keep_frames:
                frames_true.append(truth.astype(np.float32, copy=True))
                frame_times.append(t_acq)
            if dropped:
                continue
            image, repeated = s.acquire(truth, t_acq, prev_image)
            if s.keep_images:
                images_kept.append((t_acq, image))
            pending.append((avail, index, t_acq, image, repeated))
            prev_image = image
        elif t_next == next_avail:
            pending.sort(key=lambda p: p[0])
            avail, index, t_acq, image, repeated = pending.pop(0)
            last_arrival = now
            decide(index, t_acq, image, repeated)
            if keep_frames:
                frames_meas.append(asnumpy(s.thermometry_last()).astype(np.float32, copy=True))
                meas_times.append(t_acq)
    if bar is not None:
        bar.close()
    from fus.pipelines.twin_report import summarise

    summary = summarise(scenario, twin, rows, goal_time)
    summary["wall_time_s"] = _time.perf_counter() - wall0
    summary["realtime_factor"] = scenario.duration / max(summary["wall_time_s"] - summary["setup_s"], 1e-9)
    return TwinResult(
        log=rows, summary=summary, times=np.asarray(frame_times),
        true_temperature=np.stack(frames_true) if frames_true else None, measured_times=np.asarray(meas_times),
        measured_temperature=np.stack(frames_meas) if frames_meas else None,
        true_dose=asnumpy(s.state.dose).copy(), measured_dose=asnumpy(s.thermometry.dose.dose).copy(),
        true_max_temperature=asnumpy(s.state.max_temperature).copy(), twin=twin, images=images_kept,
    )

