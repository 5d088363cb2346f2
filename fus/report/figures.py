"""The report's figures (matplotlib, Agg canvas: no screen): temperature overlays, maximum-
temperature maps, ROI curves with the interlock limits, power with the stops.

Each ``*_figure`` function returns a :class:`matplotlib.figure.Figure`, or None where the run has
nothing to draw; :func:`write_figures` saves them as PNG files and returns what the page embeds.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen: before anything imports pyplot

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fus.report.load import LESION_DOSE_CEM43, RunData, SliceImages, num  # noqa: E402

__all__ = ["FigureFile", "FIGURE_NAMES", "write_figures", "overlay_figure", "tmax_figure", "curves_figure", "power_figure"]

log = logging.getLogger(__name__)

#: Body temperature [C]: the bottom of the temperature colour maps.
BODY_C = 37.0
#: Temperatures [C] below this are not drawn over the magnitude (the noise, 1-2 C, would hide it).
OVERLAY_MIN_C = 39.0
#: PNG files the report may write in ``figures/`` (earlier ones are removed first).
FIGURE_NAMES = ("overlay.png", "tmax.png", "curves.png", "power.png")
_DPI = 90
_CMAP = "inferno"


@dataclass
class FigureFile:
    """A written figure: ``path`` of the PNG, ``caption`` for the page, ``png`` its bytes."""

    name: str
    path: Path
    caption: str
    png: bytes


def _figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _frames(s: SliceImages, baseline: int | None) -> list[tuple[int, str]]:
    """Frames to show: end of baseline, peak, last (distinct, in time order)."""
    temp = s.temperature
    nt = temp.shape[2]
    with np.errstate(all="ignore"):
        peak_per = np.asarray([np.nanmax(f) if np.isfinite(f).any() else -np.inf for f in np.moveaxis(temp, 2, 0)])
    peak = int(np.argmax(peak_per))
    b = min(max(baseline if baseline is not None else 0, 0), nt - 1)
    out: dict[int, str] = {}
    for i, label in ((b, "baseline end"), (peak, "peak"), (nt - 1, "last")):
        out[i] = out[i] + ", " + label if i in out else label
    return sorted(out.items())


def _background(ax, s: SliceImages, shape: tuple[int, int]) -> None:
    if s.magnitude is not None and np.isfinite(s.magnitude).any():
        m = s.magnitude
        hi = 1.6 * float(np.nanpercentile(m, 99.5)) or 1.0  # dimmed: the colours stand out
        ax.imshow(m, cmap="gray", vmin=0.0, vmax=hi, interpolation="nearest")
    else:
        ax.imshow(np.zeros(shape), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")


def _contours(ax, s: SliceImages, lesion_is_dose: bool) -> None:
    if s.dose is not None:
        d = np.nan_to_num(s.dose, nan=0.0)
        if (d >= LESION_DOSE_CEM43).any() and (d < LESION_DOSE_CEM43).any():
            ax.contour(d, levels=[LESION_DOSE_CEM43], colors="cyan", linewidths=1.0)
    if s.lesion is not None and not lesion_is_dose and s.lesion.any() and not s.lesion.all():
        ax.contour(s.lesion.astype(float), levels=[0.5], colors="lime", linewidths=1.0, linestyles="dashed")


def overlay_figure(run: RunData) -> Figure | None:
    """Measured temperature [C] (scale from 37 C, drawn from :data:`OVERLAY_MIN_C`) on the magnitude, at the end of the baseline, the
    peak and the last dynamic (one row per slice), with the 240-CEM43 contour (cyan) and, for a
    replay, the lesion outline (green, dashed)."""
    slices = [s for s in run.slices if s.temperature is not None and s.temperature.shape[2] > 0]
    if not slices:
        return None
    baseline = None
    if run.kind == "replay":
        nb = num((run.meta.get("parameters") or {}).get("baseline_dynamics"))
        baseline = int(nb) - 1 if nb is not None else 0
    else:
        baseline = _sim_baseline(run)
    with np.errstate(all="ignore"):
        top = max(float(np.nanmax(s.temperature)) if np.isfinite(s.temperature).any() else BODY_C for s in slices)
    top = max(top, BODY_C + 1.0)
    frames = [_frames(s, baseline) for s in slices]
    ncol = max(len(f) for f in frames)
    fig = _figure(2.6 * ncol + 0.8, 2.6 * len(slices) + 0.3)
    axes = fig.subplots(len(slices), ncol, squeeze=False)
    im = None
    for r, (s, fr) in enumerate(zip(slices, frames)):
        for c in range(ncol):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(fr):
                ax.set_axis_off()
                continue
            i, label = fr[c]
            img = s.temperature[:, :, i]
            _background(ax, s, img.shape)
            shown = np.ma.masked_where(~np.isfinite(img) | (img < OVERLAY_MIN_C), img)
            im = ax.imshow(shown, cmap=_CMAP, vmin=BODY_C, vmax=top, interpolation="nearest", alpha=0.85)
            _contours(ax, s, run.kind == "simulate")
            t = s.times[i] if s.times is not None and i < s.times.size else float("nan")
            ax.set_title(f"{s.name}, t = {t:.1f} s\n({label})", fontsize=8)
    if im is not None:
        cb = fig.colorbar(im, ax=axes, shrink=0.8)
        cb.set_label("temperature [C]")
    return fig


def _sim_baseline(run: RunData) -> int:
    """Last frame before the first non-zero applied power (0 if none)."""
    rows = [r for r in run.rows if (num(r.get("dynamic")) or 0) >= 0]
    for i, r in enumerate(rows):
        p = num(r.get("applied_power_W"))
        if p is not None and p > 0:
            return max(i - 1, 0)
    return 0


def tmax_figure(run: RunData) -> Figure | None:
    """Maximum temperature [C]: simulate, true maximum projections in the x-y and x-z planes
    (bioheat grid, mm); replay, the measured maximum of each slice (and over slices)."""
    if run.kind == "simulate" and run.mip:
        fig = _figure(9.0, 4.0)
        axes = fig.subplots(1, 2, squeeze=False)[0]
        im = None
        for ax, key, title in zip(axes, ("xy", "xz"), ("max over z (x-y plane)", "max over y (x-z plane)")):
            img, ext, labels = run.mip[key]
            im = ax.imshow(img, origin="lower", extent=ext, cmap=_CMAP, vmin=BODY_C, vmax=max(float(np.nanmax(img)), BODY_C + 1), interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(labels[0])
            ax.set_ylabel(labels[1])
        fig.colorbar(im, ax=list(axes), shrink=0.8).set_label("true max temperature [C]")
        return fig
    maps = [(s.name, s.tmax, s) for s in run.slices if s.tmax is not None and np.isfinite(s.tmax).any()]
    if len(maps) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
            stack = np.nanmax(np.stack([m for _, m, _ in maps]), axis=0)
        maps.append(("max over slices", stack, None))
    maps = maps[:6]
    if not maps:
        return None
    top = max(max(float(np.nanmax(m)) for _, m, _ in maps), BODY_C + 1)
    fig = _figure(2.8 * len(maps) + 0.8, 3.0)
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    im = None
    for ax, (name, m, s) in zip(axes, maps):
        if s is not None:
            _background(ax, s, m.shape)
        else:
            ax.imshow(np.zeros(m.shape), cmap="gray", vmin=0, vmax=1)
        im = ax.imshow(np.ma.masked_invalid(m), cmap=_CMAP, vmin=BODY_C, vmax=top, interpolation="nearest")
        if s is not None:
            _contours(ax, s, run.kind == "simulate")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes), shrink=0.8).set_label("max temperature [C]")
    return fig


def curves_figure(run: RunData) -> Figure | None:
    """ROI temperatures [C] against time [s], the limits dashed in the curve's colour; the cord
    dose [CEM43 min] and its limit on a second panel where logged."""
    if not run.curves:
        return None
    ncol = 2 if run.dose_curves else 1
    fig = _figure(6.5 * ncol, 4.0)
    axes = fig.subplots(1, ncol, squeeze=False)[0]
    panels = [(axes[0], run.curves, "temperature [C]")]
    if run.dose_curves:
        panels.append((axes[1], run.dose_curves, "thermal dose [CEM43 min]"))
    for ax, curves, unit in panels:
        for k, c in enumerate(curves):
            colour = f"C{k}"
            style = ":" if c.label == "reference" else "-"
            ax.plot(c.t, c.y, style, color=colour, lw=1.4, label=c.label, marker="." if c.t.size < 60 else None)
            if c.limit is not None and np.isfinite(c.limit).any():
                what = "lesion temperature threshold" if run.kind == "replay" else f"{c.label} limit"
                ax.step(c.t, c.limit, "--", where="post", color=colour, lw=1.0, label=what)
        ax.set_xlabel("time [s]")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return fig


def _power_series(run: RunData) -> tuple[np.ndarray, list[tuple[str, np.ndarray]], list[tuple[float, str]]] | None:
    if run.kind == "simulate":
        rows = [r for r in run.rows if (num(r.get("dynamic")) or 0) >= 0]
        marks = [(float(num(d.get("time_s"))), str(d.get("reason", ""))) for d in run.meta.get("stops") or [] if isinstance(d, dict) and num(d.get("time_s")) is not None]
        series = [("applied", "applied_power_W"), ("commanded", "power_W")]
    else:
        rows = run.advisory
        marks = [(float(num(r.get("time_s"))), str(r.get("reason", ""))) for r in rows if str(r.get("command", "")).strip().lower() == "stop" and num(r.get("time_s")) is not None]
        series = [("advised", "power_W")]
    t = np.asarray([num(r.get("time_s")) if num(r.get("time_s")) is not None else np.nan for r in rows], dtype=float)
    if not t.size or not np.isfinite(t).any():
        return None
    ys = []
    for label, key in series:
        if key in rows[0]:
            y = np.asarray([num(r.get(key)) if num(r.get(key)) is not None else np.nan for r in rows], dtype=float)
            if np.isfinite(y).any():
                ys.append((label, y))
    return (t, ys, marks) if ys else None


def power_figure(run: RunData) -> Figure | None:
    """Acoustic power [W] against time [s] (simulate: applied and commanded; replay: what the
    advisory would have commanded), the stops and trips as labelled vertical lines."""
    got = _power_series(run)
    if got is None:
        return None
    t, ys, marks = got
    fig = _figure(8.0, 3.4)
    ax = fig.subplots()
    for k, (label, y) in enumerate(ys):
        ax.step(t, y, where="post", color=f"C{k}", lw=1.6 if k == 0 else 1.0, ls="-" if k == 0 else "--", label=f"{label} power")
    top = max(float(np.nanmax(y)) for _, y in ys)
    top = top if top > 0 else 1.0
    ax.set_ylim(0, top * 1.35)
    seen: dict[str, int] = {}
    for ts, reason in marks[:40]:
        colour = "C3" if reason != "goal_reached" else "C2"
        ax.axvline(ts, color=colour, ls=":", lw=1.2)
        n = seen.get(reason, 0)
        seen[reason] = n + 1
        if n < 3:  # label the first few of each reason
            ax.text(ts, top * (1.3 - 0.08 * (len(seen) % 4)), f" {reason} ({ts:.1f} s)", rotation=0, fontsize=7, color=colour, va="top")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("acoustic power [W]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


_CAPTIONS = {
    "overlay.png": "Measured temperature (colour scale from 37 C, drawn where >= 39 C) on the baseline magnitude (dark background where no magnitude was written), "
    "at the end of the baseline, the peak and the last dynamic; cyan: 240 CEM43 contour of the measured dose{lesion}.",
    "tmax.png": "{tmax}",
    "curves.png": "ROI temperatures against time; dashed: {limits}.",
    "power.png": "{power}; dotted vertical lines: {marks}.",
}


def _caption(name: str, run: RunData) -> str:
    sim = run.kind == "simulate"
    return _CAPTIONS[name].format(
        lesion="" if sim else "; green dashed: lesion outline (lesion.nii.gz: dose >= 240 CEM43 or Tmax >= 55 C)",
        tmax="True maximum temperature on the bioheat grid, maximum-intensity projections along z and y" if sim
        else "Measured maximum temperature of each slice (tmax.nii.gz), with the 240 CEM43 contour and the lesion outline",
        limits="the interlock limits of the same colour (log.csv il_*_limit_*); right: cord dose and its limit" if sim
        else "lesion temperature threshold (replay.json parameters.lesion_temperature_C)",
        power="Applied and commanded acoustic power (log.csv)" if sim else "Power the controller and interlocks would have commanded (advisory.csv)",
        marks="stops and interlock trips (summary.json stops), labelled with the reason" if sim else "dynamics where the advisory says stop",
    )


def write_figures(run: RunData, fig_dir: str | Path) -> list[FigureFile]:
    """Draw every figure the run has data for and save it as ``fig_dir/<name>.png``.

    Parameters
    ----------
    run : RunData
        The loaded run.
    fig_dir : str or Path
        Folder of the PNG files (created; earlier report figures in it are removed).

    Returns
    -------
    list of FigureFile
        The figures written, in page order.
    """
    d = Path(fig_dir)
    d.mkdir(parents=True, exist_ok=True)
    for name in FIGURE_NAMES:
        (d / name).unlink(missing_ok=True)
    out = []
    for name, make in zip(FIGURE_NAMES, (overlay_figure, tmax_figure, curves_figure, power_figure)):
        try:
            fig = make(run)
        except Exception as exc:  # one bad figure must not lose the report
            log.warning("report figure %s failed: %s: %s", name, type(exc).__name__, exc)
            run.note(f"figure {name} could not be drawn ({type(exc).__name__}: {exc})")
            continue
        if fig is None:
            run.note(f"figure {name}: nothing to draw")
            continue
        path = d / name
        png = _png(fig)
        path.write_bytes(png)
        out.append(FigureFile(name, path, _caption(name, run), png))
    return out


def _png(fig: Figure) -> bytes:
    """PNG bytes of ``fig`` (no Software URL in the metadata: the page names no address)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()
