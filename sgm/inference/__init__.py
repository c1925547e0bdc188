"""Image-to-video sampling with SVD models: `VideoPipeline.load(...).generate(image, opts)` and
`write_video(result, stem, formats)`. See docs/sampling.md."""
from .errors import ImageReadError, InferenceError, MissingCheckpointError, OutOfMemoryError
from .options import SamplingOptions
from .pipeline import VideoPipeline
from .result import VideoResult
from .writers import FORMATS, write_video

__all__ = ["FORMATS", "ImageReadError", "InferenceError", "MissingCheckpointError", "OutOfMemoryError",
           "SamplingOptions", "VideoPipeline", "VideoResult", "write_video"]
