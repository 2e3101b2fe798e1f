"""`moeclip demo`: the whole pipeline, offline, on a small embedded model and procedural data.

`settings` holds the knobs and texts (light: the command line reads them for `--help`); `run` generates,
evaluates, trains, evaluates again and writes the report.
"""
