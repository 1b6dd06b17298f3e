"""tradekit.toml: lookup order, validation messages, env overrides, secrets, init/show/set."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from tradekit.config import Config, load_config
from tradekit.errors import ConfigError

EXAMPLE = ROOT / "tradekit.toml.example"
SECRET = "s3cr3t-VALUE-do-not-print"


def assert_error(r, code: int, *fragments: str) -> str:
    """A failed command: the exit code, one line on stderr naming what is wrong, no traceback."""
    assert r.code == code, (r.code, r.err)
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    line = lines[0]
    assert line.startswith("tradekit: error: "), line
    for f in fragments:
        assert f in line, (f, line)
    return line


def assert_no_temp_files(directory: Path) -> None:
    assert not list(directory.glob(".*.tmp")), list(directory.iterdir())


def show_json(run_cli, *args: str, env: dict[str, str] | None = None) -> dict:
    r = run_cli(*args, "config", "show", "--json", env=env)
    assert r.code == 0, r.err
    return json.loads(r.out)


def write(path: str | Path, text: str) -> Path:
    p = Path(path)
    p.write_text(text, encoding="utf-8")
    return p


# -- where the config comes from -----------------------------------------------------------


def test_defaults_without_a_file(run_cli):
    doc = show_json(run_cli)
    assert doc["schema"] == "config/1"
    assert doc["path"] is None
    assert doc["exchange"]["id"] == "kraken"
    assert doc["exchange"]["symbols"] == ["BTC/USD", "ETH/USD"]
    assert doc["exchange"]["timeframe"] == "1h"
    assert doc["risk"]["max_open_positions"] == 3
    assert doc["risk"]["max_position_frac"] == 0.25
    assert doc["run"]["mode"] == "paper"
    cfg = load_config()
    assert cfg.path is None
    assert cfg == Config()


def test_config_option_reads_the_named_file(run_cli, tmp_path):
    (tmp_path / "sub").mkdir()
    p = write(tmp_path / "sub" / "my.toml", "[risk]\nmax_open_positions = 7\n")
    doc = show_json(run_cli, "--config", str(p))
    assert doc["path"] == str(p)
    assert doc["risk"]["max_open_positions"] == 7


def test_config_option_missing_path_exits_3_naming_it(run_cli):
    r = run_cli("--config", "no/such/tradekit.toml", "config", "show")
    assert_error(r, 3, "no/such/tradekit.toml", "not found")
    assert r.out == ""


def test_tradekit_config_env_is_used_and_a_missing_one_is_named(run_cli, tmp_path):
    write("elsewhere.toml", "[risk]\nmax_open_positions = 6\n")
    write("tradekit.toml", "[risk]\nmax_open_positions = 4\n")
    doc = show_json(run_cli, env={"TRADEKIT_CONFIG": str(tmp_path / "elsewhere.toml")})
    assert doc["risk"]["max_open_positions"] == 6
    # --config wins over $TRADEKIT_CONFIG.
    doc = show_json(run_cli, "--config", "tradekit.toml")
    assert doc["risk"]["max_open_positions"] == 4
    r = run_cli("config", "show", env={"TRADEKIT_CONFIG": "gone.toml"})
    assert_error(r, 3, "gone.toml", "$TRADEKIT_CONFIG")


def test_local_tradekit_toml_is_found(run_cli):
    write("tradekit.toml", '[exchange]\nid = "binance"\n')
    doc = show_json(run_cli)
    assert doc["path"] == "tradekit.toml"
    assert doc["exchange"]["id"] == "binance"


# -- validation ------------------------------------------------------------------------------


def test_invalid_toml_names_file_and_line(run_cli):
    write("bad.toml", "[risk]\nmax_open_positions = 3\nmax_position_frac = \n")
    r = run_cli("--config", "bad.toml", "config", "show")
    assert_error(r, 3, "bad.toml", "not valid TOML", "line 3")


def test_non_utf8_file_is_a_clear_error(run_cli):
    Path("bin.toml").write_bytes(b"[risk]\nmax_open_positions = \xff\xfe\n")
    r = run_cli("--config", "bin.toml", "config", "show")
    assert_error(r, 3, "bin.toml")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[rsik]\nmax_open_positions = 2\n", ["[rsik]", "unknown section", "did you mean [risk]"]),
        (
            "[risk]\nmax_open_positons = 2\n",
            ["[risk] max_open_positons", "unknown key", "did you mean max_open_positions"],
        ),
        ('[exchange]\ntimefrme = "1h"\n', ["[exchange] timefrme", "did you mean timeframe"]),
        ("risk = 3\n", ["risk", "expected a [risk] table"]),
    ],
)
def test_unknown_names_get_a_suggestion(run_cli, text, fragments):
    write("t.toml", text)
    r = run_cli("--config", "t.toml", "config", "show")
    assert_error(r, 3, "t.toml", *fragments)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('[risk]\nmax_open_positions = "x"\n', ["[risk] max_open_positions", "an integer"]),
        ("[risk]\nmax_open_positions = 2.5\n", ["[risk] max_open_positions", "an integer"]),
        ("[risk]\nmax_open_positions = true\n", ["[risk] max_open_positions", "an integer"]),
        ("[exchange]\nrate_limit = 1\n", ["[exchange] rate_limit", "true/false"]),
        ('[exchange]\nsymbols = "BTC/USD"\n', ["[exchange] symbols", "a list of strings"]),
        ('[exchange]\nsymbols = ["BTC/USD", 3]\n', ["[exchange] symbols[1]", "a string"]),
        ('[backtest]\nfee = "0.1"\n', ["[backtest] fee", "a number"]),
    ],
)
def test_wrong_type_names_section_and_key(run_cli, text, fragments):
    write("t.toml", text)
    r = run_cli("--config", "t.toml", "config", "show")
    assert_error(r, 3, "t.toml", *fragments)


@pytest.mark.parametrize(
    ("section", "key", "value", "fragment"),
    [
        ("risk", "max_position_frac", "1.5", "between 0 and 1"),
        ("risk", "max_exposure_frac", "-0.1", "between 0 and 1"),
        ("risk", "max_open_positions", "0", "must be > 0"),
        ("run", "mode", '"yolo"', "paper, live"),
        ("exchange", "timeframe", '"1x"', "timeframe '1x'"),
        ("exchange", "timeframe", '"0h"', "timeframe '0h'"),
        ("exchange", "symbols", '["BTCUSD"]', "BASE/QUOTE"),
        ("exchange", "symbols", '["BTC/USD", "ETH USD"]', "ETH USD"),
        ("exchange", "api_url", '"ftp://x"', "http(s) URL"),
        ("features", "include_timeframes", '["4h", "4x"]', "4x"),
        ("model", "kind", '"xgboost"', "lightgbm, lstm, transformer"),
        ("risk", "clusters", '{majors = "BTC/USD"}', "clusters.majors: expected a list of strings"),
        ("risk", "clusters", '{majors = ["BTC/USD", 1]}', "clusters.majors[1]: expected a string"),
    ],
)
def test_failing_checks_name_the_key(run_cli, section, key, value, fragment):
    write("t.toml", f"[{section}]\n{key} = {value}\n")
    r = run_cli("--config", "t.toml", "config", "show")
    assert_error(r, 3, "t.toml", f"[{section}] {key}", fragment)


# -- environment overrides -------------------------------------------------------------------


def test_env_override_is_typed(run_cli):
    env = {
        "TRADEKIT_RISK__MAX_OPEN_POSITIONS": "2",
        "TRADEKIT_BACKTEST__FEE": "0.001",
        "TRADEKIT_EXCHANGE__RATE_LIMIT": "off",
    }
    doc = show_json(run_cli, env=env)
    assert doc["risk"]["max_open_positions"] == 2
    assert type(doc["risk"]["max_open_positions"]) is int
    assert doc["backtest"]["fee"] == 0.001
    assert doc["exchange"]["rate_limit"] is False
    cfg = load_config()
    assert cfg.risk.max_open_positions == 2 and type(cfg.risk.max_open_positions) is int


def test_env_override_beats_the_file(run_cli):
    write("tradekit.toml", "[risk]\nmax_open_positions = 4\n")
    doc = show_json(run_cli, env={"TRADEKIT_RISK__MAX_OPEN_POSITIONS": "9"})
    assert doc["risk"]["max_open_positions"] == 9


@pytest.mark.parametrize(
    "text", ["BTC/USD,ETH/USD", " BTC/USD , ETH/USD ,", '["BTC/USD", "ETH/USD"]']
)
def test_list_override_comma_and_toml_forms(run_cli, text):
    doc = show_json(
        run_cli, env={"TRADEKIT_EXCHANGE__SYMBOLS": text, "TRADEKIT_FEATURES__PERIODS": "5,8"}
    )
    assert doc["exchange"]["symbols"] == ["BTC/USD", "ETH/USD"]
    assert doc["features"]["periods"] == [5, 8]


@pytest.mark.parametrize("with_file", [False, True])
@pytest.mark.parametrize(
    ("var", "value", "fragments"),
    [
        (
            "TRADEKIT_RISK__MAX_OPEN_POSITIONS",
            "abc",
            ["[risk] max_open_positions", "an integer", "'abc'"],
        ),
        ("TRADEKIT_RISK__MAX_POSITION_FRAC", "2", ["[risk] max_position_frac", "between 0 and 1"]),
        ("TRADEKIT_EXCHANGE__RATE_LIMIT", "maybe", ["[exchange] rate_limit", "true/false"]),
        ("TRADEKIT_RUN__MODE", "yolo", ["[run] mode", "paper, live"]),
    ],
)
def test_bad_env_value_names_the_variable(run_cli, with_file, var, value, fragments):
    if with_file:  # the value is the environment's: the message must not blame the file
        write("tradekit.toml", "[risk]\nmax_open_positions = 4\n")
    r = run_cli("config", "show", env={var: value})
    line = assert_error(r, 3, f"environment {var}", *fragments)
    assert "tradekit.toml" not in line


def test_bad_env_list_value_is_reported(run_cli):
    r = run_cli("config", "show", env={"TRADEKIT_FEATURES__PERIODS": "5,x"})
    assert_error(r, 3, "TRADEKIT_FEATURES__PERIODS", "an integer")
    r = run_cli("config", "show", env={"TRADEKIT_EXCHANGE__SYMBOLS": "[BTC/USD"})
    assert_error(r, 3, "TRADEKIT_EXCHANGE__SYMBOLS", "TOML")


@pytest.mark.parametrize(
    ("var", "fragments"),
    [
        ("TRADEKIT_RISK__MAX_OPEN_POSITONS", ["unknown key", "TRADEKIT_RISK__MAX_OPEN_POSITIONS"]),
        ("TRADEKIT_RSIK__MAX_OPEN_POSITIONS", ["unknown section", "TRADEKIT_RISK__"]),
    ],
)
def test_unknown_env_key_is_an_error(run_cli, var, fragments):
    r = run_cli("config", "show", env={var: "2"})
    assert_error(r, 3, var, *fragments)


def test_plain_tradekit_variables_are_not_overrides(run_cli):
    # One underscore: a secret or a setting of the program itself, never a config key.
    doc = show_json(run_cli, env={"TRADEKIT_EXCHANGE_API_KEY": SECRET})
    assert doc["risk"]["max_open_positions"] == 3


def _text_for_int(n: int, pad: str) -> str:
    return f"{pad}{n}{pad}"


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(min_value=1, max_value=2**62),
    seed=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    balance=st.floats(min_value=1e-9, max_value=1e15, allow_nan=False),
    threshold=st.floats(allow_nan=False, allow_infinity=False),
    as_int=st.integers(min_value=1, max_value=10**9),
    flag=st.booleans(),
    spelling=st.sampled_from(["true/false", "1/0", "yes/no", "on/off"]),
    upper=st.booleans(),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_env_override_coercion_property(
    n, seed, balance, threshold, as_int, flag, spelling, upper, pad
):
    word = spelling.split("/")[0 if flag else 1]
    word = word.upper() if upper else word
    env = {
        "TRADEKIT_RISK__MAX_OPEN_POSITIONS": _text_for_int(n, pad),
        "TRADEKIT_MODEL__SEED": str(seed),
        "TRADEKIT_BACKTEST__STARTING_BALANCE": repr(balance),
        "TRADEKIT_POLICY__ENTRY_THRESHOLD": repr(threshold),
        "TRADEKIT_BACKTEST__SLIPPAGE": "0",
        "TRADEKIT_GATE__MIN_TRADES": str(as_int),
        "TRADEKIT_GATE__MAX_DRAWDOWN": str(as_int % 2),  # an int text for a float key
        "TRADEKIT_GATE__MUST_BEAT_BUY_AND_HOLD": f"{pad}{word}{pad}",
    }
    cfg = load_config(environ=env)
    assert cfg.risk.max_open_positions == n and type(cfg.risk.max_open_positions) is int
    assert cfg.model.seed == seed
    assert cfg.backtest.starting_balance == balance
    assert type(cfg.backtest.starting_balance) is float
    assert cfg.policy.entry_threshold == threshold
    assert cfg.backtest.slippage == 0.0 and type(cfg.backtest.slippage) is float
    assert cfg.gate.min_trades == as_int
    assert cfg.gate.max_drawdown == float(as_int % 2)
    assert type(cfg.gate.max_drawdown) is float
    assert cfg.gate.must_beat_buy_and_hold is flag


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(min_size=1, max_size=12).filter(lambda t: "\x00" not in t))
def test_env_override_rejects_non_integers_property(text):
    try:
        int(text.strip())
    except ValueError:
        pass
    else:
        return  # a valid integer text: covered above
    with pytest.raises(ConfigError) as e:
        load_config(environ={"TRADEKIT_RISK__MAX_OPEN_POSITIONS": text})
    assert "TRADEKIT_RISK__MAX_OPEN_POSITIONS" in str(e.value)
    assert e.value.exit_code == 3


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("exchange", "api_key"),
        ("exchange", "secret"),
        ("deploy", "password"),
        ("notify", "token"),
        ("ask", "api_key"),
    ],
)
def test_secret_in_toml_is_refused_without_echoing_it(run_cli, section, key):
    write("tradekit.toml", f'[{section}]\n{key} = "{SECRET}"\n')
    r = run_cli("config", "show")
    assert_error(r, 3, "tradekit.toml", f"[{section}] {key}", "environment or .env")
    assert SECRET not in r.err and SECRET not in r.out


def test_deploy_key_is_a_path_not_a_secret(run_cli):
    write("tradekit.toml", '[deploy]\nkey = "~/.ssh/id_ed25519"\n')
    assert show_json(run_cli)["deploy"]["key"] == "~/.ssh/id_ed25519"


def test_secrets_from_dotenv_and_environment_environment_wins(run_cli):
    write(
        ".env",
        "# secrets\n"
        "TRADEKIT_EXCHANGE_API_KEY=dotenv-key-111\n"
        "export TRADEKIT_EXCHANGE_SECRET='dotenv-secret-222'\n"
        'ANTHROPIC_API_KEY="dotenv-anthropic-333"  \n',
    )
    env = {"TRADEKIT_EXCHANGE_API_KEY": "env-key-999"}
    values = ["dotenv-key-111", "dotenv-secret-222", "dotenv-anthropic-333", "env-key-999"]

    cfg = load_config(environ=env)
    assert cfg.secret("exchange_api_key") == "env-key-999"
    assert cfg.secrets["exchange_api_key"].source == "environment"
    assert cfg.secret("exchange_secret") == "dotenv-secret-222"
    assert cfg.secrets["exchange_secret"].source == ".env"
    assert cfg.secret("anthropic_api_key") == "dotenv-anthropic-333"
    assert cfg.secret("openai_api_key") is None
    assert all(v not in repr(cfg) for v in values)

    doc = show_json(run_cli, env=env)
    assert doc["secrets"]["exchange_api_key"] == "*** (from environment)"
    assert doc["secrets"]["exchange_secret"] == "*** (from .env)"
    assert doc["secrets"]["anthropic_api_key"] == "*** (from .env)"
    assert doc["secrets"]["openai_api_key"] == "unset"

    for args in (("config", "show"), ("config", "show", "--json")):
        r = run_cli(*args, env=env)
        assert r.code == 0, r.err
        for v in values:
            assert v not in r.out and v not in r.err
    r = run_cli("config", "show", env=env)
    assert 'exchange_api_key = "*** (from environment)"' in r.out
    assert 'exchange_secret = "*** (from .env)"' in r.out
    assert 'openai_api_key = "unset"' in r.out


def test_dotenv_beside_the_config_file_is_read(run_cli):
    Path("conf").mkdir()
    write("conf/tradekit.toml", "[risk]\nmax_open_positions = 2\n")
    write("conf/.env", f"TRADEKIT_EXCHANGE_SECRET={SECRET}\n")
    r = run_cli("--config", "conf/tradekit.toml", "config", "show", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["secrets"]["exchange_secret"] == "*** (from .env)"
    assert SECRET not in r.out


def test_malformed_dotenv_names_file_and_line(run_cli):
    write(".env", "# ok\nTRADEKIT_EXCHANGE_SECRET=x\nthis is not an assignment\n")
    r = run_cli("config", "show")
    assert_error(r, 3, ".env:3", "KEY=VALUE")


# -- config init -----------------------------------------------------------------------------


def test_init_writes_the_example_byte_for_byte(run_cli, tmp_path):
    assert EXAMPLE.is_file(), "regenerate with: tradekit config init tradekit.toml.example"
    r = run_cli("config", "init")
    assert r.code == 0, r.err
    assert Path("tradekit.toml").read_bytes() == EXAMPLE.read_bytes()
    assert "secrets" in r.err
    assert_no_temp_files(tmp_path)
    r = run_cli("config", "init", "-")
    assert r.code == 0
    assert r.out.encode() == EXAMPLE.read_bytes()


def test_example_parses_to_the_defaults(run_cli):
    cfg = load_config(EXAMPLE, environ={})
    assert cfg.as_dict() == Config().as_dict()
    # Every key of every section is documented, with a comment line before it.
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert {s: set(v) for s, v in raw.items()} == {s: set(v) for s, v in Config().as_dict().items()}
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if " = " in line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), line
    # And the CLI sees the same as with no file at all.
    assert show_json(run_cli, "--config", str(EXAMPLE))["risk"] == show_json(run_cli)["risk"]


def test_init_refuses_to_overwrite_without_force(run_cli, tmp_path):
    p = write("tradekit.toml", "# mine\n[risk]\nmax_open_positions = 2\n")
    before = p.read_bytes()
    r = run_cli("config", "init")
    assert_error(r, 2, "tradekit.toml", "--force")
    assert p.read_bytes() == before
    r = run_cli("config", "init", "--force")
    assert r.code == 0, r.err
    assert p.read_bytes() == EXAMPLE.read_bytes()
    assert_no_temp_files(tmp_path)


def test_init_into_a_new_directory_and_a_named_path(run_cli):
    r = run_cli("config", "init", "etc/tk.toml")
    assert r.code == 0, r.err
    assert Path("etc/tk.toml").read_bytes() == EXAMPLE.read_bytes()


# -- config set ------------------------------------------------------------------------------


def comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("#")]


def test_set_keeps_every_comment_and_reads_back(run_cli, tmp_path):
    p = write("tradekit.toml", EXAMPLE.read_text(encoding="utf-8") + "\n# my own note at the end\n")
    before = p.read_text(encoding="utf-8")
    r = run_cli("config", "set", "risk.max_open_positions", "5")
    assert r.code == 0, r.err
    after = p.read_text(encoding="utf-8")
    assert comments(after) == comments(before)
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert changed == [("max_open_positions = 3", "max_open_positions = 5")]
    assert load_config(p, environ={}).risk.max_open_positions == 5
    assert show_json(run_cli)["risk"]["max_open_positions"] == 5
    assert_no_temp_files(tmp_path)


def test_set_creates_the_file_from_the_template(run_cli):
    r = run_cli("config", "set", "run.mode", "live")
    assert r.code == 0, r.err
    text = Path("tradekit.toml").read_text(encoding="utf-8")
    assert comments(text) == comments(EXAMPLE.read_text(encoding="utf-8"))
    assert load_config("tradekit.toml", environ={}).run.mode == "live"


def test_set_follows_config_option(run_cli):
    p = write("other.toml", "[risk]\nmax_open_positions = 2\n")
    r = run_cli("--config", "other.toml", "config", "set", "risk.max_open_positions", "8")
    assert r.code == 0, r.err
    assert load_config(p, environ={}).risk.max_open_positions == 8
    assert not Path("tradekit.toml").exists()


@pytest.mark.parametrize(
    ("key", "value", "fragments"),
    [
        ("risk.max_position_frac", "2", ["[risk] max_position_frac", "between 0 and 1"]),
        ("risk.max_open_positions", "many", ["[risk] max_open_positions", "an integer"]),
        ("risk.max_open_positions", "0", ["[risk] max_open_positions", "> 0"]),
        ("risk.max_open_positons", "2", ["max_open_positons", "did you mean max_open_positions"]),
        ("rsik.max_open_positions", "2", ["rsik", "did you mean risk.max_open_positions"]),
        ("risk", "2", ["SECTION.KEY"]),
        ("exchange.rate_limit", "maybe", ["[exchange] rate_limit", "true/false"]),
        ("exchange.symbols", "BTCUSD", ["[exchange] symbols", "BASE/QUOTE"]),
        ("exchange.timeframe", "1x", ["[exchange] timeframe", "1x"]),
        ("run.mode", "yolo", ["[run] mode", "paper, live"]),
    ],
)
def test_set_invalid_leaves_the_file_byte_identical(run_cli, tmp_path, key, value, fragments):
    p = write("tradekit.toml", EXAMPLE.read_text(encoding="utf-8"))
    before = p.read_bytes()
    r = run_cli("config", "set", key, value)
    assert_error(r, 3, *fragments)
    assert p.read_bytes() == before
    assert_no_temp_files(tmp_path)


def test_set_invalid_does_not_create_a_file(run_cli, tmp_path):
    r = run_cli("config", "set", "risk.max_position_frac", "2")
    assert_error(r, 3, "max_position_frac")
    assert list(tmp_path.iterdir()) == []


def test_set_secret_is_refused_and_not_echoed(run_cli, tmp_path):
    p = write("tradekit.toml", EXAMPLE.read_text(encoding="utf-8"))
    before = p.read_bytes()
    r = run_cli("config", "set", "exchange.api_key", SECRET)
    assert_error(r, 3, "[exchange] api_key")
    assert SECRET not in r.err and SECRET not in r.out
    assert p.read_bytes() == before


def test_set_on_invalid_toml_is_refused(run_cli, tmp_path):
    p = write("tradekit.toml", "[risk\nmax_open_positions = 2\n")
    before = p.read_bytes()
    r = run_cli("config", "set", "risk.max_open_positions", "5")
    assert_error(r, 3, "tradekit.toml", "not valid TOML")
    assert p.read_bytes() == before
    assert_no_temp_files(tmp_path)


@pytest.mark.parametrize(
    ("key", "value", "attr", "expected", "toml_line"),
    [
        (
            "exchange.symbols",
            "BTC/USD,SOL/USD",
            ("exchange", "symbols"),
            ["BTC/USD", "SOL/USD"],
            'symbols = ["BTC/USD", "SOL/USD"]',
        ),
        (
            "exchange.symbols",
            '["ETH/USD"]',
            ("exchange", "symbols"),
            ["ETH/USD"],
            'symbols = ["ETH/USD"]',
        ),
        ("features.periods", "5, 10", ("features", "periods"), [5, 10], "periods = [5, 10]"),
        ("notify.recipients", "", ("notify", "recipients"), [], "recipients = []"),
        ("exchange.rate_limit", "no", ("exchange", "rate_limit"), False, "rate_limit = false"),
        ("policy.dip_entry", "TRUE", ("policy", "dip_entry"), True, "dip_entry = true"),
        (
            "gate.must_beat_buy_and_hold",
            "1",
            ("gate", "must_beat_buy_and_hold"),
            True,
            "must_beat_buy_and_hold = true",
        ),
        ("backtest.fee", "0", ("backtest", "fee"), 0.0, "fee = 0.0"),
    ],
)
def test_set_lists_and_booleans(run_cli, key, value, attr, expected, toml_line):
    p = write("tradekit.toml", EXAMPLE.read_text(encoding="utf-8"))
    before = p.read_text(encoding="utf-8")
    r = run_cli("config", "set", key, value)
    assert r.code == 0, r.err
    after = p.read_text(encoding="utf-8")
    assert toml_line in after.splitlines()
    assert comments(after) == comments(before)
    got = getattr(getattr(load_config(p, environ={}), attr[0]), attr[1])
    assert got == expected and type(got) is type(expected)
