"""Tests of the large-corpus converters (tools/data/prose.py, tools/data/build_corpus.py).

Runs on the small samples in tests/data/corpus (one fake package per format: HTML, reST, POD, Info,
unpacked as tools/fetch_corpus.sh leaves them, plus a task file for the leak guard). Standard
library only:  python3 -m unittest discover -s tests -p "test_data_*.py"
"""
import gzip
import json
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests/data/corpus"
sys.path.insert(0, str(REPO / "tools/data"))

import build_corpus  # noqa: E402
import prose  # noqa: E402

SOURCES = [
    ("pkg-html", "html", "doc", ["*.html"], [], "MIT"),
    ("pkg-rst", "rst", "Documentation", ["**/*.rst", "**/*.txt"], [], "GPL-2.0"),
    ("pkg-pod", "pod", "lib", ["**/*.pm"], [], "Artistic"),
    ("pkg-info", "info", "info", ["*.info*"], [], "GFDL-1.3+"),
]


def kept(paras):
    return [p for p in paras if prose.keep(p)]


class HtmlTest(unittest.TestCase):
    def test_prose_kept_code_and_boilerplate_dropped(self):
        paras = prose.html_paragraphs((SAMPLES / "pkg-html/doc/guide.html").read_text())
        text = "\n".join(paras)
        self.assertIn("Gardening is the practice", text)
        self.assertIn("Water the seedlings", text)  # a list item
        for gone in ("water(plant)", "not prose", "color: red", "Previous topic", "Copyright 2024",
                     "The guide to gardening"):
            self.assertNotIn(gone, text)
        self.assertEqual(len(kept(paras)), 3)  # "x = 1;" is not prose

    def test_javadoc_block(self):
        paras = prose.html_paragraphs((SAMPLES / "pkg-html/doc/faq.html").read_text())
        self.assertTrue(any(p.startswith("Compost is decomposed") for p in paras))

    def test_entities_and_whitespace(self):
        self.assertEqual(prose.html_paragraphs("<p>a &amp; b\n  &lt;c&gt;&nbsp;d</p>"), ["a & b <c> d"])


class RstTest(unittest.TestCase):
    def test_markup_stripped_literals_and_directives_dropped(self):
        paras = prose.rst_paragraphs((SAMPLES / "pkg-rst/Documentation/intro.rst").read_text())
        text = "\n".join(paras)
        self.assertIn("Use kunit.py to run the tests, and read the usage guide for the details", text)
        self.assertIn("as shown in the example below:", text)
        self.assertTrue(any(p.startswith("Each test case is a function") for p in paras))
        for gone in ("CONFIG_KUNIT", "make -j8", "directive body", "SPDX", "Introduction to tests",
                     "table", "=====", "``", ":doc:"):
            self.assertNotIn(gone, text)

    def test_plain_text_titles(self):
        paras = prose.rst_paragraphs((SAMPLES / "pkg-rst/Documentation/sub/notes.txt").read_text())
        self.assertEqual(len(paras), 1)
        self.assertTrue(paras[0].startswith("Memory that a driver allocates"))


class VimHelpTest(unittest.TestCase):
    HELP = ("*usr_05.txt*\tFor Vim version 9.0.  Last change: 2019 May 23\n\n"
            "|05.1|\tThe vimrc file\n\n"
            "==============================================================================\n"
            "*05.1*\tThe vimrc file\t\t\t\t\t*vimrc-intro*\n\n"
            "You probably got tired of typing commands that you use very often.  See\n"
            "|vimrc| to find out where it lives, and edit it this way: >\n\n"
            "\t:edit $MYVIMRC\n\tset nocompatible\n<\n"
            "The vimrc file can contain all the commands that you type after a colon.\n\n"
            "'autoindent' 'ai'\tboolean\t(default off)\n\t\t\tlocal to buffer\n"
            "\tCopy indent from the current line when starting a new line.\n\n"
            "COMMAND\t\tMEANING ~\n")

    def test_examples_tags_and_tables_dropped_links_kept(self):
        paras = prose.vimhelp_paragraphs(self.HELP)
        self.assertEqual(paras, [
            "You probably got tired of typing commands that you use very often. See vimrc to find out where "
            "it lives, and edit it this way:",
            "The vimrc file can contain all the commands that you type after a colon.",
            "Copy indent from the current line when starting a new line."])


class PodTest(unittest.TestCase):
    def test_pod_of_a_module(self):
        paras = prose.pod_paragraphs((SAMPLES / "pkg-pod/lib/Thing.pm").read_text())
        text = "\n".join(paras)
        self.assertIn("The Thing module keeps a collection", text)
        self.assertIn("Comparisons use the < and > operators, and the count method", text)
        for gone in ("use strict", "bless", "Thing->new", "HTML section", "=head1", "B<"):
            self.assertNotIn(gone, text)

    def test_nested_codes(self):
        self.assertEqual(prose.pod_inline("see L<the manual|perlfunc> and B<I<both>> C<< a > b >>"),
                         "see the manual and both a > b")


