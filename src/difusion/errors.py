"""Errors a user can fix. The CLI prints them as one line, never as a traceback."""


class DifusionError(Exception):
    """A mistake in input (config, data, checkpoint, shapes) with a message that says how to fix it."""


class ConfigError(DifusionError):
    """An unknown key, a wrong type or an impossible value in a config."""


class DatasetNotFoundError(DifusionError):
    """A dataset whose files are not where we looked; the message says how to get them."""


class CheckpointError(DifusionError):
    """A checkpoint that is missing, truncated or not one of ours."""


class TrainingError(DifusionError):
    """Training cannot go on (for example the loss became NaN)."""


# The exit code of a training run stopped early (Ctrl-C, SIGTERM) with its checkpoint saved: the run
# may be resumed (`difusion train --resume RUN`). 75 is EX_TEMPFAIL of sysexits.h: try again later.
EXIT_STOPPED = 75
