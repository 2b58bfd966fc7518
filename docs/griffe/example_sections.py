"""Griffe extension: read a Google-style `Example:` section as `Examples:`.

The project's docstrings end with an `Example:` section of doctest lines (`>>>`). Griffe's
Google parser knows only the plural as an examples section (rendered as code); the singular
would become an admonition whose text is read as Markdown, so `[...]` in a doctest's output
would be taken for a link. Listed under the mkdocstrings handler's `extensions` in `mkdocs.yml`.
"""

import re

import griffe

SINGULAR = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    """Rewrite `Example:` section titles to `Examples:` before docstrings are parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = SINGULAR.sub(r"\1Examples:", obj.docstring.value)
