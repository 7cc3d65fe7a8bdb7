"""mkdocs hook: links from a docs page to a repository file outside docs/ (e.g. `[test](../tests/test_faults.py)`)
work when the Markdown is read in the repository, but the site has no such page. In the site they become the
file's path as code, so a reader still finds the file, and `--strict` still fails on every other broken link."""

import re

_OUTSIDE = re.compile(r"\[((?:`[^`]*`|[^\]`])+)\]\(\.\./((?:tests|parmcmc|benchmarks|examples)/[^)#\s]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown, **kwargs):
    return _OUTSIDE.sub(lambda m: f"{m.group(1)} (`{m.group(2)}`)", markdown)
