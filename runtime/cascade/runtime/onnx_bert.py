"""A BERT encoder exported to ONNX (as the langchain4j embedding jars ship bge-small and e5-small) turned back
into a transformers `BertModel` folder, so Cascade loads it like any other Hugging Face checkpoint.

The graph's named initialisers are `BertModel` state-dict entries as they are. The exporter left the dense
layers' weights unnamed (`onnx::MatMul_N`): each is the one whose MatMul output feeds the Add of a named bias,
so it takes that bias's name (`...dense.bias` -> `...dense.weight`), transposed (ONNX multiplies x @ W; torch's
Linear stores W transposed).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

__all__ = ["bert_state_dict", "convert_onnx_bert"]


def bert_state_dict(onnx_path: Path) -> dict[str, torch.Tensor]:
    graph = onnx.load(str(onnx_path)).graph
    arrays = {each.name.removeprefix("bert."): numpy_helper.to_array(each) for each in graph.initializer}
    feeds: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        node.input[:] = [name.removeprefix("bert.") for name in node.input]  # a BertFor* export's prefix
        for name in node.input:
            feeds[name].append(node)
    state = {name: torch.from_numpy(np.array(array)) for name, array in arrays.items()
             if not name.startswith("onnx::") and not name.endswith("position_ids")}  # a buffer, not a weight
    for node in graph.node:
        weight = node.input[1] if node.op_type == "MatMul" and len(node.input) > 1 else ""
        if not weight.startswith("onnx::") or weight not in arrays:
            continue
        [bias] = [name for add in feeds[node.output[0]] if add.op_type == "Add"
                  for name in add.input if name.endswith(".bias") and name in arrays]
        state[bias.removesuffix(".bias") + ".weight"] = torch.from_numpy(np.ascontiguousarray(arrays[weight].T))
    return state


def _config(state: dict[str, torch.Tensor], head_width: int) -> BertConfig:
    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    layers = 1 + max(int(match.group(1)) for key in state if (match := re.match(r"encoder\.layer\.(\d+)\.", key)))
    return BertConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // head_width,
        intermediate_size=state["encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=state["embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state["embeddings.token_type_embeddings.weight"].shape[0],
    )


def convert_onnx_bert(onnx_path: Path, tokenizer_json: Path, out: Path, head_width: int = 32) -> None:
    """Write a `BertModel` folder (config, safetensors, tokenizer) to `out`; raises if any weight is missing."""
    state = bert_state_dict(onnx_path)
    model = BertModel(_config(state, head_width), add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{onnx_path.name} is not a BERT encoder graph: missing {missing}, unexpected {unexpected}")
    model.save_pretrained(out)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_file=str(tokenizer_json), model_max_length=512, cls_token="[CLS]", sep_token="[SEP]",
        pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    tokenizer.save_pretrained(out)
