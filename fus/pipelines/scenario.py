"""Closed-loop scenarios: a TOML file naming everything a simulated treatment needs.

A scenario (``fus simulate SCENARIO.toml``) holds these tables (every key is checked: a misspelt
one is refused, naming it and the nearest allowed key):

``name``, ``description``, ``seed`` (int), ``duration_s`` (treatment clock [s]), ``equilibrate_s``
(time at zero power before the baseline, so the skin is at its steady state against the bath [s]);
``[phantom]`` ``file`` (a phantom TOML, relative to the scenario);
``[transducer]`` ``name`` (preset or element table), ``roc_mm``, ``aperture_mm``, ``frequency_mhz``,
``field_spacing_mm`` (compute the field on a coarser grid), ``refine_focus`` (then the focal
region again at the phantom's spacing);
``[focus]`` ``points_mm`` (list of sub-target focus points [mm], transducer frame; default the
phantom's target);
``[rois]`` ``target`` (the phantom ROI the controller follows, default ``target``),
``near_field_depth_mm`` / ``near_field_radius_mm`` (the near-field ROI under the skin), ``sub_targets``
(phantom ROI names, one per focus point, for the binary controller);
``[controller]`` ``kind`` (``pid``, ``mpc``, ``binary``), ``p_max_W``, ``settings`` (the
controller's own table), ``trajectory`` (ramp / hold);
``[interlocks]`` the interlock limits; ``[scanner]`` the simulated scanner settings and slice plan;
``[model]`` the controller's view of the plant: ``absorption_scale``, ``perfusion_scale`` (1 = the
truth); ``[[faults]]`` faults to inject, each ``{kind, at_s, ...}``.

``--set section.key=value`` overrides any value (the value in TOML syntax; a bare word is taken
as a string), so a sweep or a test needs no file edits: ``--set controller.kind='"pid"'``,
``--set model.absorption_scale=1.5``, ``--set faults.0.at_s=40``.
"""

from __future__ import annotations

import copy
import logging
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from fus.checks import check_keys, finite_scalar
from fus.errors import DataError, InvalidParameterError
from fus.physics.toml_file import read_toml

__all__ = ["FAULT_KINDS", "FAULT_REASONS", "Fault", "Scenario", "load_scenario", "apply_override", "parse_scenario"]

log = logging.getLogger(__name__)

_TOP = {
    "name", "description", "seed", "duration_s", "equilibrate_s", "phantom", "transducer", "focus", "rois",
    "controller", "interlocks", "scanner", "thermometry", "model", "faults", "output",
}
_TABLES = {
    "phantom": {"file", "grid", "rois", "name"},
    "transducer": {"name", "roc_mm", "aperture_mm", "frequency_mhz", "field_spacing_mm", "refine_focus"},
    "focus": {"points_mm", "steer_radius_mm", "steer_points"},
    "rois": {"target", "near_field_depth_mm", "near_field_radius_mm", "sub_targets"},
    "controller": {"kind", "p_max_W", "settings", "trajectory"},
    "model": {"absorption_scale", "perfusion_scale"},
    "thermometry": {"drift", "drift_order", "drift_exclude_radius_mm", "drift_exclude_axis_mm", "drift_reference_fraction", "drift_reference_settle_C"},
    "output": {"frames", "gzip", "dicom"},
}

#: Fault kinds and the keys each takes besides ``kind`` and ``at_s`` (with their defaults).
FAULT_KINDS: dict[str, dict[str, Any]] = {
    "nan": {"roi": "target"},  # the images are NaN over an ROI (a reconstruction fault) from at_s on
    "drop": {"count": 1000000},  # the next `count` dynamics never arrive
    "late": {"delay_s": None, "count": 1},  # dynamics arrive delay_s late (default 1.5 periods)
    "snr": {"factor": 5.0},  # image noise multiplied by factor from at_s on
    "motion": {"shift_mm": [5.0, 0.0]},  # the body moves in-plane by shift_mm from at_s on
    "stuck": {"count": 1000000},  # the scanner repeats the last frame
    "controller_exception": {"message": "injected controller fault"},  # the controller raises
    "skin_absorber": {"gain": 40.0, "radius_mm": 6.0},  # extra absorption in the skin on the beam axis
    "cord_heating": {"gain": 4.0},  # heat deposited in the cord (a reflection off the bone)
}

#: The interlock reason(s) expected to answer each fault first.
FAULT_REASONS: dict[str, tuple[str, ...]] = {
    "nan": ("thermometry_nan",),
    "drop": ("watchdog",),
    "late": ("watchdog",),
    "snr": ("thermometry_noise", "thermometry_nan"),  # noise up: sigma_T up, and voxels fall below snr_min
    "motion": ("motion",),
    "stuck": ("stuck_frame",),
    "controller_exception": ("controller_exception",),
    "skin_absorber": ("skin_temperature", "near_field_temperature"),
    "cord_heating": ("cord_temperature", "cord_dose"),
}


@dataclass(frozen=True)
class Fault:
    """One injected fault: ``kind`` from ``at_s`` [s] on, with its parameters."""

    kind: str
    at_s: float
    params: dict

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "at_s": self.at_s, **self.params}


