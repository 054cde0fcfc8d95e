#!/usr/bin/env bash
# Push a built book to a branch of a remote with ghp-import, as `make publish` does:
#   tools/publish.sh [HTML_DIR]        (default _build/html)
# REMOTE (default origin), BRANCH (default gh-pages) and PYTHON (an interpreter with ghp-import;
# default python3) come from the environment. The branch's content becomes exactly HTML_DIR's,
# in one new commit on top of it (force-pushed), plus a .nojekyll so that GitHub Pages serves the
# _static/ and _sources/ folders as they are (Jekyll would drop names starting with "_").
# Run it from inside the git repository whose remote receives the book.
set -euo pipefail
html=${1:-_build/html}
remote=${REMOTE:-origin}
branch=${BRANCH:-gh-pages}
python=${PYTHON:-python3}
if [ ! -f "$html/index.html" ]; then
  echo "publish: $html/index.html is missing: build the book first (make book), then publish" >&2
  exit 1
fi
"$python" -m ghp_import --no-jekyll --push --force --remote "$remote" --branch "$branch" \
  --message "Publish the book from $(git rev-parse --short HEAD 2>/dev/null || echo 'a checkout')" "$html"
echo "publish: $html pushed to $remote $branch"
