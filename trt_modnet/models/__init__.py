"""Named models: registry (digests, hosts), cache, download, checkpoint -> ONNX without PyTorch."""

from trt_modnet.models.resolve import MODEL_ENV, resolve_model

__all__ = ["MODEL_ENV", "resolve_model"]
