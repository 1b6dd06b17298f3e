"""The phone's ``promote NAME``: a confirmation code first (as ``kill``), then the listener asks
the promote helper through ``[notify] promote_socket``; the answer follows in a second message.

The local Signal server carries the messages; behind the socket a stand-in for pi-setup's
helper (tests/test_recipes.py tests the real one between real users) runs the real ``tradekit
promote NAME --host local --json`` on a real release tree and answers with its last line."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import test_deploy as td
from tests.conftest import cli_env
from tests.servers.signal import SignalServer, envelope
from tradekit.config import load_config
from tradekit.ledger import Ledger, SideLedger
from tradekit.notify.commands import Commander
from tradekit.notify.signal import SignalClient

OWNER = "+4366012345678"
models = td.models  # two model dirs with their passing receipts (module-scoped fixture)


@pytest.fixture
def signal() -> Iterator[SignalServer]:
    with SignalServer(OWNER) as s:
        yield s


class Helper:
    """tradekit-promote.socket + its helper, as a thread: one line in, the last line of
    `tradekit promote NAME --host local --json` out."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path, self.env = path, env
        self.names: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as f:
                name = f.readline().decode().strip()
                self.names.append(name)
                r = subprocess.run(
                    [sys.executable, "-m", "tradekit", "promote", name, "--json"],
                    env=cli_env(**self.env), capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                lines = (r.stderr + r.stdout).strip().splitlines()
                conn.sendall((lines[-1] if lines else "").encode() + b"\n")

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=10)


@pytest.fixture
def tree(run_cli: Any, models: dict[str, Path], tmp_path: Path) -> dict[str, Any]:
    """A Pi's release tree: model a live, model b installed as candidate "fast"."""
    app = tmp_path / "opt" / "tradekit"
    env = {**td.host_env(app), "TRADEKIT_DEPLOY__HOST": "local"}
    for args in ([str(models["a"])], [str(models["b"]), "--candidate", "fast"]):
        r = run_cli("deploy", *args, env=env)
        assert r.code == 0, r.err
    return {"app": app, "env": env, "live": td.current(app)}


def commander(tmp_path: Path, app: Path, sock: Path, client: SignalClient) -> Commander:
    state = tmp_path / "state" / "ledger.db"
    Ledger(state).close()
    cfg_file = tmp_path / "t.toml"
    cfg_file.write_text(
        f'[run]\nstate = "{state}"\nmodel = "{app / "current"}"\n'
        f'[notify]\npromote_socket = "{sock}"\n'
    )
    cfg = load_config(cfg_file, environ={})
    return Commander(cfg, SideLedger(state), client, state_path=str(state), allow={OWNER})


def test_promote_from_the_phone_needs_the_code_then_makes_the_candidate_live(
    signal: SignalServer, tree: dict[str, Any], tmp_path: Path, models: dict[str, Path]
) -> None:
    app = tree["app"]
    helper = Helper(tmp_path / "promote.sock", tree["env"])
    try:
        with SignalClient(signal.url, OWNER) as client:
            cmd = commander(tmp_path, app, helper.path, client)

            def say(text: str) -> str:
                answer = cmd.handle({"envelope": envelope(OWNER, text)})
                assert answer is not None
                return answer

            listing = say("promote")
            assert "promote which candidate?" in listing
            assert f"fast (model {td.version(models['b'])}): no paper trades yet" in listing
            assert "no candidate 'slow'." in say("promote slow 123456")
            first = re.search(r"promote fast (\d{6})", say("promote fast"))
            assert first is not None
            wrong = "000000" if first[1] != "000000" else "111111"
            assert "wrong code; nothing done" in say(f"promote fast {wrong}")
            assert "no promote pending" in say(f"promote fast {first[1]}")  # the guess spent it
            assert helper.names == [] and td.current(app) == tree["live"]

            code = re.search(r"promote fast (\d{6})", say("PROMOTE fast"))
            assert code is not None
            assert "asked" in say(f"/promote fast {code[1]}")
            assert cmd.answered.wait(timeout=120), "no answer from the promote helper"
            assert cmd.deliver() == 1
        final = signal.state.messages()[-1]
        assert final.startswith("promoted candidate fast:") and "is live" in final, final
        assert helper.names == ["fast"]
        assert td.current(app) != tree["live"] and not (app / "candidates" / "fast").exists()
        assert td.running(app) == td.version(models["b"])
    finally:
        helper.close()


def test_promote_without_a_helper_says_so_and_changes_nothing(
    signal: SignalServer, tree: dict[str, Any], tmp_path: Path
) -> None:
    app = tree["app"]
    with SignalClient(signal.url, OWNER) as client:
        cmd = commander(tmp_path, app, tmp_path / "missing.sock", client)
        answer = cmd.handle({"envelope": envelope(OWNER, "promote fast")})
        assert answer is not None
        code = re.search(r"promote fast (\d{6})", answer)
        assert code is not None
        cmd.handle({"envelope": envelope(OWNER, f"promote fast {code[1]}")})
        assert cmd.answered.wait(timeout=60)
        cmd.deliver()
    last = signal.state.messages()[-1]
    assert "no promote helper at" in last and "nothing done" in last
    assert td.current(app) == tree["live"] and os.path.islink(app / "candidates" / "fast")
