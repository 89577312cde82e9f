#!/usr/bin/env bash
# bench/s3_listing.sh - the time and peak memory of reading one ListObjectsV2
# page (core/source.c's sl_s3_list_page), for realistic pages and for the
# largest hostile ones a server may send (MAX_LISTING, 16 MiB): a page of
# empty elements, which a tree would hold as millions of nodes, and a page
# of one-byte keys, each of which the listing keeps.
#
#   bench/s3_listing.sh [BUILD]          # default build/
#
# It runs the fuzz harness's replay build (BUILD/fuzz/fuzz_s3_listing) once
# per page under /usr/bin/time (Debian package `time`, in scripts/deps.sh),
# so a row is the whole process: the replay holds the page about four
# times over (read, exact copy, error-body copy, page copy), and the
# harness also describes the page as an error body. Pages are made under
# $WORK (default /tmp/sluice-bench-s3) and reused.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
WORK=${WORK:-/tmp/sluice-bench-s3}
mkdir -p "$WORK"
cmake --build "$build" --target fuzz_s3_listing >/dev/null
harness=$build/fuzz/fuzz_s3_listing
command -v /usr/bin/time >/dev/null || {
    echo "bench/s3_listing.sh needs /usr/bin/time (Debian package time)" >&2
    exit 1
}

python3 - "$WORK" <<'EOF'
import os, sys
work = sys.argv[1]
cap = (16 << 20) - 64
ns = 'http://s3.amazonaws.com/doc/2006-03-01/'
head, tail = '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="%s">' % ns, '</ListBucketResult>'
def contents(i, key_len):
    key = ('docs/%08d/' % i + 'k' * key_len)[:key_len]
    return ('<Contents><Key>%s</Key><LastModified>2026-11-30T08:12:45.000Z</LastModified>'
            '<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>%d</Size>'
            '<StorageClass>STANDARD</StorageClass></Contents>' % (key, i))
pages = {
    'aws-1000-keys-40B': head + '<IsTruncated>true</IsTruncated>' + ''.join(contents(i, 40) for i in range(1000))
                         + '<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>' + tail,
    'aws-1000-keys-1024B': head + '<IsTruncated>false</IsTruncated>' + ''.join(contents(i, 1024) for i in range(1000)) + tail,
}
unit = '<Contents><Key>k</Key></Contents>'
pages['hostile-16MiB-1-byte-keys'] = head + unit * ((cap - len(head) - len(tail)) // len(unit)) + tail
pages['hostile-16MiB-empty-elements'] = head + '<a/>' * ((cap - len(head) - len(tail)) // 4) + tail
for name, text in pages.items():
    path = os.path.join(work, name + '.xml')
    if not os.path.exists(path):
        with open(path, 'w') as f:
            f.write(text)
EOF

printf '| %-30s | %10s | %8s | %13s |\n' page bytes seconds "peak RSS (MB)"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..32})" "$(printf -- '-%.0s' {1..12})" \
    "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..15})"
for page in aws-1000-keys-40B aws-1000-keys-1024B hostile-16MiB-1-byte-keys hostile-16MiB-empty-elements; do
    f=$WORK/$page.xml
    /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$harness" "$f" >/dev/null
    read -r secs kb <"$WORK/time.txt"
    printf '| %-30s | %10s | %8s | %13s |\n' "$page" "$(stat -c %s "$f")" "$secs" "$((kb / 1024))"
done
