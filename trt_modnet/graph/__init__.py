"""The deployment graph: MODNet ONNX -> uint8 in/out, exact resizing, FP16 and CPU precision recipes."""
