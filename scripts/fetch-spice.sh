#!/usr/bin/env bash
# Makes SPICE (the COCO caption toolkit's spice-1.0.jar) runnable on Java 17 by `pixel-info score --spice` and
# `pixel-info eval --spice`, in the user's cache, never in the repository:
#
#   ${PIXEL_INFO_CACHE_DIR:-~/.cache/pixel-info}/spice/
#     spice-1.0.jar  lib/       copied from the installed pycocoevalcap (pip install pycocoevalcap)
#     lib/stanford-corenlp-3.6.0.jar, lib/stanford-corenlp-3.6.0-models.jar
#                               Stanford CoreNLP 3.6.0 from Maven Central (the release pycocoevalcap would download
#                               from nlp.stanford.edu at run time: stanford-corenlp-full-2015-12-09), 7.3 MB + 378 MB
#     modules/                  Nashorn 15.4 and ASM 7.3.1 (SPICE pretty-prints its output with the JavaScript engine,
#                               which Java 15+ no longer has), put on the module path by src/metrics/spice.ts
#     cache/                    SPICE's LMDB cache of caption parses (made at run time)
#
# Maven (Debian's `maven`) fetches the artifacts, checking Central's checksums (-C), into a temporary local
# repository that is deleted afterwards; the jars are then checked against the SHA-256 pinned below.
# Idempotent: when every file is there with its expected size it prints so and does nothing.
#
#   bash scripts/fetch-spice.sh            # fetch what is missing
#   bash scripts/fetch-spice.sh --verify   # also re-check the SHA-256 of the files already there
set -euo pipefail

# The model cache of src/encoder/cache.ts: $PIXEL_INFO_CACHE_DIR, else ${XDG_CACHE_HOME:-~/.cache}/pixel-info.
CACHE_ROOT="${PIXEL_INFO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pixel-info}"
SPICE_DIR="$CACHE_ROOT/spice"
PYTHON="${PIXEL_INFO_SPICE_PYTHON:-python3}"
VERIFY=0
for arg in "$@"; do
  case "$arg" in
    --verify) VERIFY=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "fetch-spice: unknown argument $arg" >&2; exit 2 ;;
  esac
done

say() { echo "fetch-spice: $*"; }

# groupId:artifactId:version[:classifier]  destination (relative to SPICE_DIR)  size  sha256
MAVEN_ARTIFACTS=(
  "edu.stanford.nlp:stanford-corenlp:3.6.0            lib/stanford-corenlp-3.6.0.jar          7270741 d341d5863276f55782c5ef73212222d6b3b48e02ae1951ab6de7618d28b12742"
  "edu.stanford.nlp:stanford-corenlp:3.6.0:models     lib/stanford-corenlp-3.6.0-models.jar   378116526 d285157bd7887ee3018094b5dbae092e49088b023361ccdb550ee1daf9b2c9bd"
  "org.openjdk.nashorn:nashorn-core:15.4              modules/nashorn-core-15.4.jar           2167292 6f816e84dfd63a81d4eaa7829c08337bbaff3ec683ff3bf6bbd90d017a00dc6f"
  "org.ow2.asm:asm:7.3.1                              modules/asm-7.3.1.jar                   121836 2f67e11ceec819ebd88ddee5300aba699b1cbab2e20c22e97cf027d3be93959b"
  "org.ow2.asm:asm-commons:7.3.1                      modules/asm-commons-7.3.1.jar           71548 87cd8bb3c6bf6bcbb33fca48060c5065f66ebf6a3d7de9bf18bff51bcf156ebc"
  "org.ow2.asm:asm-tree:7.3.1                         modules/asm-tree-7.3.1.jar              52826 f91a4a8aa868c5c4665bb4fd134019a91f9f8b9216527fba295e3c8b5422b78b"
  "org.ow2.asm:asm-util:7.3.1                         modules/asm-util-7.3.1.jar              84817 182128592742ed4883ac82bf205f137b6bfbe1234c68e6feb13759e75a85b729"
  "org.ow2.asm:asm-analysis:7.3.1                     modules/asm-analysis-7.3.1.jar          33446 46b8a8efd4b94facb5ab4b35afe30ee0546ae7a43d2c64e6def56c2f168fefa5"
)

size_of() { stat -c %s "$1" 2>/dev/null || echo -1; }

# ---------------------------------------------------------------- what is there already
missing=()
for entry in "${MAVEN_ARTIFACTS[@]}"; do
  read -r coords dest size sha <<<"$entry"
  if [ "$(size_of "$SPICE_DIR/$dest")" != "$size" ]; then
    missing+=("$entry")
  elif [ "$VERIFY" = 1 ] && [ "$(sha256sum "$SPICE_DIR/$dest" | cut -d' ' -f1)" != "$sha" ]; then
    say "$dest: SHA-256 differs from the pinned one; fetching it again"
    missing+=("$entry")
  fi
