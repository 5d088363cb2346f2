"""The twin of a scenario, built: truth, scanner, thermometry, controller, interlocks, and their ROIs.

:func:`build_twin` reads the scenario's tables into the objects the loop of
:mod:`fus.pipelines.twin` drives; :class:`Twin` also holds the small per-dynamic helpers (the
source in use, the faults active at a time, the statistics logged).
"""

from __future__ import annotations


import copy
import dataclasses
import logging
import time as _time
from typing import Any

import numpy as np

from fus.backend import asnumpy, get_backend
import importlib
from fus.control.mpc import MPCController, MPCSettings
from fus.control.pid import PIDController, PIDSettings
from fus.control.interlocks import Interlocks
from fus.control.limits import InterlockLimits
from fus.control.trajectory import Trajectory
from fus.control.types import Measurement, roi_statistic
from fus.checks import finite_scalar
from fus.errors import InvalidParameterError
from fus.mr.baseline import Baseline
from fus.mr.quality import magnitude_correlation, nan_fraction
from fus.mr.scanner_sim import ImagePlan, ScannerSettings, SimulatedScanner
from fus.mr.thermometry import Thermometry, ThermometrySettings
from fus.physics.bioheat import state_for_phantom
from fus.physics.bioheat_state import BioheatState
from fus.physics.phantom import build_phantom
from fus.physics.toml_file import read_toml
from fus.physics.transducer_presets import transducer_from_spec
from fus.pipelines.scenario import Scenario
from fus.pipelines.twin_setup import ball, cached_heat_source, fault_sources, grid_rois

__all__ = ["Twin", "build_twin", "deep_merge"]

log = logging.getLogger(__name__)

_BASELINE_DYNAMICS = 4
DRIFT = "poly"


def deep_merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in (tables merged key by key, other values replaced)."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class Twin:
    """Everything a twin run needs, built once (see :func:`build_twin`)."""

    def __init__(self) -> None:
        self.exception_fired = False
        self.keep_images = False
        self.faults: list = []
        self._last_dyn: Any = None

    # ---- per-event helpers used by the loop
    def host(self, x: Any) -> np.ndarray:
        return asnumpy(x)

    def source_key(self, target: int, t: float) -> Any:
        """The bioheat source in use: sub-target ``target`` with the physical faults active at ``t``."""
        n = sum(1 for i in self.physical_faults if self.faults[i].at_s <= t + 1e-9)
        return f"{int(target)}+{n}"

    def noise_for(self, t: float) -> float:
        """The complex noise std of the dynamic acquired at ``t`` (the ``snr`` fault raises it)."""
        f = 1.0
        for fault in self.faults:
            if fault.kind == "snr" and t + 1e-9 >= fault.at_s:
                f *= float(fault.params["factor"])
        return self.scanner.noise * f

    def acquire(self, truth: np.ndarray, t: float, previous: Any) -> tuple[Any, bool]:
        """The complex images acquired at ``t`` from the true temperature, with the faults active."""
        stuck = [f for f in self.faults if f.kind == "stuck" and t + 1e-9 >= f.at_s]
        if stuck and previous is not None:
            return previous, True
        shift = np.zeros(2)
        loss = None
        scale = self.noise_for(t) / self.scanner.noise
        for f in self.faults:
            if t + 1e-9 < f.at_s:
                continue
            if f.kind == "motion":
                shift = shift + np.asarray(f.params["shift_mm"], dtype=np.float64)[:2] * 1e-3
            if f.kind == "nan":
                roi = self.image_rois.get(str(f.params["roi"]))
                if roi is None:
                    raise InvalidParameterError("faults.roi", f.params["roi"], f"must be one of {', '.join(self.image_rois)}")
                loss = roi if loss is None else (loss | roi)
        img = self.scanner.acquire(truth, t, noise_scale=scale, shift=tuple(shift), signal_loss=None)
        if loss is not None:  # a reconstruction fault: the pixels are NaN, not zero
            img = np.array(img, copy=True)
            img[loss] = np.complex64(complex(np.nan, np.nan))
        return img, False

    def magnitude_correlation(self, image: Any) -> float:
        return magnitude_correlation(image, self.baseline_image, self.image_rois["body"])

    def truth_sample(self, truth: np.ndarray) -> dict[str, float]:
        """The true target statistic (the true temperature on the images, no noise) and peaks."""
        img = self.scanner.resample(truth)
        # over the target voxels thermometry can measure (signal in the baseline): the true value
        # of the statistic the controller follows
        out = {"true_target_C": roi_statistic(img, self.image_rois["target"], self.statistic, mask=self.measurable)}
        for name in ("skin", "near_field", "cord"):
            if name in self.grid_rois:
                out[f"true_{name}_max_C"] = float(truth[self.grid_rois[name]].max())
        out["true_max_C"] = float(truth[self.grid_rois["body"]].max())
        return out

    def true_statistics(self, sample: dict | None) -> dict[str, float]:
        return dict(sample or {})

    def row_statistics(self, m: Measurement, dyn: Any) -> dict[str, float]:
        """Measured statistics of a dynamic for the log."""
        self._last_dyn = dyn
        out = {"target_C": roi_statistic(m.temperature, self.image_rois["target"], self.statistic, mask=m.mask)}
        out["target_mean_C"] = roi_statistic(m.temperature, self.image_rois["target"], "mean", mask=m.mask)
        out["target_nan_fraction"] = nan_fraction(m.temperature, self.image_rois["target"])
        out["reference_C"] = self.trajectory.value(m.time - self.t_start) if self.trajectory is not None else float("nan")
        out["applied_power_W"] = m.applied_power
        out["magnitude_correlation"] = m.magnitude_correlation
        return out

    def thermometry_last(self) -> Any:
        return self._last_dyn.temperature if self._last_dyn is not None else np.full(self.image_shape, np.nan, np.float32)

    @property
    def plan_slices(self) -> int:
        return int(self.image_shape[0])

    def slice_affine_mm(self, i: int) -> np.ndarray:
        """4x4 map of (row, col, 0, 1) of slice ``i`` to the transducer frame [mm] (NIfTI order)."""
        a = np.array(self.plan.affines()[i], dtype=np.float64)[:, [1, 0, 2, 3]]  # plan: (col, row, k)
        a[:3, :] *= 1e3
        return a


