"""Documentation that must stay true: every setting documented, the README quickstart intact."""

from __future__ import annotations

from pathlib import Path

from freshrec.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [n for n in Settings.model_fields if f"`FRESHREC_{n.upper()}`" not in text]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_readme_quickstart_is_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make run" in text and "make test" in text


def test_readme_links_point_to_existing_docs() -> None:
    text = (ROOT / "README.md").read_text()
    for part in text.split("](")[1:]:
        target = part.split(")")[0]
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
