"""examples/: a task of your own in one file through `searchlearn loop` (short settings), the search script on the
policy that run leaves, and the errors of `task_name` when it names a task of your own that cannot be used."""

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from searchlearn.config import ConfigError, from_dict
from searchlearn.contracts import Task
from searchlearn.loop.config import load_loop_config
from searchlearn.policy.hf import load_policy
from searchlearn.search.evaluate import greedy_pass_at_1
from searchlearn.tasks.countdown import CountdownConfig, CountdownTask
from searchlearn.tasks.registry import TASK_MEMBERS, task_spec

ROOT = Path(__file__).resolve().parents[2]
YOUR_TASK = "examples/your_task.py:AddTask"  # as the YAML names it: relative to the repository root
SHORT = {"task.hi": 9, "init.n_train": 3000, "init.sft.steps": 400, "phases.0.problems": 16, "phases.0.sft.steps": 4,
         "phases.1.problems": 16, "phases.1.grpo.steps": 2, "phases.1.grpo.prompts_per_step": 8,
         "eval.problems": 24, "curve.every": 2, "curve.problems": 8}


def run(*argv: str, cli) -> subprocess.CompletedProcess:
    """A command from the repository root, where the examples' paths are written from."""
    return subprocess.run(list(argv), cwd=ROOT, env=cli.env, capture_output=True, text=True, timeout=300)


def test_your_task_verifies_its_traces_by_parsing_and_holds_problems_out():
    task = task_spec(f"{ROOT}/{YOUR_TASK}").build()
    train, test = task.problems("train", 200, seed=3), task.problems("test", 50, seed=3)
    assert not {tuple(p.data["nums"]) for p in train} & {tuple(p.data["nums"]) for p in test}
    assert all(task.is_held_out(p.data["nums"]) for p in test)
    assert not any(task.is_held_out(p.data["nums"]) for p in train)
    for problem in test:
        trace = "".join(text for text, _ in task.trace_segments(problem, random.Random(0)))
        total = sum(problem.data["nums"])
        assert task.verify(problem, trace).correct and task.answer_key(problem, trace) == total
        assert "".join(task.steps(trace)) == trace and len(task.steps(trace)) == len(problem.data["nums"])
        assert task.verify(problem, trace.replace(f"answer {total}", f"answer {total + 1}")).reason == \
            f"answer {total + 1}, want {total}"
    problem = test[0]
    for text in ("", "answer 1+2\n", "answer __import__('os')\n", "answered 5\n"):
        assert not task.verify(problem, text).correct and task.answer_key(problem, text) is None


@pytest.fixture(scope="module")
def loop_out(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("your_task")
    sets = [a for k, v in SHORT.items() for a in ("--set", f"{k}={v}")]
    proc = run(*cli.argv("loop", "examples/your_task.yaml", "--out", str(out), *sets), cli=cli)
    assert proc.returncode == 0, proc.stderr
    return out


def test_your_task_loop_learns_the_task_and_writes_every_output(loop_out):
    metrics = json.loads((loop_out / "metrics.json").read_text())
    config = json.loads((loop_out / "config.json").read_text())
    assert config["task_name"] == YOUR_TASK
    assert config["task"] == {"min_terms": 2, "max_terms": 3, "hi": 9, "test_fraction": 0.2, "split_seed": 0}
    assert [r["learner"] for r in metrics["rounds"]] == ["init", "expert_iteration", "grpo"]
    assert metrics["init"]["pass@1"] >= 0.25  # the traces taught it to add (a random policy scores 0)
    assert metrics["eval_problems"] == SHORT["eval.problems"]
    # the final policy, read back, scores on the held-out problems what the run says it did
    spec = task_spec(f"{ROOT}/{YOUR_TASK}")
    task = spec.build(from_dict(spec.config, config["task"]))
    test = task.problems("test", SHORT["eval.problems"], seed=config["seed"] + 1)
    policy = load_policy(loop_out / "policy")
    assert greedy_pass_at_1(policy, task, test, config["eval"]["max_new_tokens"])["pass@1"] == \
        metrics["final"]["pass@1"]
    curve = metrics["curve"]
    assert curve[0]["learner"] == "init" and curve[0]["pass@1"] == pytest.approx(
        greedy_pass_at_1(load_policy(loop_out / "ckpt" / "init"), task, test[: SHORT["curve.problems"]],
                         config["eval"]["max_new_tokens"])["pass@1"])
    assert {p["learner"] for p in curve} == {"init", "expert_iteration", "grpo"}
    assert (loop_out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (loop_out / "report.html").is_file()


def test_search_api_searches_the_loop_policy(loop_out, cli):
    metrics = json.loads((loop_out / "metrics.json").read_text())
    proc = run(sys.executable, "examples/search_api.py", str(loop_out / "policy"), "--task", "hi=9", "--problems",
               str(SHORT["eval.problems"]), "--search", "beam", "--budget", "4", cli=cli)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"beam n=4 scorer=confidence on 24 held-out problems: accuracy ([\d.]+) \(greedy pass@1 ([\d.]+)\)",
                  proc.stdout)
    assert m, proc.stdout
    assert float(m[2]) == pytest.approx(metrics["final"]["pass@1"], abs=1e-3)  # the loop's held-out problems
    accuracy = float(m[1])
    answers = re.findall(r"^  .* -> .*: (correct|answer \d+, want \d+|no answer line)$", proc.stdout, re.M)
    assert len(answers) == 3 and 0.0 <= accuracy <= 1.0
    ledger = dict(kv.split("=") for kv in re.search(r"^ledger: (.*)$", proc.stdout, re.M)[1].split())
    assert float(ledger["generated_tokens"]) >= 24 * 4  # every problem searched: at least a token per candidate
    assert float(ledger["policy_flops"]) > 0


def test_search_api_trains_a_tiny_policy_when_given_no_checkpoint(cli):
    proc = run(sys.executable, "examples/search_api.py", "--train", "20", "--problems", "4", "--search", "bon",
               "--budget", "2", "--scorer", "confidence", "--option", "select=weighted", cli=cli)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"bon n=2 scorer=confidence on 4 held-out problems: accuracy [\d.]+", proc.stdout), proc.stdout
    assert float(re.search(r"reward_tokens=([\d.e+]+)", proc.stdout)[1]) > 0  # the weighted vote ran the scorer


