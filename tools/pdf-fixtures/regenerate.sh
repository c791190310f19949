#!/usr/bin/env bash
# Rebuilds the PDF fixtures in __tests__/fixtures/pdf/ from the sources in this folder, with
# the typesetters people use (pdflatex, LibreOffice, headless Chromium), and writes each one's
# ground truth (<name>.truth.json) from its source. The PDFs are committed, so the tests need
# none of these tools; run this only after editing a source.
#
#   tools/pdf-fixtures/regenerate.sh            (from the repository root; apt needs root)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$repo/__tests__/fixtures/pdf"
mkdir -p "$out"

need=()
command -v pdflatex >/dev/null || need+=(texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended texlive-publishers)
command -v soffice >/dev/null || need+=(libreoffice-writer-nogui)
command -v chromium-headless-shell >/dev/null || need+=(chromium-headless-shell)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "regenerate.sh: missing typesetters; run as root or install them first:" >&2
    echo "  apt-get install -y --no-install-recommends ${need[*]}" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

# A fixed build folder: pdfTeX derives the PDF's /ID from the output path, and a fixed path
# (with SOURCE_DATE_EPOCH below) makes an unchanged source rebuild byte for byte.
work="${TMPDIR:-/tmp}/clara-pdf-fixtures-build"
rm -rf "$work" && mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
# Fixed dates inside the pdflatex PDFs, so that rebuilding an unchanged source changes nothing
# (LibreOffice and Chromium stamp the time of the run; only their dates differ between runs).
export SOURCE_DATE_EPOCH=1767225600 FORCE_SOURCE_DATE=1

for tex in "$here"/*.tex; do
  name="$(basename "$tex" .tex)"
  # Twice: the second run resolves \ref and the longtable column widths.
  for _ in 1 2; do
    pdflatex -interaction=nonstopmode -halt-on-error -output-directory "$work" "$tex" >"$work/$name.console.txt" ||
      { tail -30 "$work/$name.console.txt" >&2; echo "regenerate.sh: pdflatex failed on $tex" >&2; exit 1; }
  done
  cp "$work/$name.pdf" "$out/$name.pdf"
done

for odt in "$here"/*.fodt; do
  soffice --headless --norestore -env:UserInstallation="file://$work/lo-profile" --convert-to pdf --outdir "$work" "$odt" >/dev/null
  cp "$work/$(basename "$odt" .fodt).pdf" "$out/"
done

for html in "$here"/*.html; do
  # Chromium's default header and footer (date, title, URL, page n/m) are kept on purpose:
  # they are the running text a printed web page carries.
  chromium-headless-shell --headless --no-sandbox --disable-gpu --user-data-dir="$work/chromium" \
    --print-to-pdf="$out/$(basename "$html" .html).pdf" "file://$html" 2>/dev/null
done

# Ground truth from the sources (the TypeScript build puts the reader in dist/).
(cd "$repo" && npx tsc -p tsconfig.json)
for src in "$here"/*.tex "$here"/*.fodt "$here"/*.html; do
  name="$(basename "${src%.*}")"
  node "$repo/dist/tools/pdf-fixtures/ground-truth.js" "$src" "$out/$name.truth.json"
done
ls -l "$out"
