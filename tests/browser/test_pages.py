"""Every page of the rendered book, opened in Chromium at 1280 px and at 390 px (a phone).

A page fails on: an uncaught JavaScript error or a console error; a failed request to
the book's own server; a request to any other host that no local copy serves; raw TeX
left unrendered or a MathJax error; Markdown table syntax shown as text; a code cell
or a formula that scrolls sideways at 1280 px; code longer than 40 lines shown open
(not collapsed); a broken image; a control in a cell output that changes nothing when
used (an inert control); an animation whose slider or play button does not change the
frame; a sidebar toggle that does not open (phone) or collapse (desktop) the table of
contents.
A full-page screenshot of every page at both widths is kept in ``_build/screenshots``.
"""

from __future__ import annotations

import pathlib
import re
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import cdn_assets  # noqa: E402

WIDTHS = {"desktop": 1280, "phone": 390}
# Third-party console errors that cannot be fixed here, each with its upstream issue.
# Empty: every error the pages used to show has been fixed.
KNOWN_THIRD_PARTY_ERRORS: dict[str, str] = {}

RAW_TEX = re.compile(
    r"\$\$|\\(?:frac|sum|begin|end|mathbf|mathrm|left|right|cdot|partial|hat|sqrt|"
    r"operatorname|text|alpha|sigma|xi|odot|top|le|ge)\b|(?<![\w$])\$[^$\s][^$\n]{0,80}\$")

# A Markdown table that reached the page as text ("| a | b |" then "| --- | --- |"): a
# cell displayed Markdown that was not parsed as MyST.
RAW_MARKDOWN_TABLE = re.compile(r"\|\s*(?:-{3,}|\u2014|\u2013)\s*\|")


