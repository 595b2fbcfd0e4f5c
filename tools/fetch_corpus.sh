#!/usr/bin/env bash
# Fetch and build the large English pretraining corpus (issue 14) from Debian documentation packages.
#
#   tools/fetch_corpus.sh [--force] [--offline] [-- BUILD_ARGS...]
#
# NOT run by tools/setup.sh or CI: it downloads about 585 MB of packages and takes a few minutes.
# Each package is fetched with `apt-get download NAME=VERSION` (never installed) into
# third_party/raw/corpus/archives and unpacked with `dpkg-deb -x` into third_party/raw/corpus/x/NAME
# (of linux-source only Documentation/ is extracted). Then tools/data/build_corpus.py converts them to
# plain prose (markup, code blocks, tables and boilerplate dropped; paragraphs deduplicated; every
# paragraph that shares 8 consecutive words with the task data in third_party/data is dropped) and
# writes third_party/corpus/{train,validation}.txt and manifest.json (validation: ~1 % of documents).
# Run tools/fetch_data.sh first: its task data feeds the leak guard and its literature (Moby-Dick,
# State of the Union) joins the corpus. Sources, versions, licences and shares: docs/data.md.
#   --force    convert again even if nothing changed
#   --offline  fetch nothing; fail if a package is missing
# Everything after `--` goes to build_corpus.py (e.g. -- --validation-fraction 0.02 --seed 7).
# Then tokenize once into shards (train and validation) for `aria pretrain --shards`:
#   build/aria tokenize --text third_party/corpus/train.txt --shards third_party/shards
#   build/aria tokenize --text third_party/corpus/validation.txt --shards third_party/shards --split validation
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RAW="$ROOT/third_party/raw/corpus"
OUT="$ROOT/third_party/corpus"

# Pinned versions (Debian 12 "bookworm"). A version that left the archive at a point release is
# replaced by the current candidate, with a warning (the manifest records the version converted).
DEB_PKGS=(
  "linux-source-6.1=6.1.192-3"
  "python3.11-doc=3.11.2-6+deb12u9"
  "perl-doc=5.36.0-7+deb12u4"
  "perl-modules-5.36=5.36.0-7+deb12u4"
  "postgresql-doc-15=15.20-0+deb12u1"
  "python-django-doc=3:3.2.25-0+deb12u7"
  "python-sqlalchemy-doc=1.4.46+ds1-1"
  "openjdk-17-doc=17.0.21.1+2-1~deb12u1"
  "erlang-doc=1:25.2.3+dfsg-1+deb12u4"
  "qtbase5-doc-html=5.15.8+dfsg-11+deb12u3"
  "racket-doc=8.7+dfsg1-1"
  "python-pandas-doc=1.5.3+dfsg-2"
  "python-scipy-doc=1.10.1-2"
  "gimp-help-en=2.10.34-2"
  "libboost1.81-doc=1.81.0-5+deb12u1"
  "lilypond-doc-html=2.24.1-2"
  "octave-doc=7.3.0-2"
  "vim-runtime=2:9.0.1378-2+deb12u2"
  "sqlite3-doc=3.40.1-2+deb12u2"
  "nodejs-doc=18.20.4+dfsg-1~deb12u3"
  "git-doc=1:2.39.5-0+deb12u3"
  "debian-reference-en=2.100"
  "developers-reference=12.18"
  "debian-policy=4.6.2.0"
  "debian-faq=11.1"
  "maint-guide=1.2.53"
  "abs-guide=10-4"
  "bash-doc=5.2.15-2"
  "autoconf-doc=2.71-3"
  "gnu-standards=2022.03.23-0.1"
  "binutils-doc=2.40-2"
)

FORCE=0; OFFLINE=0; BUILD_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) FORCE=1 ;;
    --offline) OFFLINE=1 ;;
    --) shift; BUILD_ARGS=("$@"); break ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch_corpus.sh: error: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "fetch_corpus: $*"; }
die() { echo "fetch_corpus.sh: error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"; }

need python3 "install Python 3 (apt-get install python3)"
need tar "install tar"
need xz "install xz-utils"
T0=$(date +%s)
mkdir -p "$RAW/archives" "$RAW/x" "$OUT"
[[ -d "$ROOT/third_party/data/sentiment" ]] || say "WARNING: third_party/data has no task data (run tools/fetch_data.sh first): the leak guard has nothing to guard"

