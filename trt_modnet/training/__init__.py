"""Your own model, from labelled pairs or unlabelled footage to the ONNX the main job runs.

The commands, in the order the data goes through them: `python -m trt_modnet.train` (images and mattes ->
checkpoint), `python -m trt_modnet.adapt` (SOC on your footage: checkpoint -> checkpoint) and `python -m
trt_modnet.export` (checkpoint -> ONNX for `--model`). Each is its options and checks; the work is PyTorch
code in trt_modnet/modnet/ (model, losses, training loop, SOC, export), imported only once the arguments are
parsed. That is why this folder stands beside modnet/ and not inside it: modnet/ needs torch to import,
these commands do not, so without torch they still answer `--help` and say in one line what is missing.
The top-level train.py, adapt.py and export.py only forward here, so that the documented commands stay.
"""
