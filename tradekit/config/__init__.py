"""tradekit.toml: typed sections with defaults in code, env overrides, secrets from env/.env.

Lookup order for the file: ``--config``, ``$TRADEKIT_CONFIG``, ``./tradekit.toml``, built-in
defaults. Any key can be overridden with ``TRADEKIT_<SECTION>__<KEY>``. Secrets never live in
the TOML: they come from the environment or a ``.env`` file beside the config (or in the
working directory), the environment winning.

Stdlib only at import time (``tomllib``), so the CLI starts fast; ``tomlkit`` is imported only
to write files that keep their comments.

The package: ``sections`` (the typed sections and :class:`Config`), ``checks`` (what a key may
hold), ``load`` (the file, the environment, coercion), ``secrets`` and ``write`` (``config
init``'s template and ``config set``). Import from ``tradekit.config``.
"""

from tradekit.config.load import (
    CONFIG_ENV,
    DEFAULT_FILE,
    ENV_PREFIX,
    coerce,
    env_overrides,
    find_config,
    load_config,
    read_toml,
    redacted,
    secret_values,
    with_overrides,
)
from tradekit.config.secrets import (
    SECRET_ENV,
    Secret,
    load_secrets,
    read_dotenv,
)
from tradekit.config.sections import (
    SECTION_HELP,
    SECTIONS,
    AskConfig,
    BacktestConfig,
    Config,
    DataConfig,
    DeployConfig,
    DriftConfig,
    ExchangeConfig,
    FeaturesConfig,
    GateConfig,
    ModelConfig,
    NotifyConfig,
    PolicyConfig,
    RiskConfig,
    RunConfig,
    ServeConfig,
)
from tradekit.config.write import set_value, template
from tradekit.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_FILE",
    "ENV_PREFIX",
    "SECRET_ENV",
    "SECTIONS",
    "SECTION_HELP",
    "AskConfig",
    "BacktestConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "DeployConfig",
    "DriftConfig",
    "ExchangeConfig",
    "FeaturesConfig",
    "GateConfig",
    "ModelConfig",
    "NotifyConfig",
    "PolicyConfig",
    "RiskConfig",
    "RunConfig",
    "Secret",
    "ServeConfig",
    "coerce",
    "env_overrides",
    "find_config",
    "load_config",
    "load_secrets",
    "read_dotenv",
    "read_toml",
    "redacted",
    "secret_values",
    "set_value",
    "template",
    "with_overrides",
]
