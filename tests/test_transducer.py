"""Transducer geometry, element tables and discretisation, checked against independent geometry."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist

from fus.errors import DataError, InvalidParameterError
from fus.physics.transducer import (
    DEFAULT_POINTS_PER_WAVELENGTH,
    Transducer,
    bowl,
    cap256,
    discretise,
    piston,
    read_csv,
    read_json,
    spherical_cap_array,
    write_csv,
    write_json,
    load_transducer,
    save_transducer,
)

C_WATER = 1500.0


def _fsum_per_element(patches) -> np.ndarray:
    out = np.zeros(patches.n_elements)
    for m in range(patches.n_elements):
        out[m] = math.fsum(patches.areas[patches.element_index == m].tolist())
    return out


def _rotation(axis, angle) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _rim_points(t: Transducer, n: int = 64) -> np.ndarray:
    """Points on each disc element's rim (M, n, 3), built with a basis made here."""
    out = []
    for c, nrm, d in zip(t.centres, t.normals, t.diameters):
        tmp = np.array([0.0, 1.0, 0.0]) if abs(nrm[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
        u = np.cross(nrm, tmp)
        u /= np.linalg.norm(u)
        v = np.cross(nrm, u)
        ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
        out.append(c + 0.5 * d * (np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v))
    return np.array(out)


# ------------------------------------------------------------------------------ builders
def test_cap256_preset_numbers():
    t = cap256()
    assert t.n_elements == 256
    assert np.all(t.diameters == 6.6e-3)
    assert t.frequency == 1.2e6
    assert t.radius_of_curvature == 0.14 and t.aperture == 0.14
    # on the sphere of radius R about the focus, on the z < 0 side, normals to the focus
    r = np.linalg.norm(t.centres, axis=1)
    np.testing.assert_allclose(r, 0.14, rtol=1e-14)
    assert np.all(t.centres[:, 2] < 0)
    np.testing.assert_allclose(t.normals, -t.centres / r[:, None], atol=1e-15)


@pytest.mark.parametrize("layout", ["golden", "rings", "random"])
def test_cap_layouts_fit_inside_aperture_without_overlap(layout):
    n = 256 if layout != "random" else 120
    t = spherical_cap_array(n, 0.14, 0.14, 6.6e-3, 1.2e6, layout=layout, seed=3)
    assert t.n_elements == n
    # every rim point of every disc lies inside the cone the rim subtends at the focus
    theta_max = math.asin(0.07 / 0.14)
    rim = _rim_points(t).reshape(-1, 3)
    polar = np.arccos(-rim[:, 2] / np.linalg.norm(rim, axis=1))
    assert polar.max() <= theta_max + 1e-12
    # no overlap: every centre distance at least one element diameter
    dmin = pdist(t.centres).min()
    assert dmin >= 6.6e-3
    print(f"{layout}: min centre spacing {dmin * 1e3:.3f} mm, max rim angle "
          f"{math.degrees(polar.max()):.3f} <= {math.degrees(theta_max):.3f} deg")


def test_golden_layout_equal_area_and_spacing():
    n, r, ap, d = 256, 0.14, 0.14, 6.6e-3
    t = spherical_cap_array(n, r, ap, d, 1.2e6, layout="golden")
    # usable cap: centres up to theta_eff = theta_max - atan(a / R)
    theta_eff = math.asin(ap / (2 * r)) - math.atan(d / (2 * r))
    one_minus_cos = 1 + t.centres[:, 2] / r
    # equal area per element: the inner k/n of the usable cap's area holds k elements (+-1)
    for frac in (0.1, 0.25, 0.5, 0.75, 0.9):
        inside = np.sum(one_minus_cos <= frac * (1 - math.cos(theta_eff)))
        assert abs(inside - frac * n) <= 1.0
    # near-uniform spacing: nearest neighbour at least 0.75 of the hexagonal-packing pitch
    area_per = 2 * math.pi * r * r * (1 - math.cos(theta_eff)) / n
    hex_pitch = math.sqrt(2 * area_per / math.sqrt(3))
    nn = cKDTree(t.centres).query(t.centres, k=2)[0][:, 1]
    assert nn.min() >= d
    assert nn.min() >= 0.75 * hex_pitch
    assert np.median(nn) <= 1.1 * hex_pitch
    print(f"golden: nn min {nn.min() * 1e3:.3f} median {np.median(nn) * 1e3:.3f} mm, "
          f"hex pitch {hex_pitch * 1e3:.3f} mm")


def test_random_layout_is_seeded():
    a = spherical_cap_array(60, 0.14, 0.14, 6.6e-3, 1.2e6, layout="random", seed=11)
    b = spherical_cap_array(60, 0.14, 0.14, 6.6e-3, 1.2e6, layout="random", seed=11)
    c = spherical_cap_array(60, 0.14, 0.14, 6.6e-3, 1.2e6, layout="random", seed=12)
    assert np.array_equal(a.centres, b.centres)
    assert not np.array_equal(a.centres, c.centres)
    s = spherical_cap_array(
        40, 0.14, 0.14, 6.6e-3, 1.2e6, layout="random", seed=1, min_spacing=10e-3
    )
    assert pdist(s.centres).min() >= 10e-3


def test_overlap_error_names_pair_and_distance():
    expect = r"elements 0 and 1 overlap: centre distance 5 mm < element diameter 6\.6 mm"
    with pytest.raises(InvalidParameterError, match=expect):
        Transducer(
            centres=[[0, 0, -0.14], [0.005, 0, -0.14]],
            normals=[[0, 0, 1], [0, 0, 1]],
            diameters=6.6e-3,
            frequency=1e6,
        )
    # a golden cap whose elements are too large for their share of the cap
    with pytest.raises(InvalidParameterError) as exc:
        spherical_cap_array(256, 0.14, 0.14, 7.5e-3, 1.2e6)
    expect = r"elements \d+ and \d+ overlap: centre distance [\d.]+ mm < element diameter 7\.5 mm"
    assert re.search(expect, str(exc.value))


def test_elements_that_do_not_fit_are_refused():
    with pytest.raises(InvalidParameterError, match="element_diameter"):
        spherical_cap_array(1, 0.14, 0.01, 0.02, 1e6)  # element wider than the aperture
    with pytest.raises(InvalidParameterError, match="n_elements"):
        spherical_cap_array(2000, 0.14, 0.14, 6.6e-3, 1e6)  # more area than the cap
    with pytest.raises(InvalidParameterError, match="aperture"):
        spherical_cap_array(10, 0.05, 0.11, 5e-3, 1e6)  # aperture > 2R
    with pytest.raises(InvalidParameterError, match="aperture"):
        bowl(0.05, 0.11, 1e6)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InvalidParameterError):
            spherical_cap_array(10, 0.14, 0.14, 6.6e-3, bad)
        with pytest.raises(InvalidParameterError):
            piston(bad, 1e6)
    with pytest.raises(InvalidParameterError, match="layout"):
        spherical_cap_array(10, 0.14, 0.14, 6.6e-3, 1e6, layout="hex")


def test_transducer_validation_and_immutability():
    t = piston(0.01, 1e6)
    assert t.geometric_focus is None
    np.testing.assert_array_equal(t.centres, [[0, 0, 0]])
    np.testing.assert_array_equal(t.normals, [[0, 0, 1]])
    with pytest.raises(ValueError):
        t.centres[0, 0] = 1.0
    with pytest.raises(AttributeError):
        t.frequency = 2e6  # type: ignore[misc]
    with pytest.raises(InvalidParameterError, match="normals"):
        Transducer(centres=[[0, 0, 0]], normals=[[0, 0, 2]], diameters=1e-3, frequency=1e6)
    with pytest.raises(InvalidParameterError, match="diameters"):
        Transducer(centres=[[0, 0, 0]], normals=[[0, 0, 1]], diameters=-1e-3, frequency=1e6)
    scale = np.diag([2.0, 1.0, 1.0, 1.0])
    with pytest.raises(InvalidParameterError, match="to_scanner"):
        t.with_transform(scale)


def test_to_scanner_transform():
    t = cap256()
    tr = np.eye(4)
    tr[:3, :3] = _rotation([1, 2, 3], 0.7)
    tr[:3, 3] = [0.01, -0.02, 0.3]
    ts = t.with_transform(tr)
    expect = np.einsum("ij,mj->mi", tr[:3, :3], t.centres) + tr[:3, 3]
    np.testing.assert_allclose(ts.scanner_centres, expect, atol=1e-15)
    np.testing.assert_allclose(ts.to_transducer_frame(expect), t.centres, atol=1e-15)
    p_t = discretise(ts, sound_speed=C_WATER)
    p_s = discretise(ts, sound_speed=C_WATER, frame="scanner")
    np.testing.assert_allclose(p_s.centres, p_t.centres @ tr[:3, :3].T + tr[:3, 3], atol=1e-15)
    np.testing.assert_allclose(p_s.normals, p_t.normals @ tr[:3, :3].T, atol=1e-15)


# ------------------------------------------------------------------------------ discretisation
@pytest.mark.parametrize("ppw", [2.0, 3.0, 6.0])
def test_disc_patches_exact_area_small_and_in_plane(ppw):
    t = spherical_cap_array(16, 0.14, 0.14, 6.6e-3, 1.2e6, layout="rings")
    p = discretise(t, points_per_wavelength=ppw, sound_speed=C_WATER)
    h = C_WATER / 1.2e6 / ppw
    a = 3.3e-3
    # areas: each element's patches add up to pi a^2
    np.testing.assert_allclose(_fsum_per_element(p), math.pi * a * a, rtol=1e-12, atol=0)
    assert np.all(p.areas > 0)
    # sizes within lambda / N
    assert p.sizes.max() <= h * (1 + 1e-12)
    m = p.element_index
    # in the element's tangent plane, inside the disc, normals = element normal
    off_plane = np.einsum("px,px->p", p.centres - t.centres[m], t.normals[m])
    assert np.abs(off_plane).max() <= 1e-15
    assert np.linalg.norm(p.centres - t.centres[m], axis=1).max() <= a
    np.testing.assert_array_equal(p.normals, t.normals[m])
    # independent coverage: random points of each disc are within lambda/N of a patch point
    rng = np.random.default_rng(0)
    for e in range(t.n_elements):
        nrm = t.normals[e]
        u = np.cross(nrm, [0.3, 0.5, 0.8])
        u /= np.linalg.norm(u)
        v = np.cross(nrm, u)
        rr = a * np.sqrt(rng.uniform(0, 1, 400))
        ph = rng.uniform(0, 2 * np.pi, 400)
        pts = t.centres[e] + (rr * np.cos(ph))[:, None] * u + (rr * np.sin(ph))[:, None] * v
        dist = cKDTree(p.centres[m == e]).query(pts)[0]
        assert dist.max() <= h
    # not over-refined: fewer than 2.5 x (area / h^2) patches per element
    assert p.patches_per_element().max() <= 2.5 * math.pi * a * a / h**2


@pytest.mark.parametrize("radius,aperture", [(0.14, 0.064), (0.05, 0.08), (0.03, 0.06)])
def test_bowl_patches_on_sphere_with_exact_area(radius, aperture):
    ppw = 3.0
    b = bowl(radius, aperture, 1.2e6)
    p = discretise(b, points_per_wavelength=ppw, sound_speed=C_WATER)
    h = C_WATER / 1.2e6 / ppw
    a = aperture / 2
    depth = radius - math.sqrt(radius**2 - a**2)
    total = math.fsum(p.areas.tolist())
    assert abs(total / (2 * math.pi * radius * depth) - 1) <= 1e-12
    # on the sphere of radius R about the focus (origin), normals to the focus
    r = np.linalg.norm(p.centres, axis=1)
    assert np.abs(r / radius - 1).max() <= 1e-12
    np.testing.assert_allclose(p.normals, -p.centres / r[:, None], atol=1e-14)
    # inside the bowl: polar angle from -z at most asin(a / R), on the z < 0 side
    polar = np.arccos(np.clip(-p.centres[:, 2] / r, -1, 1))
    assert polar.max() <= math.asin(min(a / radius, 1.0)) + 1e-12
    assert p.sizes.max() <= h * (1 + 1e-12)
    # coverage: random points of the bowl surface are within lambda/N of a patch point
    rng = np.random.default_rng(1)
    cos_t = rng.uniform(math.cos(math.asin(min(a / radius, 1.0))), 1.0, 4000)
    ph = rng.uniform(0, 2 * np.pi, 4000)
    st = np.sqrt(1 - cos_t**2)
    pts = radius * np.stack([st * np.cos(ph), st * np.sin(ph), -cos_t], axis=1)
    assert cKDTree(p.centres).query(pts)[0].max() <= h


def test_patch_count_scales_with_points_per_wavelength():
    t = piston(5e-3, 1e6)
    n3 = discretise(t, points_per_wavelength=3, sound_speed=C_WATER).n_patches
    n6 = discretise(t, points_per_wavelength=6, sound_speed=C_WATER).n_patches
    assert 3.0 <= n6 / n3 <= 5.0
    assert DEFAULT_POINTS_PER_WAVELENGTH == 3
    with pytest.raises(InvalidParameterError, match="points_per_wavelength"):
        discretise(t, points_per_wavelength=0)
    with pytest.raises(InvalidParameterError, match="points_per_wavelength"):
        discretise(cap256(), points_per_wavelength=1e4)


# ------------------------------------------------------------------------------ element tables
def _placed_cap() -> Transducer:
    tr = np.eye(4)
    tr[:3, :3] = _rotation([0.2, -1, 0.4], 1.1)
    tr[:3, 3] = [0.0123, -0.0456, 0.789]
    cap = spherical_cap_array(64, 0.1, 0.12, 5e-3, 1.05e6, layout="random", seed=5)
    return cap.with_transform(tr)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
@pytest.mark.parametrize(
    "make", [_placed_cap, lambda: bowl(0.14, 0.064, 1.2e6), lambda: piston(0.0127, 0.5e6)]
)
def test_element_table_round_trip_is_exact(tmp_path, suffix, make):
    t = make()
    path = save_transducer(t, tmp_path / f"t{suffix}")
    u = load_transducer(path)
    assert np.array_equal(u.centres, t.centres)
    assert np.array_equal(u.normals, t.normals)
    assert np.array_equal(u.diameters, t.diameters)
    assert np.array_equal(u.to_scanner, t.to_scanner)
    assert u.frequency == t.frequency
    assert (u.name, u.element_shape) == (t.name, t.element_shape)
    assert u.element_radius_of_curvature == t.element_radius_of_curvature
    assert u.radius_of_curvature == t.radius_of_curvature and u.aperture == t.aperture
    text = path.read_text()
    assert "mm" in text and "MHz" in text


_GOOD_ROWS = [
    "0,0,-140,0,0,1,6.6",
    "10,0,-139.6,-0.0714,0,0.99745,6.6",
]


def _csv(tmp_path, rows, header="x_mm,y_mm,z_mm,nx,ny,nz,diameter_mm", meta="# frequency_MHz: 1.2"):
    p = tmp_path / "bad.csv"
    p.write_text("\n".join([meta, header, *rows]) + "\n")
    return p


def test_csv_reading_errors_name_file_row_and_field(tmp_path):
    p = _csv(tmp_path, _GOOD_ROWS)
    t = read_csv(p)
    assert t.n_elements == 2 and t.frequency == 1.2e6
    np.testing.assert_allclose(np.linalg.norm(t.normals, axis=1), 1, atol=1e-15)

    row0 = _GOOD_ROWS[0]
    cases = [
        ([row0, "10,abc,-139.6,-0.0714,0,0.99745,6.6"],
         r"line 4, element 1, y_mm.*non-numeric.*'abc'"),
        ([row0, "10,0,-139.6,-0.0714,0,0.9,6.6"],
         r"line 4, element 1, nx/ny/nz.*unit"),
        ([row0, "10,0,-139.6,-0.0714,0,0.99745,-6.6"],
         r"line 4, element 1, diameter_mm.*> 0"),
        ([row0, "10,0,-139.6,-0.0714,0,0.99745,"],
         r"line 4, element 1, diameter_mm.*missing"),
        ([row0, "10,0,-139.6,-0.0714,0,0.99745"],
         r"line 4, element 1.*6 fields"),
        ([row0, "nan,0,-139.6,-0.0714,0,0.99745,6.6"],
         r"line 4, element 1, x_mm.*non-finite"),
    ]
    for rows, pattern in cases:
        with pytest.raises(DataError, match=pattern) as exc:
            read_csv(_csv(tmp_path, rows))
        assert "bad.csv" in str(exc.value)
    with pytest.raises(DataError, match=r"missing column\(s\) nz"):
        read_csv(_csv(tmp_path, ["0,0,-140,0,0,6.6"], header="x_mm,y_mm,z_mm,nx,ny,diameter_mm"))
    with pytest.raises(DataError, match="frequency_MHz"):
        read_csv(_csv(tmp_path, _GOOD_ROWS, meta="# name: x"))
    with pytest.raises(DataError, match=r"elements 0 and 1 overlap"):
        read_csv(_csv(tmp_path, [_GOOD_ROWS[0], "3,0,-140,0,0,1,6.6"]))


def test_json_reading_errors_name_file_element_and_field(tmp_path):
    t = cap256()
    good = write_json(t, tmp_path / "good.json")
    text = good.read_text()
    assert read_json(good).n_elements == 256

    def broken(old: str, new: str, count: int = 1):
        p = tmp_path / "bad.json"
        # change the element with index 3 only
        head, sep, tail = text.partition('"elements": [')
        parts = tail.split("}")
        parts[3] = parts[3].replace(old, new, count)
        p.write_text(head + sep + "}".join(parts))
        return p

    cases = [
        ('"y_mm": ', '"y_mm": "abc", "old": ', r"elements\[3\], y_mm.*non-numeric"),
        ('"nz": ', '"nz": 0.5, "old": ', r"elements\[3\], nx/ny/nz.*unit"),
        ('"diameter_mm": 6.6', '"diameter_mm": -6.6', r"elements\[3\], diameter_mm.*> 0"),
        ('"diameter_mm": 6.6', '"d": 6.6', r"elements\[3\], diameter_mm.*missing"),
        ('"x_mm": ', '"x_mm": null, "old": ', r"elements\[3\], x_mm.*missing"),
    ]
    for old, new, pattern in cases:
        with pytest.raises(DataError, match=pattern) as exc:
            read_json(broken(old, new))
        assert "bad.json" in str(exc.value)
    p = tmp_path / "bad.json"
    p.write_text(text.replace('"frequency_MHz"', '"f_MHz"'))
    with pytest.raises(DataError, match="frequency_MHz"):
        read_json(p)
    p.write_text(text[:-20])
    with pytest.raises(DataError, match="invalid JSON"):
        read_json(p)
    with pytest.raises(DataError, match="suffix"):
        load_transducer(tmp_path / "t.txt")


def test_written_csv_header_states_units(tmp_path):
    path = write_csv(cap256(), tmp_path / "cap.csv")
    lines = path.read_text().splitlines()
    assert "# frequency_MHz: 1.2" in lines
    assert any(line.startswith("# units:") and "millimetres" in line for line in lines)
    assert "x_mm,y_mm,z_mm,nx,ny,nz,diameter_mm" in lines


# ------------------------------------------------------- element tables: what would pass silently
def _cap_files(tmp_path):
    from fus.physics.transducer_io import write_csv, write_json

    t = cap256()
    return t, write_csv(t, tmp_path / "cap.csv"), write_json(t, tmp_path / "cap.json")


def test_element_table_extra_column_is_refused(tmp_path):
    from fus.physics.transducer_io import read_csv

    _, csv_path, _ = _cap_files(tmp_path)
    lines = csv_path.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("x_mm"))
    lines[i] += ",gain_db"
    lines[i + 1:] = [line + ",0" for line in lines[i + 1:]]
    bad = tmp_path / "extra.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"extra.csv.*element 0.*unknown column\(s\) 'gain_db'"):
        read_csv(bad)


