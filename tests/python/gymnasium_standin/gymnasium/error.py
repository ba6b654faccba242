class Error(Exception):
    """Gymnasium's base error."""


class UnregisteredEnv(Error):
    """No env is registered under the id."""


class ResetNeeded(Error):
    """step() before reset()."""
