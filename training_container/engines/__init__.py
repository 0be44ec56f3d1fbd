"""Training engines: sd-scripts (``kohya``) in the GPU image, and the portable ``diffusers`` engine."""
