"""`tradekit ask`: the request each provider gets (against local servers speaking the Anthropic
Messages API and OpenAI chat completions), retries and the errors that must not be retried,
the read-only, secret-free, size-capped context, the offline `none` answer (deterministic, in
English and German), usage recorded in the ledger, and that nothing here can reach a broker."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import string
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, cli_env
from tests.servers.llm import ANSWER, AnthropicServer, OpenAIServer
from tests.test_summary import T_END, make_ledger
from tradekit.config import Config, load_config
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


# -- masking: planted secrets in every format, ordinary figures untouched ----------------------

SECRET_NAMES = (
    "api_key", "apiKey", "API-KEY", "x-api-key", "secret", "client_secret", "clientSecret",
    "password", "passwd", "passphrase", "private_key", "privateKey", "auth", "auth_token",
    "accessToken", "Authorization", "cookie", "session_cookie", "credentials", "token",
    "KRAKEN_SECRET", "db_password", "pw",
)  # fmt: skip
# Values as they appear in files: no quotes, spaces or separators (those are tested apart).
VALUE = st.text(
    alphabet=string.ascii_letters + string.digits + "-_./+=@!%^*~", min_size=12, max_size=40
).filter(lambda v: sum(c.isalnum() for c in v) >= 6 and "***" not in v)


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _userinfo(value: str) -> str:
    return value.replace("@", "a").replace("/", "b")


FORMATS = {
    # name: (render(name, value) -> text)
    "json": lambda n, v: json.dumps({"id": 7, n: v, "price": 61250.5}),
    "json nested": lambda n, v: json.dumps({"a": [{"b": {n: v}}], "n": 1}, indent=2),
    "json under a secret parent": lambda n, v: json.dumps({n: {"user": "bob", "value": v}}),
    "json lines": lambda n, v: '{"ts": 1710100800000, "' + n + '": "' + v + '"}\n{"ts": 2}',
    "toml": lambda n, v: f'[service]\n"{n}" = "{v}"\nport = 8080\n',
    "toml literal": lambda n, v: f"[service]\n\"{n}\" = '{v}'\n",
    "toml multiline": lambda n, v: f'"{n}" = """\nfirst line\n{v}\n"""\nafter = 1\n',
    "toml inline table": lambda n, v: f'svc = {{ user = "bob", "{n}" = "{v}" }}\nx = 1\n',
    "toml array": lambda n, v: f'"{n}" = [\n  "{v}",\n  "other"\n]\nx = 1\n',
    "toml secret table": lambda n, v: f'[{_env_name(n).lower()}]\nvalue = "{v}"\n[risk]\nx = 3\n',
    "ini": lambda n, v: f"[database]\nhost = db.lan\n{n} = {v}\nport = 5432\n",
    "ini colon": lambda n, v: f"[database]\n{n}: {v}\n",
    "ini secret section": lambda n, v: f"[{n}]\nuser = bob\nvalue = {v}\n[other]\nx = 1\n",
    "env export": lambda n, v: f"export {_env_name(n)}={v}\nOTHER=1\n",
    "env double": lambda n, v: f'{_env_name(n)}="{v}" # from the vault\n',
    "env single": lambda n, v: f"{_env_name(n)}='{v}'\n",
    "yaml": lambda n, v: f"service:\n  {n}: {v}\n  port: 8080\n",
    "yaml list": lambda n, v: f"{n}:\n  - {v}\n  - other\nport: 1\n",
    "yaml block": lambda n, v: f"service:\n  {n}: |\n    {v}\n    more\n  port: 1\n",
    "log query": lambda n, v: f"GET /v1/data?{n}={v}&page=2 200 12ms\n",
    "log pair": lambda n, v: f"2024-03-10 21:00 connecting with {n}={v} to the API\n",
    "flag": lambda n, v: f"tradekit --{_env_name(n).lower().replace('_', '-')} {v} --verbose\n",
    "header": lambda n, v: f"curl -H 'Authorization: Bearer {v}' https://api.example\n",
    "url password": lambda n, v: f"postgres://bob:{_userinfo(v)}@db.lan/x\n",
}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(SECRET_NAMES), value=VALUE, fmt=st.sampled_from(sorted(FORMATS)))
def test_secret_named_values_are_masked_in_every_format(name, value, fmt):
    from tradekit.ask.mask import Masker

    text = FORMATS[fmt](name, value)
    value = _userinfo(value) if fmt == "url password" else value
    assume(value not in FORMATS[fmt](name, "\x00"))  # the value is not part of the frame
    masked = Masker().text(text)
    assert value not in masked, (fmt, text, masked)
    assert "***" in masked


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(SECRET_NAMES), value=VALUE, depth=st.integers(0, 4))
def test_parsed_documents_lose_secret_keys_at_any_depth(name, value, depth):
    from tradekit.ask.mask import Masker

    doc: object = {name: value, "fee": 0.001}
    for i in range(depth):
        doc = {"level": i, "items": [doc, {"price": 100.5}]}
    m = Masker()
    out = json.dumps(m.tree(doc))
    assert value not in out and "0.001" in out and ("100.5" in out or depth == 0)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), wrap=st.sampled_from(["bare", "json", "line"]))
def test_known_secret_formats_are_masked(seed, wrap):
    """Key formats need no name beside them: LLM keys, Kraken's base64 secrets, PEM, JWTs,
    and phone numbers. The keys are random as real ones are (a seeded generator: hypothesis'
    own random shrinks towards zero bytes, which no key is and no detector could tell)."""
    import base64
    import random

    rnd = random.Random(seed)

    from tradekit.ask.mask import Masker

    def b64(n: int) -> str:
        return base64.b64encode(rnd.randbytes(n)).decode()

    def url(n: int) -> str:
        return base64.urlsafe_b64encode(rnd.randbytes(n)).decode().rstrip("=")

    pem_body = [b64(48) for _ in range(3)]
    secrets = {
        "anthropic": f"sk-ant-api03-{url(60)}",
        "openai": f"sk-proj-{url(40)}",
        "sk-live": f"sk-live-{url(24)}",
        "kraken secret": b64(64),
        "kraken key": b64(42),
        "jwt": f"eyJ{url(18)}.eyJ{url(30)}.{url(32)}",
        "github": f"ghp_{''.join(rnd.choices(string.ascii_letters + string.digits, k=36))}",
        "phone": f"+{rnd.randint(1, 99)}{rnd.randint(10**8, 10**11 - 1)}",
        "pem": "-----BEGIN PRIVATE KEY-----\n" + "\n".join(pem_body)
        + "\n-----END PRIVATE KEY-----",
    }  # fmt: skip
    for kind, secret in secrets.items():
        if wrap == "json":
            text = json.dumps({"note": f"see {secret} here"}, indent=1)
        elif wrap == "line":
            text = f"2024-03-10 21:00 warning exchange: rejected {secret}, retrying"
        else:
            text = secret
        masked = Masker().text(text)
        for part in [secret, *(pem_body if kind == "pem" else [])]:
            assert part not in masked, (kind, text, masked)


def test_configured_numbers_are_masked_in_any_spelling():
    from tradekit.ask.mask import Masker

    m = Masker(numbers=["+4366012345678"])
    for spelled in ("+4366012345678", "+43 660 12345678", "004366012345678", "+43-660-1234-5678"):
        assert m.text(f"call {spelled} now") == "call *** now", spelled


def test_a_key_without_digits_is_masked_and_long_words_are_not():
    """A random Kraken key has no digit about once in 13,000 (hypothesis found this one);
    long identifiers and paths without digits stay readable."""
    from tradekit.ask.mask import MASK, Masker

    key = "EkDtyTiVASiNgYAltITKnlqaiEMwjUfTddXJSz/nVcHBtCLgdYXcaJqM"
    assert Masker().text(f"rejected {key}, retrying") == f"rejected {MASK}, retrying"
    for word in (
        "AbstractSingletonProxyFactoryBeanDefinitionRegistryHolder",
        "InternalServerErrorWhileProcessingTheRequestHandlerAgain",
        "/usr/lib/python3/dist-packages/SomeModule/SubPackage/Entry",
    ):
        assert Masker().text(word) == word


FIGURE = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    price=st.floats(min_value=1e-6, max_value=1e6, allow_nan=False),
    pnl=FIGURE,
    frac=st.floats(min_value=-5, max_value=5, allow_nan=False),
    ms=st.integers(min_value=1_262_304_000_000, max_value=2_000_000_000_000),
    digest=st.binary(min_size=32, max_size=32),
    qty=st.floats(min_value=1e-8, max_value=1e6, allow_nan=False),
    tz=st.sampled_from(["UTC", "Europe/Vienna", "America/New_York", "Asia/Kolkata"]),
)
def test_ordinary_figures_pass_unmasked(price, pnl, frac, ms, digest, qty, tz):
    from tradekit.ask import sections as sx
    from tradekit.ask.mask import Masker
    from tradekit.timeutil import fmt_local, zone

    t = fmt_local(ms, zone(tz))
    lines = [
        f"{t} BTC/USDT entry {price:.8g} ({t}) exit {price * 1.01:.8g} qty {qty:.8g} "
        f"P&L {sx.money(pnl, 'USDT')} ({sx.pct(frac)}) fees {abs(pnl) / 100:.2f} exit stoploss",
        f"equity: {sx.money(pnl)}; cash: {sx.money(price)}; change {pnl:+,.2f} ({sx.pct(frac)})",
        f"last decision ETH/USDT: {t} hold (below entry) prediction {frac / 100:+.4f}",
        f"total_return: {frac:.6g}; trades: {int(abs(pnl)) % 500}; epoch {ms} ms; {ms // 1000} s",
        f"data hash {digest.hex()}; model version {digest.hex()[:12]}; sha256:{digest.hex()}",
        f"span: {t} to {t} (1h, BTC/USDT, ETH/USDT); price {price:,.2f} USD",
    ]
    m = Masker(literals=["exsecret-Zm9vYmFyYmF6cXV4"], numbers=["+4366012345678"])
    for line in lines:
        assert m.text(line) == line


def _plant(root: Path, name: str, value: str, seed: int) -> tuple[dict[str, str], list[str]]:
    """A bot with secrets planted in every source the context reads: the ledger's events and
    messages, context files in each format, the config and its secrets, the model manifest,
    the report and the verdict. Returns (paths, secrets)."""
    import base64
    import random

    from tradekit.ledger import Ledger, SideLedger

    rnd = random.Random(seed)
    kraken = base64.b64encode(rnd.randbytes(64)).decode()
    sk = f"sk-ant-api03-{base64.urlsafe_b64encode(rnd.randbytes(40)).decode().rstrip('=')}"
    pem = [base64.b64encode(rnd.randbytes(48)).decode() for _ in range(2)]
    owner, friend = "+4366012345678", f"+1555{rnd.randint(1_000_000, 9_999_999)}"
    secrets = [value, kraken, sk, *pem, owner, friend, "exkey-" + value, KEY[7:]]
    ledger = make_ledger(root / "state" / "tradekit.db")
    with Ledger(ledger) as led:
        led.event("warning", "exchange", f"EAPI:Invalid key {sk}; {name}={value}")
        led.event("error", "notify", f"send to {owner} failed; key was {kraken}")
        led.event("warning", "config", "-----BEGIN PRIVATE KEY-----\n" + "\n".join(pem))
    with SideLedger(ledger) as side:
        side.message("in", friend, f"my {name} is {value}", "ignored", reason="stranger")
    model = root / "model"
    model.mkdir()
    manifest = {
        "schema": "model/1", "version": "abc123def456", "kind": "lightgbm",
        "symbols": ["BTC/USDT"], "features": ["ret_1"], "created_at": "2024-03-01T12:00:00Z",
        "training": {"start": "2023-01-01T00:00:00Z", "end": "2024-02-28T23:00:00Z",
                     "source": f"https://bob:{value}@data.lan/x", name: value},
        "walk_forward": {"overall": {"ic": 0.0512}, "folds": []},
        "notes": f"trained with {sk}",
    }  # fmt: skip
    report = {
        "schema": "backtest/1", "metrics": {"total_return": 0.1234, "sortino": 1.87},
        "config": {"exchange": {"secret": kraken}}, "span": {"start": "2024-01-01",
        "end": "2024-03-01", "timeframe": "1h", "symbols": ["BTC/USDT", owner]},
    }  # fmt: skip
    verdict = {
        "schema": "gate/1", "passed": True, "failed": [],
        "rules": [{"rule": "min_sortino", "label": f"Sortino ratio (tell {owner})",
                   "metric": "sortino", "op": ">=", "threshold": 1.5, "value": 1.87,
                   "passed": True}],
    }  # fmt: skip
    for fname, doc in (("manifest.json", manifest), ("report.json", report)):
        (model / fname).write_text(json.dumps(doc), encoding="utf-8")
    (model / "verdict.json").write_text(json.dumps(verdict), encoding="utf-8")
    files = {
        "notes.json": json.dumps({"marker": "json-ok", "price": 61250.5, "deep": [{name: value}]}),
        "service.toml": "marker = 'toml-ok'\n" + FORMATS["toml multiline"](name, value)
        + FORMATS["toml inline table"](name, value) + '[exchange]\napi_url = "https://x.lan"\n',
        "app.ini": "[app]\nmarker = ini-ok\n" + FORMATS["ini secret section"](name, value),
        "prod.env": "MARKER=env-ok\n" + FORMATS["env double"](name, value)
        + f"ANTHROPIC_API_KEY={sk}\n",
        "deploy.yaml": "marker: yaml-ok\n" + FORMATS["yaml block"](name, value),
        "notes.txt": f"marker txt-ok\ncall {owner} or {friend}\n" + FORMATS["header"](name, value)
        + FORMATS["log query"](name, value) + f"kraken {kraken}\n",
    }  # fmt: skip
    for fname, text in files.items():
        (root / fname).write_text(text, encoding="utf-8")
    cfg = root / "tradekit.toml"
    cfg.write_text(
        f'[notify]\nsender = "{owner}"\nrecipients = ["{owner}"]\nallow = ["{owner}", '
        f'"{friend}"]\ntimezone = "UTC"\n[ask]\nprovider = "anthropic"\nmax_context_chars = '
        f"200000\n[run]\nstate = {json.dumps(str(ledger))}\nmodel = {json.dumps(str(model))}\n",
        encoding="utf-8",
    )
    env = {
        "ANTHROPIC_API_KEY": KEY,
        "TRADEKIT_EXCHANGE_SECRET": kraken,
        "TRADEKIT_EXCHANGE_API_KEY": "exkey-" + value,
        "TRADEKIT_WEBHOOK_TOKEN": value[::-1] + "-hook",
    }
    secrets.append(env["TRADEKIT_WEBHOOK_TOKEN"])
    paths = {"config": str(cfg), **{f: str(root / f) for f in files}}
    return {**paths, **{f"env:{k}": v for k, v in env.items()}}, secrets


@settings(max_examples=8, deadline=None)
@given(name=st.sampled_from(SECRET_NAMES), value=VALUE, seed=st.integers(0, 2**32))
def test_no_planted_secret_reaches_the_llm(name, value, seed):
    import tempfile

    from tradekit.ask import answer

    with tempfile.TemporaryDirectory() as tmp, AnthropicServer(key=KEY) as server:
        paths, secrets = _plant(Path(tmp), name, value, seed)
        env = {k[4:]: v for k, v in paths.items() if k.startswith("env:")}
        env["TRADEKIT_ASK__BASE_URL"] = server.url
        cfg = load_config(paths["config"], environ=env)
        files = [v for k, v in paths.items() if not k.startswith("env:") and k != "config"]
        result = answer(cfg, f"Is {secrets[2]} still valid? Call +4366012345678.",
                        context_files=files)  # fmt: skip
        assert result.text == ANSWER and not result.truncated
        [req] = server.requests
    assert req.headers["x-api-key"] == KEY  # the key went where it belongs: the header
    sent = json.dumps(req.body, ensure_ascii=False)
    for secret in secrets:
        assert secret not in sent, secret
    for header, v in req.headers.items():
        assert header == "x-api-key" or not any(s in v for s in secrets)
    # Everything else did go along: each file's marker and the ordinary figures.
    for marker in ("json-ok", "toml-ok", "ini-ok", "env-ok", "yaml-ok", "txt-ok"):
        assert marker in sent, marker
    for figure in ("9,281.17 USDT", "61250.5", "2024-03-10 20:00 UTC", "Sortino ratio",
                   "total_return: 0.1234", "abc123def456", "EAPI:Invalid key ***"):  # fmt: skip
        assert figure in sent, figure
    assert "x.lan" not in sent  # [exchange] of a TOML context file is dropped whole


# -- where a request may go, and with which key ------------------------------------------------


def _cfg(tmp: Path, body: str, *, implicit: bool = False, **env: str) -> Config:
    """A config from a file, named (--config) or found in the working directory."""
    path = tmp / "tradekit.toml"
    path.write_text(body, encoding="utf-8")
    if implicit:
        assert Path.cwd() == tmp
        return load_config(None, environ=env)
    return load_config(path, environ=env)


@pytest.mark.parametrize(
    ("provider", "url", "env", "problem"),
    [
        ("openai", "http://10.0.0.5:11434/v1", {}, "https is required beyond loopback"),
        ("anthropic", "http://api.anthropic.com", {"ANTHROPIC_API_KEY": KEY}, "https is required"),
        ("anthropic", "https://llm-proxy.example", {"ANTHROPIC_API_KEY": KEY}, "[ask] key_hosts"),
        ("openai", "https://bob:pw@llm.example/v1", {}, "no user or password"),
        ("anthropic", "", {}, "ANTHROPIC_API_KEY is not set"),
    ],
)
def test_endpoint_refusals(tmp_path, provider, url, env, problem):
    from tradekit.ask.endpoint import resolve
    from tradekit.errors import ConfigError

    cfg = _cfg(tmp_path, f'[ask]\nprovider = "{provider}"\nbase_url = "{url}"\n', **env)
    with pytest.raises(ConfigError, match=re.escape(problem)):
        resolve(provider, cfg)


def test_endpoint_keys_go_only_to_their_own_provider(tmp_path, caplog):
    from tradekit.ask.endpoint import resolve

    both = {"ANTHROPIC_API_KEY": KEY, "OPENAI_API_KEY": "sk-openai-0123456789"}

    def ep(provider: str, url: str, extra: str = "", **env: str):
        body = f'[ask]\nbase_url = "{url}"\n{extra}'
        return resolve(provider, _cfg(tmp_path, body, **{**both, **env}))

    assert (
        ep("anthropic", "").key == KEY and ep("anthropic", "").base == "https://api.anthropic.com"
    )
    assert ep("anthropic", "http://127.0.0.1:9/").key == KEY  # a local proxy or test server
    assert ep("openai", "https://api.openai.com/v1").key == "sk-openai-0123456789"
    assert ep("ollama", "").key is None  # Ollama has no authentication: no key, ever
    # An OpenAI-compatible host of someone else's: asked without the key, with a warning.
    with caplog.at_level("WARNING", logger="tradekit.ask"):
        other = ep("openai", "https://llm.example.org/v1")
    assert other.key is None and "OPENAI_API_KEY not sent to llm.example.org" in caplog.text
    # Unless the config names the host as trusted with the key.
    assert ep("openai", "https://llm.example.org/v1", 'key_hosts = ["llm.example.org"]\n').key
    gw = ep("anthropic", "https://gw.example", 'key_hosts = ["GW.example"]\n')
    assert gw.key == KEY and gw.host == "gw.example"
    lan = ep("openai", "http://10.0.0.5:11434/v1", "allow_http = true\n")
    assert lan.key is None and lan.window == 4096


def test_a_folder_tradekit_toml_cannot_point_ask_elsewhere(tmp_path, monkeypatch):
    """``ask`` run in a cloned or shared folder reads its ./tradekit.toml: that file may not
    choose where the bot's state and keys go."""
    from tradekit.ask.endpoint import resolve
    from tradekit.errors import ConfigError

    env = {"ANTHROPIC_API_KEY": KEY, "OPENAI_API_KEY": "sk-openai-0123456789"}
    evil = '[ask]\nbase_url = "https://collector.example/v1"\nkey_hosts = ["collector.example"]\n'
    implicit = _cfg(tmp_path, evil, implicit=True, **env)
    assert "ask.base_url" in implicit.from_cwd
    for provider in ("openai", "anthropic"):
        with pytest.raises(ConfigError, match=r"found in the working directory.*--config"):
            resolve(provider, implicit)
    # The same file named with --config (or $TRADEKIT_CONFIG) is the user's own choice.
    named = _cfg(tmp_path, evil, **env)
    assert resolve("openai", named).key == "sk-openai-0123456789"
    with monkeypatch.context() as m:
        m.setenv("TRADEKIT_CONFIG", str(tmp_path / "tradekit.toml"))
        assert not load_config(None, environ=env).from_cwd
    # The environment overrides the folder's file, and is trusted.
    over = _cfg(
        tmp_path, evil, implicit=True, TRADEKIT_ASK__BASE_URL="https://api.openai.com/v1", **env
    )
    assert resolve("openai", over).key == "sk-openai-0123456789"
    # Loopback and the provider's own host stay fine from a folder; allow_http does not count.
    local = '[ask]\nbase_url = "http://127.0.0.1:11434/v1"\n'
    assert resolve("openai", _cfg(tmp_path, local, implicit=True)).loopback
    lan = '[ask]\nbase_url = "http://127.0.0.2:1/v1"\nallow_http = true\n'
    assert resolve("openai", _cfg(tmp_path, lan, implicit=True)).host == "127.0.0.2"


