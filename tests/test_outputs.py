"""Run outputs are all or nothing, and hold no non-finite number (issue: fields and heating)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from fus.errors import DataError
from fus.pipelines.outputs import DOSE_CEILING, RunOutputs, saturate, strict_json

FIELD = ["field", "--transducer", "bowl", "--roc", "140", "--aperture", "64", "--frequency", "1.2",
         "--grid", "6x5x4", "--spacing", "1,1,2", "--no-progress"]


def _field(out, *extra):
    from fus.cli.main import main

    return main(FIELD + list(extra) + ["-o", str(out)])


def test_interrupted_field_run_leaves_the_previous_result(tmp_path, monkeypatch):
    out = tmp_path / "f.nii.gz"
    assert _field(out, "--power", "1", "--heat") == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert json.loads((tmp_path / "f.json").read_text())["acoustic_power_W"] == pytest.approx(1.0)

    real = RunOutputs.nifti
    calls = []

    def interrupted(self, name, *a, **k):
        calls.append(name)
        if len(calls) == 2:  # Ctrl-C while the second volume is written
            raise KeyboardInterrupt
        return real(self, name, *a, **k)

    monkeypatch.setattr(RunOutputs, "nifti", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _field(out, "--power", "50", "--heat")
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # the 1 W result, whole; no 50 W image beside it, no temporary file


def test_rerun_without_optional_outputs_removes_them(tmp_path):
    out = tmp_path / "f.nii"
    assert _field(out, "--power", "1", "--phase", "--heat") == 0
    assert {"f_phase.nii", "f_heat.nii"} <= {p.name for p in tmp_path.iterdir()}
    assert _field(out, "--power", "2") == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"f.nii", "f.json"}
    assert set(json.loads((tmp_path / "f.json").read_text())["files"]) == {"magnitude"}


def test_output_inside_a_file_is_refused_before_the_field_is_computed(tmp_path, monkeypatch, capsys):
    from fus.pipelines import field as field_pipeline

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr(field_pipeline, "compute_field", lambda *a, **k: pytest.fail("the field was computed first"))
    assert _field(blocker / "f.nii", "--power", "1") == 1
    assert "-o" in capsys.readouterr().err


def test_strict_json_refuses_non_finite_numbers():
    assert json.loads(strict_json({"a": np.float32(1.5), "b": np.arange(2)})) == {"a": 1.5, "b": [0, 1]}
    with pytest.raises(DataError, match=r"sidecar.peaks\[1\] is inf"):
        strict_json({"peaks": [1.0, float("inf")]})
    with pytest.raises(DataError, match="nan"):
        strict_json({"x": np.float64("nan")})


def test_saturate_keeps_nan_and_counts():
    a, n = saturate(np.array([1.0, np.inf, 2e30, np.nan]), DOSE_CEILING)
    assert n == 2 and a[0] == 1.0 and a[1] == a[2] == DOSE_CEILING and np.isnan(a[3])


def test_infinite_volume_is_refused(tmp_path):
    with RunOutputs(tmp_path) as out, pytest.raises(DataError, match="infinite"):
        out.nifti("x.nii", np.array([[[np.inf]]]), np.eye(4), "x")
    assert list(tmp_path.iterdir()) == []


def test_volumes_round_trip(tmp_path):
    vol = np.random.default_rng(0).normal(size=(3, 4, 5, 2)).astype(np.float32)
    aff = np.diag([1.0, 2.0, 3.0, 1.0])
    with RunOutputs(tmp_path) as out:
        out.nifti("v.nii.gz", vol, aff, "test", dt=0.5)
        out.commit("v.json", {"ok": True})
    img = nib.load(str(tmp_path / "v.nii.gz"))
    np.testing.assert_array_equal(np.asarray(img.dataobj), vol)
    np.testing.assert_array_equal(img.affine, aff)
    assert img.header.get_zooms()[3] == pytest.approx(0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.nii.gz"]


def test_heat_past_boiling_warns_and_writes_no_inf(tmp_path, monkeypatch):
    """`fus heat` at a power that overflows CEM43: strict JSON, no inf in files, the warning recorded."""
    import csv

    from fus.cli.main import main
    from fus.pipelines import heat as heat_pipeline

    spec = tmp_path / "small.toml"
    spec.write_text(
        '[grid]\nshape = [8, 8, 24]\nspacing_mm = 1.0\ncentre_mm = [0, 0, 0]\n'
        '[bath]\ntemperature_c = 20\n[body]\nskin_z_mm = -10\n'
        '[[layers]]\ntissue = "skin"\nthickness_mm = 2\n[[layers]]\ntissue = "muscle"\nthickness_mm = 6\n'
        '[[layers]]\ntissue = "cortical_bone"\n'
    )

    def fake_source(phantom, transducer, focus, power, progress=True, field_spacing=None, refine_focus=False):
        x, y, z = np.meshgrid(*phantom.grid.axes(), indexing="ij")
        f = np.asarray(focus)
        return power * 5e6 * np.exp(-((x - f[0]) ** 2 + (y - f[1]) ** 2 + (z - f[2]) ** 2) / (2 * 2e-3**2)), {"fake": True}

    monkeypatch.setattr(heat_pipeline, "phantom_heat_source", fake_source)
    out = tmp_path / "run"
    assert main(["heat", "--phantom", str(spec), "--transducer", "cap256", "--power", "3000", "--duration", "4",
                 "--output-interval", "2", "--no-progress", "-o", str(out)]) == 0

    def no_constant(name):
        raise AssertionError(f"non-JSON constant {name} in heat.json")

    side = json.loads((out / "heat.json").read_text(), parse_constant=no_constant)
    assert any("above 100 C" in w for w in side["warnings"])
    assert side["dose_saturated_voxels"]["final_dose"] > 0
    for name in ("dose.nii", "final_dose.nii", "temperature.nii"):
        assert np.isfinite(np.asarray(nib.load(str(out / name)).dataobj)).all(), name
    with open(out / "rois.csv") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert not any(c.lower() in ("inf", "-inf", "nan") for c in cells)


# ----------------------------------------------------------------------------- phantom and TOML files
PHANTOM = (
    '[grid]\nshape = [8, 8, 24]\nspacing_mm = 1.0\ncentre_mm = [0, 0, 0]\n'
    '[body]\nskin_z_mm = -10\n'
    '[[layers]]\ntissue = "skin"\nthickness_mm = 2\n[[layers]]\ntissue = "muscle"\nthickness_mm = 6\n'
    '[[layers]]\ntissue = "cortical_bone"\n'
)


@pytest.mark.parametrize("extra, name, hint", [
    ('[rois.target]\ncentre_mm = [0, 0, 0]\nradus_mm = 2\n', "rois.target.radus_mm", "radius_mm"),
    ('[bath]\ntemperature = 20\n', "bath.temperature", "temperature_c"),
    ('shapes = 1\n', "shapes", None),
])
def test_unknown_phantom_keys_are_refused(tmp_path, extra, name, hint):
    from fus.physics.phantom import load_phantom

    f = tmp_path / "p.toml"
    f.write_text(extra + PHANTOM if "[" not in extra.split("\n")[0] else PHANTOM + extra)
    with pytest.raises(DataError) as info:
        load_phantom(f)
    msg = str(info.value)
    assert name in msg and "unknown key" in msg and str(f) in msg
    if hint:
        assert f"did you mean '{hint}'" in msg


def test_center_and_centre_both_spell_the_target(tmp_path):
    from fus.physics.phantom import load_phantom

    for key in ("centre_mm", "center_mm"):
        f = tmp_path / f"{key}.toml"
        f.write_text(PHANTOM + f'[rois.target]\n{key} = [1, 0, 3]\n')
        np.testing.assert_allclose(load_phantom(f).target, [1e-3, 0, 3e-3])
    f.write_text(PHANTOM + '[rois.target]\ncenter_mm = [1, 0, 3]\ncentre_mm = [1, 0, 3]\n')
    with pytest.raises(DataError, match="two spellings"):
        load_phantom(f)


def test_latin1_comment_and_bom_are_read(tmp_path, caplog):
    from fus.physics.media import load_medium
    from fus.physics.phantom import load_phantom

    f = tmp_path / "latin1.toml"
    f.write_bytes(("# bath at 20 °C\n" + PHANTOM).encode("latin-1"))
    assert load_phantom(f).target is not None
    assert "read as Latin-1" in caplog.text
    m = tmp_path / "bom.toml"
    m.write_bytes(b"\xef\xbb\xbf" + 'first_interface_mm = -40\n[[layers]]\ntissue = "water"\n[[layers]]\ntissue = "muscle"\n'.encode())
    assert len(load_medium(m).layers) == 2


def test_default_target_is_the_first_bone_surface_the_beam_meets(tmp_path):
    from fus.physics.phantom import load_phantom

    f = tmp_path / "two_bones.toml"
    f.write_text(
        '[grid]\nshape = [8, 8, 40]\nspacing_mm = 1.0\ncentre_mm = [0, 0, 5]\n[body]\nskin_z_mm = -10\n'
        '[[layers]]\ntissue = "skin"\nthickness_mm = 2\n[[layers]]\ntissue = "muscle"\nthickness_mm = 6\n'
        '[[layers]]\ntissue = "cortical_bone"\nthickness_mm = 3\n[[layers]]\ntissue = "marrow_red"\nthickness_mm = 5\n'
        '[[layers]]\ntissue = "cortical_bone"\nthickness_mm = 3\n[[layers]]\ntissue = "muscle"\n'
    )
    np.testing.assert_allclose(load_phantom(f).target, [0, 0, -2e-3])  # -10 + 2 + 6 mm, not the second cortex
