"""INT8 post-training quantization internals: graph preparation, activation ranges, TensorRT cache, Q/DQ."""
