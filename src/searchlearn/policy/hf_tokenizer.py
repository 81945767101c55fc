"""An adapter giving a Hugging Face tokenizer the interface of `TaskTokenizer`, plus chat templates.

The engine, the policies and the learners only ever call `encode`, `encode_batch`, `decode`, `eos_id`, `pad_id`,
`bos_id` and `vocab_size`; this class provides exactly those over a local `transformers` tokenizer directory (or a
GGUF file's embedded tokenizer), so a real model's tokenizer plugs in where the task tokenizer did.

Conventions (the same as `TaskTokenizer`): `encode` adds no special tokens (the policy decides about BOS, see
`add_bos`); `decode` drops special tokens. `eos_ids` lists every id that ends generation: the tokenizer's eos plus the
`eos_token_id`s of config.json / generation_config.json (chat models end a turn with e.g. `<|im_end|>` or `<|eot_id|>`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _ids(value) -> list[int]:
    """An `eos_token_id` entry (int, list of ints or None) as a list."""
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def config_eos_ids(directory: str | Path) -> list[int]:
    """The eos ids that config.json and generation_config.json declare (empty if neither does)."""
    out: list[int] = []
    for name in ("generation_config.json", "config.json"):
        path = Path(directory) / name
        if path.is_file():
            out += [i for i in _ids(json.loads(path.read_text()).get("eos_token_id")) if i not in out]
    return out


class HFTokenizer:
    """`TaskTokenizer`'s interface over a `transformers.PreTrainedTokenizerBase` (`self.tok`)."""

    def __init__(self, tok, extra_eos_ids: Iterable[int] = ()):
        self.tok = tok
        self.bos_id: int | None = tok.bos_token_id
        eos = _ids(tok.eos_token_id)
        eos += [i for i in extra_eos_ids if i not in eos]
        self.eos_ids: tuple[int, ...] = tuple(eos)
        self.eos_id: int | None = eos[0] if eos else None
        pad = tok.pad_token_id
        self.pad_id: int = pad if pad is not None else self.eos_id if self.eos_id is not None else 0
        # Whether the tokenizer's own encode (special tokens on) starts a text with BOS: Llama/Mistral yes, Qwen2 no.
        plain = tok.encode("a b", add_special_tokens=False)
        full = tok.encode("a b", add_special_tokens=True)
        self.add_bos = self.bos_id is not None and full[:1] == [self.bos_id] and full[1 : 1 + len(plain)] == plain

    @classmethod
    def load(cls, directory: str | Path, gguf_file: str | None = None) -> HFTokenizer:
        """AutoTokenizer from a local directory (no network), or from the tokenizer inside `directory/gguf_file`."""
        from transformers import AutoTokenizer

        directory = Path(directory)
        if gguf_file is None and not any((directory / f).is_file() for f in TOKENIZER_FILES):
            raise FileNotFoundError(f"{directory}: no tokenizer — looked for {', '.join(TOKENIZER_FILES)}")
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True, **kwargs)
        return cls(tok, extra_eos_ids=config_eos_ids(directory))

    # -- the TaskTokenizer interface --------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Every id the tokenizer can produce, added tokens included (the model's embedding may be larger)."""
        return len(self.tok)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.tok(list(texts), add_special_tokens=False)["input_ids"] if texts else []

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`; special tokens are dropped."""
        return self.tok.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def piece(self, token_id: int) -> str:
        return self.tok.convert_ids_to_tokens(token_id)

    def save(self, directory: str | Path) -> None:
        """tokenizer.json + tokenizer_config.json (with the chat template): loadable by `AutoTokenizer`."""
        self.tok.save_pretrained(str(directory))

    # -- chat templates ---------------------------------------------------------------------------------------
    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tok, "chat_template", None))

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The prompt text of a conversation (`[{"role": ..., "content": ...}]`), ready for the assistant's turn.

        Without a chat template: the contents joined by blank lines, then a newline (a plain base-model prompt).
        """
        if not self.has_chat_template:
            return "\n\n".join(m["content"] for m in messages) + "\n"
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
