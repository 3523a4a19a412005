"""The docs a newcomer walks: a short README, topic pages whose links resolve, and a CLI reference
that cannot drift from the parser."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_cli_reference_is_generated_from_the_parser():
    from zoo.cli.reference import render

    assert (DOCS / "cli.md").read_text() == render(), (
        "docs/cli.md is out of date: run `python -m zoo.cli.reference > docs/cli.md`")


def test_readme_is_short_and_links_the_topic_pages():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "zoo demo" in readme and "pytest" in readme
    for page in ("api", "presets", "attacks", "generative", "speech", "distributed", "export", "plugins",
                 "results", "cli", "extending"):
        assert f"docs/{page}.md" in readme, f"README does not link docs/{page}.md"


def test_relative_links_resolve():
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.name} links {target}, which does not exist"


def test_every_hook_is_in_the_plugin_page():
    import zoo.plugins

    page = (DOCS / "plugins.md").read_text()
    for name in zoo.plugins.HOOK_NAMES:
        assert f"`{name}()`" in page, f"hook {name} is not explained in docs/plugins.md"
