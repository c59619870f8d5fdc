"""Fast, trimap-free portrait matting for video with MODNet.

The Python API (docs/api.md): `Matter` mattes frames in memory; `process` is the main job as a function.
"""

from trt_modnet.api import process
from trt_modnet.errors import MattingError
from trt_modnet.matter import Matter
from trt_modnet.summary import FileResult

__version__ = "0.1.0"
__all__ = ["FileResult", "Matter", "MattingError", "process"]