def _phantom(scenario: Scenario) -> Any:
    sec = scenario.section("phantom")
    path = scenario.path(sec["file"])
    spec = read_toml(path, "phantom")
    extra = {k: v for k, v in sec.items() if k != "file"}
    return build_phantom(deep_merge(spec, extra) if extra else spec, source=str(path))


def _predicted_change(tw: Twin, q: np.ndarray, scenario: Scenario, th: dict) -> np.ndarray:
    """Image voxels the plan predicts to change over the treatment, left out of the drift fit (as
    a planner draws the drift reference ROIs in tissue that stays put): the bioheat model run for
    the scenario's duration at zero power (the skin still settling against the bath) and at 1 W;
    a voxel is out where the zero-power change exceeds ``thermometry.drift_reference_settle_C``
    (default 0.1 C) or the heating per W exceeds ``thermometry.drift_reference_fraction``
    (default 0.01) of the target's mean heating per W."""
    frac = finite_scalar("thermometry.drift_reference_fraction", th.get("drift_reference_fraction", 0.01), positive=True)
    settle = finite_scalar("thermometry.drift_reference_settle_C", th.get("drift_reference_settle_C", 0.1), positive=True)
    ph = tw.phantom
    therm = ph.thermal()
    t_start = asnumpy(tw.state.temperature)
    duration = float(scenario.spec["duration_s"])
    ends = []
    for power in (0.0, 1.0):
        st = BioheatState(
            therm["rho_c"], therm["conductivity"], therm["perfusion"], ph.spacing, {0: q},
            initial_temperature=t_start, arterial_temperature=ph.body_temperature, boundary=ph.boundary(),
        )
        st.advance(duration, power)
        ends.append(np.asarray(tw.scanner.resample(asnumpy(st.temperature)), dtype=np.float64))
    start = np.asarray(tw.scanner.resample(t_start), dtype=np.float64)
    per_watt = ends[1] - ends[0]
    target = float(np.mean(per_watt[tw.image_rois["target"]]))
    moving = (np.abs(ends[0] - start) > settle) | (per_watt > frac * max(target, 1e-12))
    log.info("drift reference: %.0f %% of the image predicted to change (> %.2g C settling, > %.0f %% of the target's heating)", 100 * moving.mean(), settle, 100 * frac)
    return moving