def test_element_table_duplicate_metadata_is_refused(tmp_path):
    from fus.physics.transducer_io import read_csv, read_json

    _, csv_path, json_path = _cap_files(tmp_path)
    text = csv_path.read_text()
    bad = tmp_path / "dup.csv"
    bad.write_text(text.replace("# frequency_MHz: 1.2\n", "# frequency_MHz: 1.2\n# frequency_MHz: 0.65\n"))
    with pytest.raises(DataError, match=r"line 4.*'frequency_MHz' is given twice"):
        read_csv(bad)
    j = json_path.read_text()
    bad_json = tmp_path / "dup.json"
    bad_json.write_text(j.replace('"frequency_MHz": 1.2,', '"frequency_MHz": 1.2, "frequency_MHz": 0.65,', 1))
    assert bad_json.read_text() != j
    with pytest.raises(DataError, match="'frequency_MHz' is given twice"):
        read_json(bad_json)


def test_element_table_with_a_byte_order_mark_reads_the_same(tmp_path):
    from fus.physics.transducer_io import read_csv

    t, csv_path, _ = _cap_files(tmp_path)
    bom = tmp_path / "excel.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())
    np.testing.assert_array_equal(read_csv(bom).centres, read_csv(csv_path).centres)


def test_element_table_radius_of_curvature_must_match_the_normals(tmp_path):
    from fus.physics.transducer_io import read_csv

    _, csv_path, _ = _cap_files(tmp_path)
    bad = tmp_path / "roc.csv"
    bad.write_text(csv_path.read_text().replace("# radius_of_curvature_mm: 140\n", "# radius_of_curvature_mm: 100\n"))
    with pytest.raises(DataError, match=r"radius_of_curvature_mm = 100 but the element normals meet 140 mm"):
        read_csv(bad)
