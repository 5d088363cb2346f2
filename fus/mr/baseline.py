"""Baselines for PRF thermometry: the complex average of the first dynamics, or a library.

A single baseline is the complex mean of the first N dynamics (averaging complex images keeps the
phase and lowers the noise by sqrt(N)). A multi-baseline library keeps several reference images
(e.g. over a breathing cycle) and picks, for each dynamic, the one whose phase matches best in the
unheated region (Vigen et al., Magn. Reson. Med. 50, 1003-1010 (2003)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from fus.backend import array_module
from fus.errors import InvalidParameterError

__all__ = ["Baseline", "BaselineLibrary"]


@dataclass
class Baseline:
    """A reference complex image and its noise.

    Attributes
    ----------
    image : complex64 array (slices, rows, cols)
    noise : float
        Noise standard deviation per channel of ``image`` (already divided by sqrt(N) for an
        average of N dynamics).
    n_averaged : int
    """

    image: Any
    noise: float
    n_averaged: int = 1

    @classmethod
    def average(cls, images: Sequence[Any], noise: float) -> "Baseline":
        """Complex mean of ``images`` (each (slices, rows, cols)); ``noise`` is per single image."""
        if len(images) == 0:
            raise InvalidParameterError("baseline", 0, "needs at least one dynamic")
        if isinstance(noise, bool) or not isinstance(noise, (int, float, np.integer, np.floating)) or not (math.isfinite(noise) and noise > 0):
            raise InvalidParameterError("noise", noise, "must be a finite number > 0 (the image noise per channel)")
        xp = array_module(images[0])
        acc = xp.zeros(images[0].shape, dtype=np.complex128)
        for im in images:
            if im.shape != acc.shape:
                raise InvalidParameterError("baseline", f"image of shape {tuple(im.shape)}", f"must match {tuple(acc.shape)}")
            acc += im
        n = len(images)
        return cls((acc / n).astype(np.complex64), noise / math.sqrt(n), n)


class BaselineLibrary:
    """Several baselines; :meth:`select` picks the best match for a dynamic.

    The match criterion is the magnitude of the normalised complex correlation over the voxels
    that may be used (not heated, measured): ``|sum(z conj(b))| / sqrt(sum|z|^2 sum|b|^2)``,
    which is 1 for identical phase patterns up to a constant and falls with phase mismatch.
    """

    def __init__(self, baselines: Sequence[Baseline]) -> None:
        if not baselines:
            raise InvalidParameterError("baselines", 0, "the library needs at least one baseline")
        shape = baselines[0].image.shape
        for b in baselines:
            if b.image.shape != shape:
                raise InvalidParameterError("baselines", f"image of shape {tuple(b.image.shape)}", f"must all have shape {tuple(shape)}")
        self.baselines = list(baselines)

    def __len__(self) -> int:
        return len(self.baselines)

    def scores(self, z: Any, use: Any | None = None) -> list[float]:
        """Match score of each baseline for dynamic ``z`` (higher is better, <= 1)."""
        xp = array_module(z)
        w = 1.0 if use is None else xp.asarray(use, dtype=np.float32)
        out = []
        for b in self.baselines:
            num = xp.abs(xp.sum(w * z * xp.conj(b.image)))
            den = xp.sqrt(xp.sum(w * xp.abs(z) ** 2) * xp.sum(w * xp.abs(b.image) ** 2))
            out.append(float(num / den) if float(den) > 0 else 0.0)
        return out

    def select(self, z: Any, use: Any | None = None) -> tuple[int, Baseline]:
        """Index and baseline that best match ``z``."""
        s = self.scores(z, use)
        i = int(np.argmax(s))
        return i, self.baselines[i]