@dataclass
class Scenario:
    """A checked scenario: the spec (after ``--set`` overrides) and where it came from."""

    spec: dict
    source: str
    base_dir: Path
    faults: list[Fault]

    def section(self, name: str) -> dict:
        """A table of the scenario (empty if absent)."""
        v = self.spec.get(name)
        return dict(v) if isinstance(v, Mapping) else {}

    def path(self, value: str) -> Path:
        """A file named in the scenario, relative to the scenario's folder."""
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    @property
    def name(self) -> str:
        return str(self.spec.get("name", Path(self.source).stem))

    @property
    def seed(self) -> int:
        return int(self.spec.get("seed", 0))

    @property
    def duration(self) -> float:
        return float(self.spec["duration_s"])


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if text and all(c.isalnum() or c in "_-.+/" for c in text):
            return text  # a bare word: a string
        raise InvalidParameterError("--set", text, "the value must be in TOML syntax (a string in quotes, a number, true/false, [a, b])") from None


def apply_override(spec: dict, item: str) -> None:
    """Apply one ``section.key=value`` override to ``spec`` in place (a list index is a number:
    ``faults.0.at_s=30``)."""
    if "=" not in item:
        raise InvalidParameterError("--set", item, "must be KEY=VALUE, e.g. model.absorption_scale=1.5")
    key, text = item.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not parts or any(not p for p in parts):
        raise InvalidParameterError("--set", item, "the key must be dotted names, e.g. controller.p_max_W")
    value = _parse_value(text.strip())
    node: Any = spec
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise InvalidParameterError("--set", item, f"{where}: index out of range (the list has {len(node)} entries)")
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise InvalidParameterError("--set", item, f"{'.'.join(parts[:i])} is a value, not a table")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise InvalidParameterError("--set", item, f"index out of range (the list has {len(node)} entries)")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise InvalidParameterError("--set", item, f"{'.'.join(parts[:-1])} is a value, not a table")


def _faults(items: Any, duration: float) -> list[Fault]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidParameterError("faults", items, "must be a list of {kind, at_s, ...} tables ([[faults]])")
    out = []
    for i, f in enumerate(items):
        where = f"faults[{i}]"
        if not isinstance(f, Mapping):
            raise InvalidParameterError(where, f, "must be a table {kind, at_s, ...}")
        kind = f.get("kind")
        if kind not in FAULT_KINDS:
            raise InvalidParameterError(f"{where}.kind", kind, f"must be one of {', '.join(FAULT_KINDS)}")
        check_keys(where, f, {"kind", "at_s", *FAULT_KINDS[kind]})
        at = finite_scalar(f"{where}.at_s", f.get("at_s"), nonnegative=True)
        if at >= duration:
            raise InvalidParameterError(f"{where}.at_s", at, f"must fall within the treatment (duration_s = {duration:g})")
        params = {k: f.get(k, v) for k, v in FAULT_KINDS[kind].items()}
        for k, v in params.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "message":
                params[k] = finite_scalar(f"{where}.{k}", v, positive=True)
        out.append(Fault(str(kind), at, params))
    return out


def parse_scenario(spec: Mapping[str, Any], source: str = "built", base_dir: Path | None = None, overrides: Iterable[str] = ()) -> Scenario:
    """Check a scenario mapping (after applying ``overrides``) and return it as a :class:`Scenario`."""
    spec = copy.deepcopy(dict(spec))
    for item in overrides:
        apply_override(spec, item)
    check_keys("", spec, _TOP)
    for name, allowed in _TABLES.items():
        if name in spec:
            if not isinstance(spec[name], Mapping):
                raise InvalidParameterError(name, spec[name], "must be a table")
            check_keys(name, spec[name], allowed)
    if "duration_s" not in spec:
        raise InvalidParameterError("duration_s", None, "required: the length of the treatment [s]")
    duration = finite_scalar("duration_s", spec["duration_s"], positive=True)
    finite_scalar("equilibrate_s", spec.get("equilibrate_s", 0.0), nonnegative=True)
    seed = spec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidParameterError("seed", seed, "must be an integer >= 0")
    if "file" not in spec.get("phantom", {}):
        raise InvalidParameterError("phantom.file", None, "required: the phantom TOML (relative to the scenario)")
    ctrl = spec.get("controller", {})
    if ctrl.get("kind") not in ("pid", "mpc", "binary"):
        raise InvalidParameterError("controller.kind", ctrl.get("kind"), "must be pid, mpc or binary")
    finite_scalar("controller.p_max_W", ctrl.get("p_max_W", math.nan), positive=True)
    for key in ("absorption_scale", "perfusion_scale"):
        finite_scalar(f"model.{key}", spec.get("model", {}).get(key, 1.0), positive=True)
    return Scenario(spec, source, base_dir or Path.cwd(), _faults(spec.get("faults"), duration))


def load_scenario(path: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Read and check a scenario TOML file; ``overrides`` are ``section.key=value`` strings.

    Raises
    ------
    DataError
        Unreadable file, or a bad value (the message names the file and the key).
    """
    p = Path(path)
    spec = read_toml(p, "scenario")
    try:
        return parse_scenario(spec, str(p), p.parent, overrides)
    except InvalidParameterError as exc:
        raise DataError(str(exc), path=p, tag=exc.name) from None
