"""recipes/weekly-retrain.sh: the weekly job retrains only when drift calls for it (a planted
shift, an old model, --force, no model yet) and not on a resample of the training data; and
the training machine's timer (recipes/systemd/tradekit-retrain@.*) verifies offline."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env
from tests.test_drift import resampled, setup_dir, trained  # noqa: F401 - the fixture
from tests.test_systemd import parse, systemd_analyze, verify

SCRIPT = ROOT / "recipes" / "weekly-retrain.sh"
UNITS = sorted((ROOT / "recipes" / "systemd").iterdir())


def weekly(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    tk = str(ROOT / ".venv" / "bin" / "tradekit")
    if not Path(tk).exists():
        tk = shutil.which("tradekit") or "tradekit"
    return subprocess.run(
        ["bash", str(SCRIPT), "--workdir", "w", "--dry-run", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=cli_env(TRADEKIT_BIN=tk, TRADEKIT_CONFIG="tradekit.toml", **env),
    )


def test_retrains_only_when_drift_calls_for_it(trained):  # noqa: F811
    from tradekit.contracts import FEATURES, read_table, write_table

    setup_dir(trained)
    manifest = json.loads(Path("model/manifest.json").read_text())
    frame, meta = read_table("f.parquet", FEATURES)
    same = resampled(frame, manifest, seed=9)
    write_table(same, "same.parquet", FEATURES, meta)
    r = weekly("--model", "model", "--data", "same.parquet")
    assert r.returncode == 0, r.stderr
    assert "no drift that calls for retraining" in r.stderr and "remote-train" not in r.stderr
    report = json.loads(next(Path("w").glob("*/drift.json")).read_text())
    assert report["retrain"]["recommended"] is False
    shifted = same.copy()
    for c in meta["features"]:
        if c.startswith(("vol_", "hl_")):
            shifted[c] = shifted[c] * 3.0
    write_table(shifted, "shifted.parquet", FEATURES, meta)
    r = weekly("--model", "model", "--data", "shifted.parquet", "--", "--no-deploy")
    assert r.returncode == 0, r.stderr
    assert "retraining (feature drift" in r.stderr
    assert "remote-train.sh --no-install --workdir w/" in r.stderr and "--no-deploy" in r.stderr
    assert "dry run: not retraining" in r.stderr
    # An old model is retrained too ([drift] max_age_days), and --vastai rents a GPU for it.
    manifest["created_at"] = "2020-01-01T00:00:00Z"  # not among the hashed files
    Path("model/manifest.json").write_text(json.dumps(manifest))
    r = weekly("--model", "model", "--data", "same.parquet", "--vastai",
               TRADEKIT_DRIFT__MAX_AGE_DAYS="30")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "retraining (model older than" in r.stderr and "vastai-train.sh" in r.stderr
    r = weekly("--model", "model", "--data", "same.parquet", "--force")
    assert "retraining (--force)" in r.stderr
    r = weekly("--model", "nothing", "--data", "same.parquet")
    assert "no trained model at nothing" in r.stderr and "retraining (no model yet)" in r.stderr
    r = weekly("--model", "model", "--data", "missing.parquet")
    assert r.returncode == 3 and "missing.parquet" in r.stderr
    r = weekly("--bogus")
    assert r.returncode == 2


def test_the_training_machines_timer_verifies(tmp_path: Path) -> None:
    exe = systemd_analyze()
    root = tmp_path / "root"
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    host = Path("/usr/lib/systemd/system")
    if host.is_dir():
        shutil.copytree(host, root / "usr/lib/systemd/system", symlinks=True)
    for u in UNITS:
        shutil.copy(u, etc / u.name)
    stub = root / "opt/tradekit-train/recipes/weekly-retrain.sh"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    # A template is verified through an instance of it.
    for u in UNITS:
        (etc / u.name.replace("@.", "@alice.")).symlink_to(u.name)
    r = verify(root, [etc / "tradekit-retrain@alice.service", etc / "tradekit-retrain@alice.timer"])
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    timer = parse(ROOT / "recipes/systemd/tradekit-retrain@.timer")
    spec = timer["Timer"]["OnCalendar"][0]
    cal = subprocess.run([exe, "calendar", spec], capture_output=True, text=True, check=False)
    assert cal.returncode == 0 and "Sun" in cal.stdout
    svc = parse(ROOT / "recipes/systemd/tradekit-retrain@.service")["Service"]
    assert svc["User"] == ["%i"] and svc["SuccessExitStatus"] == ["1"]
    assert svc["ExecStart"][0].startswith("/opt/tradekit-train/recipes/weekly-retrain.sh")
    # Not a Pi unit: pi-setup installs systemd/tradekit-* only.
    assert not any(p.name.startswith("tradekit-retrain") for p in (ROOT / "systemd").iterdir())


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_units_name_the_recipe_that_exists(unit: Path) -> None:
    text = unit.read_text()
    assert "weekly-retrain.sh" in text
    assert SCRIPT.exists()