def _controller_view(twin: Twin, q: np.ndarray, scenario: Scenario, period: float) -> dict[str, float]:
    """The controller's view of the plant: a step response of the bioheat model with the
    absorption and perfusion scaled by ``[model]``, fitted by dT/dt = a P - b (T - T0)."""
    model = scenario.section("model")
    ab, pf = float(model.get("absorption_scale", 1.0)), float(model.get("perfusion_scale", 1.0))
    ph = twin.phantom
    th = ph.thermal()
    st = BioheatState(
        th["rho_c"], th["conductivity"], th["perfusion"] * pf, ph.spacing, {0: q * ab},
        initial_temperature=asnumpy(twin.state.temperature), arterial_temperature=ph.body_temperature, boundary=ph.boundary(),
    )
    p = 1.0
    t0 = roi_statistic(twin.scanner.resample(asnumpy(st.temperature)), twin.image_rois["target"], "mean")
    ys = [t0]
    for _ in range(24):
        st.advance(period, p)
        ys.append(roi_statistic(twin.scanner.resample(asnumpy(st.temperature)), twin.image_rois["target"], "mean"))
    y = np.asarray(ys) - t0
    dy = np.diff(y) / period
    ym = 0.5 * (y[1:] + y[:-1])
    A = np.stack([np.full_like(ym, p), -ym], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, dy, rcond=None)
    a = max(float(a), 1e-6)
    b = min(max(float(b), 1.0 / 300.0), 0.5)  # a 5 min time constant at least: the controllers' plausible range
    log.info("controller's view (absorption x%g, perfusion x%g): gain %.4g C/s/W, cooling %.4g 1/s", ab, pf, a, b)
    return {"gain_C_per_J": a, "cooling_per_s": b, "absorption_scale": ab, "perfusion_scale": pf}


def _steered_source(tw: Twin, focus: np.ndarray, spec: dict, field_spacing: float | None, progress: bool,
                    refine_focus: bool = False) -> tuple[np.ndarray, dict]:
    """Q [W/m^3 at 1 W] of one sub-target: the focus itself, or, with ``steer_radius_mm`` > 0, the
    mean over ``steer_points`` foci on a circle around it in the x-y plane (electronic steering
    cycling faster than the thermal time constants, as volumetric hyperthermia does; the
    time-averaged source is the average of the points' sources at the same total power)."""
    r = float(spec.get("steer_radius_mm", 0.0)) * 1e-3
    n = int(spec.get("steer_points", 8))
    if r < 0 or n < 1:
        raise InvalidParameterError("focus.steer_radius_mm/steer_points", (r * 1e3, n), "must be >= 0 mm and >= 1 point")
    if r == 0:
        return cached_heat_source(tw.phantom, tw.transducer, focus, field_spacing=field_spacing, progress=progress, refine_focus=refine_focus)
    acc = None
    info: dict = {}
    for j in range(n):
        ang = 2 * np.pi * j / n
        pt = focus + np.array([r * np.cos(ang), r * np.sin(ang), 0.0])
        q, info = cached_heat_source(tw.phantom, tw.transducer, pt, field_spacing=field_spacing, progress=progress, refine_focus=refine_focus)
        acc = q.astype(np.float64) if acc is None else acc + q
    return acc / n, dict(info, steer_radius_mm=r * 1e3, steer_points=n)


def _make_controller(kind: str, settings: dict, target: np.ndarray, *, p_max: float, trajectory: Any, sub_targets: Any) -> Any:
    """The controller named by ``[controller] kind`` (``fus.control.factory`` where present)."""
    try:
        factory = importlib.import_module("fus.control.factory")
    except ImportError:
        factory = None
    if factory is not None:
        return factory.make_controller(kind, settings, target, p_max=p_max, trajectory=trajectory, sub_targets=sub_targets)
    if kind == "pid":
        return PIDController(PIDSettings.from_mapping(settings), target, p_max=p_max, trajectory=trajectory)
    if kind == "mpc":
        return MPCController(MPCSettings.from_mapping(settings), target, p_max=p_max, trajectory=trajectory)
    raise InvalidParameterError("controller.kind", kind, "this installation has no such controller")


def _view_settings(kind: str, settings: dict, view: dict, scanner: Any) -> dict:
    """The controller's settings with what it was not told filled from its view of the plant:
    the MPC's priors (gain, cooling); the PID's gains by internal-model tuning (closed-loop time
    constant ``lambda`` = the larger of the plant's and 20 s, dead time = latency + a period)."""
    out = dict(settings)
    out.setdefault("dynamic_period", scanner.dynamic_period)
    a, b = view["gain_C_per_J"], view["cooling_per_s"]
    if kind == "mpc":
        out.setdefault("gain_prior", a)
        out.setdefault("cooling_prior", b)
    elif kind == "pid":
        theta = scanner.latency + scanner.dynamic_period
        lam = max(1.0 / b, 20.0)
        kp = 1.0 / (a * (lam + theta))
        out.setdefault("kp", kp)
        out.setdefault("ki", kp * b)
    else:
        out.pop("dynamic_period", None)
    return out


