"""Closed-loop controllers (PID, MPC, binary) against an independent lumped plant of a bone target.

The plant: a float64 lumped model of the target ROI, ``T = T0 + x_fast + x_slow`` with
``dx/dt = g P - x / tau`` per pole (a fast bone-surface pole and, where said, a slow
diffusion-like pole), sampled every 2.5 s with 40 ROI voxels of sigma_T = 1 C Gaussian noise, and
one dynamic of delay: the command computed from measurement k is applied over [t_(k+1), t_(k+2)).
Its CEM43 dose is integrated per voxel in float64 (Sapareto & Dewey, midpoint rule on sub-steps),
independently of fus.physics.dose.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fus.control.binary import BinaryController, BinarySettings
from fus.control.factory import make_controller
from fus.control.mpc import MPCController, MPCSettings
from fus.control.pid import PIDController, PIDSettings
from fus.control.trajectory import Trajectory
from fus.control.types import Measurement, Reason
from fus.errors import InvalidParameterError

SHAPE = (2, 8, 8)
T0 = 37.0
DT = 2.5
#: nominal bone-surface target: 0.2 C/W steady-state gain, 20 s time constant (a = 0.01 C/(W s), b = 0.05 /s)
GAIN, TAU = 0.2, 20.0
RAMP_HOLD = {"kind": "ramp_hold", "target_C": 43.0, "ramp_s": 30, "hold_s": 120}


def roi_mask(start: int = 0, n: int = 40) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    m.reshape(-1)[start : start + n] = True
    return m


class Plant:
    """Lumped target(s); sub-target ``i`` heats when it is the one sonicated (``crosstalk`` else)."""

    def __init__(self, rng, *, gain=GAIN, tau=TAU, slow_fraction=0.0, slow_tau=200.0, sigma=1.0, rois=None, crosstalk=0.0):
        self.rng = rng
        self.rois = rois if rois is not None else [roi_mask()]
        self.g = [(1.0 - slow_fraction) * gain / tau, slow_fraction * gain / slow_tau]
        self.tau = [tau, slow_tau]
        self.x = np.zeros((len(self.rois), 2))
        self.sigma = sigma
        self.crosstalk = crosstalk
        self.time = 0.0
        self.dose = np.zeros(SHAPE)
        self.weights = np.ones(SHAPE)
        for r in self.rois:  # a fixed +-10 % profile across each ROI, mean 1
            self.weights[r] = 1.0 + 0.1 * np.linspace(-1.0, 1.0, int(r.sum()))

    def true_map(self) -> np.ndarray:
        t = np.full(SHAPE, T0)
        for i, r in enumerate(self.rois):
            t[r] = T0 + self.weights[r] * self.x[i].sum()
        return t

    def advance(self, power: float, target: int = 0, dt: float = DT, sub: int = 10) -> None:
        h = dt / sub
        for _ in range(sub):
            before = self.true_map()
            for i in range(len(self.rois)):
                p = power if i == target else power * self.crosstalk
                for j in range(2):
                    e = math.exp(-h / self.tau[j])
                    self.x[i, j] = self.x[i, j] * e + self.g[j] * self.tau[j] * (1.0 - e) * p
            mid = 0.5 * (before + self.true_map())
            self.dose += (h / 60.0) * np.where(mid >= 43.0, 0.5, 0.25) ** (43.0 - mid)
        self.time += dt

    def measure(self, index: int, applied: float) -> Measurement:
        tmap = (self.true_map() + self.sigma * self.rng.standard_normal(SHAPE)).astype(np.float32)
        return Measurement(index=index, time=self.time, temperature=tmap, sigma_t=np.full(SHAPE, self.sigma, np.float32),
                           mask=np.ones(SHAPE, bool), dose=self.dose.copy(), applied_power=applied)


def run(controller, plant: Plant, n: int, xp=None, nan_at=()):
    """The closed loop; returns the commands, the true ROI mean (of ROI 0) and the dose fraction of
    each ROI at each measurement, and the measurement times."""
    pending, pending_target, applied = 0.0, 0, 0.0
    cmds, true_stat, fractions, times = [], [], [], []
    for k in range(n):
        m = plant.measure(k, applied)
        if k in nan_at:
            m.temperature = np.full(SHAPE, np.nan, np.float32)
        if xp is not None:
            m.temperature, m.sigma_t, m.mask, m.dose = (xp.asarray(a) for a in (m.temperature, m.sigma_t, m.mask, m.dose))
        true_stat.append(float(plant.true_map()[plant.rois[0]].mean()))
        fractions.append([float((plant.dose[r] >= 240.0).mean()) for r in plant.rois])
        times.append(plant.time)
        c = controller.update(m)
        cmds.append(c)
        plant.advance(pending, pending_target)
        applied = pending
        pending, pending_target = (0.0, c.target) if c.stop else (c.power, c.target)
        if c.stop:
            break
    return cmds, np.array(true_stat), np.array(fractions), np.array(times)


def tracking(cmds, true_stat, times):
    """(overshoot of the true ROI mean above the hold [C], RMS error over the last 2/3 of the hold [C])."""
    ref = np.array([c.state.get("reference_C", np.nan) for c in cmds])
    t = times - times[0]
    sel = (t >= 30.0 + 40.0) & (t < 150.0) & np.isfinite(ref)
    return float(true_stat.max() - 43.0), float(np.sqrt(np.mean((true_stat[sel] - ref[sel]) ** 2)))


def assert_limits(cmds, times, p_max, slew):
    prev = 0.0
    for c, dt in zip(cmds, np.diff(np.concatenate([[times[0] - DT], times]))):
        assert 0.0 <= c.power <= p_max + 1e-9
        assert isinstance(c.power, float) and all(isinstance(v, float) for v in c.state.values())
        if c.power > 0.0:  # a fall to zero (wait, stop) is never slew-limited
            assert abs(c.power - prev) <= slew * dt + 1e-9, (c.power, prev)
        prev = c.power


# ---------------------------------------------------------------------------------------------- trajectory
def test_trajectory_ramp_hold_values():
    tr = Trajectory.from_mapping(RAMP_HOLD)
    assert tr.end_time == 150.0
    b = tr.bind(37.0, 10.0)
    assert b.start_s == 10.0 and b.value(-1.0) == 37.0 and b.value(15.0) == pytest.approx(40.0) and b.value(30.0) == 43.0
    assert b.slope(10.0) == pytest.approx(0.2) and b.slope(40.0) == 0.0
    rate = Trajectory(rise_C=6.0, rate_C_per_s=0.1, hold_s=60).bind(36.5, 0.0)
    assert rate.hold_C == 42.5 and rate.end_time == pytest.approx(120.0)
    assert "hold 120 s" in tr.describe()
    with pytest.raises(InvalidParameterError, match="baseline_C"):
        tr.value(1.0)
    with pytest.raises(InvalidParameterError, match="trajectory.hold_s"):
        Trajectory(target_C=43.0, hold_s=-1.0)
    with pytest.raises(InvalidParameterError, match="trajectory.ramp_sec"):
        Trajectory.from_mapping({"target_C": 43.0, "ramp_sec": 30})


# ---------------------------------------------------------------------------------------------- tracking
def test_pid_tracks_ramp_and_hold(rng):
    plant = Plant(rng, slow_fraction=0.2)
    ctl = PIDController(PIDSettings(), roi_mask(), p_max=100.0, trajectory=RAMP_HOLD)
    cmds, ts, _, times = run(ctl, plant, 70)
    over, rms = tracking(cmds, ts, times)
    print(f"PID: overshoot {over:.3f} C, hold RMS error {rms:.3f} C")
    assert cmds[-1].reason == Reason.TRAJECTORY_END and cmds[-1].stop
    assert over <= 0.5 and rms <= 0.3
    assert_limits(cmds, times, 100.0, PIDSettings().slew)


@pytest.mark.parametrize("gain_factor, cooling_factor", [(1.0, 1.0), (1.5, 1.0), (0.5, 1.0), (1.0, 2.0), (1.0, 0.5)],
                         ids=["exact", "gain+50%", "gain-50%", "cooling_x2", "cooling_x0.5"])
def test_mpc_tracks_ramp_and_hold_under_model_mismatch(rng, gain_factor, cooling_factor):
    plant = Plant(rng, slow_fraction=0.2)
    st = MPCSettings(gain_prior=gain_factor * GAIN / TAU, cooling_prior=cooling_factor / TAU)
    ctl = MPCController(st, roi_mask(), p_max=100.0, trajectory=RAMP_HOLD)
    cmds, ts, _, times = run(ctl, plant, 70)
    over, rms = tracking(cmds, ts, times)
    print(f"MPC a x{gain_factor} b x{cooling_factor}: overshoot {over:.3f} C, hold RMS error {rms:.3f} C")
    assert cmds[-1].reason == Reason.TRAJECTORY_END
    assert over <= 0.5 and rms <= 0.3
    assert_limits(cmds, times, 100.0, st.slew)


@pytest.mark.parametrize("gain_factor, cooling_factor", [(1.5, 2.0), (0.5, 0.5)])
def test_mpc_estimator_converges(rng, gain_factor, cooling_factor):
    a, b = GAIN / TAU, 1.0 / TAU
    st = MPCSettings(gain_prior=gain_factor * a, cooling_prior=cooling_factor * b)
    ctl = MPCController(st, roi_mask(), p_max=100.0, trajectory=RAMP_HOLD)
    run(ctl, Plant(rng), 70)
    print(f"MPC estimate from a x{gain_factor}, b x{cooling_factor}: a x{ctl.gain / a:.3f}, b x{ctl.cooling / b:.3f}")
    assert ctl.gain == pytest.approx(a, rel=0.3) and ctl.cooling == pytest.approx(b, rel=0.3)


def test_dose_goal_ends_the_trajectory(rng):
    tr = dict(RAMP_HOLD, hold_s=600.0, dose_goal=5.0)
    ctl = PIDController(PIDSettings(), roi_mask(), p_max=100.0, trajectory=tr)
    plant = Plant(rng)
    cmds, _, _, _ = run(ctl, plant, 400)
    assert cmds[-1].reason == Reason.GOAL_REACHED and cmds[-1].stop and cmds[-1].power == 0.0
    assert cmds[-1].state["dose_cem43"] >= 5.0 and cmds[-2].state["dose_cem43"] < 5.0


# ---------------------------------------------------------------------------------------------- binary
def test_binary_stops_when_the_dose_goal_is_reached(rng):
    ctl = BinaryController(BinarySettings(power=100.0, max_time_s=300.0), roi_mask(), p_max=150.0)
    cmds, _, frac, _ = run(ctl, Plant(rng), 200)
    last = cmds[-1]
    assert last.stop and last.reason == Reason.GOAL_REACHED and last.power == 0.0
    assert frac[-1, 0] == 1.0 and frac[-2, 0] < 1.0  # stops at the first dynamic where all voxels have 240 CEM43
    assert all(c.power == 100.0 for c in cmds[:-1])


def test_binary_moves_through_sub_targets(rng):
    rois = [roi_mask(0, 20), roi_mask(64, 20)]
    ctl = make_controller("binary", {"power": 100.0, "dose_fraction": 0.9, "max_time_s": 300.0}, rois[0] | rois[1], p_max=150.0, sub_targets=rois)
    cmds, _, frac, _ = run(ctl, Plant(rng, rois=rois, crosstalk=0.05), 400)
    targets = [c.target for c in cmds]
    switch = targets.index(1)
    assert set(targets[:switch]) == {0} and set(targets[switch:]) == {1}
    assert frac[switch, 0] >= 0.9 and frac[switch - 1, 0] < 0.9
    assert cmds[-1].stop and cmds[-1].reason == Reason.GOAL_REACHED and frac[-1, 1] >= 0.9 and frac[-2, 1] < 0.9


@pytest.mark.parametrize("on_timeout, reason, last_target", [("stop", Reason.TRAJECTORY_END, 0), ("next", Reason.TRAJECTORY_END, 1)])
def test_binary_timeout(rng, on_timeout, reason, last_target):
    rois = [roi_mask(0, 20), roi_mask(64, 20)]
    ctl = BinaryController(BinarySettings(power=20.0, max_time_s=10.0, on_timeout=on_timeout), rois[0], p_max=150.0, sub_targets=rois)
    cmds, _, _, _ = run(ctl, Plant(rng, rois=rois), 50)
    assert cmds[-1].stop and cmds[-1].reason == reason and cmds[-1].target == last_target


# ---------------------------------------------------------------------------------------------- safety
def _all_kinds():
    return [
        make_controller("pid", {}, roi_mask(), p_max=100.0, trajectory=RAMP_HOLD),
        make_controller("mpc", {}, roi_mask(), p_max=100.0, trajectory=RAMP_HOLD),
        make_controller("binary", {"power": 60.0}, roi_mask(), p_max=100.0),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["pid", "mpc", "binary"])
def test_nan_measurement_gives_zero_power(rng, index):
    ctl = _all_kinds()[index]
    cmds, _, _, _ = run(ctl, Plant(rng), 30, nan_at=(0, 12, 13))
    for k in (0, 12, 13):
        assert cmds[k].power == 0.0 and cmds[k].reason == Reason.WAIT and not cmds[k].stop
    assert cmds[14].power > 0.0  # and it resumes


@pytest.mark.parametrize("kind", ["pid", "mpc"])
def test_power_and_slew_limits(rng, kind):
    ctl = make_controller(kind, {"slew": 2.0, "p_max": 25.0}, roi_mask(), p_max=100.0, trajectory=RAMP_HOLD)
    cmds, _, _, times = run(ctl, Plant(rng), 70, nan_at=(20,))
    assert max(c.power for c in cmds) == pytest.approx(25.0)  # the ramp saturates the lowered ceiling
    assert_limits(cmds, times, 25.0, 2.0)


@pytest.mark.parametrize("cls, field, value", [
    (PIDSettings, "kp", -1.0), (PIDSettings, "statistic", "average"), (PIDSettings, "anti_windup", "clamp"), (PIDSettings, "slew", 0.0),
    (MPCSettings, "forgetting", 1.5), (MPCSettings, "horizon", 0), (MPCSettings, "gain_prior", 5.0), (MPCSettings, "cooling_range", (0.1,)),
    (BinarySettings, "dose_fraction", 0.0), (BinarySettings, "on_timeout", "wait"), (BinarySettings, "max_time_s", float("nan")),
])
def test_settings_validation_names_the_field(cls, field, value):
    with pytest.raises(InvalidParameterError) as err:
        cls(**{field: value}).validate()
    assert err.value.name.endswith(field) and repr(value) in str(err.value)


def test_factory_refuses_unknown_kind_and_key():
    with pytest.raises(InvalidParameterError, match="allowed: pid, mpc, binary"):
        make_controller("bang_bang", {}, roi_mask(), p_max=10.0)
    with pytest.raises(InvalidParameterError, match=r"pid\.kpp.*did you mean 'kp'") as err:
        make_controller("pid", {"kpp": 1.0}, roi_mask(), p_max=10.0, trajectory=RAMP_HOLD)
    assert "ki" in str(err.value)
    with pytest.raises(InvalidParameterError, match="trajectory"):
        make_controller("mpc", {}, roi_mask(), p_max=10.0)
    with pytest.raises(InvalidParameterError, match="target_roi"):
        make_controller("pid", {}, np.zeros(SHAPE, bool), p_max=10.0, trajectory=RAMP_HOLD)
    ctl = make_controller("mpc", {"gain_range": [1e-3, 0.1]}, roi_mask(), p_max=10.0, trajectory=RAMP_HOLD)
    assert ctl.settings.gain_range == (1e-3, 0.1)


def test_reset_replays_the_same_commands():
    ctl = make_controller("mpc", {}, roi_mask(), p_max=100.0, trajectory=RAMP_HOLD)
    first = [c.power for c in run(ctl, Plant(np.random.default_rng(5)), 20)[0]]
    ctl.reset()
    assert [c.power for c in run(ctl, Plant(np.random.default_rng(5)), 20)[0]] == first


# ---------------------------------------------------------------------------------------------- numpy vs cupy
@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["pid", "mpc", "binary"])
def test_same_commands_on_numpy_and_cupy(cuda_backend, kind):
    def make():
        if kind == "binary":
            rois = [roi_mask(0, 20), roi_mask(64, 20)]
            return make_controller(kind, {"power": 100.0, "dose_fraction": 0.8}, rois[0], p_max=150.0, sub_targets=rois), rois
        return make_controller(kind, {"statistic": "p90"} if kind == "pid" else {}, roi_mask(), p_max=100.0, trajectory=RAMP_HOLD), None

    out = []
    for xp in (None, cuda_backend.xp):
        ctl, rois = make()
        cmds, _, _, _ = run(ctl, Plant(np.random.default_rng(11), rois=rois), 60, xp=xp, nan_at=(7,))
        out.append(cmds)
    host, dev = out
    assert len(host) == len(dev) > 10
    for a, b in zip(host, dev):
        assert (a.reason, a.target, a.stop) == (b.reason, b.target, b.stop)
        assert b.power == pytest.approx(a.power, rel=1e-6, abs=1e-6)
        assert isinstance(b.power, float) and all(type(v) is float for v in b.state.values())
