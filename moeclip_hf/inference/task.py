"""The pipeline task MoECLIP registers, and the shapes its results come in.

Kept apart from the pipeline class so that code that only names the task (the model card, the web app, the
exported Space and handler) does not import transformers' pipelines.
"""

TASK = "zero-shot-anomaly-detection"

#: `output_format` of the pipeline: "anomaly" (score, verdict, map as a grey PIL image), "segmentation" (the
#: Hub's image-segmentation shape) or "array" (the map as float32 values in [0, 1], as drawn in overlays).
OUTPUT_FORMATS = ("anomaly", "segmentation", "array")

__all__ = ["OUTPUT_FORMATS", "TASK"]
