"""The report reads as an answer: a summary built from the run's figures, tables that fit, marked traces, trees,
optional TensorBoard / W&B sinks, and progress lines in plain logs."""

import html as htmllib
import re
import sys
import types

import pytest
from conftest import min_content_width

from searchlearn.config import ConfigError
from searchlearn.loop.config import LoopConfig
from searchlearn.report import html
from searchlearn.report.metrics import MetricsLog
from searchlearn.report.sinks import GlobalStep, WandbSink, make_sinks
from searchlearn.report.summary import (
    accuracy_sentences,
    search_sentences,
    standard_error,
    summary_html,
    verdict,
)
from searchlearn.report.traces import side_by_side, trace_html
from searchlearn.report.tree_view import tree_svg
from searchlearn.tasks.countdown import CountdownTask
from searchlearn.types import Problem, SearchTree, Step


def run_metrics(init=0.17, final=0.225):
    head = lambda p1: {"pass@1": p1, "maj@16": p1 + 0.08, "pass@16": 0.8}  # noqa: E731
    return {"init": head(init), "final": head(final), "rounds": [
        {"round": 0, "learner": "init", "searcher": "", **head(init)},
        {"round": 1, "learner": "expert_iteration", "searcher": "bon(n=4)", **head(0.245)},
        {"round": 2, "learner": "grpo", "searcher": "sampling(G=8)", **head(final)}]}


def test_verdict_and_standard_error_by_hand():
    assert standard_error(0.2, 100) == pytest.approx(0.04)
    # SE of the difference at n = 200: sqrt(.2·.8/200 + .3·.7/200) = 0.0430; a +0.1 change is > 2 SE
    assert verdict(0.2, 0.3, 200) == "a gain" and verdict(0.3, 0.2, 200) == "a loss"
    assert verdict(0.2, 0.3, 50) == "within noise"  # SE 0.086 there: 0.1 < 2 SE


def test_summary_numbers_are_the_runs():
    text = " ".join(accuracy_sentences(run_metrics(), 200))
    assert "0.170 ± 0.027" in text and "0.225 ± 0.030" in text and "+0.055" in text and "within noise" in text
    assert "Round 2 (grpo on sampling(G=8)): 0.245 → 0.225 (-0.020, within noise)" in text
    changed = " ".join(accuracy_sentences(run_metrics(init=0.10, final=0.40), 200))
    assert "0.100" in changed and "0.400" in changed and "a gain" in changed and changed != text
    rows = [{"strategy": s, "budget": 16, "accuracy": a, "generated_tokens": t, "scorer": "gold", "problems": 32}
            for s, a, t in (("bon_majority", 0.19, 1959), ("pass@n", 0.56, 1959), ("beam", 0.69, 1824.4))]
    search = " ".join(search_sentences(rows))
    assert "best strategy was beam with accuracy 0.690 at 1,824 generated tokens" in search
    assert "majority vote: 0.190 at 1,959" in search and "pass@n" not in search.split("best strategy was")[1][:8]
    page = summary_html(run_metrics(), 200, rows, {"orm": {"step_auc": 0.52, "rerank": 0.2},
                                                   "selfeval": {"step_auc": 0.74, "rerank": 0.29}})
    assert "selfeval (step AUC 0.740" in page and "orm within 0.05 of chance" in page


def test_numbers_print_to_their_precision_and_wide_tables_split():
    assert html.fmt(0.44402197802197846, "pass@4") == "0.444"
    assert html.fmt(477215.0, "ledger/generated_tokens") == "477,215" and html.fmt(4096) == "4,096"
    columns = [f"metric_{i}" for i in range(13)]
    out = html.table({"a": {c: 0.5 for c in columns}}, columns)
    assert out.count("<table>") == 3  # 6 + 6 + 1 data columns
    assert all(t.count("<th>") <= html.MAX_COLUMNS + 1 for t in out.split("<table>")[1:])


def test_report_tables_fit_1200_px():
    rows = {f"round {r}": {"learner": "expert_iteration", "searcher": "bon(n=4)", "pass@1": 0.245, "maj@1": 0.18,
                           "maj@4": 0.24, "pass@4": 0.47, "maj@16": 0.31, "pass@16": 0.775,
                           "train_generated_tokens": 447852, "train_accuracy": 0.17} for r in range(4)}
    out = html.table(rows, list(rows["round 0"]))
    tables = re.findall(r"<table>.*?</table>", out)
    assert len(tables) == 2 and max(min_content_width(t) for t in tables) <= 1200


def test_trace_view_marks_a_wrong_step():
    task = CountdownTask()
    problem = Problem("p", "3 7 25 -> 46\n", {"nums": [3, 7, 25], "target": 46})
    completion = "25-7=18 | 3 18\n18+3=22 vs 46 no\nback | 3 7 25\n7*3=21 | 25 21\n25+21=46 vs 46 yes\n"
    marked = task.step_marks(problem, completion)
    assert [m for _, m in marked] == ["dead end", "arithmetic error", "good", "good", "good"]
    view = trace_html({"prompt": problem.prompt, "completion": completion, "reward": 0.0, "steps": marked})
    assert view.count('class="step error"') == 1 and "18+3=22 vs 46 no <small>· arithmetic error" in view
    assert view.count('class="step good"') == 3 and "wrong" in view
    pair = side_by_side([{"prompt": "a\n", "completion": "x\n", "reward": 0.0}],
                        [{"prompt": "a\n", "completion": "y\n", "reward": 1.0}])
    assert pair.count("class='pair'") == 2 and "correct" in pair  # the heading row and one problem


