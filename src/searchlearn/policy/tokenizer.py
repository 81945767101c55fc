"""A word-level tokenizer for a task's small alphabet, built on Hugging Face `tokenizers`.

Numbers are either single tokens up to `max_number` (so "25+7=32" is five tokens) or, with `digits=True`, one token
per digit (so a number never seen in training is still made of seen tokens: what lets a model copy and compare
held-out target values). Words of the task's vocabulary are single tokens; every other piece is one character. The same object exports as a `PreTrainedTokenizerFast` directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
SYMBOLS = tuple("+-*/()=|>:,.?! \n")
PATTERN = r"\d+|[A-Za-z]+|\s|."
DIGIT_PATTERN = r"\d|[A-Za-z]+|\s|."


class TaskTokenizer:
    """encode(text) -> ids and decode(ids) -> text over a fixed vocabulary: specials, symbols, words, numbers."""

    def __init__(self, words: tuple[str, ...] = (), max_number: int = 999, digits: bool = False,
                 symbols: tuple[str, ...] = ()):
        self.words = tuple(words)
        self.symbols = tuple(symbols)  # a task's characters beyond SYMBOLS (the code task's "[", "]", "%", "<")
        self.digits = digits
        self.max_number = 9 if digits else max_number
        vocab = (list(SPECIALS) + list(SYMBOLS) + list(self.symbols) + list(self.words)
                 + [str(i) for i in range(self.max_number + 1)])
        if len(set(vocab)) != len(vocab):
            raise ValueError("tokenizer vocabulary has duplicates (a word repeats a symbol or number?)")
        self.vocab = {piece: i for i, piece in enumerate(vocab)}
        self.pieces = vocab
        tok = Tokenizer(models.WordLevel(self.vocab, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(DIGIT_PATTERN if digits else PATTERN), behavior="isolated")
        tok.decoder = decoders.Fuse()
        self._tok = tok
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (self.vocab[s] for s in SPECIALS)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`; special tokens are dropped."""
        return "".join(self.pieces[i] for i in ids if i >= len(SPECIALS) or i == self.unk_id)

    def piece(self, token_id: int) -> str:
        return self.pieces[token_id]

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write `searchlearn_tokenizer.json` (ours) and `tokenizer.json` + `tokenizer_config.json` (Hugging Face)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "searchlearn_tokenizer.json").write_text(
            json.dumps({"words": list(self.words), "max_number": self.max_number, "digits": self.digits,
                        **({"symbols": list(self.symbols)} if self.symbols else {})})
        )
        self._tok.save(str(directory / "tokenizer.json"))
        (directory / "tokenizer_config.json").write_text(
            json.dumps(
                {
                    "tokenizer_class": "PreTrainedTokenizerFast",
                    "bos_token": "<bos>",
                    "eos_token": "<eos>",
                    "pad_token": "<pad>",
                    "unk_token": "<unk>",
                    "clean_up_tokenization_spaces": False,
                },
                indent=1,
            )
        )

    @classmethod
    def load(cls, directory: str | Path) -> TaskTokenizer:
        spec = json.loads((Path(directory) / "searchlearn_tokenizer.json").read_text())
        return cls(words=tuple(spec["words"]), max_number=spec["max_number"], digits=spec.get("digits", False),
                   symbols=tuple(spec.get("symbols", ())))
