"""``deploy --candidate NAME`` (install beside the live model), ``--remove``, and ``promote
NAME`` (make it live), through the local transport (the same shell steps as over SSH,
tests/test_deploy.py covers the transport itself) with the real gate receipts.

The stand-in "service" of test_deploy.py reports the release ``current`` names; the SIGKILL
test runs the real loop (``tradekit run`` on the local Kraken server) and its real health
check: whenever a promote is killed, ``current`` names a complete release, the old one or the
new one, and the loop runs that one's model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests import test_deploy as td
from tests.conftest import ROOT, cli_env
from tests.test_deploy import current, host_env, log_lines, releases, running, variant, version

# test_deploy's model dirs, each with its passing gate receipt (module-scoped fixtures).
models = td.models
loop_models = td.loop_models


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return tmp_path / "opt" / "tradekit"


@pytest.fixture
def env(app: Path) -> dict[str, str]:
    return {**host_env(app), "TRADEKIT_DEPLOY__HOST": "local"}


def ok(run_cli: Any, env: dict[str, str], *args: str) -> dict[str, Any]:
    r = run_cli(*args, "--json", env=env)
    assert r.code == 0, r.err
    doc: dict[str, Any] = json.loads(r.out)
    assert doc["schema"] == "deploy/1" and doc["ok"] is True
    return doc


def links(app: Path) -> dict[str, str]:
    d = app / "candidates"
    return {p.name: os.readlink(p) for p in sorted(d.iterdir())} if d.is_dir() else {}


def error(r: Any, code: int) -> str:
    assert r.code == code, r.err
    assert "Traceback" not in r.err
    line: str = r.err.strip().splitlines()[-1]
    assert line.startswith("tradekit: error: "), r.err
    return line


def test_candidate_lands_beside_current_and_the_loop_dir_lists_it(
    run_cli, models, env, app, tmp_path
):
    from tradekit import evidence

    live = ok(run_cli, env, "deploy", str(models["a"]))["release"]
    before = running(app)
    doc = ok(run_cli, env, "deploy", str(models["b"]), "--candidate", "fast")
    assert doc["action"] == "candidate" and doc["candidate"] == "fast"
    assert current(app) == live and running(app) == before  # nothing restarted
    assert links(app) == {"fast": f"../releases/{doc['release']}"}
    rel = app / "releases" / doc["release"]
    assert (rel / "verdict.json").is_file() and (rel / "SHA256SUMS").is_file()
    # What the loop sees: [run] candidates defaults to candidates/ beside [run] model's link.
    where = evidence.directory("", str(app / "current"))
    (c,) = evidence.installed(where)
    assert (c.name, c.release, c.target) == ("fast", doc["release"], rel)
    assert log_lines(app)[-1]["action"] == "candidate" and log_lines(app)[-1]["ok"] is True
    # Replacing it under the same name switches the link; the old release stays until pruned.
    # (An attachment makes it a new archive, uploaded whatever the second: `previous` is the
    # candidate's own link, not the live release.)
    note = tmp_path / "note.json"
    note.write_text("{}")
    again = ok(
        run_cli, env, "deploy", str(models["a"]), "--candidate", "fast", "--attach", str(note)
    )
    assert again["previous"] == doc["release"] != again["release"] != live
    assert links(app) == {"fast": f"../releases/{again['release']}"}


def test_a_fourth_candidate_is_refused_and_remove_frees_a_place(run_cli, models, env, app):
    ok(run_cli, env, "deploy", str(models["a"]))
    for name in ("c1", "c2", "c3"):
        ok(run_cli, env, "deploy", str(models["b"]), "--candidate", name)
    n = len(releases(app))
    r = run_cli("deploy", str(models["b"]), "--candidate", "c4", env=env)
    line = error(r, 2)
    assert "already 3 candidates (c1, c2, c3)" in line and "--remove" in line
    assert len(releases(app)) == n and sorted(links(app)) == ["c1", "c2", "c3"]
    gone = ok(run_cli, env, "deploy", "--candidate", "c2", "--remove")
    assert gone["action"] == "candidate-remove" and sorted(links(app)) == ["c1", "c3"]
    ok(run_cli, env, "deploy", str(models["b"]), "--candidate", "c4")
    assert sorted(links(app)) == ["c1", "c3", "c4"]
    line = error(run_cli("deploy", "--candidate", "nope", "--remove", env=env), 2)
    assert "no candidate 'nope' (candidates: c1, c3, c4)" in line


@pytest.mark.parametrize("name", ["../x", ".hidden", "a b", "a;rm", "x" * 33, ""])
def test_bad_candidate_names_are_usage_errors(run_cli, models, env, app, name):
    line = error(run_cli("deploy", str(models["b"]), "--candidate", name, env=env), 2)
    assert "candidate name" in line
    assert not app.exists()


def test_a_candidate_needs_its_own_passing_receipt(run_cli, models, env, app, tmp_path):
    bare = variant(models["b"], tmp_path / "bare")
    (bare / "verdict.json").unlink(missing_ok=True)
    r = run_cli("deploy", str(bare), "--candidate", "x", env=env)
    assert r.code == 1 and "not deployed" in r.err
    doc = ok(run_cli, env, "deploy", str(bare), "--candidate", "x", "--force", "trying it")
    assert doc["forced"] == "trying it" and links(app) == {"x": f"../releases/{doc['release']}"}


def test_pruning_keeps_the_releases_candidates_point_at(run_cli, models, env, app, tmp_path):
    cand = ok(run_cli, env, "deploy", str(models["b"]), "--candidate", "keepme")["release"]
    ids = []
    for i in range(3):
        extra = tmp_path / "notes.json"
        extra.write_text(json.dumps({"n": i}))
        ids.append(ok(run_cli, env, "deploy", str(models["a"]), "--attach", str(extra),
                      "--keep", "1")["release"])  # fmt: skip
    assert releases(app) == sorted([cand, *ids[1:]])
    assert links(app) == {"keepme": f"../releases/{cand}"}


def test_promote_switches_restarts_checks_and_removes_the_link(run_cli, models, env, app):
    live = ok(run_cli, env, "deploy", str(models["a"]))["release"]
    cand = ok(run_cli, env, "deploy", str(models["b"]), "--candidate", "better")["release"]
    plan = run_cli("promote", "better", "--dry-run", env=env)
    assert plan.code == 0 and f"switch {app}/current -> releases/{cand}" in plan.err
    assert current(app) == live
    doc = ok(run_cli, env, "promote", "better")
    assert (doc["action"], doc["release"], doc["previous"]) == ("promote", cand, live)
    assert current(app) == cand and running(app) == version(models["b"]) == doc["model_version"]
    assert links(app) == {}
    assert (log_lines(app)[-1]["action"], log_lines(app)[-1]["candidate"]) == ("promote", "better")
    # The way back is deploy's: rollback returns to the release the promote replaced.
    back = ok(run_cli, env, "deploy", "--rollback")
    assert back["release"] == live and current(app) == live
    line = error(run_cli("promote", "better", env=env), 2)
    assert "no candidate 'better' (candidates: none)" in line


def test_a_promote_that_fails_its_health_check_switches_back(run_cli, models, app):
    env = {**host_env(app, health="false"), "TRADEKIT_DEPLOY__HOST": "local",
           "TRADEKIT_DEPLOY__HEALTH_TIMEOUT_S": "1"}  # fmt: skip
    ok(run_cli, {**env, "TRADEKIT_DEPLOY__HEALTH": ""}, "deploy", str(models["a"]))
    live = current(app)
    cand = ok(run_cli, env, "deploy", str(models["b"]), "--candidate", "bad")["release"]
    line = error(run_cli("promote", "bad", env=env), 4)
    assert f"switched back to {live}" in line and "candidate bad kept" in line
    assert current(app) == live and running(app) == version(models["a"])
    assert links(app) == {"bad": f"../releases/{cand}"}
    assert log_lines(app)[-1]["ok"] is False


# -- SIGKILL at any point, with the real loop ----------------------------------------------------
def _complete(app: Path) -> str:
    """The release ``current`` names, checked complete (every file against SHA256SUMS)."""
    rid = current(app)
    r = subprocess.run(["sha256sum", "--quiet", "--strict", "-c", "SHA256SUMS"],
                       cwd=app / "releases" / rid, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, (rid, r.stdout, r.stderr)
    return rid


def _switch(app: Path, rid: str) -> None:
    tmp = app / "current.tmp"
    os.symlink(f"releases/{rid}", tmp)
    os.replace(tmp, app / "current")


def test_promote_killed_at_any_point_leaves_a_complete_release_and_a_running_loop(
    run_cli, loop_models, kraken, kraken_env, app, tmp_path
):
    """Kill the promote after each of its steps in turn (its debug lines mark them: the kill
    lands on progress, not on time). After each kill `current` names a complete release, the
    old or the new one, and the real loop runs that one's model; `promote` again finishes the
    job. A reader watching `current` all along never finds it missing or incomplete."""
    from tests.test_run import FIRST, HOUR, Loop, _env

    state = tmp_path / "state" / "ledger.db"
    env = {
        **_env(kraken_env, tmp_path),
        "TRADEKIT_RUN__MODEL": str(app / "current"),
        **host_env(app, restart="", health="loop", health_timeout_s="60"),
        "TRADEKIT_DEPLOY__HOST": "local",
        "TRADEKIT_DEPLOY__STATUS": f"env PYTHONPATH={ROOT} {sys.executable} -m tradekit status "
        f"--json --state {state}",
    }
    quiet = {**env, "TRADEKIT_DEPLOY__HEALTH": ""}
    old = ok(run_cli, quiet, "deploy", str(loop_models["la"]))["release"]
    new = ok(run_cli, quiet, "deploy", str(loop_models["lb"]), "--candidate", "nb")["release"]
    va, vb = version(loop_models["la"]), version(loop_models["lb"])
    by_release = {old: va, new: vb}
    kraken.state.now_ms = FIRST + 2 * HOUR - 100
    loop = Loop(tmp_path, env)

    def loop_runs() -> str | None:
        r = run_cli("status", "--json", env=env)
        doc = json.loads(r.out) if r.code == 0 else {}
        return doc.get("model_version") if doc.get("running") else None

    seen: list[str] = []
    stop = threading.Event()

    def reader() -> None:  # what the loop's reload sees: never nothing, never half
        while not stop.is_set():
            target = os.readlink(app / "current")
            assert (app / target / "manifest.json").is_file(), target
            seen.append(target)

    watch = threading.Thread(target=reader, daemon=True)
    argv = [sys.executable, "-m", "tradekit", "--log-level", "debug", "promote", "nb"]
    kills = []
    try:
        loop.wait_for("the loop on la", lambda: loop_runs() == va, timeout=60)
        watch.start()
        for target in (0, 1, 2, 3, 4, 5):  # marks seen before the kill (5: all of them)
            # Its own process group: the kill takes its shell step too, wherever it is.
            p = subprocess.Popen(argv, env=cli_env(**env), stderr=subprocess.PIPE, text=True,
                                 stdout=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
            assert p.stderr is not None
            marks = 0
            while marks < target:  # blocks on the promote's own progress
                line = p.stderr.readline()
                if not line:
                    break  # it finished first
                marks += "promote:" in line
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            p.stderr.close()
            kills.append(marks)
            rid = _complete(app)
            assert rid in (old, new)
            loop.wait_for(f"the loop on {rid}", lambda rid=rid: loop_runs() == by_release[rid],
                          timeout=60)  # fmt: skip
            # Promote again: it finishes whatever the kill left (unless the kill came after
            # the link was removed: then it was done).
            if links(app):
                done = run_cli("promote", "nb", "--json", env=env)
                assert done.code == 0, done.err
            assert _complete(app) == new and links(app) == {}
            loop.wait_for("the loop on lb", lambda: loop_runs() == vb, timeout=60)
            # Back to the start for the next kill: la live, lb the candidate.
            _switch(app, old)
            os.symlink(f"../releases/{new}", app / "candidates" / "nb")
            loop.wait_for("the loop on la again", lambda: loop_runs() == va, timeout=60)
        assert loop.proc.poll() is None
    finally:
        stop.set()
        loop.stop()
    watch.join(timeout=10)
    assert not watch.is_alive() and set(seen) <= {f"releases/{old}", f"releases/{new}"}
    # The kills landed at every step: before any, and after each of the promote's 5 marks.
    assert sorted(set(kills)) == [0, 1, 2, 3, 4, 5], kills
    for line in (app / "deploys.jsonl").read_text().splitlines():
        json.loads(line)  # every log line whole


def test_promote_needs_an_existing_release(run_cli, models, env, app):
    ok(run_cli, env, "deploy", str(models["a"]))
    (app / "candidates").mkdir()
    os.symlink("../releases/nothing-here", app / "candidates" / "ghost")
    line = error(run_cli("promote", "ghost", env=env), 2)
    assert "points at no release here" in line and "--remove" in line


def test_candidate_dry_runs_change_nothing(run_cli, models, env, app):
    ok(run_cli, env, "deploy", str(models["a"]))
    before = sorted(str(p) for p in app.rglob("*"))
    r = run_cli("deploy", str(models["b"]), "--candidate", "x", "--dry-run", env=env)
    assert r.code == 0, r.err
    assert f"add {app}/candidates/x -> ../releases/" in r.err and "(no restart)" in r.err
    assert sorted(str(p) for p in app.rglob("*")) == before
    ok(run_cli, env, "deploy", str(models["b"]), "--candidate", "x")
    before = sorted(str(p) for p in app.rglob("*"))
    r = run_cli("deploy", "--candidate", "x", "--remove", "--dry-run", env=env)
    assert r.code == 0 and f"remove {app}/candidates/x" in r.err
    assert sorted(str(p) for p in app.rglob("*")) == before and links(app) != {}
