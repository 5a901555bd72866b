"""The artifact: the one format the tuner writes and the encoder reads.

Built on :mod:`tunerflow.format` (file names, spec, typed config) and
:mod:`tunerflow.modeling` (the backbone loader); it never exports ONNX itself:
:func:`tunerflow.export.save_artifact` adds the ONNX files.

Layout of an artifact directory (a ``.zip`` holds the same files)::

    tunerflow.json                     format, model spec, library versions, ONNX info, file hashes
    run.json                           the training run's metadata and metrics ({} without a run)
    config.json                        Hugging Face model config
    model.safetensors                  backbone weights
    tokenizer.json ...                 the tokenizer's files (tokenizer_config.json, vocab, ...)
    modules.json                       sentence-transformers modules: Transformer, Pooling, and
                                         Normalize (no folder) when embeddings are normalised;
                                         the directory opens with ``SentenceTransformer(path)``
    sentence_bert_config.json          max_seq_length
    config_sentence_transformers.json  similarity function (cosine)
    1_Pooling/config.json              pooling mode and dimension
    model.onnx                         optional: ONNX export (inputs input_ids, attention_mask;
                                         output embedding, pooled, not normalised)
    model.int8.onnx                    optional: int8 dynamic quantisation of model.onnx
    ...                                extra files the caller adds (the tuner adds training.png)
"""

from tunerflow.artifact.layout import ARTIFACT_CONFIG, FORMAT_VERSION, RUN_FILE
from tunerflow.artifact.load import load_artifact, read_artifact_config, unpack_zip
from tunerflow.artifact.open import load_model
from tunerflow.artifact.save import save_artifact
from tunerflow.format import ArtifactConfig
from tunerflow.modeling.loading import LoadedModel

__all__ = [
    "ARTIFACT_CONFIG",
    "FORMAT_VERSION",
    "RUN_FILE",
    "ArtifactConfig",
    "LoadedModel",
    "load_artifact",
    "load_model",
    "read_artifact_config",
    "save_artifact",
    "unpack_zip",
]
