"""Sphinx fixes and additions for the rendered book (a Jupyter Book local extension).

- An author-year bibliography: the reference list is labelled and sorted the way the
  text cites ("He et al. 2016"), and titles keep the capitals the .bib gives them.
- Each script is included once per page (sphinx-thebe adds its configuration script
  twice, which throws ``THEBE_JS_URL has already been declared`` in every page).
- Markdown that a cell displays (``IPython.display.Markdown``, e.g. the tables of
  ``fancydl.viz.channels.markdown_table``) is parsed as MyST, like the chapters' own
  text: myst-nb's default, CommonMark, has neither tables nor ``$...$`` math, so those
  outputs showed as lines of pipes and raw TeX. ``nb_render_markdown_format`` in
  ``_config.yml`` still wins when set there.
- The book's own CSS and JavaScript (``book/_static``): sidebar toggles that work on
  phones and desktops, figures that open full size, math and tables that scroll
  instead of being cut off.
"""

from __future__ import annotations

import collections
import pathlib

import latexcodec  # noqa: F401  (registers the "latex" codec used below)
from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.template import field, sentence

STATIC = pathlib.Path(__file__).resolve().parent.parent / "_static"


def _plain_last_name(person):
    """``M{\\"u}ller`` -> ``Müller``: a last name as a reader reads it."""
    latex = " ".join(person.prelast_names + person.last_names)
    decoded = latex.encode("utf-8").decode("latex")
    return str(Text.from_latex(decoded)).replace("{", "").replace("}", "")


class AuthorYearLabels(BaseLabelStyle):
    """Labels "Bridle, 1990", "Dumoulin and Visin, 2016", "He et al., 2016", as the text cites."""

    def format_labels(self, sorted_entries):
        labels = [self.format_label(entry) for entry in sorted_entries]
        counts = collections.Counter(labels)
        seen = collections.Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                yield f"{label}{'abcdefghijklmnopqrstuvwxyz'[seen[label] - 1]}"
            else:
                yield label

    def format_label(self, entry):
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_plain_last_name(person) for person in persons]
        if not names:
            who = entry.fields.get("key", entry.key)
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    """unsrt's entries, sorted by author and year, with titles cased as written."""

    default_label_style = "fancybook-author-year"
    default_sorting_style = "author_year_title"

    def format_title(self, e, which_field, as_sentence=True):
        title = field(which_field)
        return sentence[title] if as_sentence else title


register_plugin("pybtex.style.labels", "fancybook-author-year", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "fancybook-author-year", AuthorYearStyle)


def _include_each_script_once(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    unique, seen = [], set()
    for script in scripts:
        # An inline script is added once with filename None and once with "".
        filename = getattr(script, "filename", script) or ""
        key = (filename, tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def _render_markdown_outputs_as_myst(app, config):
    if "nb_render_markdown_format" not in config._raw_config:
        config.nb_render_markdown_format = "myst"


def setup(app):
    app.config.html_static_path.append(str(STATIC))
    app.add_css_file("fancybook.css")
    app.add_js_file("fancybook.js", defer="defer")
    app.connect("html-page-context", _include_each_script_once, priority=900)
    app.connect("config-inited", _render_markdown_outputs_as_myst)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
