"""One entry point that builds a controller from a kind and a settings table (TOML).

::

    [control]
    kind = "mpc"
    [control.mpc]
    gain_prior = 0.01
    [control.trajectory]
    target_C = 43.0
    ramp_s = 30
    hold_s = 120

``make_controller(cfg["kind"], cfg.get(cfg["kind"], {}), roi, p_max=..., trajectory=cfg["trajectory"])``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fus.control.binary import BinaryController, BinarySettings
from fus.control.mpc import MPCController, MPCSettings
from fus.control.pid import PIDController, PIDSettings
from fus.control.trajectory import Trajectory, as_trajectory
from fus.control.types import Controller
from fus.errors import InvalidParameterError

__all__ = ["make_controller", "KINDS"]

#: the controller kinds and their settings classes
KINDS: dict[str, type] = {"pid": PIDSettings, "mpc": MPCSettings, "binary": BinarySettings}


def make_controller(
    kind: str,
    settings: Mapping[str, Any] | None,
    target_roi: Any,
    *,
    p_max: float,
    trajectory: Trajectory | Mapping[str, Any] | None = None,
    sub_targets: Sequence[Any] | None = None,
) -> Controller:
    """Build a controller.

    Parameters
    ----------
    kind : str
        ``"pid"``, ``"mpc"`` or ``"binary"``.
    settings : mapping or None
        The kind's settings table (plain dict from TOML); missing keys take the defaults.
    target_roi : bool array (slices, rows, cols)
        The target region in image space.
    p_max : float
        Largest power the system may deliver [W].
    trajectory : Trajectory or mapping, optional
        The reference (required by ``pid`` and ``mpc``; refused by ``binary``).
    sub_targets : sequence of bool arrays, optional
        The sub-targets of ``binary`` (refused by the others).

    Raises
    ------
    InvalidParameterError
        An unknown kind, an unknown or bad settings key (named, with the keys allowed), a
        missing trajectory or an argument the kind does not take.
    """
    key = str(kind).strip().lower() if isinstance(kind, str) else kind
    if key not in KINDS:
        raise InvalidParameterError("control.kind", kind, f"unknown controller kind (allowed: {', '.join(KINDS)})")
    cfg = KINDS[key].from_mapping(settings if settings is not None else {})
    if key == "binary":
        if trajectory is not None:
            raise InvalidParameterError("trajectory", trajectory, "the binary controller follows no trajectory (its goal is a dose or a temperature)")
        return BinaryController(cfg, target_roi, p_max=p_max, sub_targets=sub_targets)
    if sub_targets is not None:
        raise InvalidParameterError("sub_targets", f"{len(sub_targets)} ROIs", f"only the binary controller takes sub-targets, not {key}")
    if trajectory is None:
        raise InvalidParameterError("trajectory", None, f"the {key} controller needs a trajectory (e.g. {{kind = 'ramp_hold', target_C = 43.0, ramp_s = 30, hold_s = 120}})")
    cls = PIDController if key == "pid" else MPCController
    return cls(cfg, target_roi, p_max=p_max, trajectory=as_trajectory(trajectory))
