"""The documentation: every public name has a docstring, the catalogue page lists every
experiment, and the built site renders its equations.

- `test_every_public_name_has_a_docstring` walks every name re-exported by `lagrangian`,
  `integrators`, `experiments` and the public subpackages of `experiments` (`__all__`, or the
  public names when a package has none) and fails on a class, function or module without its
  own docstring (a dataclass's generated `Name(field, ...)` signature does not count).
- `test_every_public_function_and_class_has_an_example`: the same walk over `lagrangian`,
  `integrators`, `experiments` and `experiments.harness` requires an `Example:` section;
  `test_docstring_examples_run` (marked `docs`, ~30 s) runs those examples as doctests.
- `test_catalogue_page_lists_every_experiment` checks the page the build hook generates
  against `experiments.CATALOG` (no mkdocs needed).
- `test_site_renders_math` (marked `docs`; needs the `docs` extra) builds the site with
  `mkdocs build --strict` into a temporary folder, or, with `--site-dir DIR`, reads a site
  already built there (`.ci/run` builds once and passes it), and searches the index and theory
  pages for pymdownx.arithmatex's rendered math container and the site's own MathJax.
- `test_site_loads_nothing_from_the_network`: no script, style sheet, font or image of the
  built site comes from another host.
- `test_theory_page_typesets_its_math_offline_in_a_browser`: headless chromium (skipped, with
  the reason, when it is not installed) loads the theory page from disk with the network
  refused and finds MathJax's typeset math in the DOM; it leaves `theory-offline.png` in the site.
"""

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lagrangian", "integrators", "experiments")


def _public_packages() -> list[str]:
    """The three packages and every public subpackage of them (directories with `__init__.py`)."""
    names = []
    for name in PACKAGES:
        names.append(name)
        package = importlib.import_module(name)
        names += [f"{name}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
                  if m.ispkg and not m.name.startswith("_")]
    return names


