"""Precomputed figure explorers: controls that work in a static page.

A chapter's probe is a drawing function of a few parameters. :func:`explore` draws it
once for every combination of the parameter values a reader may choose, and shows the
images with one control per parameter. A few lines of vanilla JavaScript swap the image
when a control changes, so the explorer works the same without a kernel (the rendered
book), in Jupyter, and in Colab: no ipywidgets, no RequireJS, no external script.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import numbers

__all__ = ["Explorer", "explore"]

#: Default cap on the number of precomputed images (a page stays light).
MAX_IMAGES = 40

_CALLS = itertools.count(1)

_STYLE = """\
.fdl-explorer{margin:0.5em 0 1em 0;max-width:100%}
.fdl-explorer-controls{display:flex;flex-wrap:wrap;gap:0.4em 1.2em;\
align-items:center;margin:0 0 0.4em 0}
.fdl-explorer-control{display:flex;flex-wrap:wrap;align-items:center;gap:0.2em 0.5em;\
border:0;margin:0;padding:0;min-width:0}
.fdl-explorer-control legend{float:left;width:auto;padding:0;margin:0 0.5em 0 0;\
font-size:inherit;font-weight:inherit;line-height:inherit;border:0}
.fdl-explorer-control input[type=range]{width:11em;max-width:60vw}
.fdl-explorer-control output{min-width:3em;font-variant-numeric:tabular-nums}
.fdl-explorer-control label{white-space:nowrap}
.fdl-explorer figure{margin:0}
.fdl-explorer img{display:block;max-width:100%;height:auto}
.fdl-explorer img[hidden]{display:none}
.fdl-explorer figcaption{font-size:0.9em;margin-top:0.3em}
.fdl-explorer-state{font-family:monospace}"""

_SCRIPT = """\
(function () {
  var id = %s, s = document.currentScript;
  var root = (s && s.parentNode && s.parentNode.id === id) ? s.parentNode
    : document.getElementById(id);
  if (!root) { return; }
  var names = %s, shown = %s, state = [];
  var images = root.querySelectorAll("img[data-index]");
  var stateText = root.querySelector(".fdl-explorer-state");
  function controlValue(i) {
    var el = root.querySelector("[data-control='" + i + "']");
    if (el.tagName === "FIELDSET") {
      var on = el.querySelector("input:checked");
      return on ? +on.value : 0;
    }
    return +el.value;
  }
  function update() {
    var k = 0, parts = [];
    for (var i = 0; i < names.length; i++) {
      state[i] = controlValue(i);
      k = k * shown[i].length + state[i];
      parts.push(names[i] + " = " + shown[i][state[i]]);
      var out = root.querySelector("output[data-control='" + i + "']");
      if (out) { out.textContent = shown[i][state[i]]; }
      var range = root.querySelector("input[type=range][data-control='" + i + "']");
      if (range) { range.setAttribute("aria-valuetext", shown[i][state[i]]); }
    }
    for (var j = 0; j < images.length; j++) {
      images[j].hidden = (+images[j].getAttribute("data-index") !== k);
    }
    stateText.textContent = parts.join(", ");
  }
  var inputs = root.querySelectorAll("input, select");
  for (var m = 0; m < inputs.length; m++) {
    inputs[m].addEventListener("input", update);
    inputs[m].addEventListener("change", update);
  }
  update();
})();"""


class Explorer:
    """A precomputed explorer; displays itself as HTML (see :func:`explore`).

    Attributes
    ----------
    controls : dict
        Parameter name -> list of values, as given.
    images : list of bytes
        One PNG per combination, in ``itertools.product`` order of ``controls``.
    element_id : str
        The id of the explorer's root element.
    """

    def __init__(self, controls, images, element_id, caption, alt, labels, shown):
        self.controls = controls
        self.images = images
        self.element_id = element_id
        self.caption = caption
        self.alt = alt
        self.labels = labels
        self.shown = shown

    def __len__(self):
        return len(self.images)

    def _state_text(self, indices):
        return ", ".join(f"{self.labels[name]} = {self.shown[name][i]}"
                         for name, i in zip(self.controls, indices))

    def __repr__(self):
        sizes = " x ".join(f"{name} ({len(values)} values)"
                           for name, values in self.controls.items())
        return f"Explorer: {len(self.images)} precomputed images over {sizes}"

    def _controls_html(self):
        parts = []
        for i, (name, values) in enumerate(self.controls.items()):
            cid = f"{self.element_id}-{i}"
            label = html.escape(self.labels[name])
            shown = self.shown[name]
            if _is_numeric(values):
                parts.append(
                    f'<div class="fdl-explorer-control">'
                    f'<label for="{cid}">{label}</label>'
                    f'<input type="range" id="{cid}" data-control="{i}" min="0" '
                    f'max="{len(values) - 1}" step="1" value="0" '
                    f'aria-valuetext="{html.escape(shown[0])}">'
                    f'<output for="{cid}" data-control="{i}">'
                    f'{html.escape(shown[0])}</output></div>')
            elif len(values) <= 6:
                options = "".join(
                    f'<label><input type="radio" name="{cid}" value="{j}"'
                    f'{" checked" if j == 0 else ""}> {html.escape(text)}</label>'
                    for j, text in enumerate(shown))
                parts.append(
                    f'<fieldset class="fdl-explorer-control" data-control="{i}">'
                    f'<legend>{label}</legend>{options}</fieldset>')
            else:
                options = "".join(
                    f'<option value="{j}"{" selected" if j == 0 else ""}>'
                    f'{html.escape(text)}</option>' for j, text in enumerate(shown))
                parts.append(
                    f'<div class="fdl-explorer-control">'
                    f'<label for="{cid}">{label}</label>'
                    f'<select id="{cid}" data-control="{i}">{options}</select></div>')
        return "".join(parts)

    def _images_html(self):
        sizes = [range(len(values)) for values in self.controls.values()]
        parts = []
        for k, (png, indices) in enumerate(zip(self.images, itertools.product(*sizes))):
            alt = html.escape(f"{self.alt} ({self._state_text(indices)})")
            data = base64.b64encode(png).decode("ascii")
            hidden = "" if k == 0 else " hidden"
            parts.append(f'<img data-index="{k}" alt="{alt}"{hidden} '
                         f'src="data:image/png;base64,{data}">')
        return "\n".join(parts)

    def _repr_html_(self):
        eid = self.element_id
        caption = (f'<span class="fdl-explorer-caption">{html.escape(self.caption)}'
                   f'</span> ' if self.caption else "")
        first = self._state_text([0] * len(self.controls))
        names = json.dumps([self.labels[name] for name in self.controls])
        shown = json.dumps([self.shown[name] for name in self.controls])
        # "</" would end the script element early; JSON allows "<\/" instead.
        script = (_SCRIPT % (json.dumps(eid), names, shown)).replace("</", "<\\/")
        return (
            f'<div class="fdl-explorer" id="{eid}" data-fancydl-explorer="'
            f'{len(self.images)}">\n<style>{_STYLE}</style>\n'
            f'<div class="fdl-explorer-controls" role="group" '
            f'aria-label="Parameters of the figure">{self._controls_html()}</div>\n'
            f'<figure>\n{self._images_html()}\n'
            f'<figcaption>{caption}(<span class="fdl-explorer-state" '
            f'aria-live="polite">{html.escape(first)}</span>)</figcaption>\n'
            f'</figure>\n'
            f'<script>\n{script}\n</script>\n</div>')


def _is_numeric(values):
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)


def _format_value(value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):g}"
    return str(value)


def _check_controls(controls, labels, formats):
    if not isinstance(controls, dict):
        raise TypeError("controls must be a dict name -> list of values, "
                        f"got {type(controls).__name__}")
    if not controls:
        raise ValueError("controls must name at least one parameter, got {}")
    shown = {}
    for name, values in controls.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"controls keys must be parameter names of draw, got {name!r}")
        if not isinstance(values, (list, tuple)):
            raise TypeError(f"controls[{name!r}] must be a list of values, "
                            f"got {type(values).__name__}")
        if not values:
            raise ValueError(f"controls[{name!r}] must hold at least one value, got []")
        fmt = formats.get(name, _format_value)
        shown[name] = [str(fmt(v)) for v in values]
        if len(set(shown[name])) != len(values):
            raise ValueError(f"controls[{name!r}] has values that display alike: "
                             f"{shown[name]}")
    for argument, mapping in (("labels", labels), ("formats", formats)):
        unknown = sorted(set(mapping) - set(controls))
        if unknown:
            raise ValueError(f"{argument} names parameters that are not in controls: "
                             f"{unknown}; controls has {list(controls)}")
    return shown


#: Narrowest image an explorer shows, in pixels. A figure drawn small (4 in) at the
#: modest default dpi would show its 7-9 pt text at 8-10 px; such figures are rendered
#: at a higher dpi instead, so their text stays legible in the book's column.
MIN_IMAGE_WIDTH_PX = 480


def _render_png(fig, dpi, palette):
    buffer = io.BytesIO()
    dpi = max(dpi, MIN_IMAGE_WIDTH_PX / fig.get_figwidth())
    # No "Software" (version) chunk: the same figure gives the same bytes.
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    if palette is None:
        return buffer.getvalue()
    from PIL import Image

    # A plot has few colours: an indexed PNG is about three times smaller.
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    indexed = image.quantize(colors=palette, method=Image.Quantize.MEDIANCUT,
                             dither=Image.Dither.NONE)
    small = io.BytesIO()
    indexed.save(small, format="png", optimize=True)
    return small.getvalue()


def explore(draw, controls, *, caption=None, alt=None, labels=None, formats=None,
            dpi=80, palette=256, max_images=MAX_IMAGES):
    """Precompute a figure for every combination of parameters; switch in the page.

    The result displays (as the last expression of a cell, or through
    ``IPython.display.display``) a self-contained block of HTML: one labelled control
    per parameter above the image, and a caption naming the current values. A numeric
    parameter gets a range slider over the index of its values with the current value
    beside it; any other parameter gets radio buttons (a select for more than six
    values). Native inputs keep it keyboard accessible, and it wraps to a 390 px phone
    screen. A few lines of vanilla JavaScript swap the image, so it works without a
    kernel in the rendered book, and in Jupyter and Colab alike; without JavaScript
    the first image shows.

    Parameters
    ----------
    draw : callable
        ``draw(**params)`` returns a matplotlib Figure; it is closed after rendering.
    controls : dict of str -> list
        Parameter name -> the values a reader may choose; the first is the initial one.
    caption : str, optional
        Fixed part of the caption, before the current parameter values.
    alt : str, optional
        Alt text of every image, followed by its parameter values; defaults to the
        caption, or "Figure".
    labels : dict of str -> str, optional
        Visible label of a control, also used in the caption and alt text (default:
        the parameter name).
    formats : dict of str -> callable, optional
        Value -> text shown for it (default: ``{:g}`` for floats, ``str`` otherwise).
        Two values of one parameter must not display alike.
    dpi : float
        Resolution of the PNG images (modest: a page holds all of them). A figure
        narrower than ``MIN_IMAGE_WIDTH_PX`` pixels at this dpi is rendered at the
        dpi that makes it that wide, so that its text stays legible.
    palette : int or None
        Store each image as an indexed PNG of at most this many colours (2 to 256;
        a plot rarely needs more, and the page gets about three times lighter), or
        None for full-colour PNGs.
    max_images : int
        Largest number of combinations allowed.

    Returns
    -------
    Explorer
        Its ``_repr_html_`` is the explorer; its text form is a one-line summary.

    Raises
    ------
    TypeError
        If ``draw`` is not callable or does not return a Figure, or ``controls`` is
        not a dict of lists.
    ValueError
        If a parameter has no values or two that display alike, if ``labels`` or
        ``formats`` name an unknown parameter, or if there are more than
        ``max_images`` combinations.

    Notes
    -----
    The HTML is deterministic, so nbval compares it: element ids are a hash of the
    caption and the controls plus a per-kernel call counter (unique within a page,
    identical when a notebook is re-executed top to bottom), and the PNGs carry no
    version or date. Like nbval's own default for ``image/png``, the book's
    ``tests/nbval_sanitize.cfg`` masks the base64 image data, so a pixel that
    differs between platforms does not fail a chapter while every control, label,
    caption and alt text is still compared.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> def draw(k, mode):
    ...     fig, ax = plt.subplots(figsize=(2, 1.5))
    ...     ax.set_title(f"{mode}, k = {k}")
    ...     return fig
    >>> explore(draw, {"k": [2, 3], "mode": ["max", "avg"]}, caption="Pooling")
    Explorer: 4 precomputed images over k (2 values) x mode (2 values)
    """
    if not callable(draw):
        raise TypeError(f"draw must be callable, got {type(draw).__name__}")
    labels = dict(labels or {})
    formats = dict(formats or {})
    shown = _check_controls(controls, labels, formats)
    if not (isinstance(dpi, numbers.Real) and dpi > 0):
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")
    if palette is not None and not (isinstance(palette, numbers.Integral)
                                    and 2 <= palette <= 256):
        raise ValueError(f"palette must be None or an int from 2 to 256, got {palette!r}")
    count = 1
    for values in controls.values():
        count *= len(values)
    if count > max_images:
        raise ValueError(f"controls give {count} combinations, more than max_images="
                         f"{max_images}: offer fewer values")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    images = []
    for combination in itertools.product(*controls.values()):
        params = dict(zip(controls, combination))
        fig = draw(**params)
        try:
            if not isinstance(fig, Figure):
                raise TypeError(f"draw must return a matplotlib Figure, got "
                                f"{type(fig).__name__} for {params}")
            images.append(_render_png(fig, dpi, palette))
        finally:
            if isinstance(fig, Figure):
                plt.close(fig)
    key = json.dumps([caption, {n: shown[n] for n in controls}]).encode("utf-8")
    element_id = (f"fdl-explorer-{hashlib.sha1(key).hexdigest()[:8]}-"
                  f"{next(_CALLS)}")
    return Explorer(dict(controls), images, element_id, caption,
                    alt or caption or "Figure",
                    {name: labels.get(name, name) for name in controls}, shown)
