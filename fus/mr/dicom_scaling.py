"""Stored pixel value -> physical value, per vendor and complex component, with no guessing.

Every rule reduces to a linear map ``value = stored * slope + intercept`` (:class:`Scale`),
decided once per image from its header. The rules, and how they were checked against the
dcm2niix reference conversions of the shared real data (``../shared/data/dicom``):

Magnitude, real, imaginary (all vendors)
    ``PV * RescaleSlope + RescaleIntercept`` (defaults 1 and 0), except Philips below.

Philips, any component
    When the private scale slope SS (2005,100E) is present, the Philips "floating-point value"
    ``FP = (PV * RS + RI) / (RS * SS)`` is used (RS/RI: RescaleSlope/Intercept, per frame in
    enhanced files from the Pixel Value Transformation macro, else from the private per-frame
    item (2005,140F)). It is what dcm2niix writes by default (``UsePhilipsFloatNotDisplayScaling:
    1`` in the reference sidecars) and it is the same in the classic and the enhanced export of
    the shared series, whereas the display value DV = PV*RS+RI is a per-image display scaling.
    Measured on the shared Philips series: our magnitude equals dcm2niix's to float32 rounding
    (slope 1/SS = 4201.875 in both), and classic == enhanced exactly.

Philips phase
    Must be labelled as milliradians: RescaleType (0028,1054) ``mrad`` (classic), or the
    Real World Value Mapping unit code ``mrad``, or the private per-frame RescaleType (enhanced
    files label the public Pixel Value Transformation "US"). Then ``rad = FP`` when SS is
    present, else ``rad = DV / 1000``. The two must agree within 2e-3 rad over the whole stored
    range, or the image is refused (an unknown convention). On the shared data RS = 1.53455,
    RI = -3142 mrad, SS = 651.7395, SI (2005,100D) = 2047.5: FP spans exactly [-pi, pi] for PV
    0..4095, DV/1000 spans [-3.142, 3.142] because RI is rounded to whole mrad; they differ by at
    most 4.1e-4 rad. dcm2niix stores the phase as PV with scl_slope = 1/SS and scl_inter =
    -3.1415925 (= -SI/SS), i.e. FP within 2e-6 rad; FP is used.

Siemens phase
    ``(PV * RS + RI) * pi / 4096``: the rescaled value must lie in -4096..4095 (12-bit stored
    0..4095, RS = 2, RI = -4096 on syngo E11 and XA30, per frame in enhanced files), so the phase
    lies in [-pi, pi). The rule is refused unless the rescaled range of the stored bit depth spans
    that interval. dcm2niix keeps the Siemens phase in these rescaled units (scl_slope 2,
    scl_inter -4096): ours equals its values * pi / 4096 exactly.

GE phase
    GE flags the component in private (0043,102F) (0 magnitude, 1 phase, 2 real, 3 imaginary;
    dcm2niix GE notes). GE product phase images store milliradians as signed integers
    (-3142..3142 = -pi..pi): ``rad = (PV * RS + RI) / 1000``. The shared GE series is magnitude
    only, so this rule is checked on synthetic data only; any decoded value outside [-pi, pi]
    (+5e-3 rad) raises, so a GE phase in another unit (e.g. scaled to 0..4095 or radians*10^4)
    is refused rather than mis-scaled.

Other manufacturers' phase images raise :class:`~fus.errors.DicomError`.

Every decoded phase image is checked to lie in [-pi - 5e-3, pi + 5e-3] (see
:func:`check_phase_range`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fus.errors import DicomError

__all__ = [
    "GAMMA_PROTON",
    "GAMMA_PROTON_HZ_PER_T",
    "PHASE_TOLERANCE",
    "Scale",
    "b0_from_f0",
    "check_phase_range",
    "image_scale",
    "vendor_of",
]

#: Proton gyromagnetic ratio over 2 pi [Hz/T] (CODATA 2018: 42.577 478 518 MHz/T).
GAMMA_PROTON_HZ_PER_T = 42.577478e6
#: Proton gyromagnetic ratio [rad/s/T].
GAMMA_PROTON = 2.0 * math.pi * GAMMA_PROTON_HZ_PER_T
#: Slack [rad] allowed beyond [-pi, pi] for a decoded phase value.
PHASE_TOLERANCE = 5e-3


def b0_from_f0(f0: float) -> float:
    """Static field [T] from the proton Larmor frequency ``f0`` [Hz]: ``2 pi f0 / gamma``."""
    return 2.0 * math.pi * float(f0) / GAMMA_PROTON


def vendor_of(manufacturer: str) -> str:
    """Normalised vendor name: ``"siemens"``, ``"philips"``, ``"ge"`` or ``"unknown"``.

    Parameters
    ----------
    manufacturer : str
        (0008,0070) Manufacturer, e.g. ``"SIEMENS"``, ``"Siemens Healthineers"``,
        ``"Philips Medical Systems"``, ``"GE MEDICAL SYSTEMS"``.
    """
    m = (manufacturer or "").strip().lower()
    if m.startswith("siemens"):
        return "siemens"
    if m.startswith("philips"):
        return "philips"
    if m == "ge" or m.startswith("ge ") or m.startswith("ge_") or "general electric" in m:
        return "ge"
    return "unknown"


@dataclass(frozen=True)
class Scale:
    """Linear map from stored pixel value to physical value.

    Attributes
    ----------
    slope, intercept : float
        ``value = stored * slope + intercept`` (radians for phase).
    rule : str
        The rule applied, for logs and sidecars.
    is_phase : bool
        True for phase images (their decoded range is checked).
    """

    slope: float
    intercept: float
    rule: str
    is_phase: bool = False

    @property
    def kind(self) -> str:
        """The rule without its numbers (e.g. ``"Philips FP"``, ``"PV*RS+RI"``): one series
        component must use one kind in every image."""
        return self.rule.split(" = ")[0] if " = " in self.rule else "PV*RS+RI"

    def apply(self, stored: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Scale stored values into float32 (into ``out`` when given)."""
        if out is None:
            out = np.empty(stored.shape, dtype=np.float32)
        np.multiply(stored, np.float32(self.slope), out=out, casting="unsafe")
        if self.intercept != 0.0:
            out += np.float32(self.intercept)
        return out


