"""Tiny random Hugging Face checkpoints of the Llama, Qwen2 and Mistral families, built offline from configs.

For tests and for trying the real-model path without a download: `tiny_checkpoint(dir, "qwen2")` writes a directory
shaped like a hub checkpoint (config.json, model.safetensors, tokenizer.json, tokenizer_config.json with a chat
template) that `load_policy` and `transformers.AutoModelForCausalLM` both load. The tokenizer is byte-level BPE with no
merges but two (one token per byte, so it encodes any text) plus each family's special tokens and BOS convention.
"""

from __future__ import annotations

from pathlib import Path

import torch

FAMILIES = ("llama", "qwen2", "mistral")
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + "
          "m['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")


def tiny_tokenizer(family: str = "llama"):
    """A `PreTrainedTokenizerFast` over the 256 byte symbols (plus "  " and "\n\n") with the family's conventions:
    llama — BOS added by the tokenizer, a Llama-3-style chat template that writes BOS itself, eos `<|eot_id|>`;
    qwen2 — no BOS, ChatML, eos `<|im_end|>`; mistral — BOS added, no chat template, eos `</s>`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    merges = [("Ġ", "Ġ"), ("Ċ", "Ċ")]  # two spaces, and a blank line (the math step delimiter) as one token
    pieces = sorted(pre_tokenizers.ByteLevel.alphabet()) + ["".join(m) for m in merges]
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(pieces)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = {
        "llama": ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"],
        "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "mistral": ["<s>", "</s>", "<unk>"],
    }[family]
    tok.add_special_tokens(specials)
    kwargs = {
        "llama": dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", chat_template=LLAMA3),
        "qwen2": dict(eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML),
        "mistral": dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>"),
    }[family]
    bos = kwargs.get("bos_token")
    if bos is not None:  # the tokenizer itself prepends BOS, as Llama's and Mistral's do
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False, **kwargs)


def hf_config(family: str, tokenizer, **overrides):
    """A transformers config of the family: 2 layers, width 64, 4 query / 2 key-value heads, vocab ≥ the tokenizer."""
    import transformers

    classes = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config,
               "mistral": transformers.MistralConfig}
    eos = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    kwargs = dict(vocab_size=-(-len(tokenizer) // 8) * 8, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rope_theta=500.0,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
                  tie_word_embeddings=family == "qwen2")
    if family == "mistral":
        kwargs["sliding_window"] = None
    kwargs.update(overrides)
    return classes[family](**kwargs)


def spread_weights(model: torch.nn.Module, seed: int = 0) -> None:
    """Re-draw weights at a larger scale than the 0.02 init, so logits are far from uniform and mistakes show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 if "embed" in name else 0.15))


def tiny_model(family: str = "llama", seed: int = 0, tokenizer=None, **overrides):
    """(transformers model in eval mode with spread random weights, its tokenizer)."""
    import transformers

    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer(family)
    config = hf_config(family, tokenizer, **overrides)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config).train(False)
    spread_weights(model, seed)
    return model, tokenizer


def tiny_checkpoint(directory: str | Path, family: str = "llama", seed: int = 0, max_shard_size: str | None = None,
                    **overrides) -> Path:
    """Write a tiny random checkpoint of `family` (weights, config, tokenizer) to `directory`; returns it.
    `max_shard_size` (e.g. "20KB") writes sharded safetensors with an index, like large hub checkpoints."""
    model, tokenizer = tiny_model(family, seed, **overrides)
    directory = Path(directory)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(str(directory), **kwargs)
    tokenizer.save_pretrained(str(directory))
    return directory
