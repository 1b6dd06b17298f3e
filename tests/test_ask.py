"""`tradekit ask`: the request each provider gets (against local servers speaking the Anthropic
Messages API and OpenAI chat completions), retries and the errors that must not be retried,
the read-only, secret-free, size-capped context, the offline `none` answer (deterministic, in
English and German), usage recorded in the ledger, and that nothing here can reach a broker."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env
from tests.servers.llm import ANSWER, AnthropicServer, OpenAIServer
from tests.test_summary import T_END, make_ledger
from tradekit.config import load_config
from tradekit.ledger import LedgerView

KEY = "sk-ant-test-0123456789abcdef"
MODEL_ID = "claude-haiku-5-5-test"


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return make_ledger(tmp_path / "state" / "tradekit.db")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    manifest = {
        "schema": "model/1",
        "version": "abc123def456",
        "kind": "lightgbm",
        "objective": "regression",
        "label": "label_return",
        "label_horizon": 12,
        "timeframe": "1h",
        "symbols": ["BTC/USDT", "ETH/USDT"],
        "features": ["ret_1", "rsi_10"],
        "created_at": "2024-03-01T12:00:00Z",
        "training": {"start": "2023-01-01T00:00:00Z", "end": "2024-02-28T23:00:00Z"},
        "walk_forward": {"overall": {"ic": 0.0512, "hit_rate": 0.531, "rmse": 0.03}, "folds": []},
    }
    verdict = {
        "schema": "gate/1",
        "passed": False,
        "failed": ["min_sortino"],
        "rules": [
            {"rule": "min_sortino", "label": "Sortino ratio", "metric": "sortino", "op": ">=",
             "threshold": 1.5, "value": 0.8123, "passed": False},
            {"rule": "min_trades", "label": "trades", "metric": "trades", "op": ">=",
             "threshold": 20, "value": 41, "passed": True},
        ],
    }  # fmt: skip
    (d / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (d / "verdict.json").write_text(json.dumps(verdict), encoding="utf-8")
    return d


@pytest.fixture
def anthropic() -> Iterator[AnthropicServer]:
    with AnthropicServer(key=KEY) as s:
        yield s  # type: ignore[misc]


def anthropic_env(server: AnthropicServer, **extra: str) -> dict[str, str]:
    return {
        "ANTHROPIC_API_KEY": KEY,
        "TRADEKIT_ASK__PROVIDER": "anthropic",
        "TRADEKIT_ASK__BASE_URL": server.url,
        "TRADEKIT_ASK__MODEL": MODEL_ID,
        "TRADEKIT_ASK__TIMEOUT_S": "5",
        **extra,
    }


def asks(path: Path) -> list[dict[str, object]]:
    with LedgerView(path) as view:
        return view.asks()


# -- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_request_shape_and_text_block(run_cli, anthropic, ledger, model_dir):
    r = run_cli(
        "ask", "How did the last day go?", "--state", str(ledger), "--model", str(model_dir),
        "--json", env=anthropic_env(anthropic),
    )  # fmt: skip
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    # The server puts a thinking block first: the answer is the text block only.
    assert doc["text"] == ANSWER and doc["provider"] == "anthropic"
    assert (doc["input_tokens"], doc["output_tokens"]) == (1234, 56)
    assert doc["cost_usd"] == pytest.approx((1234 * 0.10 + 56 * 0.50) / 1e6)
    [req] = anthropic.requests
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    body = req.body
    assert body["model"] == MODEL_ID and body["max_tokens"] == 2048
    assert body["thinking"] == {"type": "disabled"}
    assert not {"temperature", "top_p", "top_k"} & set(body)
    assert "analyst" in body["system"] and "English" in body["system"]
    assert "cannot place, change or cancel orders" in body["system"]
    [msg] = body["messages"]
    assert msg["role"] == "user" and msg["content"].endswith("Question: How did the last day go?")
    assert "equity: 9,281.17 USDT" in msg["content"]  # the ledger's figures went along
    assert "version: abc123def456" in msg["content"] and "gate verdict" in msg["content"]
    assert "request-id req_0000" in r.err  # logged at info
    [row] = asks(ledger)
    assert (row["provider"], row["model"], row["status"]) == ("anthropic", MODEL_ID, "ok")
    assert (row["input_tokens"], row["output_tokens"]) == (1234, 56)
    assert row["cost_usd"] == pytest.approx(doc["cost_usd"])
    assert row["question"] == "How did the last day go?"


def test_language_goes_into_the_system_prompt(run_cli, anthropic, ledger):
    env = anthropic_env(anthropic, TRADEKIT_ASK__LANGUAGE="de")
    assert run_cli("ask", "Wie läuft es?", "--state", str(ledger), env=env).code == 0
    assert "Answer in German." in anthropic.requests[0].body["system"]


def test_529_then_success(run_cli, anthropic, ledger):
    anthropic.fail("529", "429")
    r = run_cli("ask", "status?", "--state", str(ledger), env=anthropic_env(anthropic))
    assert r.code == 0, r.err
    assert r.out == ANSWER + "\n"
    assert len(anthropic.requests) == 3


def test_spend_limit_is_not_retried(run_cli, anthropic, ledger):
    anthropic.fail("spend")
    r = run_cli("ask", "status?", "--state", str(ledger), env=anthropic_env(anthropic))
    assert r.code == 4 and "spend limit" in r.err
    assert len(anthropic.requests) == 1
    assert r.out == ""
    assert [row["status"] for row in asks(ledger)] == ["spend limit"]


def test_overloaded_after_retries_exits_4(run_cli, anthropic, ledger):
    anthropic.fail("529", "529", "500", "529")
    r = run_cli("ask", "status?", "--state", str(ledger), env=anthropic_env(anthropic))
    assert r.code == 4 and "after 4 tries" in r.err
    assert len(anthropic.requests) == 4
    assert len(r.err.strip().splitlines()[-1]) < 200


def test_bad_key_refusal_and_missing_key(run_cli, anthropic, ledger):
    env = anthropic_env(anthropic, ANTHROPIC_API_KEY="sk-ant-wrong-key-42")
    r = run_cli("ask", "status?", "--state", str(ledger), env=env)
    assert r.code == 4 and "check ANTHROPIC_API_KEY" in r.err
    assert "sk-ant-wrong-key-42" not in r.err
    assert len(anthropic.requests) == 1
    anthropic.fail("refusal")
    r = run_cli("ask", "status?", "--state", str(ledger), env=anthropic_env(anthropic))
    assert r.code == 4 and "refusal" in r.err and r.out == ""


def test_missing_key_exits_3_without_a_request(run_cli, anthropic, ledger):
    env = anthropic_env(anthropic)
    del env["ANTHROPIC_API_KEY"]
    r = run_cli("ask", "status?", "--state", str(ledger), env=env)
    assert r.code == 3 and "ANTHROPIC_API_KEY" in r.err
    assert anthropic.requests == []


def test_bearer_auth_is_accepted_by_the_server(anthropic):
    # The official SDK sends Authorization: Bearer; the local server must take either.
    import httpx

    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(
        f"{anthropic.url}/v1/messages",
        json=body,
        headers={"authorization": f"Bearer {KEY}", "anthropic-version": "2026-10-21"},
    )
    assert r.status_code == 200 and r.headers["request-id"]


# -- OpenAI-compatible (Ollama) ----------------------------------------------------------------


def test_openai_path(run_cli, ledger):
    with OpenAIServer() as server:
        env = {
            "TRADEKIT_ASK__PROVIDER": "openai",
            "TRADEKIT_ASK__BASE_URL": f"{server.url}/v1",
            "TRADEKIT_ASK__MODEL": "llama3.2:3b",
        }
        r = run_cli("ask", "how are we doing?", "--state", str(ledger), "--json", env=env)
        assert r.code == 0, r.err
        [req] = server.requests
        assert "authorization" not in req.headers  # no key: Ollama needs none
        r2 = run_cli(
            "ask", "again", "--state", str(ledger), env={**env, "OPENAI_API_KEY": "ollama-key"}
        )
        assert r2.code == 0 and server.requests[1].headers["authorization"] == "Bearer ollama-key"
    doc = json.loads(r.out)
    assert doc["text"] == ANSWER and (doc["input_tokens"], doc["output_tokens"]) == (900, 40)
    assert req.path == "/v1/chat/completions"
    body = req.body
    assert body["model"] == "llama3.2:3b" and body["stream"] is False and body["max_tokens"]
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"].endswith("Question: how are we doing?")
    assert [row["provider"] for row in asks(ledger)] == ["openai", "openai"]


# -- the context -------------------------------------------------------------------------------


def test_context_has_no_secrets(run_cli, anthropic, ledger, tmp_path):
    secrets = {
        "TRADEKIT_EXCHANGE_API_KEY": "exkey-7f3a9c2e11d0",
        "TRADEKIT_EXCHANGE_SECRET": "exsecret-Zm9vYmFyYmF6cXV4",
        "OPENAI_API_KEY": "sk-openai-5b1d7e0c9a",
        "TRADEKIT_WEBHOOK_TOKEN": "whtoken-0c2f6a1b",
    }
    notes = tmp_path / "notes.txt"
    notes.write_text(
        "my notes\nkraken secret is exsecret-Zm9vYmFyYmF6cXV4\napi_key = something-private-99\n",
        encoding="utf-8",
    )
    toml = tmp_path / "copy.toml"
    toml.write_text(
        '[exchange]\nid = "kraken"\napi_url = "https://private.example"\n'
        '[deploy]\nhost = "pi.private.lan"\n[risk]\nmax_open_positions = 3\n',
        encoding="utf-8",
    )
    env = anthropic_env(anthropic, **secrets)
    r = run_cli(
        "ask", "status?", "--state", str(ledger), "--context", str(notes), "--context", str(toml),
        env=env,
    )  # fmt: skip
    assert r.code == 0, r.err
    sent = json.dumps(anthropic.requests[0].body)
    for value in [*secrets.values(), KEY, "something-private-99"]:
        assert value not in sent
    assert "private.example" not in sent and "pi.private.lan" not in sent
    assert "my notes" in sent and "max_open_positions" in sent  # the rest did go along


def test_context_reads_only(ledger, model_dir):
    from tradekit.ask.context import build_context

    def digest() -> str:
        # SQLite may create empty -wal/-shm files beside a WAL database even for a reader.
        wal = ledger.with_name(ledger.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        return hashlib.sha256(ledger.read_bytes()).hexdigest()

    before = digest()
    ctx = build_context(load_config(None), state=str(ledger), model=str(model_dir))
    assert digest() == before
    assert ctx.facts["ledger"]["available"] and not ctx.truncated
    assert ctx.facts["ledger"]["as_of_ms"] == T_END


def test_size_cap_drops_oldest_first(monkeypatch, ledger, model_dir):
    from tradekit.ask.context import build_context

    make_ledger(ledger.parent / "many.db", trades=60)
    full = build_context(load_config(None), state=str(ledger.parent / "many.db"), model="x")
    assert not full.truncated and len(full.text) > 3000
    monkeypatch.setenv("TRADEKIT_ASK__MAX_CONTEXT_CHARS", "3000")
    ctx = build_context(load_config(None), state=str(ledger.parent / "many.db"), model="x")
    assert ctx.truncated and len(ctx.text) <= 3000
    assert ctx.text.startswith("[context cut to fit 3000 chars ([ask] max_context_chars); dropped:")
    assert "## status" in ctx.text and "## equity" in ctx.text  # the important parts stay
    exits = (" exit exit_signal", " exit stoploss")
    trades = [ln for ln in full.text.splitlines() if ln.endswith(exits)]
    assert trades[-1] in ctx.text and trades[0] not in ctx.text  # newest kept, oldest dropped


def test_unreadable_context_file_exits_3(run_cli, ledger, tmp_path):
    (tmp_path / "bin.dat").write_bytes(b"\xff\xfe\x00\x81")
    r = run_cli("ask", "status?", "--state", str(ledger), "--context", "bin.dat")
    assert r.code == 3 and "bin.dat" in r.err
    r = run_cli("ask", "status?", "--state", str(ledger), "--context", "missing.json")
    assert r.code == 3 and "missing.json" in r.err


# -- provider none -----------------------------------------------------------------------------


def test_none_is_deterministic_and_cites_figures(run_cli, ledger, model_dir):
    args = ("ask", "why is it not deployed?", "--state", str(ledger), "--model", str(model_dir))
    first, second = run_cli(*args), run_cli(*args)
    assert first.code == 0 and first.out == second.out
    out = first.out
    assert "Gate: FAILED on 1 of 2 rules" in out
    assert "Sortino ratio (min_sortino) 0.81, needs >= 1.50" in out
    assert "Equity 9,281.17 USDT" in out and "Model abc123def456 (lightgbm)" in out
    assert "Open positions: 1" in out
    # No matching keyword: the overview and where to get free-form answers.
    other = run_cli("ask", "what's the weather?", "--state", str(ledger)).out
    assert "offline summary" in other and "ANTHROPIC_API_KEY" in other
    assert "Model: not available" in other  # default [run] model dir does not exist here
    assert [row["provider"] for row in asks(ledger)] == ["none"] * 3


def test_none_answers_in_german(run_cli, ledger, model_dir):
    env = {"TRADEKIT_ASK__LANGUAGE": "de"}
    r = run_cli("ask", "Wie hoch ist das Risiko?", "--state", str(ledger), env=env)
    assert r.code == 0
    assert "Risikostatus: in Ordnung" in r.out and "Drawdown-Stopp bei 20,00 %" in r.out
    assert "Kapital 9.281,17 USDT" in r.out  # German number format
    assert run_cli("ask", "Wie hoch ist das Risiko?", "--state", str(ledger), env=env).out == r.out
    pos = run_cli("ask", "Welche Positionen sind offen?", "--state", str(ledger), env=env).out
    assert "Offene Positionen: 1." in pos and "BTC/USDT" in pos


def test_no_ledger_is_noted_not_an_error(run_cli):
    r = run_cli("ask", "how is performance?", "--state", "none.db", "--json")
    assert r.code == 0
    assert "No trading state: ledger not available (none.db)" in json.loads(r.out)["text"]
    assert "usage not recorded" in r.err
    assert not Path("none.db").exists()  # recording the usage created no ledger


# -- no path to a broker -----------------------------------------------------------------------

FORBIDDEN_MODULES = (
    "tradekit.live.brokers",
    "tradekit.live.exchange_broker",
    "tradekit.live.engine",
    "tradekit.live.loop",
    "tradekit.live.replay",
    "tradekit.live.orders",
    "tradekit.data.exchange",
    "ccxt",
)
FORBIDDEN_CALLS = {"request", "add_order", "update_order", "kill", "control_done", "save_engine"}


def test_ask_package_has_no_broker_path():
    files = sorted((ROOT / "tradekit" / "ask").glob("*.py"))
    assert len(files) >= 5
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                names = [mod, *(f"{mod}.{a.name}" for a in node.names)]
            for name in names:
                assert not any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES), (
                    f"{path.name}: imports {name}"
                )
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in FORBIDDEN_CALLS, (
                    f"{path.name}: calls .{node.func.attr}"
                )
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("__import__", "import_module"), path.name


def test_answer_loads_no_trading_module(ledger, model_dir):
    code = (
        "import sys; from tradekit.config import load_config; import tradekit.ask as a;"
        f"r = a.answer(load_config(None), 'status and risk?', state={str(ledger)!r},"
        f" model={str(model_dir)!r}, provider='none');"
        f"bad = [m for m in {list(FORBIDDEN_MODULES)!r} + ['pandas', 'numpy', 'httpx']"
        " if m in sys.modules];"
        "print(bad, len(r.text) > 100)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True
    ).stdout
    assert out.strip() == "[] True", out