def test_tree_view_contains_every_node():
    tree = SearchTree("p")
    a = tree.add(0, Step("7*3=21 | 25 21\n", score=0.9))
    b = tree.add(0, Step("25-7=18 | 3 18\n", score=0.1))
    c = tree.add(a, Step("25+21=46 vs 46 yes\n", score=1.0))
    tree.nodes[c].terminal = True
    tree.add(b, Step("18+3=21 vs 46 no\n", score=0.0))
    svg = tree_svg(tree, tree.path(c), "3 7 25 -> 46\n")
    assert svg.count("<rect") == len(tree.nodes) == 5
    for node in tree.nodes[1:]:
        assert htmllib.escape(node.step.text.strip()) in svg
    assert svg.count('stroke="#2962ff"') == 3 + 2  # the root, a, c boxes and their two edges
    assert SearchTree.from_dict(__import__("dataclasses").asdict(tree)).text(c) == tree.text(c)


def test_global_step_runs_on_across_phases():
    step = GlobalStep()
    assert [step({"phase": "init", "step": s}) for s in (1, 2, 3)] == [1, 2, 3]
    assert step({"phase": "eval", "round": 0}) == 3
    assert [step({"phase": "round1", "step": s}) for s in (1, 2)] == [4, 5]


def test_tensorboard_sink_writes_loadable_events(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLog(tmp_path / "metrics.jsonl", make_sinks(["tensorboard"], tmp_path))
    for s, loss in ((1, 2.0), (2, 1.5)):
        log({"phase": "init", "step": s, "learn/loss": loss, "learn/lr": 0.1})
    log({"phase": "eval", "round": 0, "search/pass@1": 0.25})
    log({"phase": "round1", "step": 1, "learn/loss": 1.0})
    log.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"learn/loss", "learn/lr", "search/pass@1"} <= set(events.Tags()["scalars"])
    assert [(e.step, e.value) for e in events.Scalars("learn/loss")] == [(1, 2.0), (2, 1.5), (3, 1.0)]
    assert [(e.step, e.value) for e in events.Scalars("search/pass@1")] == [(2, 0.25)]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4


def test_wandb_sink_is_offline_without_a_key(tmp_path, monkeypatch):
    calls = {}

    class Run:
        def log(self, values, step):
            calls.setdefault("log", []).append((step, values))

        def finish(self):
            calls["finished"] = True

    fake = types.SimpleNamespace(init=lambda **kw: calls.update(init=kw) or Run())
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    sink = WandbSink(tmp_path, config={"seed": 0})
    sink({"phase": "init", "step": 2, "learn/loss": 0.5, "note": "x"})
    sink.close()
    assert calls["init"]["mode"] == "offline" and calls["init"]["config"] == {"seed": 0}
    assert calls["log"] == [(2, {"learn/loss": 0.5})] and calls["finished"]


def test_unknown_sink_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown sink.*tensorbord"):
        LoopConfig(report_to=("tensorbord",))


def test_plain_logs_get_a_line_per_quarter_with_what_remains(capsys, monkeypatch):
    from searchlearn import progress

    monkeypatch.delenv("SEARCHLEARN_QUIET", raising=False)
    with progress.bar("sft", total=8) as bar:  # stderr is not a terminal under pytest: plain lines
        bar.skip(2)
        for _ in range(6):
            bar.advance()
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(",")[0] for line in lines] == ["sft: 4/8 (50%)", "sft: 6/8 (75%)", "sft: 8/8 (100%)"]
    assert "elapsed" in lines[0] and "left" in lines[0] and "left" not in lines[-1]
    assert progress.duration(185) == "3 min 05 s" and progress.duration(42) == "42 s"


def test_a_mean_curve_over_seeds_is_drawn_with_its_sd_band(monkeypatch, tmp_path):
    """learning_curves draws a curve carrying pass@1_sd (loop/curve.py mean_curve) with a ± 1 sd band, and a single
    run's curve (sd absent or 0) with none."""
    from searchlearn.report import loop_plots

    figures = []
    monkeypatch.setattr(loop_plots, "_save", lambda fig, path: figures.append(fig) or path)
    pt = lambda x, acc, sd: {"learner": "grpo", "samples": x, "pass@1": acc, "pass@1_sd": sd}  # noqa: E731
    loop_plots.learning_curves({"mean": [pt(0, 0.4, 0.02), pt(10, 0.5, 0.05), pt(20, 0.6, 0.1)],
                                "one run": [pt(0, 0.4, 0.0), pt(10, 0.45, 0.0)]}, tmp_path / "c.png")
    bands = [c for c in figures[0].axes[0].collections if "PolyCollection" in type(c).__name__]
    assert len(bands) == 1
    ys = sorted({round(float(y), 6) for y in bands[0].get_paths()[0].vertices[:, 1]})
    assert ys == [0.45, 0.5, 0.55, 0.7]  # 0.5 ± 0.05 and 0.6 ± 0.1: the trained points only (x > 0)
