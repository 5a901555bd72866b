"""The artifact: the one format the tuner writes and the encoder reads.

Layout of an artifact directory (a ``.zip`` holds the same files)::

    tunerflow.json            format, model spec, library versions, ONNX info, file hashes
    run.json                  the training run's metadata and metrics ({} without a run)
    config.json               Hugging Face model config
    model.safetensors         backbone weights
    tokenizer.json ...        the tokenizer's files
    modules.json              sentence-transformers modules (the directory opens with
    sentence_bert_config.json   ``SentenceTransformer(path)``)
    1_Pooling/config.json
    2_Normalize/              present when embeddings are normalised
    model.onnx                optional: ONNX export (inputs input_ids, attention_mask; output embedding)
    model.int8.onnx           optional: int8 dynamic quantisation of model.onnx
"""

from tunerflow.artifact.layout import ARTIFACT_CONFIG, FORMAT_VERSION, RUN_FILE
from tunerflow.artifact.load import load_artifact, read_artifact_config, unpack_zip
from tunerflow.artifact.save import save_artifact

__all__ = [
    "ARTIFACT_CONFIG",
    "FORMAT_VERSION",
    "RUN_FILE",
    "load_artifact",
    "read_artifact_config",
    "save_artifact",
    "unpack_zip",
]
