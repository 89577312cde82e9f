#!/usr/bin/env bash
# tests/e2e/readme_links.sh - the README's relative links (the headers, the
# plugin guide, the plugins' READMEs, the example configurations and
# plugins) lead somewhere for both of its readers: in the repository, and
# in the tree `cmake --install` makes, where the README is
# share/doc/sluice/README.md. Each link is resolved as a Markdown viewer
# would (relative to the README's folder, through symbolic links); a header
# link in the installed tree must reach the installed header itself.
source "$(dirname "$0")/lib.sh"

CMAKE=${SLUICE_CMAKE:-cmake}
# links README: the relative link targets of a Markdown file, one a line
# (no URLs, no anchors; a "#..." tail is dropped)
links() { grep -oE '\]\([^)#[:space:]]+(#[^)]*)?\)' "$1" | sed -E 's/^\]\(//; s/\)$//; s/#.*//' | grep -vE '^[a-z]+:' | sort -u; }

# check_links WHAT README: every link of README resolves
check_links() {
    local what=$1 readme=$2 dir n=0 link
    dir=$(dirname "$readme")
    while read -r link; do
        [[ -n $link ]] || continue
        n=$((n + 1))
        check "$what: link '$link' resolves" test -e "$dir/$link"
    done < <(links "$readme")
    check_gt "$what: links found" "$n" 10
}

check_links "source tree" "$SRC/README.md"
check_contains "the README links the plugin guide" "$(links "$SRC/README.md")" '^docs/plugin-guide\.md$'
check_contains "the README links a plugin's README" "$(links "$SRC/README.md")" '^plugins/sink-postgres/README\.md$'
check_contains "the README links the headers" "$(links "$SRC/README.md")" '^sdk/include/sluice/sluice\.h$'

sl_install() { "$CMAKE" --install "$BUILD" --prefix "$T/prefix" >install.out 2>&1; }
check "cmake --install into a temporary prefix" sl_install
doc=$T/prefix/share/doc/sluice
check "the installed README is in share/doc/sluice" test -f "$doc/README.md"
check_links "installed tree" "$doc/README.md"
check "the installed guide is where the README links it" test -f "$doc/docs/plugin-guide.md"
check_eq "a header link reaches the installed header" \
    "$(readlink -f "$doc/sdk/include/sluice/sluice.h")" "$(readlink -f "$T/prefix/include/sluice/sluice.h")"
check "a plugin's README is installed" test -f "$doc/plugins/sink-postgres/README.md"
check_contains "the guide names where it is installed" "$(head -5 "$doc/docs/plugin-guide.md")" \
    'share/doc/sluice/docs/plugin-guide\.md'
finish
