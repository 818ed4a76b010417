#!/bin/sh
# Install the Chromium that make pdf and tests/test_browser.py drive (through playwright, never a downloaded browser
# build), and poppler-utils (pdftotext, pdffonts, pdfinfo), which the PDF tests read the PDF with.
#
# Does nothing when a chromium is already on PATH (or $CHROMIUM names one); otherwise, on Debian/Ubuntu as root,
# installs Debian's package with apt-get. It never fails its caller: when it cannot install, it says why and
# exits 0, and the browser tests then skip with their own reason.
set -u

if ! command -v pdftotext >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "install_browser: installing Debian's poppler-utils (for the PDF tests) ..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils; } \
        || echo "install_browser: poppler-utils could not be installed; the PDF tests will skip." >&2
fi

if [ -n "${CHROMIUM:-}" ] && [ -x "${CHROMIUM}" ]; then
    exit 0
fi
for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: no chromium on PATH and no apt-get here; install Chromium yourself (or set CHROMIUM=/path/to/chromium); the browser tests will skip." >&2
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "install_browser: no chromium on PATH; run 'sudo apt-get install chromium' (this script installs it only as root); the browser tests will skip." >&2
    exit 0
fi

echo "install_browser: installing Debian's chromium with apt-get ..." >&2
if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; then
    echo "install_browser: chromium installed: $(command -v chromium || echo '?')" >&2
else
    echo "install_browser: apt-get could not install chromium (no network, or no such package here); the browser tests will skip." >&2
fi
exit 0
