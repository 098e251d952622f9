"""LoRA adapters: training starts from the frozen encoder, and what serving merges into the
weights computes exactly what was trained. A tiny BERT built from a config (no download)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from transformers import BertConfig, BertModel

from classifiers.artifacts import ADAPTER_FILE, adapter_path, artifacts_version
from classifiers.lora import (
    LoraLinear,
    adapter_state,
    add_adapters,
    load_adapter_state,
    merge_adapter,
    read_adapter,
    save_adapter,
    target_names,
)
from listener.core.errors import ClassifierError


def tiny_bert(layers: int = 2) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return BertModel(config).eval()


IDS = torch.tensor([[1, 5, 7, 9, 2], [1, 4, 2, 0, 0]])
MASK = (IDS != 0).long()


def hidden(model: BertModel) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=IDS, attention_mask=MASK).last_hidden_state


def test_targets_are_every_linear_layer_of_the_blocks_but_not_the_pooler() -> None:
    names = target_names(tiny_bert())
    assert len(names) == 2 * 6
    assert "encoder.layer.1.attention.self.query" in names
    assert "encoder.layer.0.output.dense" in names
    assert not any(name.startswith("pooler") for name in names)


def test_adapters_start_as_the_frozen_model_and_only_they_train() -> None:
    plain = tiny_bert()
    wrapped = copy.deepcopy(plain)
    add_adapters(wrapped, rank=4, alpha=8, dropout=0.0)
    assert torch.equal(hidden(wrapped), hidden(plain))  # B = 0 at the start
    trainable = {name for name, p in wrapped.named_parameters() if p.requires_grad}
    assert trainable and all(name.endswith(("lora_A", "lora_B")) for name in trainable)
    assert sum(isinstance(m, LoraLinear) for m in wrapped.modules()) == 12


def test_merged_weights_compute_what_the_adapters_computed(tmp_path: Path) -> None:
    plain = tiny_bert()
    wrapped = copy.deepcopy(plain)
    add_adapters(wrapped, rank=4, alpha=8, dropout=0.3)
    with torch.no_grad():  # as if trained: non-zero B everywhere
        for module in wrapped.modules():
            if isinstance(module, LoraLinear):
                module.lora_B.normal_(0, 0.2)
    wrapped.eval()  # adapter dropout off, as in evaluation during training
    trained = hidden(wrapped)
    assert not torch.allclose(trained, hidden(plain), atol=1e-3)
    path = tmp_path / ADAPTER_FILE
    save_adapter(path, adapter_state(wrapped), rank=4, alpha=8)
    merged = merge_adapter(plain, path)
    assert torch.allclose(hidden(merged), trained, atol=1e-5)
    tensors, scale = read_adapter(path)
    assert scale == 2.0 and len(tensors) == 24


def test_best_state_can_be_restored_into_the_wrapped_model() -> None:
    wrapped = tiny_bert()
    add_adapters(wrapped, rank=2, alpha=4, dropout=0.0)
    saved = adapter_state(wrapped)
    with torch.no_grad():
        for module in wrapped.modules():
            if isinstance(module, LoraLinear):
                module.lora_B.fill_(1.0)
    load_adapter_state(wrapped, saved)
    assert all(torch.equal(wrapped.state_dict()[k], v) for k, v in saved.items())


def test_an_adapter_for_another_encoder_is_refused(tmp_path: Path) -> None:
    wrapped = tiny_bert(layers=3)
    add_adapters(wrapped, rank=2, alpha=4, dropout=0.0)
    path = tmp_path / ADAPTER_FILE
    save_adapter(path, adapter_state(wrapped), rank=2, alpha=4)
    with pytest.raises(ClassifierError, match="does not fit this encoder"):
        merge_adapter(tiny_bert(layers=2), path)  # encoder.layer.2 does not exist


def test_a_file_that_is_not_an_adapter_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(path), metadata={"format": "something-else"})
    with pytest.raises(ClassifierError, match="format"):
        read_adapter(path)
    (tmp_path / "garbage.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(ClassifierError, match="cannot read the encoder adapter"):
        read_adapter(tmp_path / "garbage.safetensors")


def test_the_adapter_is_part_of_the_model_version(tmp_path: Path) -> None:
    (tmp_path / "heads.safetensors").write_bytes(b"heads")
    (tmp_path / "heads.json").write_text("{}")
    without = artifacts_version(tmp_path)
    (tmp_path / ADAPTER_FILE).write_bytes(b"adapter one")
    one = artifacts_version(tmp_path)
    (tmp_path / ADAPTER_FILE).write_bytes(b"adapter two")
    assert len({without, one, artifacts_version(tmp_path)}) == 3


def test_the_json_decides_whether_an_adapter_is_used(tmp_path: Path) -> None:
    assert adapter_path(tmp_path, {"adapter": None}) is None
    with pytest.raises(ClassifierError, match="is missing"):
        adapter_path(tmp_path, {"adapter": {"file": ADAPTER_FILE}})
    (tmp_path / ADAPTER_FILE).write_bytes(b"x")
    assert adapter_path(tmp_path, {"adapter": {"file": ADAPTER_FILE}}) == tmp_path / ADAPTER_FILE


class OneDevicePerOp(TorchFunctionMode):
    """CUDA's rule on a machine without a GPU: an op whose tensors sit on different devices
    fails ("Expected all tensors to be on the same device"). The meta device alone would not
    catch it: it accepts CPU operands."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        devices = {leaf.device for leaf in tree_flatten((args, kwargs))[0]
                   if isinstance(leaf, torch.Tensor) and leaf.dim() > 0}
        if len(devices) > 1:
            raise RuntimeError(f"Expected all tensors to be on the same device: {devices}")
        return func(*args, **kwargs)


def test_the_adapter_is_merged_into_an_encoder_loaded_on_another_device(tmp_path: Path) -> None:
    """Issue 17: on an NVIDIA machine the encoder sits on cuda:0 while the adapter file is read
    on the CPU; merging added CPU tensors to CUDA weights and every GPU load crashed."""
    wrapped = tiny_bert()
    add_adapters(wrapped, rank=2, alpha=4, dropout=0.0)
    path = tmp_path / ADAPTER_FILE
    save_adapter(path, adapter_state(wrapped), rank=2, alpha=4)
    elsewhere = tiny_bert().to("meta")  # a device other than the one the adapter is read on
    with OneDevicePerOp():
        merged = merge_adapter(elsewhere, path)
    assert {p.device.type for p in merged.parameters()} == {"meta"}
