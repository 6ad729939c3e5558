"""One exception type for every user-facing problem, so the CLI can print one line."""


class FacepointsError(Exception):
    """A problem with the user's input (file, model, option); the message names it."""


class UsageError(FacepointsError, ValueError):
    """a bad option value: exit code 2"""