def test_cli_refuses_before_reading_or_sending(run_cli, ledger, tmp_path):
    Path("tradekit.toml").write_text(
        '[ask]\nprovider = "anthropic"\nbase_url = "https://collector.example"\n'
    )
    r = run_cli("ask", "status?", "--state", str(ledger), env={"ANTHROPIC_API_KEY": KEY})
    assert r.code == 3 and "working directory" in r.err and "--config" in r.err
    assert KEY not in r.err and r.out == ""
    assert asks(ledger) == []  # nothing was asked, nothing recorded


# -- the context fits the model's window -------------------------------------------------------


def _big_bot(tmp_path: Path) -> tuple[Path, Path]:
    """A ledger with 60 trades and a 19,000-character notes file: about 25,000 characters of
    context, several times a 4,096-token window."""
    big = make_ledger(tmp_path / "big.db", trades=60)
    notes = tmp_path / "notes.txt"
    line = "2024-03-0{d} 1{h}:00 journal: considered BTC/USDT at 61,250.50, skipped (spread)\n"
    text = "".join(line.format(d=1 + i % 9, h=i % 10) for i in range(240))
    notes.write_text(text[:19_000], encoding="utf-8")
    return big, notes


def test_a_4096_token_window_keeps_status_and_equity(run_cli, tmp_path, model_dir):
    from tests.servers.llm import tokens

    big, notes = _big_bot(tmp_path)
    args = ("ask", "how are we doing?", "--state", str(big), "--model", str(model_dir),
            "--context", str(notes), "--json")  # fmt: skip
    env = {"TRADEKIT_ASK__PROVIDER": "openai", "TRADEKIT_NOTIFY__TIMEZONE": "UTC"}
    with OpenAIServer(window=4096) as server:  # Ollama's default window behind /v1
        r = run_cli(*args, env={**env, "TRADEKIT_ASK__BASE_URL": f"{server.url}/v1"})
        assert r.code == 0, r.err
        [seen], [req] = server.seen, server.requests
    sent = req.body["messages"]
    assert len(tokens(sent[0]["content"] + "\n" + sent[1]["content"])) <= 4096 - 1024
    assert req.body["max_tokens"] == 1024  # a quarter of the window for the answer
    for must in ("## status", "equity: 9,281.17 USDT", "## equity", "## gate verdict",
                 "FAILED: min_sortino", "Question: how are we doing?"):  # fmt: skip
        assert must in seen, must
    user = sent[1]["content"]
    assert user.index("## status") < user.index("## equity") < user.index("## gate verdict")
    assert "[context cut to fit " in user and "oldest of context file notes.txt" in user
    doc = json.loads(r.out)
    assert doc["truncated"] and doc["window_tokens"] == 4096 and doc["dropped"]
    assert "the context was cut to fit the model's window" in r.err

    # The control: told the window is bigger than it is, the context goes out whole and the
    # server cuts it from the front, as Ollama did in the issue. Status and equity are lost.
    with OpenAIServer(window=4096) as server:
        over = {**env, "TRADEKIT_ASK__BASE_URL": f"{server.url}/v1"}
        r = run_cli(*args, env={**over, "TRADEKIT_ASK__CONTEXT_TOKENS": "32000"})
        assert r.code == 0, r.err
        [seen] = server.seen
    assert "## status" not in seen and "equity: 9,281.17" not in seen


