"""Tests of tools/data (the converters from raw packages to aria's JSONL tasks).

Runs on the small hand-written samples in tests/data/raw (same layout as third_party/raw) and the
broken inputs in tests/data/broken. Standard library only:
  python3 -m unittest discover -s tests -p "test_data_*.py"
"""
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "tests/data/raw"
BROKEN = REPO / "tests/data/broken"
PREPARE = REPO / "tools/data/prepare.py"
sys.path.insert(0, str(REPO / "tools/data"))

import common  # noqa: E402
import fortunes  # noqa: E402
import prepare  # noqa: E402
import spam  # noqa: E402
import wordnet  # noqa: E402

TASKS = ["sentiment", "spam", "fortune_topic", "wordnet_class", "language_id"]


def run_prepare(*args):
    return subprocess.run([sys.executable, str(PREPARE), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def load_task(out, name):
    out = Path(out) / name
    labels = json.loads((out / "labels.json").read_text())
    splits = {s: common.read_jsonl(out / f"{s}.jsonl") for s in common.SPLITS}
    return labels, splits


class PrepareSamples(unittest.TestCase):
    """prepare.py on the committed samples: schema, balance, disjointness, determinism."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = Path(cls.tmp.name) / "a"
        cls.proc = run_prepare("--raw", RAW, "--out", cls.out)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_exit_and_summary(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        for name in TASKS + ["corpus"]:
            self.assertIn(f"{name}:", self.proc.stdout)
        # individually broken records are skipped and the count is printed
        self.assertIn("spam: 2 labels ['ham', 'spam']", self.proc.stdout)
        self.assertRegex(self.proc.stdout, r"spam: .*skipped 2 ")
        self.assertRegex(self.proc.stdout, r"sentiment: .*skipped 3 ")

    def test_schema_and_labels(self):
        for name in TASKS:
            labels, splits = load_task(self.out, name)
            self.assertTrue(2 <= len(labels) <= 4, labels)
            self.assertTrue(all(isinstance(x, str) and x for x in labels))
            for s, rows in splits.items():
                self.assertTrue(rows, f"{name}/{s} is empty")
                for r in rows:
                    self.assertEqual(set(r), {"text", "label"})
                    self.assertIsInstance(r["text"], str)
                    self.assertTrue(r["text"].strip())
                    self.assertLessEqual(len(r["text"]), 400)
                    self.assertNotIn("\n", r["text"])
                    self.assertIs(type(r["label"]), int)
                    self.assertTrue(0 <= r["label"] < len(labels))

    def test_balanced_and_disjoint(self):
        for name in TASKS:
            labels, splits = load_task(self.out, name)
            seen = {}
            for s, rows in splits.items():
                counts = [sum(r["label"] == k for r in rows) for k in range(len(labels))]
                self.assertEqual(len(set(counts)), 1, f"{name}/{s} unbalanced: {counts}")
                for r in rows:
                    key = common.dedup_key(r["text"])
                    self.assertNotIn(key, seen, f"{name}: {r['text']!r} in {seen.get(key)} and {s}")
                    seen[key] = s

    def test_deterministic_for_a_seed(self):
        out2 = Path(self.tmp.name) / "b"
        self.assertEqual(run_prepare("--raw", RAW, "--out", out2).returncode, 0)
        for name in TASKS:
            for s in common.SPLITS:
                f = f"{name}/{s}.jsonl"
                self.assertEqual((self.out / f).read_bytes(), (out2 / f).read_bytes(), f)
        for s in ("train", "validation"):
            f = f"corpus/{s}.txt"
            self.assertEqual((self.out / f).read_bytes(), (out2 / f).read_bytes(), f)

    def test_seed_changes_split(self):
        out3 = Path(self.tmp.name) / "c"
        self.assertEqual(run_prepare("--raw", RAW, "--out", out3, "--seed", "7",
                                     "--tasks", "wordnet_class").returncode, 0)
        a = load_task(self.out, "wordnet_class")[1]
        b = load_task(out3, "wordnet_class")[1]
        self.assertNotEqual(a, b)
        self.assertEqual(sorted(r["text"] for s in a.values() for r in s),
                         sorted(r["text"] for s in b.values() for r in s))

    def test_manifest(self):
        m = json.loads((self.out / "manifest.json").read_text())
        self.assertEqual([t["name"] for t in m["tasks"]], TASKS)
        self.assertEqual(m["seed"], 1234)
        self.assertEqual(m["corpus"]["train"], "corpus/train.txt")

    def test_corpus_has_no_task_text(self):
        corpus_text = "\n".join((self.out / f"corpus/{s}.txt").read_text()
                                for s in ("train", "validation"))
        self.assertTrue(corpus_text.strip())
        # chapter_2 of the sample quotes a science fortune; that paragraph must be gone
        self.assertNotIn("change the facts", corpus_text)
        self.assertIn("The captain came aboard at dawn", corpus_text)
        meta = json.loads((self.out / "corpus/meta.json").read_text())
        self.assertEqual(meta["paragraphs_dropped_for_leaks"], 1)
        for name in TASKS:
            for rows in load_task(self.out, name)[1].values():
                for r in rows:
                    if len(r["text"].split()) >= 8:
                        self.assertNotIn(r["text"], corpus_text)

    def test_texts_are_converted(self):
        texts = {r["text"] for rows in load_task(self.out, "spam")[1].values() for r in rows}
        joined = "\n".join(texts)
        self.assertIn("Subject: Re: release notes Café meeting moved", joined)   # QP + latin-1
        self.assertIn("Congratulations! You have been selected", joined)          # base64
        self.assertIn("Lowest rates à vie", joined)                               # RFC 2047
        self.assertIn("rates from 3.9%!", joined)                                 # base64 html
        self.assertNotIn("HTML COPY", joined)              # text/plain preferred over html
        self.assertNotIn("TVqQ", joined)                   # attachments ignored
        self.assertNotIn("[ILUG]", joined)                 # mailing-list tag stripped
        self.assertNotIn("Received:", joined)              # headers stripped
        fort = {r["text"] for rows in load_task(self.out, "fortune_topic")[1].values() for r in rows}
        self.assertIn("A conservative is a liberal who has been mugged.", fort)   # overstrike
        self.assertFalse(any("|" in t and "o  o" in t for t in fort))             # ascii art
        lang = {r["text"] for rows in load_task(self.out, "language_id")[1].values() for r in rows}
        self.assertNotIn("Esto no debe aparecer en los datos.", lang)   # es/off/ excluded
        self.assertFalse(any("Englisch" in t for t in lang))            # translations excluded
        self.assertFalse(any("facts" in t for t in lang))               # topic categories excluded
        gloss = {r["text"] for rows in load_task(self.out, "wordnet_class")[1].values() for r in rows}
        self.assertIn("a seat for one person, with a support for the back", gloss)
        self.assertFalse(any('"' in t for t in gloss))                  # examples removed
        self.assertFalse(any("bread" in t or "dough" in t for t in gloss))   # other class


class MimeDecoding(unittest.TestCase):
    def mail(self, headers, body):
        return (f"From: a@example.org\nSubject: hello\n{headers}\n{body}").encode("latin-1")

    def test_quoted_printable(self):
        raw = self.mail('Content-Type: text/plain; charset="iso-8859-1"\n'
                        "Content-Transfer-Encoding: quoted-printable\n",
                        "na=EFve caf=E9 with a soft =\nline break\n")
        self.assertEqual(spam.mail_text(raw), "Subject: hello\nnaïve café with a soft line break\n")

    def test_base64_utf8(self):
        body = base64.encodebytes("Grüße aus Köln\n".encode()).decode()
        raw = self.mail("Content-Type: text/plain; charset=utf-8\n"
                        "Content-Transfer-Encoding: base64\n", body)
        self.assertIn("Grüße aus Köln", spam.mail_text(raw))

    def test_multipart_prefers_plain_and_skips_attachments(self):
        raw = self.mail('MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n',
                        "--B\nContent-Type: multipart/alternative; boundary=\"C\"\n\n"
                        "--C\nContent-Type: text/plain\n\nplain words\n"
                        "--C\nContent-Type: text/html\n\n<p>html words</p>\n--C--\n"
                        "--B\nContent-Type: text/plain\nContent-Disposition: attachment\n\n"
                        "attached words\n--B--\n")
        text = spam.mail_text(raw)
        self.assertIn("plain words", text)
        self.assertNotIn("html words", text)
        self.assertNotIn("attached words", text)

    def test_html_only_is_stripped(self):
        raw = self.mail("Content-Type: text/html\n",
                        "<html><style>x{}</style><body>Hello&nbsp;<b>world</b> &amp; you"
                        "<script>alert(1)</script></body></html>")
        text = common.normalise(spam.mail_text(raw), 400)
        self.assertEqual(text, "Subject: hello Hello world & you")

    def test_unknown_charset_falls_back(self):
        raw = self.mail("Content-Type: text/plain; charset=x-no-such-charset\n"
                        "Content-Transfer-Encoding: 8bit\n", "caf\xe9\n")
        self.assertIn("café", spam.mail_text(raw))

    def test_broken_mails_raise(self):
        with self.assertRaisesRegex(ValueError, "no mail headers"):
            spam.mail_text(b"\x00\x01 not a mail")
        with self.assertRaisesRegex(ValueError, "no text part"):
            spam.mail_text(b"From: a@example.org\nSubject: x\n\n")


class Helpers(unittest.TestCase):
    def test_normalise(self):
        self.assertEqual(common.normalise("  a\n\tb\x07  c \u00a0", 400), "a b c")
        long = "word " * 200
        cut = common.normalise(long, 50)
        self.assertLessEqual(len(cut), 50)
        self.assertTrue(cut.endswith("word"))

    def test_overstrike(self):
        self.assertEqual(fortunes.remove_overstrike("_\bb_\bo_\bl_\bd"), "bold")
        self.assertEqual(fortunes.remove_overstrike("____\b\b\b\bdoes it"), "does it")

    def test_wordnet_line(self):
        lex, d = wordnet.parse_line('03001627 06 n 01 chair 0 001 @ 04161981 n 0000 | a seat; "an example"  ')
        self.assertEqual((lex, d), (6, "a seat"))
        for bad in ("no bar here", "0300 06 n 01 chair 0 000 | x",
                    "03001627 06 n 01 chair 0 002 @ 04161981 n 0000 | pointer count wrong"):
            with self.assertRaises(ValueError):
                wordnet.parse_line(bad)

    def test_build_task_caps_and_errors(self):
        cfg = common.Config(max_train=4, max_validation=2, max_test=2)
        pairs = [(f"text number {i}", i % 2) for i in range(40)]
        task = common.build_task("t", ["a", "b"], pairs, common.Stats(read=40), cfg)
        self.assertEqual(task["meta"]["sizes"], {"train": 4, "validation": 2, "test": 2})
        with self.assertRaisesRegex(common.DataError, "too few"):
            common.build_task("t", ["a", "b"], pairs[:4], common.Stats(read=4), cfg)
        with self.assertRaisesRegex(common.DataError, "out of range"):
            common.build_task("t", ["a", "b"], [("x", 2)], common.Stats(read=1), cfg)


class BrokenInputs(unittest.TestCase):
    """Broken input: prepare.py exits non-zero with a message naming the problem."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.raw = Path(self.tmp.name) / "raw"
        shutil.copytree(RAW, self.raw, symlinks=True)
        self.out = Path(self.tmp.name) / "out"

    def tearDown(self):
        self.tmp.cleanup()

    def check_fails(self, task, *patterns):
        p = run_prepare("--raw", self.raw, "--out", self.out, "--tasks", task)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("error:", p.stderr)
        for pat in patterns:
            self.assertRegex(p.stderr, pat)
        self.assertNotIn("Traceback", p.stderr)
        return p

    def test_missing_raw_dir(self):
        shutil.rmtree(self.raw)
        for task in TASKS + ["corpus"]:
            self.check_fails(task, "not found", "fetch_data.sh")

    def test_sentiment_truncated_json(self):
        shutil.copy(BROKEN / "sentiment_truncated.json",
                    self.raw / "npm/sentiment/package/test/fixtures/imdb.json")
        self.check_fails("sentiment", r"imdb\.json is not valid JSON")

    def test_sentiment_not_an_array(self):
        shutil.copy(BROKEN / "sentiment_not_array.json",
                    self.raw / "npm/sentiment/package/test/fixtures/yelp.json")
        self.check_fails("sentiment", "JSON array")

    def test_wordnet_malformed(self):
        shutil.copy(BROKEN / "data.noun", self.raw / wordnet.SOURCE)
        self.check_fails("wordnet_class", "could not be used|none of the")

    def test_fortune_binary(self):
        shutil.copy(BROKEN / "fortune_with_nul", self.raw / fortunes.SOURCE / "science")
        self.check_fails("fortune_topic", "binary")

    def test_spam_zero_usable(self):
        data = self.raw / spam.SOURCE
        shutil.rmtree(data)
        for group in ("easy-ham-1", "spam-1"):
            shutil.copytree(BROKEN / "spam_all_broken", data / group)
        self.check_fails("spam", "none of the 4 records could be used")

    def test_spam_one_class_missing(self):
        shutil.rmtree(self.raw / spam.SOURCE / "spam-1")
        shutil.rmtree(self.raw / spam.SOURCE / "spam-2")
        self.check_fails("spam", "need both ham and spam")

    def test_too_few_examples(self):
        (self.raw / fortunes.SOURCE / "politics").write_text("Only one entry.\n%\n")
        self.check_fails("fortune_topic", "too few usable examples")

    def test_unknown_task_is_a_usage_error(self):
        p = run_prepare("--raw", self.raw, "--out", self.out, "--tasks", "nope")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown task", p.stderr)


class FetchScript(unittest.TestCase):
    def test_syntax_and_help(self):
        script = REPO / "tools/fetch_data.sh"
        self.assertEqual(subprocess.run(["bash", "-n", str(script)]).returncode, 0)
        p = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        self.assertIn("npm pack", p.stdout)
        p = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("unknown argument", p.stderr)


if __name__ == "__main__":
    unittest.main()
