"""The two kinds of error a driver may raise (no Django, no imports: every other providers module uses them)."""


class ProviderError(Exception):
    """Base class of every error a driver raises."""


class TransientProviderError(ProviderError):
    """Worth retrying later: throttling, 5xx answers, timeouts, a connection that dropped."""


class PermanentProviderError(ProviderError):
    """Retrying will not help: bad credentials, unknown image or size, quota exceeded, invalid options."""
