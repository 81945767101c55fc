"""Bad input ends in one line on stderr and exit status 2, never a traceback: a malformed YAML config or override,
and an empty or corrupt checkpoint (safetensors, GGUF, config.json)."""

import pytest
from conftest import tiny_model

from searchlearn.cli.main import main
from searchlearn.policy.tokenizer import TaskTokenizer


def fails(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "Traceback" not in err, err
    return err


def checkpoint(directory):
    tok = TaskTokenizer(words=("yes", "no"), max_number=20)
    tiny_model(vocab=tok.vocab_size).save_pretrained(directory)
    tok.save(directory)
    return directory


def test_malformed_yaml_config_and_override(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("phases:\n  - rounds: 2\n    learner: [grpo\n")
    assert "bad.yaml: not valid YAML at line" in fails(capsys, "loop", str(bad), "--out", str(tmp_path / "run"))
    assert "not valid YAML" in fails(capsys, "demo", "--config", str(bad), "--out", str(tmp_path / "run"))
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    assert "expected a mapping of config keys, got list" in fails(capsys, "loop", str(listed))
    assert "is not a valid YAML value" in fails(capsys, "demo", "--set", "eval.ks=[1,", "--out", str(tmp_path))


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "model.safetensors").write_bytes(b""), "not a readable safetensors file (the file is empty)"),
    (lambda d: (d / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage"),
     "not a readable safetensors file"),
    (lambda d: (d / "config.json").write_text("{not json"), "config.json: not valid JSON"),
])
def test_corrupt_checkpoint_directory(tmp_path, capsys, damage, message):
    model = checkpoint(tmp_path / "model")
    damage(model)
    assert message in fails(capsys, "eval", "--model", str(model), "--out", str(tmp_path / "eval"))


@pytest.mark.parametrize("content, message", [(b"", "the file is empty"), (b"GGUF\x03\x00\x00\x00junk", "")])
def test_empty_or_corrupt_gguf(tmp_path, capsys, content, message):
    file = tmp_path / "model.gguf"
    file.write_bytes(content)
    err = fails(capsys, "eval", "--model", str(file), "--out", str(tmp_path / "eval"))
    assert "model.gguf: not a readable GGUF file" in err and message in err


def test_bad_worker_counts_and_cluster_addresses(tmp_path, capsys):
    model = str(checkpoint(tmp_path / "model"))
    assert "workers must be >= 1, got 0" in fails(capsys, "eval", "--model", model, "--workers", "0")
    err = fails(capsys, "eval", "--model", model, "--workers", "2", "--ray-address", "127.0.0.1:1", "--out",
                str(tmp_path / "eval"))
    assert "--ray-address 127.0.0.1:1: no Ray cluster answers there" in err


def test_vllm_backend_without_vllm_names_the_install_command(tmp_path, capsys):
    try:
        import vllm  # noqa: F401
        pytest.skip("vLLM is installed here (tests/vllm cover the backend)")
    except ImportError:
        pass
    model = str(checkpoint(tmp_path / "policy"))
    for argv in (("eval", "--model", model, "--backend", "vllm"), ("search", "--model", model, "--backend", "vllm")):
        err = fails(capsys, *argv, "--out", str(tmp_path / "run"))
        assert "needs vLLM" in err and "make setup-vllm" in err, err
    err = fails(capsys, "loop", "configs/loop_quick.yaml", "--backend", "vllm", "--workers", "2")
    assert "policy.backend=vllm runs one vLLM engine" in err and "--workers" in err
    assert "policy.backend must be native or vllm" in fails(capsys, "demo", "--set", "policy.backend=onnx")
