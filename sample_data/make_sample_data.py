"""Regenerate the shipped sample DICOM thermometry series (``sample_data/series/``), deterministically.

Run from anywhere: ``python sample_data/make_sample_data.py`` (about 20 s on 2 CPU cores). It runs
the bone-surface ablation scenario on the digital twin with the overrides of
:data:`fus.pipelines.sample_series.SAMPLE_OVERRIDES` and writes the classic and enhanced DICOM,
the true temperature and ``series.json`` (see :mod:`fus.pipelines.sample_series`). The scenarios
beside this script (``scenario_*.toml``, ``phantom_bone.toml``) are hand-written, not generated.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    from fus.pipelines.sample_series import make_sample_series

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    info = make_sample_series(HERE / "scenario_ablation.toml", HERE / "series", progress=True)
    print(f"wrote {HERE / 'series'}: {info['dynamics']} dynamics x {info['slices']} slices; replay with: {info['replay']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
