"""Deploy enforces the gate: a model dir must carry a passing verdict for exactly this model
(``tradekit gate REPORT --model DIR`` writes it), unless ``--force REASON`` overrides it. An
override is recorded in deploys.jsonl and announced on the phone."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import CheckFailed, TradekitError, UsageError

if TYPE_CHECKING:
    from tradekit.config import NotifyConfig
    from tradekit.deploy.result import DeployResult

log = logging.getLogger(__name__)
PASSED = "passed"


def require_receipt(
    model_dir: Path, manifest: dict[str, Any], force: str | None
) -> tuple[str, str | None]:
    """(gate, forced): ``"passed"`` and None for a model with its own passing verdict; else
    the problem and the --force reason. Raises CheckFailed (exit 1) without --force."""
    from tradekit.gate import model_identity, receipt_problem

    if force is not None and not force.strip():
        raise UsageError("--force needs a reason (it goes into deploys.jsonl and to the phone)")
    problem = receipt_problem(model_dir, model_identity(model_dir, manifest))
    if problem is None:
        return PASSED, None
    if force is None:
        raise CheckFailed(
            f"{model_dir}: {problem}: not deployed",
            hint=f"tradekit gate REPORT --model {model_dir} judges it; --force REASON overrides",
        )
    log.warning("deploying %s without a passing gate verdict (--force): %s", model_dir, problem)
    return problem, force.strip()


def announce_forced(
    notify: NotifyConfig, res: DeployResult, *, webhook_token: str | None = None
) -> str | None:
    """Tell the phone that a model went live without a passing gate verdict. Returns the
    warning to show when that could not be done (the deploy stands either way: deploys.jsonl
    on the host has the record)."""
    from tradekit.deploy.release import who

    if not (notify.webhook or (notify.sender and notify.recipients)):
        return (
            "[notify] is not configured (sender and recipients, or webhook): the forced deploy "
            "was not announced on the phone"
        )
    from tradekit.notify import send

    text = (
        f"tradekit: FORCED deploy of model {res.model_version} to {res.host}:{res.path} "
        f"(release {res.release}) by {who()}, without a passing gate verdict: {res.gate}. "
        f"Reason given: {res.forced}"
    )
    try:
        send(notify, text, level="warning", webhook_token=webhook_token)
    except TradekitError as e:
        return f"could not announce the forced deploy on the phone: {e}"
    return None
