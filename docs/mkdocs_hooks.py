"""MkDocs hook: links from a page to files outside docs/ (``../README.md#quick-start``) become plain text.

The pages are written for GitHub first, where such links work; the site is built from docs/ alone,
so there they would be dead. Every other link stays and is validated (mkdocs.yml, ``--strict``).
"""

import re

OUTSIDE_DOCS = re.compile(r"\[([^\]]+)\]\(\.\./[^)\s]*\)")


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    return OUTSIDE_DOCS.sub(r"\1", markdown)
