"""Run `train.py` as `torchrun` starts it, then record this process's trainable weights.

`torchrun ... tests/train_and_digest.py DIGEST_DIR <train.py arguments>` trains exactly as `train.py` does and
writes `DIGEST_DIR/rank-<RANK>.txt`, the SHA-256 of the trainable weights this process ends with, so that a
test can check that every rank holds the same model.
"""

import hashlib
import os
import runpy
import sys
from pathlib import Path

from moeclip_hf import training

REPOSITORY = Path(__file__).resolve().parents[1]


def trainable_digest(model) -> str:
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        if parameter.requires_grad:
            digest.update(name.encode())
            digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    digest_dir = Path(sys.argv[1])
    train = training.train

    def train_and_digest(*arguments):
        result = train(*arguments)
        (digest_dir / f"rank-{os.environ.get('RANK', '0')}.txt").write_text(trainable_digest(result.model))
        return result

    training.train = train_and_digest
    sys.argv = [str(REPOSITORY / "train.py"), *sys.argv[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
