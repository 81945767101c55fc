"""The documentation site builds with no warning, its command-line reference is the parsers' own help, and the
strict build does fail on a broken link (so the first test can fail)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).with_name("mkdocs")

pytestmark = pytest.mark.skipif(not MKDOCS.exists(), reason="mkdocs is installed by `make test` (the dev extra)")


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(site)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_site_builds_strict_and_the_cli_reference_is_generated(tmp_path):
    result = _build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    for command in ("demo", "init", "eval", "search", "loop", "reward", "sandbox"):
        assert f"searchlearn {command}" in cli
    assert "--budgets" in cli and "<!-- cli-reference -->" not in cli  # the search parser's own option
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "grpo_advantages" in api and "Searcher" in api  # generated from the docstrings


def test_a_broken_link_fails_the_build(tmp_path):
    """The site's own settings (strict, link validation) on a one-page copy: a link to a missing page fails it."""
    import yaml

    settings = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    settings.update(nav=["index.md"], plugins=["search"], hooks=[])
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "mkdocs.yml").write_text(yaml.safe_dump(settings))
    (root / "docs" / "index.md").write_text("# Home\n\nSee [a page that is not there](nowhere.md).\n")
    result = _build(root, tmp_path / "site")
    assert result.returncode != 0 and "nowhere.md" in result.stderr
