"""The two ways a training run fails on its inputs: before it starts, and on a sample met during the run."""


class TrainingConfigurationError(ValueError):
    """A run that cannot start as configured (data, classes, output folder); raised before any training work."""


class TrainingDataError(ValueError):
    """A training sample that cannot be used (an unreadable image, a mask of another size), met during the run.

    The message names the file. Checkpoints written before it are kept, so `--resume` continues the run once
    the file is mended or removed.
    """


__all__ = ["TrainingConfigurationError", "TrainingDataError"]
