"""fus.control.interlocks: every check just below (no trip) and just above (power 0) its limit,
latching, the cooling hold, the watchdog, budgets, NaN / unmeasured ROIs, stuck frames, numpy vs cupy."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import fields

import numpy as np
import pytest

from fus.backend import asnumpy
from fus.control.interlocks import Hold, Interlocks, Trip
from fus.control.limits import InterlockLimits
from fus.control.types import Command, Measurement, Reason
from fus.errors import InvalidParameterError

SHAPE = (2, 16, 16)
PERIOD = 3.0  # s between dynamics
LATENCY = 0.5  # s from acquisition to the loop


def make_rois() -> dict[str, np.ndarray]:
    """Skin (rows 0-1), near field (rows 2-5), target (40 voxels), cord (rows 13-15)."""
    rois = {k: np.zeros(SHAPE, bool) for k in ("skin", "near_field", "target", "cord")}
    rois["skin"][:, 0:2, :] = True
    rois["near_field"][:, 2:6, 4:12] = True
    rois["target"][:, 8:12, 6:11] = True
    rois["cord"][:, 13:16, 6:11] = True
    return rois


class Scene:
    """Successive synthetic dynamics (index i at t = i * PERIOD) through one Interlocks."""

    def __init__(self, limits: InterlockLimits | None = None, rois: dict | None = None, to=np.asarray, **kw) -> None:
        self.rois = make_rois() if rois is None else rois
        self.il = Interlocks(InterlockLimits(smoothing_px=1) if limits is None else limits, self.rois, dynamic_period=PERIOD, **kw)
        self.il.start(0.0)
        self.index = 0
        self.to = to

    def voxels(self, roi: str, n: int = 1) -> tuple[np.ndarray, ...]:
        return tuple(np.argwhere(self.rois[roi])[:n].T)

    def measurement(self, hot: dict | None = None, *, dose: dict | None = None, sigma: dict | None = None, warm: dict | None = None, unmeasured: dict | None = None,
                    temperature: np.ndarray | None = None, latency: float = LATENCY, delay: float = 0.0, index: int | None = None, **kw) -> Measurement:
        i = self.index if index is None else index
        self.index = i + 1
        t = i * PERIOD + delay
        noise = np.random.default_rng(1000 + i).uniform(-0.02, 0.02, SHAPE)  # a real frame is never bit-identical
        temp = (37.0 + noise).astype(np.float32) if temperature is None else temperature.copy()
        sig = np.full(SHAPE, 0.5, np.float32)
        mask = np.ones(SHAPE, bool)
        dmap = np.zeros(SHAPE, np.float64)
        for roi, value in (hot or {}).items():
            temp[self.voxels(roi)] = value
        for roi, value in (warm or {}).items():  # the whole ROI (the cooling condition is a percentile)
            temp[self.rois[roi]] = value
        for roi, value in (dose or {}).items():
            dmap[self.voxels(roi)] = value
        for roi, value in (sigma or {}).items():
            sig[self.rois[roi]] = value
        for roi, n in (unmeasured or {}).items():
            vox = self.voxels(roi, n)
            temp[tuple(v[::2] for v in vox)] = np.nan  # half as NaN, half masked out
            mask[tuple(v[1::2] for v in vox)] = False
        return Measurement(i, t, self.to(temp), self.to(sig), self.to(mask), self.to(dmap), available_time=t + latency, **kw)

    def step(self, power: float = 10.0, *, stop: bool = False, reason: Reason = Reason.CONTROL, **kw) -> Command:
        m = self.measurement(**kw)
        return self.il.check(m, Command(power, reason, stop=stop), m.available_time)


def assert_trip(trip: Trip, reason: Reason, roi, value: float, limit: float, scene: Scene) -> None:
    assert trip.reason is reason
    assert trip.roi == roi
    assert trip.value == pytest.approx(value, abs=1e-4)
    assert trip.limit == pytest.approx(limit)
    assert trip.dynamic == scene.index - 1
    assert trip.time_s == pytest.approx((scene.index - 1) * PERIOD + LATENCY)


# --------------------------------------------------------------------------------------- limits
def test_every_default_is_documented_with_a_reason():
    doc = InterlockLimits.__doc__
    for f in fields(InterlockLimits):
        if f.init:
            assert f"{f.name} :" in doc, f.name
    lim = InterlockLimits(smoothing_px=1)
    assert (lim.max_temperature_C, lim.skin_max_C, lim.cord_max_C, lim.cord_dose_max_CEM43) == (90.0, 42.0, 41.0, 2.0)
    assert (lim.nan_fraction_max, lim.sigma_t_median_max_C, lim.magnitude_correlation_min, lim.watchdog_factor) == (0.3, 3.0, 0.9, 1.5)
    assert lim.energy_budget_J is None and lim.sonication_budget_s is None and lim.cooling_margin_C == 1.0


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("max_temperature_C", 100.0, "absolute temperature"),
        ("skin_max_C", 5.0, "a rise?"),
        ("cord_dose_max_CEM43", 240.0, "ablation dose"),
        ("nan_fraction_max", 1.0, "[0, 1)"),
        ("magnitude_correlation_min", 1.5, "[0, 1]"),
        ("watchdog_factor", 0.5, ">= 1"),
        ("sigma_t_median_max_C", 0.0, "> 0"),
        ("energy_budget_J", -1.0, "> 0"),
        ("cord_max_C", float("nan"), "finite"),
        ("skin_max_C", True, "finite number"),
        ("stuck_frame", 1, "true or false"),
    ],
)
def test_limits_validate_names_field_and_value(name, value, words):
    with pytest.raises(InvalidParameterError) as err:
        InterlockLimits(**{name: value})
    assert err.value.name == name
    assert words in str(err.value) and repr(value) in str(err.value)


def test_from_mapping_refuses_unknown_keys_and_switches_off():
    with pytest.raises(InvalidParameterError) as err:
        InterlockLimits.from_mapping({"skin_max": 42.0})
    msg = str(err.value)
    assert "skin_max" in msg and "skin_max_C" in msg and "cord_dose_max_CEM43" in msg and "did you mean 'skin_max_C'" in msg
    lim = InterlockLimits.from_mapping({"skin_max_C": 43, "energy_budget_J": 5000, "cooling_margin_C": "off", "cord_max_C": False})
    assert lim.skin_max_C == 43.0 and isinstance(lim.skin_max_C, float) and lim.energy_budget_J == 5000.0
    assert lim.cooling_margin_C is None and lim.cord_max_C is None
    assert lim.is_given("skin_max_C") and not lim.is_given("cord_max_C") and not lim.is_given("near_field_max_C")
    with pytest.raises(InvalidParameterError, match="max_temperature_C"):
        InterlockLimits.from_mapping({"max_temperature_C": "off"})  # not optional


def test_missing_role_disables_its_checks_and_an_explicit_limit_for_it_is_refused(caplog):
    rois = make_rois()
    del rois["cord"]
    with caplog.at_level(logging.INFO, logger="fus.control.interlocks"):
        scene = Scene(rois=rois)
    assert any("'cord'" in r.message and r.levelno == logging.INFO for r in caplog.records)
    scene.step()
    assert scene.step(hot={"target": 60.0}).power == 10.0  # no cord: nothing about it trips
    assert scene.il.status()["cord_max_C"] is None and scene.il.status()["cord_limit_C"] is None
    with pytest.raises(InvalidParameterError) as err:
        Interlocks(InterlockLimits(smoothing_px=1, cord_max_C=40.0), rois, dynamic_period=PERIOD)
    assert err.value.name == "cord_max_C" and "no 'cord' ROI" in str(err.value)
    with pytest.raises(InvalidParameterError, match="cord_dose_max_CEM43"):
        Interlocks(InterlockLimits.from_mapping({"cord_dose_max_CEM43": 2.0}), rois, dynamic_period=PERIOD)  # named, even at its default
    Interlocks(InterlockLimits(smoothing_px=1, cord_max_C=None, cord_dose_max_CEM43=None), rois, dynamic_period=PERIOD)  # switched off: fine


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"rois": {"skin": np.zeros(SHAPE, bool)}}, "empty ROI"),
        ({"rois": {"skin": np.ones((16, 16), bool)}}, "3-D"),
        ({"rois": {"skin": np.ones(SHAPE, bool), "cord": np.ones((2, 8, 8), bool)}}, "match"),
        ({"dynamic_period": 0.0}, "> 0"),
        ({"watched": ["nerve"]}, "not one of the ROIs"),
        ({"baseline_temperature": 42.5}, "above the baseline"),
    ],
)
def test_interlocks_refuse_bad_setup(kw, words):
    args = {"rois": make_rois(), "dynamic_period": PERIOD} | kw
    rois = args.pop("rois")
    with pytest.raises(InvalidParameterError, match=words.replace("?", r"\?")):
        Interlocks(InterlockLimits(smoothing_px=1), rois, **args)


# --------------------------------------------------------------------------------------- temperatures
@pytest.mark.parametrize(
    "roi, reason, limit, trip_roi",
    [
        ("target", Reason.MAX_TEMPERATURE, 90.0, None),
        ("skin", Reason.SKIN_TEMPERATURE, 42.0, "skin"),
        ("near_field", Reason.NEAR_FIELD_TEMPERATURE, 45.0, "near_field"),
        ("cord", Reason.CORD_TEMPERATURE, 41.0, "cord"),
    ],
)
def test_temperature_limits_just_below_and_just_above(roi, reason, limit, trip_roi):
    scene = Scene()
    assert scene.step().power == 10.0  # a cool start: the sonication begins
    below = scene.step(hot={roi: limit - 0.01})
    assert below.power == 10.0 and below.reason is Reason.CONTROL and not scene.il.tripped
    above = scene.step(hot={roi: limit + 0.01})
    assert above.power == 0.0 and above.reason is reason and above.stop
    (trip,) = scene.il.trips
    assert_trip(trip, reason, trip_roi, limit + 0.01, limit, scene)
    assert f"{limit:g}" in trip.detail and above.detail == trip.detail


def test_body_roi_bounds_the_maximum_temperature():
    rois = make_rois()
    rois["body"] = np.zeros(SHAPE, bool)
    rois["body"][:, :12, :] = True  # the cord region is outside the "body" ROI here
    scene = Scene(InterlockLimits(smoothing_px=1, cord_max_C=None, cord_dose_max_CEM43=None), rois=rois, watched=["target"])
    scene.step()
    assert scene.step(hot={"cord": 95.0}).power == 10.0
    cmd = scene.step(hot={"target": 90.5})
    assert cmd.reason is Reason.MAX_TEMPERATURE and scene.il.trips[0].roi == "body"


def test_cord_dose_just_below_and_just_above():
    scene = Scene()
    scene.step()
    assert scene.step(dose={"cord": 1.99}).power == 10.0
    cmd = scene.step(dose={"cord": 2.01})
    assert cmd.power == 0.0 and cmd.reason is Reason.CORD_DOSE
    assert_trip(scene.il.trips[0], Reason.CORD_DOSE, "cord", 2.01, 2.0, scene)
    assert scene.il.status()["cord_dose_CEM43"] == pytest.approx(2.01)


def test_trips_latch_with_the_first_reason_until_reset():
    scene = Scene()
    scene.step()
    first = scene.step(hot={"skin": 43.0, "cord": 42.0})
    assert first.reason is Reason.SKIN_TEMPERATURE or first.reason is Reason.CORD_TEMPERATURE
    reasons = {t.reason for t in scene.il.trips}
    assert reasons == {Reason.SKIN_TEMPERATURE, Reason.CORD_TEMPERATURE}  # both seen in that dynamic
    n = len(scene.il.trips)
    for _ in range(3):  # cool again: still zero, with the first reason, nothing new recorded
        cmd = scene.step()
        assert cmd.power == 0.0 and cmd.reason is first.reason and cmd.stop and cmd.detail.startswith("tripped:")
    assert len(scene.il.trips) == n and scene.il.tripped and scene.il.status()["reason"] == str(first.reason)
    assert scene.il.watchdog(scene.index * PERIOD) is not None  # the watchdog says so too
    scene.il.reset(scene.index * PERIOD, note="operator checked the images")
    assert not scene.il.tripped and scene.il.resets[-1]["cleared"] == str(first.reason)
    cmd = scene.step()
    assert cmd.power == 10.0 and cmd.reason is Reason.CONTROL
    assert len(scene.il.trips) == n  # history kept


# --------------------------------------------------------------------------------------- cooling
def test_cooling_hold_blocks_power_until_the_near_field_is_within_1_degree():
    scene = Scene()
    assert scene.step().power == 10.0
    assert scene.step(warm={"near_field": 40.0}).power == 10.0  # during a sonication: only the 45 C limit
    assert scene.step(0.0, warm={"near_field": 40.0}).power == 0.0  # power off (binary control) ...
    assert scene.step(warm={"near_field": 40.0}).power == 10.0  # ... and on again: the same sonication
    scene.step(0.0, stop=True, reason=Reason.GOAL_REACHED, warm={"near_field": 40.0})  # the sonication ends
    held = [scene.step(warm={"near_field": v}) for v in (39.5, 38.5, 38.01)]
    for cmd in held:
        assert cmd.power == 0.0 and cmd.reason is Reason.COOLING and not cmd.stop
    assert not scene.il.tripped and scene.il.trips == []
    (hold,) = scene.il.holds  # recorded once, not every dynamic
    assert isinstance(hold, Hold) and hold.end_s is None and scene.il.holding
    assert hold.value == pytest.approx(39.5) and hold.limit == 38.0 and hold.dynamic == scene.index - 3
    cmd = scene.step(warm={"near_field": 37.99})
    assert cmd.power == 10.0 and cmd.reason is Reason.CONTROL
    assert hold.end_s == pytest.approx((scene.index - 1) * PERIOD + LATENCY) and not scene.il.holding
    json.dumps(hold.as_dict(), allow_nan=False)


def test_cooling_before_the_first_sonication_and_after_end_sonication():
    scene = Scene()
    assert scene.step(warm={"near_field": 38.5}).reason is Reason.COOLING  # not cool: no start
    assert scene.step(warm={"near_field": 37.5}).power == 10.0
    scene.il.end_sonication(scene.index * PERIOD)
    assert scene.step(warm={"near_field": 38.5}).reason is Reason.COOLING
    assert len(scene.il.holds) == 2
    off = Scene(InterlockLimits(smoothing_px=1, cooling_margin_C=None))
    assert off.step(warm={"near_field": 44.0}).power == 10.0 and off.il.holds == []


# --------------------------------------------------------------------------------------- controller
def test_controller_exception_trips_via_guard(caplog):
    scene = Scene()

    def broken(measurement):
        raise ZeroDivisionError("gain estimate is zero")

    m = scene.measurement()
    with caplog.at_level(logging.ERROR, logger="fus.control.interlocks"):
        cmd = scene.il.guard(broken, m, m.available_time)
    assert cmd.power == 0.0 and cmd.reason is Reason.CONTROLLER_EXCEPTION and cmd.stop
    (trip,) = scene.il.trips
    assert trip.reason is Reason.CONTROLLER_EXCEPTION and trip.dynamic == 0
    assert trip.detail == "ZeroDivisionError: gain estimate is zero" and math.isnan(trip.value)
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)
    assert trip.as_dict()["value"] is None and trip.as_dict()["reason"] == "controller_exception"
    other = Scene()
    m = other.measurement()
    assert other.il.guard(lambda _: 12.5, m, m.available_time).reason is Reason.CONTROLLER_EXCEPTION  # not a Command
    assert "TypeError" in other.il.trips[0].detail
    fine = Scene()
    m = fine.measurement()
    assert fine.il.guard(lambda _: Command(7.0), m, m.available_time).power == 7.0


def test_a_failure_inside_the_checks_trips_loop_exception():
    scene = Scene()
    m = scene.measurement()
    m.temperature = m.temperature[:, :8]
    cmd = scene.il.check(m, Command(10.0), 0.5)
    assert cmd.power == 0.0 and cmd.reason is Reason.LOOP_EXCEPTION
    assert "shape" in scene.il.trips[0].detail


# --------------------------------------------------------------------------------------- watchdog
def test_watchdog_no_dynamic_within_1_5_periods():
    scene = Scene()
    assert scene.il.check_timeout(1.5 * PERIOD) is None  # from the start
    scene.step()  # arrives at t = 0.5
    assert scene.il.check_timeout(0.5 + 1.5 * PERIOD - 0.01) is None
    assert scene.il.watchdog(0.5 + 1.5 * PERIOD - 0.01) is None
    trip = scene.il.check_timeout(0.5 + 1.5 * PERIOD + 0.01)
    assert trip is not None and trip.reason is Reason.WATCHDOG and trip.limit == 1.5 * PERIOD
    assert trip.value == pytest.approx(1.5 * PERIOD + 0.01) and trip.dynamic == 0
    cmd = scene.il.watchdog(10.0)
    assert cmd is not None and cmd.power == 0.0 and cmd.reason is Reason.WATCHDOG
    assert scene.step().reason is Reason.WATCHDOG  # latched


def test_watchdog_from_the_start_and_a_gap_between_dynamics():
    scene = Scene()
    assert scene.il.check_timeout(1.5 * PERIOD + 0.01).reason is Reason.WATCHDOG
    gap = Scene()
    gap.step()
    cmd = gap.step(delay=1.6 * PERIOD)  # the next dynamic arrives 1.6 periods late
    assert cmd.reason is Reason.WATCHDOG and "after the previous one" in gap.il.trips[0].detail


def test_late_dynamic_trips_watchdog():
    scene = Scene()
    assert scene.step(latency=PERIOD - 0.01).power == 10.0
    cmd = scene.step(latency=PERIOD + 0.01)
    assert cmd.power == 0.0 and cmd.reason is Reason.WATCHDOG
    trip = scene.il.trips[0]
    assert trip.detail.startswith("late") and trip.value == pytest.approx(PERIOD + 0.01) and trip.limit == PERIOD


# --------------------------------------------------------------------------------------- budgets
def test_energy_budget_not_exceeded_by_more_than_one_dynamic():
    budget, power = 100.0, 7.0  # 21 J per dynamic
    scene = Scene(InterlockLimits(smoothing_px=1, energy_budget_J=budget))
    applied = []
    for _ in range(20):
        cmd = scene.step(power)
        scene.il.account(cmd.power, PERIOD)
        applied.append(cmd.power)
        if scene.il.tripped:
            break
    assert scene.il.tripped and scene.il.trips[0].reason is Reason.ENERGY_BUDGET
    assert budget - power * PERIOD < scene.il.energy_J <= budget
    assert applied == [power] * 4 + [0.0]
    assert scene.il.trips[0].value == pytest.approx(5 * power * PERIOD) and scene.il.trips[0].limit == budget
    assert scene.il.status()["energy_J"] == pytest.approx(84.0)


def test_duration_budget_and_an_overrun_booked_by_account():
    scene = Scene(InterlockLimits(smoothing_px=1, sonication_budget_s=10.0))
    for _ in range(3):
        scene.il.account(scene.step(5.0).power, PERIOD)
    cmd = scene.step(5.0)
    assert cmd.reason is Reason.DURATION_BUDGET and scene.il.sonication_s == pytest.approx(9.0)
    late = Scene(InterlockLimits(smoothing_px=1, energy_budget_J=50.0))
    late.il.account(late.step(10.0).power, PERIOD)
    trip = late.il.account(10.0, 2.5)  # ran longer than planned: 55 J
    assert trip is not None and trip.reason is Reason.ENERGY_BUDGET and trip.value == pytest.approx(55.0)
    assert late.il.would_exceed(0.0, 10.0) is Reason.ENERGY_BUDGET or late.il.energy_J > 50.0
    with pytest.raises(InvalidParameterError, match="duration"):
        late.il.account(1.0, -1.0)


# --------------------------------------------------------------------------------------- quality
def test_nan_fraction_just_below_and_just_above():
    scene = Scene()  # the target ROI has 40 voxels; limit 0.3 = 12 voxels
    scene.step()
    assert scene.step(unmeasured={"target": 12}).power == 10.0
    assert scene.il.status()["nan_fraction"] == pytest.approx(0.3) and scene.il.status()["nan_fraction_roi"] == "target"
    cmd = scene.step(unmeasured={"target": 13})
    assert cmd.power == 0.0 and cmd.reason is Reason.THERMOMETRY_NAN
    assert_trip(scene.il.trips[0], Reason.THERMOMETRY_NAN, "target", 13 / 40, 0.3, scene)


def test_median_sigma_just_below_and_just_above():
    scene = Scene()
    assert scene.step(sigma={"target": 3.0}).power == 10.0
    cmd = scene.step(sigma={"target": 3.01})
    assert cmd.reason is Reason.THERMOMETRY_NOISE
    assert_trip(scene.il.trips[0], Reason.THERMOMETRY_NOISE, "target", 3.01, 3.0, scene)
    nan_sigma = Scene()
    assert nan_sigma.step(sigma={"cord": np.nan}).reason is Reason.THERMOMETRY_NOISE  # unknown noise fails


def test_motion_just_below_and_just_above_and_not_computed():
    scene = Scene()
    assert scene.step(magnitude_correlation=float("nan")).power == 10.0  # not computed: skipped
    assert scene.step(magnitude_correlation=0.9).power == 10.0
    assert scene.il.status()["magnitude_correlation"] == 0.9
    cmd = scene.step(magnitude_correlation=0.89)
    assert cmd.reason is Reason.MOTION
    assert_trip(scene.il.trips[0], Reason.MOTION, None, 0.89, 0.9, scene)


@pytest.mark.parametrize("roi", ["cord", "skin", "near_field"])
def test_fully_unmeasured_organ_at_risk_trips_even_when_not_watched(roi):
    scene = Scene(watched=["target"])
    scene.step()
    n = int(scene.rois[roi].sum())
    cmd = scene.step(unmeasured={roi: n})
    assert cmd.power == 0.0 and cmd.reason is Reason.THERMOMETRY_NAN
    (trip,) = scene.il.trips
    assert trip.roi == roi and trip.value == 1.0 and "cannot be protected" in trip.detail
    assert scene.il.status()[f"{roi}_max_C"] is None


def test_stuck_frame_identical_map_repeated_flag_and_same_index():
    scene = Scene()
    m = scene.measurement()
    scene.il.check(m, Command(10.0), m.available_time)
    cmd = scene.step(temperature=np.asarray(m.temperature))  # a new index, the very same map
    assert cmd.reason is Reason.STUCK_FRAME and "identical" in scene.il.trips[0].detail
    flagged = Scene()
    flagged.step()
    assert flagged.step(repeated=True).reason is Reason.STUCK_FRAME
    again = Scene()
    again.step()
    assert again.step(index=0, delay=PERIOD).reason is Reason.STUCK_FRAME
    assert "twice" in again.il.trips[0].detail
    off = Scene(InterlockLimits(smoothing_px=1, stuck_frame=False))
    m = off.measurement()
    off.il.check(m, Command(10.0), m.available_time)
    assert off.step(temperature=np.asarray(m.temperature)).power == 10.0


# --------------------------------------------------------------------------------------- the log
def test_status_names_and_json():
    scene = Scene(InterlockLimits(smoothing_px=1, energy_budget_J=1000.0))
    assert scene.il.status()["max_C"] is None  # nothing seen yet
    scene.step(hot={"skin": 40.0, "cord": 38.5}, dose={"cord": 0.25}, magnitude_correlation=0.97)
    s = scene.il.status()
    for key in ("max_C", "skin_max_C", "near_field_max_C", "cord_max_C", "cord_dose_CEM43", "nan_fraction", "sigma_t_median_C",
                "magnitude_correlation", "energy_J", "sonication_s", "latency_s"):
        assert isinstance(s[key], float), key
    assert s["tripped"] is False and s["skin_max_C"] == pytest.approx(40.0) and s["skin_limit_C"] == 42.0
    assert s["cord_max_C"] == pytest.approx(38.5) and s["cord_dose_CEM43"] == 0.25 and s["sigma_t_median_C"] == 0.5
    assert s["energy_budget_J"] == 1000.0 and s["cooling_limit_C"] == 38.0 and s["latency_s"] == LATENCY
    json.dumps(s, allow_nan=False)
    scene.step(hot={"cord": 45.0})
    s = scene.il.status()
    assert s["tripped"] is True and s["reason"] == "cord_temperature"
    json.dumps([t.as_dict() for t in scene.il.trips], allow_nan=False)


# --------------------------------------------------------------------------------------- numpy vs cupy
def scenario(to) -> tuple[list, list, dict]:
    """One run through most checks (reset after each trip); trips, holds and the last status."""
    scene = Scene(InterlockLimits(smoothing_px=1, energy_budget_J=5000.0), to=to)
    steps = [
        {}, {"hot": {"skin": 41.99}}, {"hot": {"skin": 42.01}},
        {}, {"unmeasured": {"target": 13}},
        {}, {"dose": {"cord": 2.5}},
        {}, {"sigma": {"near_field": 3.2}},
        {}, {"unmeasured": {"cord": 30}},
        {"warm": {"near_field": 39.0}}, {"warm": {"near_field": 37.5}},
        {"magnitude_correlation": 0.5},
    ]
    for kw in steps:
        cmd = scene.step(**kw)
        scene.il.account(cmd.power, PERIOD, now=scene.index * PERIOD)
        if scene.il.tripped:
            scene.il.reset(scene.index * PERIOD)
    m = scene.measurement()
    scene.il.check(m, Command(10.0), m.available_time)
    scene.step(temperature=asnumpy(m.temperature))
    return [t.as_dict() for t in scene.il.trips], [h.as_dict() for h in scene.il.holds], scene.il.status()


def test_scenario_covers_the_checks():
    trips, holds, _ = scenario(np.asarray)
    reasons = [t["reason"] for t in trips]
    assert reasons == ["skin_temperature", "thermometry_nan", "cord_dose", "thermometry_noise", "thermometry_nan", "motion", "stuck_frame"]
    assert len(holds) == 1


@pytest.mark.cuda
def test_cupy_maps_give_identical_trips(cuda_backend):
    xp = cuda_backend.xp  # real CuPy, or its strict stand-in on the emulated device
    on_host = scenario(np.asarray)
    on_device = scenario(xp.asarray)
    assert on_device == on_host


def test_smoothing_keeps_a_noise_voxel_from_tripping_but_not_a_hot_spot():
    """One voxel 5 C up (a 5 sigma noise excursion) stays under the 41 C cord limit after the 3 x 3
    mean (37 + 5/9 C); a 3 x 3 hot spot at 42 C is not lowered and trips."""
    scene = Scene(InterlockLimits())
    assert scene.step(hot={"cord": 42.0}).power == 10.0
    rois = make_rois()
    temp = np.full(SHAPE, 37.0, np.float32) + np.random.default_rng(7).uniform(-0.02, 0.02, SHAPE).astype(np.float32)
    temp[:, 13:16, 6:9] = 42.0
    cmd = scene.step(temperature=temp)
    assert cmd.power == 0.0 and cmd.reason is Reason.CORD_TEMPERATURE
    assert scene.il.trips[0].value == pytest.approx(42.0, abs=0.05)
    assert rois["cord"][:, 14, 7].all()