APT_OPTS=(-q)
[[ $(id -u) == 0 ]] && APT_OPTS+=(-o APT::Sandbox::User=root)
UPDATED=0
apt_update() {
  [[ $UPDATED == 1 ]] && return 0
  [[ $(id -u) == 0 ]] || die "apt's package lists need updating: run 'sudo apt-get update' and retry"
  say "apt-get update"
  apt-get update -qq || die "apt-get update failed (are Debian's repositories reachable?)"
  UPDATED=1
}
for spec in "${DEB_PKGS[@]}"; do
  pkg="${spec%%=*}"; want="${spec#*=}"
  dest="$RAW/x/$pkg"
  if [[ -f "$dest/.fetched" && -f "$dest/.pinned" && "$(cat "$dest/.pinned")" == "$want" ]]; then
    continue
  fi
  [[ $OFFLINE == 1 ]] && die "deb $pkg is missing and --offline was given"
  need apt-get "this script fetches Debian packages with apt-get download"
  need dpkg-deb "install dpkg"
  rm -f "$RAW/archives/${pkg}_"*.deb
  say "apt-get download $pkg=$want"
  if ! (cd "$RAW/archives" && apt-get download "${APT_OPTS[@]}" "$pkg=$want") >/dev/null 2>&1; then
    apt_update
    if ! (cd "$RAW/archives" && apt-get download "${APT_OPTS[@]}" "$pkg=$want") >/dev/null 2>&1; then
      say "WARNING: $pkg $want is not in the archive any more; fetching the current version"
      (cd "$RAW/archives" && apt-get download "${APT_OPTS[@]}" "$pkg") \
        || die "apt-get download $pkg failed (is the package in your apt sources?)"
    fi
  fi
  deb=$(ls "$RAW/archives/${pkg}_"*.deb 2>/dev/null | head -1)
  [[ -n "$deb" ]] || die "apt-get download $pkg produced no .deb"
  got=$(dpkg-deb -f "$deb" Version) || die "$deb is not a Debian package"
  say "unpack $(basename "$deb") -> third_party/raw/corpus/x/$pkg"
  rm -rf "$dest"; mkdir -p "$dest"
  if [[ $pkg == linux-source-* ]]; then
    # The package holds one tarball of the whole kernel tree: extract only Documentation/.
    dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards './usr/src/linux-source-*.tar.xz' \
      | tar -xJ -C "$dest" --wildcards '*/Documentation/*' || die "could not extract Documentation/ from $deb"
  else
    dpkg-deb -x "$deb" "$dest" || die "dpkg-deb -x $deb failed"
  fi
  # The .deb is not needed any more once unpacked (the kernel's is 139 MB).
  rm -f "$deb"
  echo "$got" > "$dest/.fetched"
  echo "$want" > "$dest/.pinned"
done

stamp_of() {
  {
    cat "$RAW"/x/*/.fetched
    cat "$ROOT"/tools/data/*.py
    cat "$ROOT"/third_party/data/.stamp 2>/dev/null || true
    printf '%s\n' "${BUILD_ARGS[@]+"${BUILD_ARGS[@]}"}"
  } | sha256sum | cut -d' ' -f1
}
STAMP=$(stamp_of)
if [[ $FORCE == 0 && -f "$OUT/.stamp" && "$(cat "$OUT/.stamp")" == "$STAMP" && -f "$OUT/manifest.json" ]]; then
  say "third_party/corpus is up to date (use --force to convert again)"
else
  rm -f "$OUT/.stamp"
  say "converting: python3 tools/data/build_corpus.py ${BUILD_ARGS[*]+"${BUILD_ARGS[*]}"}"
  python3 "$ROOT/tools/data/build_corpus.py" --unpacked "$RAW/x" --out "$OUT" --raw "$ROOT/third_party/raw" \
    --tasks "$ROOT/third_party/data" "${BUILD_ARGS[@]+"${BUILD_ARGS[@]}"}" || die "conversion failed (see the message above)"
  echo "$STAMP" > "$OUT/.stamp"
fi
say "done in $(( $(date +%s) - T0 ))s; corpus in third_party/corpus ($(du -sh "$OUT" | cut -f1)), unpacked packages in third_party/raw/corpus ($(du -sh "$RAW" | cut -f1))"
