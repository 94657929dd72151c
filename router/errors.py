"""One error hierarchy for the whole project; library errors are converted at the boundary."""


class RouterError(Exception):
    """Base of every error model-router raises on purpose."""


class CatalogError(RouterError):
    """The model catalogue is missing, malformed, or names an inconsistent entry."""


class InvalidEvent(RouterError):
    """An input stream entry failed validation; the message says why, for the dead-letter entry."""


class ConfigError(RouterError):
    """A setting is missing or out of range."""