class InfoTest(unittest.TestCase):
    def test_nodes_menus_and_examples(self):
        text = gzip.open(SAMPLES / "pkg-info/info/example.info.gz", "rt").read()
        docs = prose.info_documents(text)
        self.assertEqual([n for n, _ in docs], ["Top", "Usage"])
        allp = "\n".join(p for _, ps in docs for p in ps)
        self.assertIn("This manual documents the example program", allp)
        self.assertIn("Options describes the flags", allp)  # *note X:: becomes X
        for gone in ("File:", "Menu", "HELLO, WORLD", "*******", "How to use it"):
            self.assertNotIn(gone, allp)


class KeepTest(unittest.TestCase):
    def test_filter(self):
        self.assertTrue(prose.keep("The river runs past the old mill, and in spring it floods the lower "
                                   "fields where the farmers grow their barley."))
        for bad in ("Too short to be a paragraph.", "int main(void) { return x->y(); } /* a comment */ "
                    "if (a == b) { c = d; } else { e = f; }", "SEE ALSO THE OTHER MANUAL PAGES LISTED "
                    "BELOW FOR THE DETAILS OF EVERY OPTION", "0x10 0x20 0x30 0x40 0x50 0x60 0x70 0x80 0x90 "
                    "0xa0 0xb0 0xc0 0xd0 0xe0"):
            self.assertFalse(prose.keep(bad), bad)


class BuildTest(unittest.TestCase):
    def build(self, out, **kw):
        return build_corpus.build(SAMPLES, Path(out), None, SAMPLES / "tasks", sources=SOURCES, workers=1, **kw)

    def test_build_dedup_leaks_split_manifest(self):
        with tempfile.TemporaryDirectory() as tmp:
            m = self.build(tmp, validation_fraction=0.3)
            train = (Path(tmp) / "train.txt").read_text()
            val = (Path(tmp) / "validation.txt").read_text()
            both = train + val
            self.assertEqual(both.count("Gardening is the practice"), 1)  # deduplicated across files
            self.assertNotIn("The movie was absolutely wonderful", both)  # overlaps the task data
            for s in ("Compost is decomposed", "Memory that a driver", "The Thing module",
                      "This manual documents"):
                self.assertIn(s, both)
            paras = [p for p in both.split("\n") if p]
            self.assertEqual(len(paras), len(set(paras)))
            src = {s["package"]: s for s in m["sources"]}
            self.assertEqual(set(src), {"pkg-html", "pkg-rst", "pkg-pod", "pkg-info"})
            self.assertEqual(src["pkg-html"]["version"], "1.0-1")
            self.assertEqual(src["pkg-html"]["duplicates"], 1)
            self.assertEqual(src["pkg-html"]["dropped_for_leaks"], 1)
            self.assertEqual(src["pkg-info"]["licence"], "GFDL-1.3+")
            self.assertAlmostEqual(sum(s["share"] for s in m["sources"]), 1.0, places=3)
            self.assertEqual(m["characters"]["train"] + m["characters"]["validation"],
                             sum(sum(s["characters"].values()) for s in m["sources"]))
            saved = json.loads((Path(tmp) / "manifest.json").read_text())
            self.assertEqual(saved["sources"], m["sources"])
            # Documents are whole in one split: a document's paragraphs are never split up.
            self.assertGreaterEqual(m["characters"]["validation"], 0)
            # Deterministic: a second build writes the same files.
            with tempfile.TemporaryDirectory() as tmp2:
                self.build(tmp2, validation_fraction=0.3)
                self.assertEqual((Path(tmp2) / "train.txt").read_text(), train)
                self.assertEqual((Path(tmp2) / "validation.txt").read_text(), val)

    def test_validation_by_document(self):
        names = [f"src/doc{i}" for i in range(2000)]
        val = [n for n in names if build_corpus.is_validation(n, 1234, 0.05)]
        self.assertTrue(60 < len(val) < 140)
        self.assertEqual(val, [n for n in names if build_corpus.is_validation(n, 1234, 0.05)])
        self.assertNotEqual(val, [n for n in names if build_corpus.is_validation(n, 7, 0.05)])

    def test_missing_package_is_a_clear_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(build_corpus.DataError, "pkg-nope is not unpacked"):
                build_corpus.build(SAMPLES, Path(tmp), None, None, workers=1,
                                   sources=[("pkg-nope", "html", "doc", ["*.html"], [], "MIT")])


if __name__ == "__main__":
    unittest.main()
