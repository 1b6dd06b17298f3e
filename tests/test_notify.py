"""``tradekit notify`` against a local signal-cli-rest-api (tests/servers/signal.py): the body
of the one POST per message, retries on 5xx and timeouts, 429 as "maybe sent" (never resent),
201 with failed recipients, ``--check``, attachments, the webhook."""

from __future__ import annotations

import base64
import io
import json
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import Result
from tests.servers.signal import SignalServer

OWNER = "+4366012345678"
FRIEND = "+4366087654321"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")

RunCli = Callable[..., Result]


@pytest.fixture
def signal() -> Iterator[SignalServer]:
    with SignalServer(OWNER) as s:
        yield s


def config(path: Path, url: str, **extra: Any) -> Path:
    notify = {
        "url": url,
        "sender": OWNER,
        "recipients": [OWNER, FRIEND],
        "timeout_s": 2.0,
        **extra,
    }
    lines = ["[notify]"] + [f"{k} = {json.dumps(v)}" for k, v in notify.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_one_post_with_styled_text_and_attachment(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path
) -> None:
    cfg = config(tmp_path / "t.toml", signal.url)
    (tmp_path / "equity plot.png").write_bytes(PNG)
    r = run_cli("--config", str(cfg), "notify", "**daily** P&L +1.2 %", "--attach",
                str(tmp_path / "equity plot.png"), "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert signal.state.count("POST", "/v2/send") == 1
    body = signal.state.sent[0]
    assert body["number"] == OWNER
    assert body["recipients"] == [OWNER, FRIEND]
    assert body["message"] == "**daily** P&L +1.2 %"
    assert body["text_mode"] == "styled"
    [uri] = body["base64_attachments"]
    head, b64 = uri.split(",", 1)
    assert head == "data:image/png;filename=equity%20plot.png;base64"
    assert base64.b64decode(b64) == PNG
    doc = json.loads(r.out)
    assert doc["schema"] == "notify/1"
    assert doc["attempts"] == 1
    assert doc["recipients"] == [OWNER, FRIEND]


def test_stdin_file_normal_mode_and_to(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(tmp_path / "t.toml", signal.url, text_mode="normal")
    monkeypatch.setattr(sys, "stdin", io.StringIO("from a pipe\n"))
    assert run_cli("--config", str(cfg), "notify", "-", "--to", FRIEND).code == 0
    (tmp_path / "msg.txt").write_text("from a file")
    assert run_cli("--config", str(cfg), "notify", "--file", str(tmp_path / "msg.txt")).code == 0
    first, second = signal.state.sent
    assert (first["message"], first["recipients"], first["text_mode"]) == (
        "from a pipe",
        [FRIEND],
        "normal",
    )
    assert second["message"] == "from a file"
    assert "base64_attachments" not in second


def test_5xx_is_retried_and_delivered_once(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path
) -> None:
    signal.state.faults = ["503"]
    r = run_cli("--config", str(config(tmp_path / "t.toml", signal.url)), "notify", "hello",
                "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert signal.state.count("POST", "/v2/send") == 2
    assert signal.state.messages() == ["hello"]
    assert json.loads(r.out)["attempts"] == 2


def test_429_is_maybe_sent_and_never_resent(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path
) -> None:
    signal.state.faults = ["429"]
    r = run_cli("--config", str(config(tmp_path / "t.toml", signal.url)), "notify", "hello")
    assert r.code == 4
    assert "may have been delivered" in r.err
    assert signal.state.count("POST", "/v2/send") == 1
    assert len(r.err.strip().splitlines()) == 1


def test_partial_recipient_failure_names_the_number(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path
) -> None:
    signal.state.faults = [f"partial:{FRIEND}"]
    r = run_cli("--config", str(config(tmp_path / "t.toml", signal.url)), "notify", "hello")
    assert r.code == 4
    assert FRIEND in r.err and "UNREGISTERED_FAILURE" in r.err
    assert signal.state.count("POST", "/v2/send") == 1


def test_400_reports_the_server_error_without_retrying(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path
) -> None:
    signal.state.faults = ["400"]
    r = run_cli("--config", str(config(tmp_path / "t.toml", signal.url)), "notify", "hello")
    assert r.code == 4
    assert "untrusted identities" in r.err
    assert signal.state.count("POST", "/v2/send") == 1


def test_timeouts_are_retried_then_fail(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path
) -> None:
    signal.state.hang_s = 0.6
    signal.state.faults = ["slow", "slow", "slow"]
    cfg = config(tmp_path / "t.toml", signal.url, timeout_s=0.2)
    r = run_cli("--config", str(cfg), "notify", "hello")
    assert r.code == 4
    assert "no answer within 0.2s after 3 tries" in r.err
    assert signal.state.count("POST", "/v2/send") == 3


def test_service_down_fails_with_exit_4(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path
) -> None:
    cfg = config(tmp_path / "t.toml", signal.url)
    signal.down()
    r = run_cli("--config", str(cfg), "notify", "hello")
    assert r.code == 4
    assert "cannot connect" in r.err and signal.url in r.err


def test_check_up_and_down(signal: SignalServer, run_cli: RunCli, tmp_path: Path) -> None:
    cfg = config(tmp_path / "t.toml", signal.url)
    signal.state.mode = "json-rpc"
    r = run_cli("--config", str(cfg), "notify", "--check", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert (doc["mode"], doc["version"], doc["receive"]) == ("json-rpc", "0.99", "websocket")
    assert doc["healthy"] is True and doc["sender_registered"] is True
    assert signal.state.count("POST", "/v2/send") == 0
    r = run_cli("--config", str(cfg), "notify", "--check")
    assert r.code == 0 and "mode json-rpc" in r.err
    signal.down()
    r = run_cli("--config", str(cfg), "notify", "--check")
    assert r.code == 4
    assert "/v1/about" in r.err


def test_bad_attachment_exits_3_before_sending(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path
) -> None:
    cfg = config(tmp_path / "t.toml", signal.url)
    r = run_cli("--config", str(cfg), "notify", "hi", "--attach", "missing.png")
    assert r.code == 3
    assert "missing.png" in r.err
    assert signal.state.requests == []


def test_missing_sender_exits_3(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text('[notify]\nrecipients = ["+4366087654321"]\n')
    r = run_cli("--config", str(tmp_path / "t.toml"), "notify", "hi")
    assert r.code == 3
    assert "[notify] sender" in r.err


def test_nothing_to_send_is_a_usage_error(run_cli: RunCli, tmp_path: Path) -> None:
    cfg = config(tmp_path / "t.toml", "http://127.0.0.1:9")
    assert run_cli("--config", str(cfg), "notify", "  ").code == 2


class _Hook(BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[dict[str, Any], str]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Hook.got.append((body, self.headers.get("Authorization", "")))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_webhook_gets_the_message_with_the_bearer_token(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path
) -> None:
    _Hook.got = []
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
        cfg = config(tmp_path / "t.toml", signal.url, webhook=url)
        r = run_cli("--config", str(cfg), "notify", "halted", "--level", "warning",
                    env={"TRADEKIT_WEBHOOK_TOKEN": "s3cret-token"})  # fmt: skip
    finally:
        hook.shutdown()
        hook.server_close()
    assert r.code == 0, r.err
    assert signal.state.messages() == ["halted"]
    [(body, auth)] = _Hook.got
    assert (body["text"], body["level"], body["source"]) == ("halted", "warning", "tradekit")
    assert auth == "Bearer s3cret-token"
    assert "s3cret-token" not in r.err
