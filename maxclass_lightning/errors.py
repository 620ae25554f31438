"""The exceptions that reach the user as a one-line message instead of a traceback."""


class ConfigError(ValueError):
    """A problem with what the user asked for (exit code 2); the message names it and the fix."""


class RunError(RuntimeError):
    """A run that could not finish (exit code 1), its finished work already saved; the message
    says what happened, where the work is, and what to change."""
