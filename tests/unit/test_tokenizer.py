from searchlearn.policy.tokenizer import TaskTokenizer

WORDS = ("answer", "check", "back", "no", "yes", "ok", "vs")
TEXT = "3 7 25 -> 46\n25+21=46 vs 46 yes\nanswer 25+(7*3)\n"


def test_number_tokens_are_single_tokens_and_round_trip():
    tok = TaskTokenizer(WORDS, max_number=99)
    ids = tok.encode("25+21=46")
    assert [tok.piece(i) for i in ids] == ["25", "+", "21", "=", "46"]
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.encode("100") == [tok.unk_id]  # past max_number


def test_digit_tokens_split_every_number():
    tok = TaskTokenizer(WORDS, digits=True)
    assert [tok.piece(i) for i in tok.encode("125 vs 46")] == ["1", "2", "5", " ", "vs", " ", "4", "6"]
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.vocab_size == 4 + 16 + len(WORDS) + 10  # specials, symbols, words, digits


def test_unknown_characters_and_specials():
    tok = TaskTokenizer(WORDS, max_number=9)
    assert tok.encode("§") == [tok.unk_id]
    assert tok.decode([tok.bos_id, *tok.encode("ok"), tok.eos_id]) == "ok"


def test_save_and_load(tmp_path):
    tok = TaskTokenizer(WORDS, digits=True)
    tok.save(tmp_path)
    back = TaskTokenizer.load(tmp_path)
    assert back.digits and back.encode(TEXT) == tok.encode(TEXT) and back.vocab_size == tok.vocab_size
    assert (tmp_path / "tokenizer.json").exists() and (tmp_path / "tokenizer_config.json").exists()