def book_pages():
    """The HTML pages of the table of contents, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part.get("chapters", [])]
    return [f"{name}.html" for name in files]


PAGES = book_pages()


def _route_cdn(route, request, external):
    url = request.url
    local = cdn_assets.local_file(url)
    if local is None:
        external.append(url)
        route.abort()
        return
    content_type = {".js": "application/javascript", ".css": "text/css",
                    ".woff2": "font/woff2", ".woff": "font/woff",
                    ".ttf": "font/ttf", ".svg": "image/svg+xml"}.get(
        pathlib.Path(local).suffix, "application/octet-stream")
    route.fulfill(path=str(local), content_type=content_type,
                  headers={"Access-Control-Allow-Origin": "*"})


def open_page(browser, site, page_path, width):
    """Load a page and return (page, problems-so-far list, a finish() that adds more)."""
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  device_scale_factor=1)
    page = context.new_page()
    problems, external = [], []
    page.on("pageerror", lambda error: problems.append(f"uncaught JS error: {error}"))

    def on_console(message):
        if message.type == "error" and not any(
                known in message.text for known in KNOWN_THIRD_PARTY_ERRORS):
            problems.append(f"console error: {message.text[:300]}")

    page.on("console", on_console)
    page.on("requestfailed", lambda request: problems.append(
        f"request failed: {request.url} ({request.failure})")
        if request.url.startswith(site) else None)
    page.on("response", lambda response: problems.append(
        f"HTTP {response.status}: {response.url}")
        if response.url.startswith(site) and response.status >= 400 else None)
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1)"),
                  lambda route, request: _route_cdn(route, request, external))
    page.goto(f"{site}/{page_path}", wait_until="load")
    page.wait_for_load_state("networkidle")
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    return context, page, problems, external


RAW_TEX_JS = """() => {
  const article = document.querySelector('article') || document.body;
  const skip = 'pre, code, script, style, mjx-container, .cell_input, .highlight, '
             + 'textarea, .MathJax, mjx-assistive-mml';
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement && !node.parentElement.closest(skip)) texts.push(node.data);
  }
  return {text: texts.join(' '), errors: article.querySelectorAll('mjx-merror').length};
}"""

SCROLLING_CODE_JS = """() => Array.from(document.querySelectorAll(
    'article div.cell pre, article div.highlight pre'))
  .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
  .map(pre => pre.textContent.split('\\n').reduce(
      (a, b) => (b.length > a.length ? b : a), '').slice(0, 100))"""

# Formulas that scroll sideways in their box. At 1280 px every formula fits the column:
# one that scrolls there is too long for a line (or shows a scroll bar under it on
# desktops with classic scroll bars); on a phone a long formula may scroll.
SCROLLING_MATH_JS = """() => Array.from(document.querySelectorAll('article mjx-container'))
  .filter(math => math.scrollWidth > math.clientWidth + 1)
  .map(math => `${math.textContent.slice(0, 60)} `
               + `(${math.scrollWidth} px in ${math.clientWidth})`)"""

# Code shown open (not inside a collapsed <details>) longer than this many lines: a
# listing that should sit behind a toggle or in the chapter's "Implementation" section.
MAX_OPEN_CODE_LINES = 40
LONG_CODE_JS = """(limit) => Array.from(document.querySelectorAll('article pre'))
  .filter(pre => pre.offsetParent !== null && !pre.closest('details:not([open])'))
  .map(pre => [pre.textContent.replace(/\\n$/, '').split('\\n').length,
               pre.textContent.trim().split('\\n')[0].slice(0, 60)])
  .filter(([lines]) => lines > limit)"""

BROKEN_IMAGES_JS = """() => Array.from(document.querySelectorAll('article img'))
  .filter(img => !(img.complete && img.naturalWidth > 0))
  .map(img => (img.getAttribute('src') || '').slice(0, 80))"""

# A signature of what a cell output shows. Where the output holds images, only the
# images a reader sees count (a hash of each visible image's data): a control that
# changes its own readout or a caption while the figure stays the same is inert, the
# very contradiction of a dead widget ("T = 31.6" over a plot titled "T = 1"). An
# output without images is compared by its text, the controls' own values left out.
OUTPUT_SIGNATURE_JS = """(element) => {
  const output = element.closest('.cell_output') || element.parentElement;
  const hash = (text) => {
    let h = 2166136261;
    for (let i = 0; i < text.length; i++) {
      h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
    }
    return h.toString(16) + ':' + text.length;
  };
  const images = Array.from(output.querySelectorAll('img'));
  if (images.length) {
    return 'shown images: ' + images
      .filter(img => img.offsetParent !== null && img.getBoundingClientRect().width > 0)
      .map(img => hash(img.currentSrc || img.src)).join(';');
  }
  return 'text: ' + Array.from(output.querySelectorAll('*'))
      .filter(node => !node.matches('input, select, option, button, output, label, '
                                    + 'script, style'))
      .map(node => Array.from(node.childNodes)
          .filter(child => child.nodeType === 3).map(child => child.data).join(''))
      .join('|');
}"""

CONTROLS = ("article .cell_output input, article .cell_output select, "
            "article .cell_output button, article .cell_output textarea")


def _operate(control):
    """Use a control as a reader would; return False when it has no other state."""
    kind = control.evaluate("c => c.tagName.toLowerCase() + ':' + (c.type || '')")
    if control.is_disabled() or control.get_attribute("aria-pressed") == "true":
        return False
    if kind == "input:range":
        return control.evaluate("""c => {
            const next = c.value === c.max ? c.min : c.max;
            if (next === c.value) return false;
            c.value = next;
            c.dispatchEvent(new Event('input', {bubbles: true}));
            c.dispatchEvent(new Event('change', {bubbles: true}));
            return true; }""")
    if kind.startswith("select"):
        return control.evaluate("""c => {
            if (c.options.length < 2) return false;
            c.selectedIndex = (c.selectedIndex + 1) % c.options.length;
            c.dispatchEvent(new Event('input', {bubbles: true}));
            c.dispatchEvent(new Event('change', {bubbles: true}));
            return true; }""")
    if kind == "input:radio" and control.is_checked():
        return False
    control.scroll_into_view_if_needed()
    control.click()
    return True


def inert_controls(page):
    """Controls in cell outputs (outside animations) that change nothing when used."""
    inert = []
    for control in page.query_selector_all(CONTROLS):
        # sphinx-copybutton's "copy" button on a text output is page chrome, not a
        # control of the output: it copies and changes nothing shown, by design.
        if (control.evaluate("c => !!c.closest('.animation') || c.matches('.copybtn')")
                or not control.is_visible()):
            continue
        before = control.evaluate(OUTPUT_SIGNATURE_JS)
        if not _operate(control):
            continue
        page.wait_for_timeout(150)
        if control.evaluate(OUTPUT_SIGNATURE_JS) == before:
            inert.append(control.evaluate(
                "c => c.outerHTML.slice(0, 120)"))
    return inert


def dead_animations(page):
    """matplotlib animations whose slider or play button leaves the frame unchanged."""
    dead = []
    for animation in page.query_selector_all("article .animation"):
        frame = animation.query_selector("img")
        slider = animation.query_selector("input.anim-slider")
        play = animation.query_selector("button[onclick*='play_animation']")
        pause = animation.query_selector("button[onclick*='pause_animation']")
        if frame is None or slider is None or play is None:
            dead.append("animation without frame, slider or play button")
            continue
        animation.scroll_into_view_if_needed()
        first = frame.get_attribute("src")
        slider.evaluate("""s => { s.value = s.max;
            s.dispatchEvent(new Event('input', {bubbles: true})); }""")
        if frame.get_attribute("src") == first:
            dead.append(f"animation slider does not change the frame ({slider.get_attribute('id')})")
        slider.evaluate("""s => { s.value = s.min;
            s.dispatchEvent(new Event('input', {bubbles: true})); }""")
        start = frame.get_attribute("src")
        play.click()
        page.wait_for_timeout(700)
        if frame.get_attribute("src") == start:
            dead.append(f"animation does not play ({slider.get_attribute('id')})")
        if pause is not None:
            pause.click()
    return dead


def visible(page, selector):
    return [element for element in page.query_selector_all(selector) if element.is_visible()]


def sidebar_problems(page, width):
    """The visible table-of-contents toggles must open (phone) or collapse (desktop)."""
    problems = []
    toggles = visible(page, ".primary-toggle")
    if not toggles:
        return ["no visible toggle for the table of contents"]
    toggles[0].click()
    page.wait_for_timeout(400)
    if width < 992:
        opened = page.evaluate("""() => {
            const modal = document.getElementById('pst-primary-sidebar-modal');
            return !!(modal && modal.open && modal.querySelector('nav, .bd-links')); }""")
        if not opened:
            problems.append("the table-of-contents toggle does not open it on a phone")
        page.keyboard.press("Escape")
        secondary = visible(page, ".secondary-toggle")
        if secondary:
            secondary[0].click()
            page.wait_for_timeout(400)
            if not page.evaluate("""() => {
                    const modal = document.getElementById('pst-secondary-sidebar-modal');
                    return !!(modal && modal.open); }"""):
                problems.append("the 'On this page' toggle does not open it on a phone")
            page.keyboard.press("Escape")
    else:
        collapsed = page.evaluate("""() => {
            const bar = document.getElementById('pst-primary-sidebar');
            return !!bar && (bar.classList.contains('pst-sidebar-hidden')
                             || bar.getBoundingClientRect().width < 2); }""")
        if not collapsed:
            problems.append("the sidebar toggle does not collapse the sidebar at 1280 px")
        toggles[0].click()
    return problems


@pytest.mark.parametrize("width_name", list(WIDTHS))
@pytest.mark.parametrize("page_path", PAGES)
def test_page(browser, site, screenshots, page_path, width_name):
    width = WIDTHS[width_name]
    context, page, problems, external = open_page(browser, site, page_path, width)
    try:
        shot = screenshots / f"{pathlib.Path(page_path).stem}-{width}.png"
        page.screenshot(path=str(shot), full_page=True)

        tex = page.evaluate(RAW_TEX_JS)
        problems += [f"raw TeX in the page: {match.group(0)!r}"
                     for match in RAW_TEX.finditer(tex["text"])]
        problems += [f"Markdown table shown as text: {match.group(0)!r}"
                     for match in RAW_MARKDOWN_TABLE.finditer(tex["text"])][:1]
        if tex["errors"]:
            problems.append(f"{tex['errors']} MathJax errors in the page")
        problems += [f"broken image: {src}" for src in page.evaluate(BROKEN_IMAGES_JS)]
        if width >= 1280:
            problems += [f"code scrolls sideways at {width} px: {line!r}"
                         for line in page.evaluate(SCROLLING_CODE_JS)]
            problems += [f"formula scrolls sideways at {width} px: {text!r}"
                         for text in page.evaluate(SCROLLING_MATH_JS)]
            problems += [f"{lines}-line code block shown open (collapse it): {first!r}"
                         for lines, first in page.evaluate(LONG_CODE_JS,
                                                           MAX_OPEN_CODE_LINES)]
        problems += [f"inert control: {html}" for html in inert_controls(page)]
        problems += dead_animations(page)
        problems += sidebar_problems(page, width)
        problems += [f"request to another host with no local copy: {url}"
                     for url in external]
    finally:
        context.close()
    assert not problems, f"{page_path} at {width} px:\n  " + "\n  ".join(problems)
