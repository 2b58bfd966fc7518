"""MkDocs build hooks: pages generated from the repository at build time.

- `catalogue.md`: one section per registered experiment (`experiments.CATALOG`), with its
  command, description, module docstring, default config, the README figures it declares
  and its test file;
  generated here so that the catalogue page cannot miss an experiment.
- `figures/*.png`: the figures at the top of the repository (`figures/`), served as they are.
- `source/<path>.md`: a read-only page for every repository file the pages cite as
  `source/<path>.md` (tests, catalogue modules, tutorial scripts), so that every such link
  is checked by `mkdocs build --strict` (a cited file that does not exist stops the build).
- `javascripts/mathjax/`: MathJax 3 (the `tex-mml-chtml` component, its TeX extensions,
  CHTML output and fonts) copied from the `django-static-mathjax` package of the docs extra,
  so the site typesets its equations with no network.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
SOURCE_LINK = re.compile(r"source/([\w./-]+?\.py)\.md")


def _test_file(module: str) -> str | None:
    """The test file of catalogue module `module`, if there is one."""
    for candidate in (f"tests/experiments/test_{module}.py",
                      f"tests/experiments/correspondences/test_{module}_run.py",
                      f"tests/experiments/correspondences/test_{module}.py"):
        if (ROOT / candidate).exists():
            return candidate
    return None


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _value(v) -> str:
    return f"`{v!r}`" if not isinstance(v, str) else f'`"{v}"`'


def catalogue_markdown() -> str:
    """The catalogue page: every experiment of `experiments.CATALOG`, sorted by name."""
    from experiments import CATALOG

    lines = [
        "# Experiment catalogue",
        "",
        "Every experiment `leastaction run NAME` can run, generated from the catalogue registry",
        "([`experiments.CATALOG`][experiments.CATALOG]) when the site is built. Each one writes an",
        "experiment folder ([Run, reproduce and verify](how-to/run-reproduce-verify.md)); the figures",
        "shown are the ones under `figures/` at the top of the repository, remade by `leastaction figures`.",
        "",
        "| experiment | what it runs |",
        "| --- | --- |",
    ]
    for name, experiment in sorted(CATALOG.items()):
        lines.append(f"| [`{name}`](#{name}) | {_cell(experiment.description)} |")
    lines.append("")
    for name, experiment in sorted(CATALOG.items()):
        module = experiment.run.__module__.rsplit(".", 1)[-1]
        quick = " --quick" if experiment.has_quick else ""
        lines += [f"## `{name}` {{#{name}}}", "", experiment.description, "", "```bash",
                  f"leastaction run {name}{quick}"
                  + ("   # the < 1 min preset; drop --quick for the full one" if quick else ""),
                  "```", ""]
        source = f"experiments/catalog/{module}.py"
        links = [f"module [`{source}`](source/{source}.md)"]
        test = _test_file(module)
        if test:
            links.append(f"test [`{test}`](source/{test}.md)")
        lines += ["Source: " + ", ".join(links) + ".", ""]
        about = inspect.getdoc(sys.modules[experiment.run.__module__])
        if about:  # shown verbatim: plain-text equations, not Markdown
            lines += ['??? abstract "What it computes (the module docstring)"', "", "    ```text"]
            lines += [f"    {line}".rstrip() for line in about.splitlines()]
            lines += ["    ```", ""]
        fields = dataclasses.fields(experiment.config)
        lines += ["??? note \"Default configuration\"", "", "    | key | default |", "    | --- | --- |"]
        lines += [f"    | `{f.name}` | {_value(getattr(experiment.config, f.name))} |" for f in fields]
        lines.append("")
        for target in sorted(experiment.figures):
            if (ROOT / "figures" / f"{target}.png").exists():
                lines += [f"![{name}: {target}](figures/{target}.png)", ""]
    return "\n".join(lines) + "\n"


def _source_page(path: str) -> str:
    text = (ROOT / path).read_text()
    return f"---\nsearch:\n  exclude: true\n---\n\n# `{path}`\n\n```python\n{text}\n```\n"


def cited_sources(markdown: list[str]) -> list[str]:
    """The repository files (`source/<path>.md` links) cited by the given Markdown texts."""
    found = {m for text in markdown for m in SOURCE_LINK.findall(text)}
    missing = sorted(p for p in found if not (ROOT / p).is_file())
    if missing:
        raise FileNotFoundError(f"the docs cite files that do not exist: {', '.join(missing)}")
    return sorted(found)


MATHJAX_DISTRIBUTION = "django-static-mathjax"
MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output", "ui", "a11y")
"""What the site serves of MathJax's `es5/` folder: the combined component and the folders it
loads from (TeX extensions on demand, CHTML fonts, the menu); not the speech engine (`sre/`)."""


def mathjax_files() -> list[tuple[str, Path]]:
    """`(path under javascripts/mathjax/, file)` for the MathJax files the site serves; a
    `FileNotFoundError` naming the package when it is not installed."""
    import importlib.metadata

    try:
        root = Path(importlib.metadata.distribution(MATHJAX_DISTRIBUTION).locate_file("mathjax/static/mathjax/es5"))
    except importlib.metadata.PackageNotFoundError:
        root = None
    if root is None or not (root / "tex-mml-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax for the docs comes from the {MATHJAX_DISTRIBUTION!r} package: "
                                'pip install -e ".[docs]"')
    found = []
    for part in MATHJAX_PARTS:
        paths = [root / part] if (root / part).is_file() else sorted(q for q in (root / part).rglob("*") if q.is_file())
        found += [(q.relative_to(root).as_posix(), q) for q in paths]
    return found


def on_files(files: Files, config) -> Files:
    """Add the generated catalogue, the repository's figures, the cited source files and MathJax."""
    for relative, path in mathjax_files():
        files.append(File.generated(config, f"javascripts/mathjax/{relative}", abs_src_path=str(path)))
    catalogue = catalogue_markdown()
    files.append(File.generated(config, "catalogue.md", content=catalogue))
    for png in sorted((ROOT / "figures").glob("*.png")):
        files.append(File.generated(config, f"figures/{png.name}", abs_src_path=str(png)))
    pages = [catalogue] + [Path(f.abs_src_path).read_text() for f in files.documentation_pages()
                           if f.abs_src_path is not None]
    for relative in cited_sources(pages):
        files.append(File.generated(config, f"source/{relative}.md", content=_source_page(relative)))
    return files
