"""The code sandbox against hostile programs: each one is contained and reported as a failed run, and this process
(the "trainer") carries on; the CLI prints one JSON object. Run under bwrap where the kernel allows namespaces and
with rlimits only (the fallback) in any case."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import replace
from pathlib import Path

import pytest

from searchlearn.sandbox import SandboxConfig, SandboxPool, detect, run_program

AUTO = SandboxConfig(timeout_s=3.0)
MODES = ["bwrap", "none"]


def config_for(mode: str) -> SandboxConfig:
    config = replace(AUTO, isolation=mode)
    if mode == "bwrap" and detect(AUTO).mode != "bwrap":
        pytest.skip(f"no Linux namespaces here: {detect(AUTO).reason}")
    return config


def contained(mode: str) -> SandboxConfig:
    """A config whose programs cannot touch this process: namespaces, or a uid of their own."""
    config = config_for(mode)
    if mode == "none" and detect(config).uid is None:
        pytest.skip("rlimits only and the same uid as the tests: a hostile program could reach this process")
    return config


def assert_healthy(config: SandboxConfig) -> None:
    """After a hostile run: a normal program still runs, and no process of the sandbox uid is left."""
    assert run_program("print(6 * 7)", config=config).stdout == "42\n"
    uid = detect(config).uid
    if uid is not None:  # a killed namespace's processes take a moment to be reaped
        for _ in range(40):
            left = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _uid(p) == uid]
            if not left:
                break
            time.sleep(0.05)
        assert not left, f"processes of uid {uid} left behind: {left}"


def _uid(proc: Path) -> int | None:
    try:
        return int(next(l for l in (proc / "status").read_text().splitlines() if l.startswith("Uid:")).split()[1])
    except (OSError, StopIteration):
        return None


@pytest.mark.parametrize("mode", MODES)
def test_ordinary_programs(mode):
    config = config_for(mode)
    ok = run_program("import sys\nprint(sys.stdin.read()[::-1])", "abc", config)
    assert (ok.status, ok.exit_code, ok.stdout) == ("ok", 0, "cba\n")
    err = run_program("raise ValueError('bad')", config=config)
    assert err.status == "error" and err.exit_code == 1 and "ValueError: bad" in err.stderr
    assert run_program("import sys; sys.exit(7)", config=config).exit_code == 7
    assert run_program("import os; print(os.environ.get('HOME'), 'SECRET' in os.environ)",
                       config=config).stdout.split()[1] == "False"


@pytest.mark.parametrize("mode", MODES)
def test_infinite_loop_times_out(mode):
    config = replace(contained(mode), timeout_s=1.0)
    result = run_program("while True:\n    pass\n", config=config)
    assert result.status == "timeout" and 1.0 <= result.seconds < 3.0
    assert_healthy(config)


@pytest.mark.parametrize("mode", MODES)
def test_fork_bomb(mode):
    config = replace(contained(mode), timeout_s=2.0)
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run_program(bomb, config=config)
    assert result.status in ("timeout", "killed")
    assert_healthy(config)


@pytest.mark.parametrize("mode", MODES)
def test_memory_bomb(mode):
    config = contained(mode)
    result = run_program("x = []\nwhile True:\n    x.append(bytearray(1 << 24))\n", config=config)
    assert result.status in ("error", "killed") and ("MemoryError" in result.stderr or result.status == "killed")
    assert_healthy(config)


@pytest.mark.parametrize("mode", MODES)
def test_a_gigabyte_write_stops_at_the_file_limit(mode):
    config = contained(mode)
    write = "with open('big', 'wb') as f:\n    for _ in range(1024):\n        f.write(b'0' * (1 << 20))\n"
    result = run_program(write, config=config)
    assert result.status in ("error", "killed")  # Python ignores SIGXFSZ: the write raises "File too large"
    assert result.reason == "file size limit" or "File too large" in result.stderr
    assert_healthy(config)


@pytest.mark.parametrize("mode", MODES)
def test_cannot_write_outside_its_directory(mode, tmp_path):
    config = contained(mode)
    target = tmp_path / "planted.txt"
    result = run_program(f"open({str(target)!r}, 'w').write('x')", config=config)
    assert result.status == "error" and not target.exists()
    assert_healthy(config)


@pytest.mark.parametrize("mode", MODES)
def test_cannot_read_the_home_directory(mode, tmp_path):
    config = contained(mode)
    secret = Path.home() / f".searchlearn-sandbox-test-{os.getpid()}"
    secret.write_text("the secret")
    try:
        result = run_program(f"print(open({str(secret)!r}).read())", config=config)
        assert result.status == "error" and "the secret" not in result.stdout
        listing = run_program(f"import os; print(os.listdir({str(Path.home())!r}))", config=config)
        assert listing.status == "error" and secret.name not in listing.stdout
    finally:
        secret.unlink()


def test_no_network_under_namespaces():
    config = config_for("bwrap")
    with socket.create_server(("127.0.0.1", 0)) as server:  # a service on this host the program tries to reach
        port = server.getsockname()[1]
        result = run_program(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n",
                             config=config)
    assert result.status == "error" and ("Connection refused" in result.stderr or "unreachable" in result.stderr)
    assert_healthy(config)


@pytest.mark.parametrize("mode", MODES)
def test_cannot_kill_its_parent_or_the_trainer(mode):
    config = contained(mode)
    program = (f"import os, signal\nfor pid in (os.getppid(), {os.getpid()}):\n    try:\n"
               "        os.kill(pid, signal.SIGKILL)\n    except OSError as e:\n        print(type(e).__name__)\n")
    result = run_program(program, config=config)
    assert result.status in ("ok", "error", "killed")  # whatever it did, this process is still here
    assert_healthy(config)


@pytest.mark.parametrize("mode", MODES)
def test_stdout_flood_is_cut(mode):
    config = replace(contained(mode), timeout_s=10.0, output_bytes=1 << 20, head_bytes=100)
    result = run_program("while True:\n    print('x' * 1000)\n", config=config)
    assert result.status == "killed" and result.reason.startswith("output limit")
    assert result.seconds < 5.0 and len(result.stdout) == 100
    assert_healthy(config)


def test_pool_keeps_order_and_runs_at_once():
    config = replace(AUTO, timeout_s=5.0)
    programs = [(f"import time\ntime.sleep(0.5)\nprint({i} * {i})", "") for i in range(4)]
    start = time.perf_counter()
    results = SandboxPool(config, workers=4).run(programs)
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(4)]
    assert time.perf_counter() - start < 1.8  # four half-second sleeps side by side, not one after another


def test_cli_prints_one_json_object(cli, tmp_path):
    program, stdin = tmp_path / "p.py", tmp_path / "in.txt"
    program.write_text("import sys\nprint(sum(map(int, sys.stdin.read().split())))\n")
    stdin.write_text("1 2 3\n")
    out = cli("sandbox", str(program), "--stdin", str(stdin), "--timeout", "5")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["status"], result["exit_code"], result["stdout"]) == ("ok", 0, "6\n")
    assert result["isolation"] in ("bwrap", "none")
    program.write_text("while True: pass\n")
    out = cli("sandbox", str(program), "--timeout", "1")
    assert out.returncode == 1 and json.loads(out.stdout)["status"] == "timeout"


def test_a_public_copy_of_bwrap_runs_as_the_sandbox_uid():
    """Where the installed bwrap sits out of the sandbox uid's reach (a venv under /root), a copy is made that it
    can run, with the wheel's libcap beside it (its RPATH), and the same copy is found again."""
    import subprocess

    from searchlearn.sandbox.isolation import _bwrap_executable, _open_to_others, _public_copy

    installed = _bwrap_executable(other_uid=False)
    if installed is None or os.getuid() != 0:
        pytest.skip("needs bwrap and root (to run the copy as another uid)")
    copy = _public_copy(Path(installed))
    assert _open_to_others(copy) and _public_copy(Path(installed)) == copy
    out = subprocess.run([str(copy), "--version"], capture_output=True, text=True, user=65534, group=65534)
    assert out.returncode == 0 and out.stdout.startswith("bubblewrap")
