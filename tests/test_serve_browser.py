"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright)
against the real `tradekit serve` over a replay's ledger: every page renders its data, the
charts draw (their canvases hold coloured pixels), and pause works with the serve token and
is refused without it. Screenshots are kept under the test's tmp dir (the path is printed)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.dashboard import Dashboard, make_bot

CHROMIUM = "/usr/bin/chromium"
TOKEN = "browser-test-serve-token"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 60_000  # generous: a loaded 2-core machine draws slowly, a fast one passes at once
# Coloured pixels in every canvas of a chart (lightweight-charts draws on several layered
# canvases; a blank chart is all white or transparent).
INK = """el => {
  let n = 0;
  for (const c of el.querySelectorAll('canvas')) {
    if (!c.width || !c.height) continue;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      const white = d[i] > 240 && d[i + 1] > 240 && d[i + 2] > 240;
      if (d[i + 3] > 0 && !white) n++;
    }
  }
  return n;
}"""


def _need_browser() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright missing (make install: the dev extra)"
    else:
        if os.access(CHROMIUM, os.X_OK):
            return
        reason = f"{CHROMIUM} missing (apt-get install chromium; .ci/run does)"
    if os.environ.get("TRADEKIT_REQUIRE_SHARED"):
        pytest.fail(f"{reason} but TRADEKIT_REQUIRE_SHARED is set")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    _need_browser()
    d = tmp_path_factory.mktemp("bot")
    cwd = Path.cwd()
    os.chdir(d)
    try:
        cfg = make_bot(d)
    finally:
        os.chdir(cwd)
    dash = Dashboard.start(cfg, token=TOKEN)
    try:
        yield dash
    finally:
        dash.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots: {d}")
    return d


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, dash: Dashboard) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        ctx.set_default_timeout(WAIT_MS)
        try:
            yield ctx
        finally:
            ctx.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.errors = errors
    try:
        yield pg
    finally:
        pg.close()


PAGES = [
    ("overview", "/", ["Equity and drawdown", "Exposure against the caps", "passed"]),
    ("positions", "/positions", ["S0/USD", "stop on the exchange"]),
    ("trades", "/trades?symbol=S1/USD", ["trades match", "take_profit"]),
    ("chart", "/chart?symbol=S0/USD", ["last decision", "S0/USD"]),
    ("decisions", "/decisions", ["Why: reason codes", "entry_signal"]),
    ("events", "/events", ["Events"]),
    ("models", "/models", ["min_sortino", "no candidates"]),
    ("deploys", "/deploys", ["rolled back"]),
]


@pytest.mark.parametrize(("name", "path", "words"), PAGES, ids=[p[0] for p in PAGES])
def test_every_page_renders_its_data(dash, page, shots, name, path, words):
    resp = page.goto(dash.url + path.lstrip("/"))
    assert resp is not None and resp.status == 200
    body = page.locator("main")
    for w in words:
        body.get_by_text(w, exact=False).filter(visible=True).first.wait_for()
    if page.locator("[data-chart]").count():
        chart = page.locator("[data-chart]").first
        page.wait_for_function("el => Number(el.dataset.drawn) > 0", arg=chart.element_handle())
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert page.errors == []


@pytest.mark.parametrize("path", ["/", "/chart?symbol=S0/USD"])
def test_the_charts_draw(dash, page, path):
    page.goto(dash.url + path.lstrip("/"))
    chart = page.locator("[data-chart]").first
    page.wait_for_function("el => Number(el.dataset.drawn) > 0", arg=chart.element_handle())
    # Drawing follows the data by a frame: wait for ink rather than assume a speed.
    page.wait_for_function(f"el => ({INK})(el) > 2000", arg=chart.element_handle())
    assert chart.evaluate(INK) > 2000
    assert page.errors == []


def test_pause_with_the_token_and_refused_without(dash, page, shots):
    ledger = _ledger(dash)

    def pending() -> list[str]:
        with sqlite3.connect(ledger) as db:
            rows = db.execute("SELECT command FROM controls WHERE done_ms IS NULL").fetchall()
        return [r[0] for r in rows]

    before = pending()
    page.goto(dash.url)
    buttons = page.locator("#control-buttons")
    assert buttons.is_hidden()  # read-only until unlocked
    # Without the token: the page's own request is refused, nothing is queued.
    status = page.evaluate("() => fetch('/api/v1/pause', {method: 'POST'}).then(r => r.status)")
    assert status == 401
    page.errors.clear()  # the browser logs that refusal as a failed load: it is the point
    page.fill("#token", "not-the-token")
    page.click("#unlock button")
    page.get_by_text("not the serve token").wait_for()
    assert buttons.is_hidden()
    assert pending() == before
    # With it: the buttons appear and pause is queued for the loop.
    page.fill("#token", TOKEN)
    page.click("#unlock button")
    buttons.wait_for(state="visible")
    page.click("button[data-control=pause]")
    page.get_by_text("pause requested").first.wait_for()
    assert pending() == [*before, "pause"]
    # The state block shows the pending request at the next refresh.
    page.locator("#state").get_by_text("pause at").wait_for()
    # Kill needs the typed confirmation: a wrong word sends nothing.
    page.click("button[data-control=kill]")
    page.fill("#kill-confirm", "yes")
    page.click("#kill-dialog button[value=ok]")
    page.get_by_text("Kill not sent").wait_for()
    assert pending() == [*before, "pause"]
    page.screenshot(path=str(shots / "controls.png"), full_page=True)
    assert page.errors == []


def _ledger(dash: Dashboard) -> Path:
    import tomllib

    assert dash.config is not None
    return Path(tomllib.loads(dash.config.read_text())["run"]["state"])