def _float_or(value: Any, default: float, path: Path, tag: str) -> float:
    if value is None:
        return default
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
        value = value[0] if len(value) else None
        if value is None:
            return default
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DicomError(f"cannot read a number from {value!r}", path=path, tag=tag) from None
    if not math.isfinite(out):
        raise DicomError(f"non-finite value {value!r}", path=path, tag=tag)
    return out


def _stored_range(bits_stored: int, signed: bool) -> tuple[float, float]:
    if signed:
        return -(2.0 ** (bits_stored - 1)), 2.0 ** (bits_stored - 1) - 1
    return 0.0, 2.0**bits_stored - 1


def image_scale(
    *,
    vendor: str,
    manufacturer: str,
    component: str,
    rescale_slope: Any,
    rescale_intercept: Any,
    units: list[tuple[str, str]],
    philips_scale_slope: float | None,
    philips_scale_intercept: float | None,
    bits_stored: int,
    signed: bool,
    stored_range: tuple[float, float] | None,
    path: Path,
    where: str,
) -> Scale:
    """Decide the :class:`Scale` of one image (see the module docstring for the rules).

    Parameters
    ----------
    vendor : str
        Output of :func:`vendor_of`.
    manufacturer : str
        The raw (0008,0070) value, for messages.
    component : str
        ``"magnitude"``, ``"phase"``, ``"real"`` or ``"imaginary"``.
    rescale_slope, rescale_intercept : object
        RescaleSlope / RescaleIntercept as found (None when absent).
    units : list of (str, str)
        (tag label, unit text) pairs: RescaleType, Real World Value Mapping unit code, ...
    philips_scale_slope, philips_scale_intercept : float or None
        Philips private (2005,100E) / (2005,100D).
    bits_stored : int
        (0028,0101).
    signed : bool
        Pixel Representation is 1.
    stored_range : (float, float) or None
        Smallest / largest stored value from the header, when given (GE).
    path : Path
        The file, for messages.
    where : str
        Frame suffix for messages (e.g. ``" in frame 3"``).

    Raises
    ------
    DicomError
        A phase image whose encoding matches no documented rule, or a zero rescale slope.
    """
    rs_tag = "(0028,1053) RescaleSlope"
    ri_tag = "(0028,1052) RescaleIntercept"
    rs = _float_or(rescale_slope, 1.0, path, rs_tag)
    ri = _float_or(rescale_intercept, 0.0, path, ri_tag)
    if rs == 0.0:
        raise DicomError(f"RescaleSlope is 0{where}", path=path, tag=rs_tag)
    lo, hi = _stored_range(bits_stored, signed)
    ss = philips_scale_slope if philips_scale_slope not in (None, 0.0) else None

    if component != "phase":
        if component == "magnitude" and ri < 0:
            raise DicomError(
                f"magnitude image{where} with RescaleIntercept={ri:g}: a magnitude is never negative "
                "(is it a phase or real image labelled magnitude?); refusing to take |value|",
                path=path,
                tag=ri_tag,
            )
        if vendor == "philips" and ss is not None:
            return Scale(
                1.0 / ss,
                ri / (rs * ss),
                f"Philips FP = (PV*{rs:g}+{ri:g})/({rs:g}*{ss:g}) [(2005,100E) scale slope]",
            )
        return Scale(rs, ri, f"PV*{rs:g}+{ri:g}")

    if vendor == "siemens":
        a, b = sorted((rs * lo + ri, rs * hi + ri))
        if a < -4096.5 or b > 4095.5 or (b - a) < 8000.0:
            raise DicomError(
                f"Siemens phase image{where} with RescaleSlope={rs:g}, RescaleIntercept={ri:g}, "
                f"BitsStored={bits_stored}, PixelRepresentation={int(signed)}: rescaled values "
                f"span [{a:g}, {b:g}], not the documented -4096..4095 = [-pi, pi) encoding; "
                "refusing to guess the phase scaling",
                path=path,
                tag=f"{rs_tag} / {ri_tag}",
            )
        k = math.pi / 4096.0
        return Scale(rs * k, ri * k, f"Siemens phase = (PV*{rs:g}+{ri:g})*pi/4096", True)

    if vendor == "philips":
        found = [(tag, u) for tag, u in units if u]
        if not any(u.strip().lower() == "mrad" for _, u in found):
            listing = ", ".join(f"{t}={u!r}" for t, u in found) or "no unit tag at all"
            raise DicomError(
                f"Philips phase image{where} not labelled in milliradians ({listing}); only the "
                "'mrad' convention is known, refusing to guess the phase scaling",
                path=path,
                tag="(0028,1054) RescaleType",
            )
        dv_lo, dv_hi = rs * lo + ri, rs * hi + ri
        if ss is not None:
            fp_lo, fp_hi = dv_lo / (rs * ss), dv_hi / (rs * ss)
            diff = max(abs(fp_lo - dv_lo / 1000.0), abs(fp_hi - dv_hi / 1000.0))
            if diff > 2e-3:
                raise DicomError(
                    f"Philips phase image{where}: the private floating-point scale (SS={ss:g}) "
                    f"maps stored {lo:g}..{hi:g} to [{fp_lo:.5f}, {fp_hi:.5f}] rad but the mrad "
                    f"rescale (RS={rs:g}, RI={ri:g}) to [{dv_lo / 1000:.5f}, {dv_hi / 1000:.5f}] "
                    "rad; the two conventions disagree, refusing to guess",
                    path=path,
                    tag="(2005,100E) Philips scale slope",
                )
            scale = Scale(
                1.0 / ss,
                ri / (rs * ss),
                f"Philips phase FP = (PV*{rs:g}+{ri:g})/({rs:g}*{ss:g}) rad (mrad rescale agrees)",
                True,
            )
        else:
            scale = Scale(rs / 1000.0, ri / 1000.0, f"Philips phase = (PV*{rs:g}+{ri:g})/1000 rad", True)
        r_lo, r_hi = sorted((lo * scale.slope + scale.intercept, hi * scale.slope + scale.intercept))
        limit = math.pi + PHASE_TOLERANCE
        if r_lo < -limit or r_hi > limit or (r_hi - r_lo) < 1.9 * math.pi:
            raise DicomError(
                f"Philips phase image{where}: stored {lo:g}..{hi:g} maps to [{r_lo:.4f}, "
                f"{r_hi:.4f}] rad, not a [-pi, pi] encoding; refusing to guess the phase scaling",
                path=path,
                tag=f"{rs_tag} / {ri_tag}",
            )
        return scale

    if vendor == "ge":
        scale = Scale(rs / 1000.0, ri / 1000.0, f"GE phase = (PV*{rs:g}+{ri:g})/1000 rad [mrad]", True)
        if stored_range is not None:
            r_lo, r_hi = sorted(v * scale.slope + scale.intercept for v in stored_range)
            limit = math.pi + PHASE_TOLERANCE
            if r_lo < -limit or r_hi > limit:
                raise DicomError(
                    f"GE phase image{where}: stored range {stored_range[0]:g}..{stored_range[1]:g} "
                    f"(0028,0106)/(0028,0107) is not milliradians within [-pi, pi] "
                    f"([{r_lo:.4f}, {r_hi:.4f}] rad); unknown GE phase convention",
                    path=path,
                    tag="(0028,0106) SmallestImagePixelValue / (0028,0107) LargestImagePixelValue",
                )
        return scale

    raise DicomError(
        f"phase image{where} from manufacturer {manufacturer!r}: no documented phase scaling "
        "for this vendor (Siemens, Philips and GE are known); refusing to guess",
        path=path,
        tag="(0008,0070) Manufacturer",
    )


def check_phase_range(values: np.ndarray, label: str, path: Path, scale: Scale) -> None:
    """Raise when decoded phase values fall outside [-pi, pi] (+ :data:`PHASE_TOLERANCE`).

    Parameters
    ----------
    values : ndarray
        Decoded phase [rad].
    label : str
        Image label for the message (file and frame).
    path : Path
        The file.
    scale : Scale
        The rule that produced the values.
    """
    if values.size == 0:
        return
    vmin = float(values.min())
    vmax = float(values.max())
    limit = math.pi + PHASE_TOLERANCE
    if not (vmin >= -limit and vmax <= limit):
        raise DicomError(
            f"phase of {label} spans [{vmin:.4f}, {vmax:.4f}] rad after '{scale.rule}': outside "
            "[-pi, pi], so the stored values do not follow this vendor's documented convention",
            path=path,
            tag="(7FE0,0010) PixelData",
        )