# -- task_name: a task of your own -----------------------------------------------------------------------------------
def test_task_members_are_the_task_contract():
    methods = {n for n, v in vars(Task).items() if callable(v) and not n.startswith("_")}
    assert set(TASK_MEMBERS) == set(Task.__annotations__) | methods


def test_a_module_path_names_a_task_and_its_config_comes_from_the_constructor():
    spec = task_spec("searchlearn.tasks.countdown:CountdownTask")
    assert spec.task is CountdownTask and spec.config is CountdownConfig
    spec = task_spec(str(ROOT / YOUR_TASK))
    assert spec is task_spec(str(ROOT / YOUR_TASK)) and spec.config.__name__ == "AddConfig"


OWN_TASKS = '''
from dataclasses import dataclass

@dataclass
class Settings:
    k: int = 5  # Countdown has k and hi too, at other defaults
    hi: int = 7

class NoVerify:
    name = "mine"
    step_delimiter = "\\n"
    def __init__(self, config: Settings | None = None): ...
    def problems(self, split, n, seed=0): ...
    def answer_key(self, problem, text): ...
    def steps(self, text): ...

class NoTraces(NoVerify):
    def verify(self, problem, text): ...

class Unannotated(NoTraces):
    def __init__(self, config=None): ...

class Complete(NoTraces):
    words, max_number = (), 9
    def trace_segments(self, problem, rng): ...
'''


@pytest.fixture(scope="module")
def own_tasks(tmp_path_factory) -> Path:
    """A file of tasks of one's own, complete and broken."""
    path = tmp_path_factory.mktemp("own") / "own_tasks.py"
    path.write_text(OWN_TASKS)
    return path


def test_a_task_of_your_own_starts_from_its_own_defaults(own_tasks, tmp_path):
    """In a config file as in --set: its settings are its own defaults, then the file's keys, never Countdown's."""
    (tmp_path / "mine.yaml").write_text(f"task_name: {own_tasks}:Complete\ninit_from: null\ntask: {{hi: 8}}\n")
    cfg = load_loop_config(tmp_path / "mine.yaml")
    assert (cfg.task.k, cfg.task.hi) == (5, 8) and type(cfg.build_task()).__name__ == "Complete"
    cfg = load_loop_config(None, [f"task_name={own_tasks}:Complete", "task.hi=9"])
    assert (cfg.task.k, cfg.task.hi) == (5, 9)


@pytest.mark.parametrize("name, message", [
    ("nowhere/my_task.py:MyTask", "no such file nowhere/my_task.py"),
    ("{own}:Missing", "own_tasks.py has no class 'Missing'"),
    ("{own}:NoVerify", "NoVerify is not a Task (contracts.Task): it has no verify"),
    ("{own}:Unannotated", "annotate the first parameter of Unannotated.__init__ with its config dataclass"),
    ("searchlearn.tasks.nowhere:MyTask", "no module 'searchlearn.tasks.nowhere'"),
    ("countdwn", "unknown task 'countdwn'; valid tasks: code, countdown, humaneval, math; or a task of your own"),
])
def test_a_task_that_cannot_be_used_is_a_one_line_config_error(own_tasks, name, message):
    with pytest.raises(ConfigError) as e:
        task_spec(name.format(own=own_tasks))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_initializing_on_a_task_without_traces_is_a_cli_error_that_says_what_it_lacks(own_tasks, cli):
    proc = run(*cli.argv("loop", "configs/loop_quick.yaml", "--set", f"task_name={own_tasks}:NoTraces"), cli=cli)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"searchlearn loop: LoopConfig: init_from: null trains a policy on the solver traces of task "
        f"'{own_tasks}:NoTraces', which has no words, max_number, trace_segments; set init_from to a checkpoint"]


def test_eval_with_the_example_config_scores_what_the_loop_reported(loop_out, cli, tmp_path):
    """The guide's `searchlearn eval --config examples/your_task.yaml`: the example's task and held-out problems."""
    proc = run(*cli.argv("eval", "--model", str(loop_out / "policy"), "--config", "examples/your_task.yaml",
                         "--set", "task.hi=9", "--set", f"eval.problems={SHORT['eval.problems']}", "--budget", "1",
                         "--out", str(tmp_path)), cli=cli)
    assert proc.returncode == 0, proc.stderr
    greedy = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["pass@1"]
    assert greedy == json.loads((loop_out / "metrics.json").read_text())["final"]["pass@1"]
