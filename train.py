"""Train MoECLIP for zero-shot anomaly detection.

    python train.py --dataset visa --data-root /data/visa --output-dir runs/visa
    accelerate launch train.py --dataset mvtec --data-root /data/mvtec --output-dir runs/mvtec --mixed-precision bf16
    torchrun --nproc_per_node 2 train.py --clip tiny --dataset synthetic --output-dir runs/demo --max-steps 300
    python train.py run.yaml

`python train.py --help` lists every option; the code lives in `moeclip_hf.training`.
"""

import sys

from moeclip_hf.training import main

if __name__ == "__main__":
    sys.exit(main())
