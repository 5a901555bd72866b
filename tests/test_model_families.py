"""The backbone families the reference tool's text guides use: each is listed, trains a run and embeds (torch, ONNX).

Tiny random models of each family are built offline: DistilBERT, BERT and MPNet with their own WordPiece
tokenizers, RoBERTa with a byte-level BPE and XLM-R with a Unigram tokenizer (their real tokenizer kinds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TEXTS, WORDS
from tests.training_helpers import toy_manager, toy_options
from tunerflow.modeling.catalogue import Catalogue
from tunerflow.runs.record import RunStatus

HIDDEN = 32
COMMON = {"num_attention_heads": 4, "max_position_embeddings": 80}
FAMILIES = {
    "distilbert": ("DistilBertModel", {"dim": HIDDEN, "hidden_dim": 64, "n_layers": 2, "n_heads": 4}),
    "bert": ("BertModel", {"hidden_size": HIDDEN, "num_hidden_layers": 2, "intermediate_size": 64, **COMMON}),
    "roberta": ("RobertaModel", {"hidden_size": HIDDEN, "num_hidden_layers": 2, "intermediate_size": 64, **COMMON}),
    "mpnet": ("MPNetModel", {"hidden_size": HIDDEN, "num_hidden_layers": 2, "intermediate_size": 64, **COMMON}),
    "xlm-roberta": (
        "XLMRobertaModel",
        {"hidden_size": HIDDEN, "num_hidden_layers": 2, "intermediate_size": 64, **COMMON},
    ),
}
WORDPIECE = {"distilbert": "DistilBertTokenizer", "bert": "BertTokenizer", "mpnet": "MPNetTokenizer"}


def _tokenizer(family: str, directory: Path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789?.,!'")
    if family in WORDPIECE:
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        vocab = [*special, *WORDS, *letters, *[f"##{c}" for c in letters]]
        (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
        config = {"tokenizer_class": WORDPIECE[family], "do_lower_case": True, "model_max_length": 64}
        (directory / "tokenizer_config.json").write_text(json.dumps(config))
        return AutoTokenizer.from_pretrained(directory)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    corpus = [" ".join(WORDS), *TEXTS, " ".join(letters)]
    if family == "roberta":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=special)
    else:  # xlm-roberta: a SentencePiece-style Unigram model
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=special, unk_token="<unk>")
    tok.train_from_iterator(corpus * 20, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        cls_token="<s>", sep_token="</s>", mask_token="<mask>", model_max_length=64,
    )  # fmt: skip
    wrapped.save_pretrained(directory)
    return wrapped


def build_family(family: str, directory: Path) -> Path:
    """A random ``family`` model with a tokenizer of its kind, saved as a Hugging Face directory (safetensors)."""
    import torch
    from transformers import AutoConfig, AutoModel

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(family, directory)
    _, settings = FAMILIES[family]
    config = AutoConfig.for_model(family, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **settings)
    torch.manual_seed(0)
    AutoModel.from_config(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def family_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("families")
    for family in FAMILIES:
        build_family(family, root / family)
    return root


def test_each_family_is_in_the_catalogue_with_its_architecture_and_dimension(family_root):
    listed = {entry["name"]: entry for entry in Catalogue(roots=(family_root.resolve(),)).describe()}
    for family, (architecture, _) in FAMILIES.items():
        entry = listed[family]
        assert (entry["architecture"], entry["dimension"], entry["source"]) == (architecture, HIDDEN, "root")
        assert entry["parameters"] > 10_000 and entry["size"] > entry["parameters"]  # float32 weights and more


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_trains_a_run_and_embeds_with_torch_and_onnx(family, family_root, tmp_path):
    import tunerflow

    model_dir = family_root / family
    torch_model = tunerflow.get_model(model_dir)
    before = torch_model.embed(TEXTS)
    assert before.shape == (len(TEXTS), HIDDEN) and np.isfinite(before).all()
    onnx_vectors = tunerflow.get_model(model_dir, is_onnx=True).embed(TEXTS)
    np.testing.assert_allclose(onnx_vectors, before, atol=1e-4)

    manager = toy_manager(tmp_path, start_worker=False)
    manager.start(toy_options(model_dir, epochs=1, run_name=f"{family}-run"))
    record = manager.run_now(f"{family}-run")
    assert record.status is RunStatus.FINISHED, record.details
    assert record.metrics["after"] and record.metrics["before"]
    tuned = tunerflow.get_model(record.artifact).embed(TEXTS)
    assert tuned.shape == before.shape and not np.allclose(tuned, before, atol=1e-4)  # the run changed the weights