def test_ollama_is_given_the_window_as_num_ctx(run_cli, ledger):
    env = {
        "TRADEKIT_ASK__PROVIDER": "ollama",
        "TRADEKIT_ASK__MODEL": "llama3.2:3b",
        "ANTHROPIC_API_KEY": KEY,
        "OPENAI_API_KEY": "sk-openai-0123456789",
    }
    with OpenAIServer() as server:
        env["TRADEKIT_ASK__BASE_URL"] = server.url
        r = run_cli("ask", "how are we doing?", "--state", str(ledger), "--json", env=env)
        assert r.code == 0, r.err
        r2 = run_cli(
            "ask", "and now?", "--state", str(ledger),
            env={**env, "TRADEKIT_ASK__CONTEXT_TOKENS": "4096"},
        )  # fmt: skip
        assert r2.code == 0, r2.err
        first, second = server.requests
        seen = server.seen
    assert first.path == "/api/chat" and first.body["stream"] is False
    assert first.body["options"] == {"num_ctx": 8192, "num_predict": 2048}
    assert second.body["options"] == {"num_ctx": 4096, "num_predict": 1024}
    assert "authorization" not in first.headers and "x-api-key" not in first.headers
    assert KEY not in json.dumps(first.body) and "sk-openai" not in json.dumps(first.body)
    assert all("## status" in s and "equity: 9,281.17" in s for s in seen)
    doc = json.loads(r.out)
    assert doc["text"] == ANSWER and (doc["input_tokens"], doc["output_tokens"]) == (700, 30)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(0, 120), st.integers(1, 30)), min_size=1, max_size=8),
    pinned=st.integers(0, 40),
    max_tokens=st.integers(200, 3000),
    max_chars=st.integers(500, 12000),
)
def test_fit_stays_within_both_budgets(sizes, pinned, max_tokens, max_chars):
    from tradekit.ask.budget import Section, estimate_tokens, fit

    lines = [f"equity: {i},281.17 USDT" for i in range(pinned)]
    status = Section("status (ledger snapshot)", 100, lines=lines)
    rest = [
        Section(f"part {k}", 10 + k, items=[f"item {k}.{i} " + "x" * width for i in range(n)])
        for k, (n, width) in enumerate(sizes)
    ]
    whole = "\n".join(s.render() for s in [status, *rest] if s.render())
    fitted = fit([status, *rest], max_tokens=max_tokens, max_chars=max_chars)
    assert fitted.tokens == estimate_tokens(fitted.text) <= max_tokens
    assert len(fitted.text) <= max_chars
    if not fitted.truncated:
        assert fitted.text == whole
    else:
        assert fitted.text.startswith("[context cut to fit ")
        head = status.render()
        if estimate_tokens(head) + 200 < max_tokens and len(head) + 400 < max_chars:
            assert head.rstrip("\n") in fitted.text  # status is never dropped


