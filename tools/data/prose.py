"""prose: plain-text paragraphs from documentation formats (HTML, reStructuredText, POD, Info).

Each converter takes the text of one document and returns its prose paragraphs: markup stripped,
whitespace collapsed, code blocks (HTML <pre>, reST literal blocks and directives, indented POD
verbatim, indented Info examples), tables, menus and headings dropped. keep() then filters the
paragraphs that are not prose (too short, too few letters, mostly symbols). Standard library only.
"""
from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_WS = re.compile(r"\s+")


def clean(text: str) -> str:
    return _WS.sub(" ", text.replace("\u00a0", " ")).strip()


# ---- HTML ---------------------------------------------------------------------------------------
class _Html(HTMLParser):
    BLOCK = {"p", "li", "dd", "dt", "blockquote", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
             "div", "section", "table", "ul", "ol", "dl", "br", "tr", "article", "header", "footer",
             "body", "title", "figcaption", "caption"}
    SKIP = {"pre", "script", "style", "code-block", "nav", "head", "textarea", "svg", "math"}
    PROSE = {"p", "dd", "li", "blockquote"}
    BOILER = re.compile(r"sphinxsidebar|related|footer|navheader|navfooter|toc|breadcrumb|"
                        r"highlight|literal-block|doc-links|menu", re.I)

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paras: list[str] = []
        self.cur: list[str] = []
        self.skip = 0          # depth inside skipped elements
        self.stack: list[tuple[str, bool]] = []
        self.prose = 0         # depth inside prose elements

    def flush(self):
        if self.cur:
            t = clean("".join(self.cur))
            if t and self.prose:
                self.paras.append(t)
            self.cur = []

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "img", "hr", "meta", "link", "input", "wbr"):
            return
        cls = " ".join(v or "" for k, v in attrs if k in ("class", "id", "role"))
        skipped = tag in self.SKIP or (tag in ("div", "nav", "table", "ul") and bool(self.BOILER.search(cls)))
        if tag in self.BLOCK or skipped:
            self.flush()
        self.stack.append((tag, skipped, False))
        if skipped:
            self.skip += 1
        prose = tag in self.PROSE or (tag == "div" and "block" in cls.split())  # javadoc's div.block
        if prose:
            self.prose += 1
        self.stack[-1] = (tag, skipped, prose)

    def handle_endtag(self, tag):
        if not any(t == tag for t, _, _ in self.stack):
            return
        while self.stack:
            t, skipped, prose = self.stack.pop()
            if t in self.BLOCK or skipped:
                self.flush()
            if skipped:
                self.skip -= 1
            if prose:
                self.prose -= 1
            if t == tag:
                break

    def handle_data(self, data):
        if not self.skip:
            self.cur.append(data)


def html_paragraphs(text: str) -> list[str]:
    """Text of the <p>, <li>, <dd> and <blockquote> blocks outside <pre>, navigation and footers."""
    p = _Html()
    p.feed(text)
    p.close()
    p.flush()
    return p.paras