done
# The jar and what its manifest's Class-Path names besides CoreNLP, as pycocoevalcap ships them.
SPICE_FILES=(spice-1.0.jar lib/ejml-0.23.jar lib/slf4j-api-1.7.12.jar lib/slf4j-simple-1.7.21.jar lib/lmdbjni-0.4.6.jar
  lib/lmdbjni-linux64-0.4.6.jar lib/fst-2.47.jar lib/jackson-core-2.5.3.jar lib/javassist-3.19.0-GA.jar lib/objenesis-2.4.jar
  lib/guava-19.0.jar lib/json-simple-1.1.1.jar lib/Meteor-1.5.jar lib/SceneGraphParser-1.0.jar)
have_spice_jar=1
for f in "${SPICE_FILES[@]}"; do [ -s "$SPICE_DIR/$f" ] || have_spice_jar=0; done

if [ ${#missing[@]} -eq 0 ] && [ "$have_spice_jar" = 1 ]; then
  say "SPICE is ready in $SPICE_DIR (nothing to do)"
  exit 0
fi
mkdir -p "$SPICE_DIR/lib" "$SPICE_DIR/modules"

# ---------------------------------------------------------------- spice-1.0.jar and lib/ from pycocoevalcap
if [ "$have_spice_jar" = 0 ]; then
  # pycocoevalcap has no __init__.py (a namespace package): its folder is __path__[0].
  pkg=$("$PYTHON" -c 'import pycocoevalcap; print(list(pycocoevalcap.__path__)[0])' 2>/dev/null) || {
    echo "fetch-spice: pycocoevalcap is not installed for $PYTHON (pip install pycocoevalcap), which ships spice-1.0.jar" >&2
    exit 1
  }
  if [ ! -f "$pkg/spice/spice-1.0.jar" ]; then
    echo "fetch-spice: $pkg/spice/spice-1.0.jar not found (a pycocoevalcap without SPICE?)" >&2
    exit 1
  fi
  say "copying spice-1.0.jar and its lib/ from $pkg/spice"
  cp "$pkg/spice/spice-1.0.jar" "$SPICE_DIR/spice-1.0.jar.part"
  # Only jars: a CoreNLP that pycocoevalcap may have downloaded itself is copied too, and is then checked below.
  find "$pkg/spice/lib" -maxdepth 1 -name '*.jar' -exec cp {} "$SPICE_DIR/lib/" \;
  mv "$SPICE_DIR/spice-1.0.jar.part" "$SPICE_DIR/spice-1.0.jar"
fi

# ---------------------------------------------------------------- CoreNLP 3.6.0, Nashorn, ASM from Maven Central
still=()
for entry in "${missing[@]}"; do
  read -r coords dest size sha <<<"$entry"
  [ "$(size_of "$SPICE_DIR/$dest")" = "$size" ] && [ "$VERIFY" = 0 ] || still+=("$entry")
done
if [ ${#still[@]} -gt 0 ]; then
  command -v mvn >/dev/null 2>&1 || { echo "fetch-spice: Maven (mvn) is needed to fetch from Maven Central: apt-get install maven" >&2; exit 1; }
  work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-spice.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  deps=""
  for entry in "${still[@]}"; do
    read -r coords dest size sha <<<"$entry"
    IFS=: read -r g a v c <<<"$coords"
    say "fetching $coords from Maven Central -> $SPICE_DIR/$dest"
    deps+="<dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version>${c:+<classifier>$c</classifier>}</dependency>"
  done
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.pixel-info</groupId><artifactId>fetch-spice</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>$deps</dependencies>
</project>
EOF
  # -C: fail on a checksum mismatch; the local repository is temporary (no second copy of the 378 MB models jar).
  # (sed: Debian's Maven writes colour resets even in batch mode; pipefail keeps Maven's exit status.)
  mvn -B -q -C -Dstyle.color=never -f "$work/pom.xml" -Dmaven.repo.local="$work/m2" \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DexcludeTransitive=true -DoutputDirectory="$work/out" 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g'
  for entry in "${still[@]}"; do
    read -r coords dest size sha <<<"$entry"
    file="$work/out/$(basename "$dest")"
    [ -f "$file" ] || { echo "fetch-spice: Maven did not produce $(basename "$dest")" >&2; exit 1; }
    got=$(sha256sum "$file" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
      echo "fetch-spice: $coords: SHA-256 $got, expected $sha" >&2
      exit 1
    fi
    mv "$file" "$SPICE_DIR/$dest"
  done
fi

say "SPICE is ready in $SPICE_DIR"