# -- language and time zone --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "lang"),
    [
        ("Wie ist die Performance diese Woche?", "de"),
        ("Warum wurde nicht gehandelt?", "de"),
        ("Läuft es?", "de"),
        ("Welche Positionen sind offen?", "de"),
        ("How did the last day go?", "en"),
        ("why is it not deployed?", "en"),
        ("What is the drawdown since Monday?", "en"),
        ("Status?", "en"),  # no evidence either way: English
        ("Performance?", "en"),
    ],
)
def test_language_detector(question, lang):
    from tradekit.ask.lang import detect

    assert detect(question) == lang


def test_a_german_question_gets_a_german_answer_offline(run_cli, ledger):
    env = {"TRADEKIT_NOTIFY__TIMEZONE": "Europe/Vienna"}  # [ask] language is "auto" by default
    de = run_cli("ask", "Wie ist die Performance diese Woche?", "--state", str(ledger), env=env)
    assert de.code == 0, de.err
    assert de.out.startswith("Offline-Antwort (Provider none)")
    assert "Kapital 9.281,17 USDT" in de.out and "Letzte 7 Tage: Kapital" in de.out
    # The person is in Vienna: the trade that closed at 20:00 UTC closed at 21:00 CET.
    assert "am 2024-03-10 21:00 CET" in de.out
    en = run_cli("ask", "How is the performance this week?", "--state", str(ledger), env=env)
    assert en.out.startswith("Offline answer (provider none)")
    assert "Equity 9,281.17 USDT" in en.out and "on 2024-03-10 21:00 CET" in en.out
    # A language set explicitly wins over the question's.
    fixed = run_cli(
        "ask", "Wie ist die Performance diese Woche?", "--state", str(ledger),
        env={**env, "TRADEKIT_ASK__LANGUAGE": "en"},
    )  # fmt: skip
    assert fixed.out.startswith("Offline answer")


