"""MkDocs hooks of canonflow's site: the parts of the site generated from the code and the repository.

* ``docs/cli.md``: the marker ``<!-- cli-options -->`` becomes one table per subcommand: its options, read from
  ``canonflow.cli.COMMANDS``, and the run flags that ``canonflow.cli.options.add_arguments`` adds.
* ``api/*.md``: one API page per top-level module of ``canonflow``. Every public name (each module's
  ``__all__``) is documented once, under the shallowest module that exports it; a new module's page that the
  ``nav`` of ``mkdocs.yml`` does not list yet is added at the end of the "API reference" section.
* ``results/``: ``experiments/results/*.md`` and the reference runs' figures, served from where they are.
* ``tutorials/``: the notebooks, rendered as pages (they are stored without outputs) and offered for download.

``ReStructuredTextRoles`` is a griffe extension that the ``mkdocstrings`` options of ``mkdocs.yml`` load from this
file: it turns the reStructuredText of the docstrings (``:func:`name```, ``text::`` before a literal block,
``>>>`` examples) into Markdown.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import re
import types
from pathlib import Path

import griffe
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.canonflow")  # under "mkdocs": its warnings fail a --strict build

ROOT = Path(__file__).resolve().parents[1]
CLI_MARKER = "<!-- cli-options -->"
GENERATED: list[str] = []  # the pages on_files generated, which on_nav puts in the nav
ROLE = re.compile(r":(?:py:)?[a-z]+:`[~!]?([^`]+)`")


def _markdown_text(text: str) -> str:
    """``text`` with reStructuredText roles as code spans (``:meth:`~a.b``` → ```b```) and ``::`` as ``:``."""
    text = ROLE.sub(lambda match: f"``{match.group(1)}``", text)
    return re.sub(r"(\S)::$", r"\1:", text, flags=re.M)


def _fence_doctests(text: str) -> str:
    """``text`` with every ``>>>`` example (prompts, continuations, expected output) in a ``pycon`` fence."""
    lines, out, index = text.splitlines(), [], 0
    while index < len(lines):
        if not lines[index].lstrip().startswith(">>>"):
            out.append(lines[index])
            index += 1
            continue
        indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
        out.append(f"{indent}```pycon")
        while index < len(lines) and lines[index].strip():
            out.append(lines[index])
            index += 1
        out.append(f"{indent}```")
    return "\n".join(out)


SECTION = re.compile(r"^[A-Z][A-Za-z ]*:\s*$")  # a Google-style section title: "Args:", "Returns:", ...


def _unquote_displays(text: str) -> str:
    """``text`` with the ``code`` marks of reStructuredText block quotes (an indented block after a blank line,
    outside a section and not a literal block after ``::``) removed: they hold displayed formulas, and Markdown
    shows an indented block as code already."""
    lines, heading, display = text.splitlines(), "", False
    for index, line in enumerate(lines):
        if line.strip() and not line.startswith("    "):
            heading, display = line, False
        elif line.startswith("    ") and index > 0 and not lines[index - 1].strip():
            display = not SECTION.match(heading) and not heading.rstrip().endswith("::")
        if display:
            lines[index] = line.replace("``", "")
    return "\n".join(lines)


class ReStructuredTextRoles(griffe.Extension):
    """Docstrings as Markdown: roles as code spans, ``::`` as ``:``, displayed formulas without code marks,
    ``>>>`` examples fenced."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _fence_doctests(_markdown_text(_unquote_displays(obj.docstring.value)))


# --- the API reference -----------------------------------------------------------------------------------------


def _public_modules() -> list[str]:
    import canonflow

    found = pkgutil.walk_packages(canonflow.__path__, "canonflow.")
    return ["canonflow", *sorted(m.name for m in found if not any(p.startswith("_") for p in m.name.split(".")))]


def _documented_names(modules: list[str]) -> dict[str, list[str]]:
    """Each module's public names that are documented under it: those of its ``__all__`` that no shallower
    module exports (submodules, documented by their own directive, are left out)."""
    home: dict[tuple[str, int], str] = {}
    for name in sorted(modules, key=lambda module: module.count(".")):
        module = importlib.import_module(name)
        for member in getattr(module, "__all__", ()):
            value = getattr(module, member)
            if not isinstance(value, types.ModuleType) and f"{name}.{member}" not in modules:
                home.setdefault((member, id(value)), name)
    documented: dict[str, list[str]] = {name: [] for name in modules}
    for (member, _), name in home.items():
        documented[name].append(member)
    return documented


def _directive(module: str, members: list[str]) -> str:
    listed = "".join(f"\n        - {member}" for member in members) if members else " false"
    return f"::: {module}\n    options:\n      members:{listed}\n"


def _summary(module: str) -> str:
    doc = importlib.import_module(module).__doc__ or ""
    return _markdown_text(doc.strip().split("\n\n")[0].replace("\n", " "))


def api_pages() -> dict[str, str]:
    """The API pages by path: ``api/index.md`` (the package and a table of pages) and ``api/<module>.md``."""
    modules = _public_modules()
    members = _documented_names(modules)
    tops = [name for name in modules if name.count(".") == 1]
    rows = "".join(f"| [`{top}`]({top.split('.')[1]}.md) | {_summary(top)} |\n" for top in tops)
    pages = {
        "api/index.md": "# API reference\n\n"
        "Generated from the docstrings. Each public name is documented under the shallowest module that exports it"
        " (`canonflow.transforms.MomentumShear`, not `canonflow.transforms.shears.MomentumShear`).\n\n"
        f"| module | |\n|---|---|\n{rows}\n{_directive('canonflow', members['canonflow'])}"
    }
    for top in tops:
        inside = [name for name in modules if name == top or name.startswith(top + ".")]
        body = "\n".join(_directive(name, members[name]) for name in inside)
        pages[f"api/{top.split('.')[1]}.md"] = f"# {top}\n\n{body}"
    return pages


