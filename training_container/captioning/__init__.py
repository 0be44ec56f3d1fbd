"""The training image's captioning mode: a WD14 tagger (ONNX) and an image-to-text captioner
(transformers), run over a dataset channel with a content-addressed caption cache."""
