"""The one exception type that reaches the user as a one-line message instead of a traceback."""


class ConfigError(ValueError):
    """A problem with what the user asked for; the message names the problem and the fix."""
