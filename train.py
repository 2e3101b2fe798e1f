"""Train MoECLIP for zero-shot anomaly detection.

    python train.py --dataset visa --data-root /data/visa --output-dir runs/visa
    accelerate launch train.py --dataset mvtec --data-root /data/mvtec --output-dir runs/mvtec --mixed-precision bf16
    torchrun --nproc_per_node 2 train.py --clip tiny --dataset synthetic --output-dir runs/demo --max-steps 300
    python train.py run.yaml

`python train.py --help` lists every option; the training code lives in `moeclip_hf.training`.
"""

import logging
import sys
from collections.abc import Sequence

from moeclip_hf import training


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags (or one YAML/JSON file) and train.

    Returns 0 on success, 2 with a one-line message for arguments or a setup that cannot start a run, and 1
    with a message naming the file when a training sample turns out unusable during the run.
    """
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    try:
        arguments = training.parse_args(argv)
    except ValueError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    try:
        training.train(*arguments)
    except training.TrainingConfigurationError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    except training.TrainingDataError as error:
        _, _, training_args = arguments
        saved = training.list_checkpoints(training_args.output_path / training.CHECKPOINTS_DIR)
        advice = (
            f"the last checkpoint, {saved[-1]}, is kept: mend or remove the file and run again with --resume."
            if saved
            else "no checkpoint was written: mend or remove the file and run again."
        )
        print(f"train.py: error: {error}\n{advice}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
