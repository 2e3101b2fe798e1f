"""Files that `moeclip_hf.hub.export_model` copies verbatim into an exported repository.

`handler.py` is the Inference Endpoints handler. It is an importable module here so that it is
packaged and tested with the rest of `moeclip_hf`, but it imports nothing from `moeclip_hf`: in an
exported repository it runs next to the model's remote code, where the package need not be installed.
`model_card.md` is the model card template that `moeclip_hf.hub.render_model_card` fills in.
"""
