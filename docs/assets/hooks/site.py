"""MkDocs hooks of the docs site (mkdocs.yml `hooks:`). The Markdown files are never changed.

1. A Jekyll post renders as a page with its title. A post (front matter `layout: post`, such as
   docs/es/ddpm.md) keeps its outline's headings, whose top level is `#`, and shows its `title`
   only through the Jekyll theme. Material takes a page's first `#` as its title and lists only that
   heading's children in the table of contents, so on the site the post would lose its title and
   most of its contents: its headings move one level down and its title goes on top as the `#`.

2. An English page shown in the Spanish site (mkdocs-static-i18n's fallback for a page with no
   Spanish twin) keeps pointing at English pages. The plugin resolves its link `ddpm.md#section` to
   the Spanish twin docs/es/ddpm.md, which has other sections, so the anchor would be missing (and
   strict mode would fail on it). Such links become plain links to the English page; the English
   build checks them, anchors included.

3. An English page may link a Spanish one (`es/ddpm.md`): the English build leaves docs/es/ out,
   so the link becomes a plain link to the page the Spanish build makes. The file must exist (else
   the link is left for MkDocs to report), and the Spanish build checks the link, anchor included.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,5}) ")
_MD_LINK = re.compile(r"\]\((?![a-z]+:)([^)\s#]+\.md)(#[^)\s]*)?\)")


def _post_as_page(markdown: str, title: str) -> str:
    lines, in_code = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
        lines.append("#" + line if not in_code and _HEADING.match(line) else line)
    return f"# {title}\n\n" + "\n".join(lines) + "\n"


def _plain_link(target: str, anchor: str | None, page) -> str:
    """A Markdown link target from ``page`` to the built page of the source file ``target``."""
    stem = target[: -len(".md")]
    url = posixpath.dirname(stem) if posixpath.basename(stem) in ("README", "index") else stem
    relative = posixpath.relpath(url or ".", page.file.url.rstrip("/") or ".")
    return f"]({relative.rstrip('/')}/{anchor or ''})"


def _english_links(markdown: str, page, files, language: str) -> str:
    here = posixpath.dirname(page.file.src_uri)

    def english(m: re.Match) -> str:
        target = posixpath.normpath(posixpath.join(here, m[1]))
        if f"{language}/{target}" not in files.src_uris:
            return m[0]  # no twin in this language: the plugin's own link is right
        return _plain_link(target, m[2], page)

    return _MD_LINK.sub(english, markdown)


def _other_language_links(markdown: str, page, files, others: set[str], docs_dir: str) -> str:
    here = posixpath.dirname(page.file.src_uri)

    def other(m: re.Match) -> str:
        target = posixpath.normpath(posixpath.join(here, m[1]))
        if target.split("/")[0] not in others or target in files.src_uris:
            return m[0]
        if not Path(docs_dir, target).is_file():
            return m[0]  # a missing page: MkDocs reports the link
        return _plain_link(target, m[2], page)

    return _MD_LINK.sub(other, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.meta.get("layout") == "post" and page.meta.get("title"):
        markdown = _post_as_page(markdown, page.meta["title"])
    i18n = config.plugins.get("i18n")
    language = getattr(i18n, "current_language", None)
    if not language:
        return markdown
    fallback = getattr(page.file, "locale", language) != language  # an English page, shown here
    if language != i18n.default_language and fallback:
        markdown = _english_links(markdown, page, files, language)
    if language == i18n.default_language:
        others = {lang.locale for lang in i18n.config.languages} - {language}
        markdown = _other_language_links(markdown, page, files, others, config.docs_dir)
    return markdown
