#!/usr/bin/env bash
# Fetch the JavaScript the offline book serves itself (nothing from a CDN):
# require.js, the ipywidgets HTML manager (+ its icon fonts), MathJax 3 and
# the plotly.min.js that ships inside the installed plotly wheel.
# Usage: tools/vendor.sh PYTHON DEST   (DEST is e.g. _vendor_static/vendor)
set -euo pipefail
py=$1; dest=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @jupyter-widgets/html-manager@1 requirejs@2 mathjax@3 >/dev/null)
for t in "$tmp"/*.tgz; do d="$tmp/$(basename "$t" .tgz)"; mkdir -p "$d"; tar xzf "$t" -C "$d"; done
rm -rf "$dest"; mkdir -p "$dest/html-manager" "$dest/mathjax/output/chtml" "$dest/npm"
cp "$tmp"/requirejs-*/package/require.js "$dest/require.min.js"
hm=$(echo "$tmp"/jupyter-widgets-html-manager-*/package/dist)
cp "$hm"/embed-amd.js "$hm"/*.woff* "$hm"/*.ttf "$hm"/*.eot "$hm"/*.svg "$dest/html-manager/"
mj=$(echo "$tmp"/mathjax-*/package/es5)
cp "$mj/tex-mml-chtml.js" "$dest/mathjax/"
cp -r "$mj/output/chtml/fonts" "$dest/mathjax/output/chtml/"
cp -r "$mj/input" "$mj/a11y" "$mj/ui" "$dest/mathjax/" 2>/dev/null || true  # extensions MathJax may load on demand
plotly_js=$("$py" -c 'import plotly, pathlib; print(pathlib.Path(plotly.__file__).parent / "package_data" / "plotly.min.js")')
cp "$plotly_js" "$dest/plotly.min.js"
echo "vendored into $dest: $(du -sh "$dest" | cut -f1)"