def _exported(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return list(names)


def _own_docstring(obj) -> str | None:
    """The docstring written for `obj` itself: not inherited, not a dataclass's generated one."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        if doc and re.match(rf"{re.escape(obj.__name__)}\(.*\)$", doc.strip(), re.S):
            return None
        return doc
    return getattr(obj, "__doc__", None)


def _documentable(obj) -> bool:
    return inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj) or inspect.isbuiltin(obj)


def undocumented() -> list[str]:
    """`package.name` for every public class, function or module without its own docstring."""
    missing = []
    for package_name in _public_packages():
        package = importlib.import_module(package_name)
        if not (package.__doc__ or "").strip():
            missing.append(package_name)
        for name in _exported(package):
            obj = getattr(package, name)
            if _documentable(obj) and not (_own_docstring(obj) or "").strip():
                missing.append(f"{package_name}.{name}")
    return missing


def test_the_walk_covers_the_subpackages_and_can_fail():
    packages = _public_packages()
    assert {"experiments.harness", "experiments.correspondences", "experiments.catalog"} <= set(packages)

    class NoDoc:
        pass

    def no_doc():
        pass

    from dataclasses import dataclass

    @dataclass
    class Generated:
        x: int

    assert _own_docstring(NoDoc) is None and _own_docstring(no_doc) is None
    assert _own_docstring(Generated) is None  # dataclass's "Generated(x: int)" is not a docstring
    assert _own_docstring(undocumented)


@pytest.mark.smoke
def test_every_public_name_has_a_docstring():
    missing = undocumented()
    assert not missing, f"{len(missing)} public names without a docstring: {', '.join(missing)}"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    pytest.importorskip("mkdocs")  # the hooks module imports mkdocs' File types
    spec.loader.exec_module(module)
    return module


EXAMPLE_PACKAGES = ("lagrangian", "integrators", "experiments", "experiments.harness")


def test_every_public_function_and_class_has_an_example():
    """The API's core (not the correspondences' constructions, not the catalogue) shows how each
    name is called: an `Example:` section (a doctest, run by `test_docstring_examples_run`)."""
    missing = []
    for package_name in EXAMPLE_PACKAGES:
        package = importlib.import_module(package_name)
        for name in _exported(package):
            obj = getattr(package, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and "Example:" not in (_own_docstring(obj) or ""):
                missing.append(f"{package_name}.{name}")
    assert not missing, f"{len(missing)} public names without an Example section: {', '.join(missing)}"


@pytest.mark.smoke
def test_catalogue_page_lists_every_experiment():
    from experiments import CATALOG

    page = _hooks().catalogue_markdown()
    for name, experiment in CATALOG.items():
        assert f"## `{name}` {{#{name}}}" in page, name
        assert f"leastaction run {name}" in page
        for target in experiment.figures:
            assert (ROOT / "figures" / f"{target}.png").exists(), f"{name} declares a missing figure {target}"
            assert f"(figures/{target}.png)" in page


def test_cited_source_files_exist():
    hooks = _hooks()
    pages = [p.read_text() for p in (ROOT / "docs").rglob("*.md")]
    cited = hooks.cited_sources(pages)
    assert "tests/lagrangian/test_action.py" in cited and len(cited) > 10
    with pytest.raises(FileNotFoundError, match="tests/no_such_test.py"):
        hooks.cited_sources(["see [x](source/tests/no_such_test.py.md)"])


@pytest.fixture(scope="module")
def site(request, tmp_path_factory) -> Path:
    given = request.config.getoption("--site-dir")
    if given:
        return Path(given)
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


MATH = re.compile(r'<(?:span|div) class="arithmatex">\s*\\[\(\[].+?\\[\)\]]\s*</(?:span|div)>', re.S)


@pytest.mark.docs
@pytest.mark.parametrize("page", ["index.html", "theory/index.html"])
def test_site_renders_math(site, page):
    html = (site / page).read_text(encoding="utf-8")
    blocks = MATH.findall(html)
    # index: the action (display) and inline symbols; theory: every section's equations
    assert len(blocks) >= (5 if page == "index.html" else 40), len(blocks)
    assert any('<div class="arithmatex">' in b and r"\int_0^T" in b for b in blocks)
    assert "mathjax" in html.lower()  # the MathJax loader that typesets the containers
    assert 'src="../javascripts/mathjax/tex-mml-chtml.js"' in html or 'src="javascripts/mathjax/tex-mml-chtml.js"' in html


LOADS = re.compile(r'<(?:script|link|img|iframe|source|audio|video|embed|object)\b[^>]*?\b(?:src|href|data)='
                   r'["\']((?:[a-z][a-z0-9+.-]*:)?//[^"\']*)', re.I)
"""A resource the browser fetches (script, style sheet, font preload, image, frame) from another host;
plain links (`<a href>`) are navigation, not loads, and may point anywhere."""
CSS_LOADS = re.compile(r'(?:url\(\s*["\']?|@import\s+["\'])((?:[a-z][a-z0-9+.-]*:)?//[^"\')\s]*)', re.I)


@pytest.mark.docs
def test_site_loads_nothing_from_the_network(site):
    """No page, style sheet or inline style of the built site fetches anything from another host
    (MathJax is served by the site, fonts are the system's), and the check itself can fail."""
    assert LOADS.findall('<script src="https://unpkg.com/mathjax@3/es5/tex-mml-chtml.js"></script>')
    assert LOADS.findall("<link rel=preconnect href='//fonts.gstatic.com'>")
    assert not LOADS.findall('<a href="https://arxiv.org/abs/2602.02281">paper</a>')
    assert CSS_LOADS.findall('@import url("https://fonts.googleapis.com/css?family=Roboto")')
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    found = {str(p.relative_to(site)): LOADS.findall(p.read_text(encoding="utf-8")) for p in pages}
    found.update({str(p.relative_to(site)): CSS_LOADS.findall(p.read_text(encoding="utf-8"))
                  for p in site.rglob("*.css")})
    external = {page: urls for page, urls in found.items() if urls}
    assert not external, external
    assert (site / "javascripts" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert list((site / "javascripts" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))


def _chromium() -> str | None:
    import shutil

    return next((path for path in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if path), None)


@pytest.mark.docs
def test_theory_page_typesets_its_math_offline_in_a_browser(site):
    """A real headless browser (Debian's chromium, which `.ci/run` installs) opens the theory page
    from disk with every network request refused, runs its scripts, and the DOM it dumps holds
    MathJax's typeset math for the page's equations; a screenshot is kept in the site folder
    (`theory-offline.png`, the CI artefact)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on PATH (apt-get install chromium); .ci/run installs it")
    page = (site / "theory" / "index.html").resolve()
    offline = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--allow-file-access-from-files", "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
               "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=20000", "--window-size=1280,1600"]
    profile = site / ".chromium-profile"
    try:
        dom = subprocess.run([browser, *offline, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=180)
        assert dom.returncode == 0, dom.stderr[-3000:]
        shot = site / "theory-offline.png"
        subprocess.run([browser, *offline, f"--user-data-dir={profile}", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, text=True, timeout=180, check=True)
    finally:
        import shutil

        shutil.rmtree(profile, ignore_errors=True)
    typeset = dom.stdout.count("<mjx-container")
    source = len(MATH.findall(page.read_text(encoding="utf-8")))
    assert typeset >= source >= 40, (typeset, source)
    assert "<mjx-merror" not in dom.stdout  # no TeX error, no extension that failed to load
    assert shot.stat().st_size > 10_000


@pytest.mark.docs
def test_site_has_the_api_and_catalogue(site):
    import integrators
    import lagrangian

    api = (site / "api" / "lagrangian" / "index.html").read_text(encoding="utf-8")
    assert all(f'id="lagrangian.{name}"' in api for name in lagrangian.__all__)
    api = (site / "api" / "integrators" / "index.html").read_text(encoding="utf-8")
    assert all(f'id="integrators.{name}"' in api for name in integrators.__all__)
    from experiments import CATALOG

    catalogue = (site / "catalogue" / "index.html").read_text(encoding="utf-8")
    assert all(f'id="{name}"' in catalogue for name in CATALOG)


def _examples():
    """Every doctest (`>>>`) in the docstring of a public name, with its module's globals."""
    import doctest

    import jax
    import jax.numpy as jnp

    import experiments
    import integrators
    import lagrangian

    finder = doctest.DocTestFinder(recurse=False)
    tests, seen = [], set()
    for package_name in _public_packages():
        package = importlib.import_module(package_name)
        for name in _exported(package):
            obj = getattr(package, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            globs = dict(vars(sys.modules[obj.__module__]))
            globs.update(jax=jax, jnp=jnp, lagrangian=lagrangian, integrators=integrators, experiments=experiments)
            tests += [t for t in finder.find(obj, f"{package_name}.{name}", globs=globs) if t.examples]
    return tests


@pytest.mark.docs
def test_docstring_examples_run():
    """The `Example` sections are doctests and produce what they print (float64)."""
    import doctest

    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    tests = _examples()
    assert len(tests) >= 110  # 116 when written: every function and class of EXAMPLE_PACKAGES
    for test in tests:
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} docstring examples failed (printed above)"