# ---- reStructuredText (and the kernel's plain .txt) ---------------------------------------------
_RST_ROLE = re.compile(r":[\w:.+-]+:`([^`<]*?)\s*(?:<[^`>]*>)?`")
_RST_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]*>`_{1,2}")
_RST_LIT = re.compile(r"``(.+?)``")
_RST_REF = re.compile(r"`([^`]+)`_{0,2}")
_RST_EMPH = re.compile(r"\*\*?([^*\s][^*]*?)\*\*?")
_RST_FOOT = re.compile(r"\s*\[[#*\w-]*\]_")
_ADORN = re.compile(r"^\s*([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")
_BULLET = re.compile(r"^(?:[-*+\u2022]|\d+[.)]|[a-zA-Z][.)]|#\.|\(\w+\))\s+")


def rst_inline(t: str) -> str:
    t = _RST_ROLE.sub(r"\1", t)
    t = _RST_LINK.sub(r"\1", t)
    t = _RST_LIT.sub(r"\1", t)
    t = _RST_REF.sub(r"\1", t)
    t = _RST_EMPH.sub(r"\1", t)
    t = _RST_FOOT.sub("", t)
    return t.replace("\\", "")


def rst_paragraphs(text: str) -> list[str]:
    """Unindented paragraphs and bullet items; literal blocks (after '::' or indented), directives,
    comments, tables, field lists and section titles are dropped."""
    out = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").replace("\t", "        ")):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        first = lines[0]
        if first[:1] in (" ",) or first.startswith((".. ", "..\n", "|", "+-", "+=", ":", ">>>", "$ ", "# ")):
            continue  # indented (literal / directive body / quote), directive, table, field list, shell
        if any(_ADORN.match(ln) for ln in lines):
            continue  # a section title (or a table border)
        if any(ln.startswith(("+-", "|")) for ln in lines):
            continue
        t = " ".join(ln.strip() for ln in lines)
        t = _BULLET.sub("", t)
        if t.endswith("::"):
            t = t[:-1]  # "Example::" introduces a literal block: keep the sentence, with one colon
        out.append(clean(rst_inline(t)))
    return [p for p in out if p]


# ---- POD (Perl documentation) ---------------------------------------------------------------------
_POD_CODE = re.compile(r"[A-Z]<<+\s+(.*?)\s+>+>|[A-Z]<([^<>]*)>", re.S)
_POD_ESC = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/", "quot": '"', "amp": "&", "apos": "'"}


def pod_inline(t: str) -> str:
    def one(m):
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        code = m.group(0)[0]
        if code == "E":
            return _POD_ESC.get(inner, html.unescape(f"&{inner};"))
        if code == "L":
            inner = inner.split("|", 1)[0] if "|" in inner else inner.split("/")[-1].strip('"')
        if code in ("X", "Z"):
            return ""
        return inner
    for _ in range(4):  # nested codes, innermost first
        t2 = _POD_CODE.sub(one, t)
        if t2 == t:
            break
        t = t2
    return t


def pod_sections(text: str) -> str:
    """The POD of a Perl source file (.pm, .pl): from a line starting with =word up to =cut."""
    out, inside = [], False
    for line in text.replace("\r\n", "\n").split("\n"):
        if not inside and re.match(r"=[a-zA-Z]", line):
            inside = True
        if inside:
            if line.startswith("=cut"):
                inside = False
                out.append("")
                continue
            out.append(line)
    return "\n".join(out)


def pod_paragraphs(text: str) -> list[str]:
    """Ordinary POD paragraphs; =commands, =begin/=end and =for sections, verbatim (indented) blocks
    dropped. Code outside the POD (a .pm file's) is dropped by pod_sections."""
    text = pod_sections(text)
    out, skipping = [], False
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        if not block.strip():
            continue
        if block.startswith("=begin"):
            skipping = True
        if skipping:
            if block.startswith("=end") or "\n=end" in block:
                skipping = False
            continue
        if block.startswith("=") or block[:1] in (" ", "\t"):
            continue
        out.append(clean(pod_inline(block)))
    return [p for p in out if p]


# ---- GNU Info -------------------------------------------------------------------------------------
_INFO_XREF = re.compile(r"\*[Nn]ote\s+([^:]*?)::|\*[Nn]ote\s+([^:]*?):\s*[^.,]*[.,]", re.S)


def info_documents(text: str) -> list[tuple[str, list[str]]]:
    """(node name, paragraphs) of each node of an Info file: header lines, menus, tables of contents,
    indented examples and title underlines dropped."""
    docs = []
    for node in text.split("\x1f")[1:]:
        lines = node.split("\n")
        head = lines[0] if lines and lines[0].strip() else (lines[1] if len(lines) > 1 else "")
        if not lines or "Node:" not in node[:300] or node.lstrip().startswith("Tag Table"):
            continue
        m = re.search(r"Node:\s*([^,\n]+)", head)
        name = m.group(1).strip() if m else "?"
        body = "\n".join(lines[2:])
        body = body.split("\n* Menu:")[0]
        paras = []
        for block in re.split(r"\n[ \t]*\n", body):
            bl = [ln for ln in block.split("\n") if ln.strip()]
            if not bl or bl[0].startswith((" ", "\t", "*")) or any(_ADORN.match(ln) for ln in bl):
                continue
            t = " ".join(ln.strip() for ln in bl)
            t = _INFO_XREF.sub(lambda m: m.group(1) or m.group(2) or "", t)
            paras.append(clean(t.replace("'", "'")))
        docs.append((name, [p for p in paras if p]))
    return docs


# ---- filter ---------------------------------------------------------------------------------------
# ---- Vim help (vim-runtime's doc/*.txt) ------------------------------------------------------------
_VIM_TAG = re.compile(r"\*[^*\s]+\*")
_VIM_LINK = re.compile(r"\|([^|\s]+)\|")
_VIM_SEP = re.compile(r"^\s*[=-]{10,}\s*$")


def vimhelp_paragraphs(text: str) -> list[str]:
    """Paragraphs of a Vim help file. Examples (after a line ending in '>', up to a line starting with
    '<' or the next unindented line), section rules, tag lines, column headings (ending in ' ~'), table
    rows (a tab inside the line) and lines indented twice (an option's scope and defaults under its
    name) are dropped; |links| keep their text and *tags* go."""
    out: list[str] = []
    para: list[str] = []
    in_example = False

    def flush():
        if para:
            out.append(clean(_VIM_LINK.sub(r"\1", _VIM_TAG.sub("", " ".join(para)))))
            para.clear()

    for raw in text.replace("\r\n", "\n").split("\n"):
        if in_example:
            if raw.startswith("<") or (raw.strip() and not raw[:1].isspace()):
                in_example = False
                raw = raw[1:] if raw.startswith("<") else raw
            else:
                continue
        line = raw.strip()
        if not line or _VIM_SEP.match(raw):
            flush()
            continue
        if raw.endswith(">") and (len(line) == 1 or raw[-2:-1].isspace()):
            in_example = True
            line = line[:-1].rstrip()
            if line:
                para.append(line)
            flush()
            continue
        deep = raw.startswith("\t\t") or raw.startswith(" " * 16)  # an option's scope, defaults, features
        if deep or "\t" in line or line.endswith(" ~") or (line.startswith("*") and _VIM_TAG.fullmatch(line.split()[0])):
            flush()  # a table row, a column heading, a tag line or a header's continuation ends the paragraph
            continue
        para.append(line)
    flush()
    return [p for p in out if p]


_WORDS = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_CODEY = re.compile(r"[{};=<>$\\|]|->|::|\(\)|/\*")


def keep(p: str, min_chars: int = 60) -> bool:
    """True for a paragraph that reads as English prose."""
    if len(p) < min_chars:
        return False
    words = _WORDS.findall(p)
    if len(words) < 8:
        return False
    letters = sum(ch.isalpha() or ch == " " for ch in p)
    if letters < 0.8 * len(p):
        return False
    if len(_CODEY.findall(p)) > len(words) / 8:
        return False
    lower = sum(w.islower() for w in words)
    if lower < 0.6 * len(words):
        return False  # headers, lists of identifiers, capitalised boilerplate
    return not p.startswith(("Copyright", "Permission is granted", "Previous", "Next", "Table of Contents"))
