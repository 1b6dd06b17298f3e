"""The state every command shares: the global options and the config they name, loaded on
first use. Its own module so the commands need not import ``cli.main``, which imports them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from tradekit import log as tklog

if TYPE_CHECKING:
    from tradekit.config import Config


@dataclass
class AppState:
    config_path: str | None = None
    log_level: str = "info"
    log_json: bool = False
    _config: Any = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        """The effective config, loaded and validated on first use."""
        if self._config is None:
            from tradekit.config import load_config, secret_values

            self._config = load_config(self.config_path)
            tklog.add_secrets(secret_values(self._config))
        return self._config  # type: ignore[no-any-return]


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj
