class Error(Exception):
    """Gymnasium's base error."""


class UnregisteredEnv(Error):
    """No env is registered under the id."""


class ResetNeeded(Error):
    """step() before reset()."""


class NameNotFound(UnregisteredEnv):
    """No env of that name is registered (Gymnasium's error for make('module:Name') with Name unknown)."""
