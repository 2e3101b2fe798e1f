"""What the stalling helpers do at the moment a test kills them: half of some bytes on disk, then a long wait."""

import os
import time
from pathlib import Path


def write_half_and_wait_to_be_killed(path: Path, data: bytes, ready: Path, append: bool = False) -> None:
    """Write the first half of `data` to `path` (appended, or as the whole file), make sure it reached the disk,
    create `ready` and sleep; a test SIGKILLs the process during the sleep."""
    with open(path, "ab" if append else "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.fsync(handle.fileno())
    ready.touch()
    time.sleep(3600)  # killed here
    raise SystemExit("not killed within an hour")
