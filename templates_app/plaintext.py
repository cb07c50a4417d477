"""A readable text/plain part from rendered HTML, for versions that give no `text` of their own.

The HTML is the customer's rendered template, so the scanner must stay linear in its length
whatever it is fed: `html.parser` rescans an unclosed tag from its `<` for every later `<`
(`"<a " * 12000` took 14 s). Here every character is looked at a bounded number of times: each
step starts where the last one ended, the patterns are possessive (no backtracking), and a tag,
comment or quoted value left open runs to the end of the document, as in an HTML5 tokenizer,
so nothing is rescanned. Every tag is a budget checkpoint of the render in progress, and the
output is bounded like any rendered part.
"""

import html
import re

from templates_app.sandbox import MAX_PART_CHARS, RenderLimitExceeded, tick

_BLOCKS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "center",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
    ]
)
_SKIP = frozenset({"head", "script", "style", "title", "template", "noscript"})
# Elements whose content is raw text up to their end tag (no tags inside).
_RAW_TEXT = frozenset({"script", "style", "title", "textarea", "noscript"})
_SPACE = re.compile(r"[ \t\r\n\f\v]+")
_MARKUP = re.compile(r"<(?:/?[A-Za-z]|[!?])")
_TAG_OPEN = re.compile(r"<(/?)([A-Za-z][^\s/>]*+)")
# The rest of a tag up to its `>`: runs of ordinary characters, or `=` with a quoted value (a
# quote elsewhere is an ordinary character). Possessive, so a tag with no `>` fails in one pass.
_TAG_REST = re.compile(r"""(?:[^>=]++|=\s*+"[^"]*+"|=\s*+'[^']*+'|=)*+>""")
_ATTRIBUTE = re.compile(r"""([^\s/>"'=]++)(?:\s*+=\s*+(?:"([^"]*+)"|'([^']*+)'|([^\s>]*+)))?""")
_RAW_END = {name: re.compile(rf"</{name}[\s/>]", re.IGNORECASE) for name in _RAW_TEXT}


def _attributes(text: str) -> dict[str, str]:
    found = {}
    for match in _ATTRIBUTE.finditer(text):
        name = match.group(1).lower()
        if name not in found:
            value = next((v for v in match.group(2, 3, 4) if v is not None), "")
            found[name] = html.unescape(value)
    return found


def _tokens(source: str):
    """("data", text) / ("start", name, attrs, self_closing) / ("end", name), left to right."""
    i, n = 0, len(source)
    text_from = 0  # where the text not yet yielded starts
    while i < n:
        found = _MARKUP.search(source, i)  # a lone `<` is text, skipped over here
        if found is None:
            break
        lt = found.start()
        opened = _TAG_OPEN.match(source, lt)
        if lt > text_from:
            yield ("data", source[text_from:lt])
        tick()
        if source.startswith("<!--", lt):
            end = source.find("-->", lt + 4)
            if end < 0:
                return
            i = text_from = end + 3
            continue
        if opened is None:  # doctype, CDATA, processing instruction
            end = source.find(">", lt)
            if end < 0:
                return
            i = text_from = end + 1
            continue
        rest = _TAG_REST.match(source, opened.end())
        if rest is None:
            return  # a tag still open at the end of the document is dropped
        closing, name = opened.group(1), opened.group(2).lower()
        inside = source[opened.end() : rest.end() - 1]
        i = text_from = rest.end()
        if closing:
            yield ("end", name)
            continue
        yield ("start", name, _attributes(inside), inside.rstrip().endswith("/"))
        if name in _RAW_TEXT:
            end = _RAW_END[name].search(source, i)
            stop = n if end is None else end.start()
            if name not in _SKIP:
                yield ("data", source[i:stop])
            i = text_from = stop
    if text_from < n:
        yield ("data", source[text_from:])


class _TextBuilder:
    def __init__(self):
        self.out: list[str] = []
        self.size = 0
        self.skipping = 0
        self.pre = 0
        self.links: list[tuple[str | None, int]] = []

    def add(self, text: str):
        self.size += len(text)
        if self.size > MAX_PART_CHARS:
            raise RenderLimitExceeded(f"The derived text part is longer than {MAX_PART_CHARS:,} characters.")
        self.out.append(text)

    def start(self, tag: str, attrs: dict, self_closing: bool):
        if tag in _SKIP:
            if not self_closing:
                self.skipping += 1
        elif tag == "br":
            self.add("\n")
        elif tag == "li":
            self.add("\n- ")
        elif tag in ("td", "th"):
            self.add(" ")
        elif tag == "img":
            if attrs.get("alt"):
                self.add(attrs["alt"])
        elif tag == "a":
            # Links do not nest (HTML5 closes an open one first); it also keeps the label join
            # below linear.
            if self.links:
                self.end("a")
            self.links.append((attrs.get("href"), len(self.out)))
            if self_closing:
                self.end(tag)
        elif tag in _BLOCKS:
            self.add("\n\n")
            if tag == "pre":
                self.pre += 1

    def end(self, tag: str):
        if tag in _SKIP:
            self.skipping = max(self.skipping - 1, 0)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.out[start:]).strip()
            href = (href or "").strip()
            if href and not href.startswith("#") and href != label:
                shown = href.removeprefix("mailto:")
                if not label:
                    self.add(shown)
                elif shown != label:
                    self.add(f" ({shown})")
        elif tag in _BLOCKS:
            self.add("\n\n")
            if tag == "pre":
                self.pre = max(self.pre - 1, 0)

    def data(self, text: str):
        if self.skipping:
            return
        text = html.unescape(text)
        self.add(text if self.pre else _SPACE.sub(" ", text))


def html_to_text(source: str) -> str:
    builder = _TextBuilder()
    for token in _tokens(source):
        kind = token[0]
        if kind == "data":
            builder.data(token[1])
        elif kind == "start":
            builder.start(token[1], token[2], token[3])
        else:
            builder.end(token[1])
    lines = [re.sub(r" {2,}", " ", line).strip() for line in "".join(builder.out).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