def test_auto_language_and_local_times_reach_the_model(run_cli, anthropic, ledger):
    env = anthropic_env(anthropic, TRADEKIT_NOTIFY__TIMEZONE="Europe/Vienna")
    for q in ("Wie ist die Performance diese Woche?", "Status?"):
        assert run_cli("ask", q, "--state", str(ledger), env=env).code == 0
    de, unknown = (r.body for r in anthropic.requests)
    assert "Answer in German, the language of the question." in de["system"]
    assert "Answer in the language the question is written in." in unknown["system"]
    context = de["messages"][0]["content"]
    assert "last candle: 2024-03-10 21:00 CET" in context
    assert "(2024-03-10 16:00 CET)" in context  # the open position's entry
    assert "20:00 UTC" not in context


def test_timezone_default_is_the_systems(monkeypatch, tmp_path):
    from tradekit.timeutil import fmt_local, zone

    t = 1_710_100_800_000  # 2024-03-10 20:00 UTC
    assert fmt_local(t, zone(environ={"TZ": "Asia/Tokyo"})) == "2024-03-11 05:00 JST"
    assert fmt_local(t, zone(environ={"TZ": ":America/New_York"})) == "2024-03-10 16:00 EDT"
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "localtime").symlink_to("/usr/share/zoneinfo/Europe/Vienna")
    assert fmt_local(t, zone(environ={}, etc=str(etc))) == "2024-03-10 21:00 CET"
    (etc / "timezone").write_text("Australia/Sydney\n")  # Debian's file comes first
    assert fmt_local(t, zone(environ={}, etc=str(etc))) == "2024-03-11 07:00 AEDT"
    # /etc/localtime as a copy, not a link: its rules are read from the file itself.
    (etc / "timezone").unlink()
    (etc / "localtime").unlink()
    (etc / "localtime").write_bytes(Path("/usr/share/zoneinfo/Europe/Vienna").read_bytes())
    assert fmt_local(t, zone(environ={}, etc=str(etc))) == "2024-03-10 21:00 CET"
    assert zone(environ={}, etc=str(tmp_path / "none")) is UTC


def test_a_bad_timezone_is_a_config_error(run_cli, ledger):
    env = {"TRADEKIT_NOTIFY__TIMEZONE": "Mars/Base"}
    r = run_cli("ask", "status?", "--state", str(ledger), env=env)
    assert r.code == 3 and "TRADEKIT_NOTIFY__TIMEZONE" in r.err and "Mars/Base" in r.err
