"""mkdocs hook: links from a docs page to a repository file outside docs/ (e.g. `[test](../tests/api/test_faults.py)`)
work when the Markdown is read in the repository, but the site has no such page. In the site they become the
file's path as code, so a reader still finds the file. A link to a file that does not exist is a warning, so
`--strict` fails on it as on every other broken link."""

import logging
import pathlib
import re

_OUTSIDE = re.compile(r"\[((?:`[^`]*`|[^\]`])+)\]\(\.\./((?:tests|parmcmc|benchmarks|examples)/[^)#\s]+)(#[^)\s]*)?\)")
_ROOT = pathlib.Path(__file__).resolve().parents[2]
_LOG = logging.getLogger("mkdocs.hooks.repo_links")


def on_page_markdown(markdown, page, **kwargs):
    def replace(m):
        if not (_ROOT / m.group(2)).exists():
            _LOG.warning("%s links to ../%s, which does not exist in the repository", page.file.src_path, m.group(2))
        return f"{m.group(1)} (`{m.group(2)}`)"

    return _OUTSIDE.sub(replace, markdown)
