"""The `evaluate` module folder of the anomaly detection metrics.

Load it with `moeclip_hf.evaluation.load_metric()` (or `evaluate.load` on this folder);
it is a package only so that the folder ships inside the installed distribution.
"""
