"""The reference on-device runtime: what the phone does with a bundle, in Python over onnxruntime."""
