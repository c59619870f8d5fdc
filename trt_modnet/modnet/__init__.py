"""MODNet in PyTorch: the model, checkpoint loading and ONNX export (needs the `torch` extra)."""