# --- the command line ------------------------------------------------------------------------------------------


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _option_row(option: object) -> str:
    """A table row: the flag (``--name``, ``--name/--no-name`` or ``NAME``), default, choices, meaning."""
    flag, default = "--" + option.name.replace("_", "-"), option.default
    if getattr(option, "positional", False):
        flag, shown = option.name.upper(), "required"
    elif isinstance(default, bool):
        flag, shown = f"{flag}/--no-{flag[2:]}", f"`{default}`"
    else:
        shown = _cell(option.default_text) if default is None else f"`{default!r}`"
    choices = ", ".join(f"`{choice}`" for choice in option.choices) if option.choices else ""
    return f"| `{flag}` | {shown} | {choices} | {_cell(_markdown_text(option.help))} |\n"


class _RecordingParser(argparse.ArgumentParser):
    """An argument parser that keeps the names and keyword arguments of every ``add_argument`` call."""

    def __init__(self) -> None:
        super().__init__(add_help=False)
        self.recorded: list[tuple[tuple[str, ...], dict]] = []

    def add_argument(self, *names: str, **kwargs: object) -> argparse.Action:
        self.recorded.append((names, kwargs))
        return super().add_argument(*names, **kwargs)


def _run_flag_rows(command: object) -> str:
    """Rows of the run flags that ``canonflow.cli.options.add_arguments`` gives ``command`` besides its options."""
    from canonflow.cli.options import add_arguments

    parser = _RecordingParser()
    add_arguments(parser, command)
    options = {option.flag for option in command.options} | {option.name for option in command.options}
    flags = [(names, kwargs) for names, kwargs in parser.recorded if not options & set(names)]
    return "".join(
        f"| `{'/'.join(names)}{' ' + kwargs['metavar'] if kwargs.get('metavar') else ''}` | | "
        f"| {_cell(_markdown_text(kwargs.get('help', '')))} |\n"
        for names, kwargs in flags
    )


def cli_tables() -> str:
    """One section per subcommand: its help and a table of its options, then of its run flags."""
    from canonflow.cli import COMMANDS

    sections = []
    for command in COMMANDS.values():
        help_text = _markdown_text(command.help)
        sections.append(
            f"### `canonflow {command.name}`\n\n{help_text[:1].upper()}{help_text[1:]}.\n\n"
            "| option | default | choices | meaning |\n|---|---|---|---|\n"
            + "".join(_option_row(option) for option in command.options)
            + _run_flag_rows(command)
        )
    return "\n".join(sections)


# --- the notebooks ---------------------------------------------------------------------------------------------


def notebook_page(path: Path) -> str:
    """A notebook as Markdown: its Markdown cells as they are, its code cells as Python blocks."""
    cells = json.loads(path.read_text())["cells"]
    parts = [
        text if cell["cell_type"] == "markdown" else f"```python\n{text}\n```"
        for cell in cells
        for text in ["".join(cell["source"])]
    ]
    download = f"[Download the notebook]({path.name}) (`notebooks/{path.name}`; the test suite executes it)."
    first, *rest = parts
    return "\n\n".join([first, download, *rest]) + "\n"


# --- events ----------------------------------------------------------------------------------------------------


def on_files(files, config):
    """Add the generated API pages, the results pages with their figures and the notebooks."""
    GENERATED.clear()
    for uri, content in api_pages().items():
        files.append(File.generated(config, uri, content=content))
        GENERATED.append(uri)
    results = ROOT / "experiments" / "results"
    for path in sorted([*results.glob("*.md"), *results.glob("*/*.png"), *results.glob("*/figures/*.png")]):
        files.append(File.generated(config, f"results/{path.relative_to(results).as_posix()}", abs_src_path=str(path)))
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files.append(File.generated(config, f"tutorials/{path.stem}.md", content=notebook_page(path)))
        GENERATED.append(f"tutorials/{path.stem}.md")
        files.append(File.generated(config, f"tutorials/{path.name}", abs_src_path=str(path)))
    return files


def _sections(items):
    for item in items:
        if item.is_section:
            yield item
            yield from _sections(item.children)


def on_nav(nav, config, files):
    """Append a generated page that the nav of ``mkdocs.yml`` does not list to the section of its folder's index
    (a new module's API page to "API reference"), so that every public module is in the nav."""
    listed = {page.file.src_uri for page in nav.pages}
    for uri in GENERATED:
        if uri in listed:
            continue
        index = uri.split("/")[0] + "/index.md"
        section = next(s for s in _sections(nav.items) if index in {c.file.src_uri for c in s.children if c.is_page})
        page = files.get_file_from_path(uri).page
        page.parent = section
        section.children.append(page)
        nav.pages.append(page)
        log.info("%s is not in the nav of mkdocs.yml; added at the end of %r", uri, section.title)
    return nav


def on_page_markdown(markdown, page, config, files):
    """Replace the command-line marker with the option tables."""
    return markdown.replace(CLI_MARKER, cli_tables()) if CLI_MARKER in markdown else markdown