def build_twin(scenario: Scenario, *, progress: bool = False) -> Twin:
    """Build the twin of ``scenario`` (fields computed or taken from the cache)."""
    t0 = _time.perf_counter()
    tw = Twin()
    tw.faults = list(scenario.faults)
    tw.backend_name = getattr(get_backend(), "name", "?")
    tw.phantom = ph = _phantom(scenario)
    tr = scenario.section("transducer")
    tw.transducer = transducer_from_spec(
        tr.get("name", "cap256"), roc_mm=tr.get("roc_mm"), aperture_mm=tr.get("aperture_mm"), frequency_mhz=tr.get("frequency_mhz"),
        names=("transducer.roc_mm", "transducer.aperture_mm", "transducer.frequency_mhz"),
    )
    points = scenario.section("focus").get("points_mm")
    foci = [np.asarray(ph.target, dtype=np.float64)] if points is None else [np.asarray(p, dtype=np.float64) * 1e-3 for p in points]
    for i, f in enumerate(foci):
        if f.shape != (3,) or not np.isfinite(f).all():
            raise InvalidParameterError(f"focus.points_mm[{i}]", f.tolist(), "must be [x, y, z] in mm")
    fs = tr.get("field_spacing_mm")
    refine = tr.get("refine_focus", False)
    if not isinstance(refine, bool):
        raise InvalidParameterError("transducer.refine_focus", refine, "must be true or false (recompute the focal region at the phantom's spacing)")
    tw.grid_rois = grid_rois(ph, scenario.section("rois"))
    sources: dict[str, np.ndarray] = {}
    tw.field_info = []
    q0 = None
    for k, f in enumerate(foci):
        q, info = _steered_source(tw, f, scenario.section("focus"), None if fs is None else float(fs) * 1e-3, progress, refine)
        tw.field_info.append(info)
        q0 = q if q0 is None else q0
        extras = fault_sources(ph, q, tw.faults, tw.grid_rois)
        tw.physical_faults = [i for i, fl in enumerate(tw.faults) if f"fault_{i}" in extras]
        acc = np.array(q, dtype=np.float64)
        sources[f"{k}+0"] = acc.copy()
        for n, i in enumerate(sorted(tw.physical_faults, key=lambda j: tw.faults[j].at_s), start=1):
            acc = acc + extras[f"fault_{i}"]
            sources[f"{k}+{n}"] = acc.copy()
    tw.foci = foci
    tw.state = state_for_phantom(ph, sources)
    eq = float(scenario.spec.get("equilibrate_s", 0.0))
    if eq > 0:  # the skin against the bath, at zero power, before the baseline
        tw.state.advance(eq, 0.0)
    # ---- scanner and its images
    sc = scenario.section("scanner")
    plan_spec = sc.pop("plan", {}) if isinstance(sc.get("plan", {}), dict) else {}
    tw.scanner_settings = ScannerSettings(**{**sc, "seed": int(sc.get("seed", scenario.seed))})
    tw.scanner_settings.validate()
    axial = bool(plan_spec.pop("axial", False))
    n_stack = plan_spec.pop("coronal_stack", 0)
    if isinstance(n_stack, bool) or not isinstance(n_stack, int) or not 0 <= n_stack <= 15:
        raise InvalidParameterError("scanner.plan.coronal_stack", n_stack, "must be an integer number of slices, 1 to 15 (0: off)")
    if n_stack and axial:
        raise InvalidParameterError("scanner.plan.coronal_stack", n_stack, "replaces the standard planes: drop scanner.plan.axial")
    if "matrix" in plan_spec:
        plan_spec["matrix"] = tuple(plan_spec["matrix"])
    std = ImagePlan.standard(ph.grid, foci[0], **plan_spec)
    # default: the two planes along the beam (skin, near field, target and what lies behind it);
    # the axial plane at the bone surface is mostly cortex and fat-suppressed marrow (no PRF signal)
    tw.plan = std if axial else ImagePlan(slices=std.slices[:2], rows=std.rows, cols=std.cols)
    if n_stack:  # contiguous parallel coronal slices centred on the focus (one series of n_stack slices)
        cor = std.slices[0]
        tw.plan = ImagePlan(
            slices=tuple(dataclasses.replace(cor, offset=cor.offset + (k - (n_stack - 1) / 2) * cor.thickness) for k in range(n_stack)),
            rows=std.rows, cols=std.cols,
        )
    tw.scanner = SimulatedScanner(ph.grid, ph.labels, tw.plan, tw.scanner_settings)
    tw.image_rois = {}
    for name, m in tw.grid_rois.items():
        im = np.asarray(tw.scanner.resample_mask(m), dtype=bool)
        if not im.any() and name in ("target", "skin", "near_field", "cord"):
            raise InvalidParameterError(f"rois.{name}", "no image voxel", "the slice plan does not cut this ROI: move the slices (scanner.plan)")
        if im.any():
            tw.image_rois[name] = im
    tw.image_shape = tuple(next(iter(tw.image_rois.values())).shape)
    # ---- thermometry from a baseline at the start temperature
    truth = asnumpy(tw.state.temperature)
    base_images = tw.scanner.baseline(_BASELINE_DYNAMICS, truth)
    tw.baseline_images = base_images
    tw.baseline_truth = truth  # the temperature the baseline images were acquired at (grid)
    tw.baseline = Baseline.average(base_images, tw.scanner.noise)
    tw.baseline_image = tw.baseline.image
    tw.measurable = np.abs(np.asarray(tw.baseline.image)) >= 5.0 * tw.scanner.noise  # Thermometry's snr_min
    th = scenario.section("thermometry")
    ball_r = finite_scalar("thermometry.drift_exclude_radius_mm", th.get("drift_exclude_radius_mm", 0.0), nonnegative=True) * 1e-3
    axis_r = finite_scalar("thermometry.drift_exclude_axis_mm", th.get("drift_exclude_axis_mm", 0.0), nonnegative=True) * 1e-3
    heated = np.zeros(ph.shape, dtype=bool)
    for f in foci:
        heated |= ball(ph.grid, f, ball_r)  # the drift fit keeps off the heated spot (heat spreads)
    gx, gy, _ = np.meshgrid(*ph.grid.axes(), indexing="ij")
    heated |= gx**2 + gy**2 <= axis_r**2  # ... and off the beam path (near field, bone surface)
    exclude = np.asarray(tw.scanner.resample_mask(heated), dtype=bool) | tw.image_rois.get("skin", False)
    exclude |= _predicted_change(tw, q0, scenario, th)
    if not (~exclude & tw.measurable).any(axis=(1, 2)).all():
        raise InvalidParameterError("thermometry.drift_exclude_radius_mm", ball_r * 1e3, "no unheated measured tissue is left in a slice for the drift fit: enlarge the phantom grid or the slices")
    drift_on = th.get("drift", True)
    if not isinstance(drift_on, bool):
        raise InvalidParameterError("thermometry.drift", drift_on, "must be true or false (drift correction on or off)")
    order = th.get("drift_order", 1)
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 2:
        raise InvalidParameterError("thermometry.drift_order", order, "must be 0, 1 or 2 (the drift polynomial's order)")
    thermo = ThermometrySettings(
        alpha_ppm=tw.scanner_settings.alpha_ppm, phase_sign=tw.scanner_settings.phase_sign,
        body_temp=ph.body_temperature, drift=DRIFT if drift_on else "none", drift_order=order, exclude=exclude,
    )
    tw.thermometry = Thermometry(tw.baseline, tw.scanner_settings.b0, tw.scanner_settings.te, thermo, t0=0.0)
    tw.drift_exclude = exclude  # image voxels left out of the drift fit (the sample series ships them)
    # ---- controller and interlocks
    ctrl = scenario.section("controller")
    p_max = float(ctrl["p_max_W"])
    traj = ctrl.get("trajectory")
    tw.t_start = tw.scanner_settings.dynamic_period
    tw.trajectory = None if traj is None else Trajectory.from_mapping(traj).bind(ph.body_temperature, tw.t_start)
    settings = dict(ctrl.get("settings", {}))
    tw.statistic = str(settings.get("statistic", "mean"))
    tw.view = _controller_view(tw, q0, scenario, tw.scanner_settings.dynamic_period)
    subs = [tw.image_rois[k] for k in sorted(tw.image_rois) if k.startswith("sub_target_")] or None
    settings = _view_settings(ctrl["kind"], settings, tw.view, tw.scanner_settings)
    tw.controller = _make_controller(ctrl["kind"], settings, tw.image_rois["target"], p_max=p_max, trajectory=tw.trajectory, sub_targets=subs)
    limits = InterlockLimits.from_mapping(scenario.section("interlocks"))
    il_rois = {k: v for k, v in tw.image_rois.items() if k in ("target", "skin", "near_field", "cord", "body")}
    tw.interlocks = Interlocks(limits, il_rois, dynamic_period=tw.scanner_settings.dynamic_period, baseline_temperature=ph.body_temperature, watched=[k for k in ("target", "skin", "near_field", "cord") if k in il_rois])
    tw.interlocks.start(0.0)
    tw.setup_s = _time.perf_counter() - t0
    log.info("twin built in %.1f s: grid %s, images %s, %d focus point(s)", tw.setup_s, ph.shape, tw.image_shape, len(foci))
    return tw
