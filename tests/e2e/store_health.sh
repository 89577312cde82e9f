#!/usr/bin/env bash
# tests/e2e/store_health.sh - a damaged store is said to be damaged, read-only
# commands never make a store, and a store that cannot be opened says why.
#
# - query, failed, store check, check and run --dry-run in an empty folder
#   make no store: the first three say "there is no store at PATH" (exit 2);
# - a store with 300 flipped bytes in its chunk pages (integrity_check:
#   malformed) is refused by run and query with a message naming the file
#   and the way out, and the file is left byte for byte as it was;
#   `store check` says DAMAGED (exit 1); `store rebuild` re-ingests what it
#   lists into a fresh store equal to a clean run's, keeps the old file as a
#   named backup, and `store check` is then healthy (exit 0) with the counts;
# - a store whose clean-close marker is gone gets PRAGMA quick_check on
#   open; a cleanly closed one does not, nor does a new one;
# - a store in a folder the user cannot write, on a read-only file system,
#   or under a path that is not a folder: the message names the path and
#   the reason.
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "FAIL: python3 is not installed" >&2; exit 1; }

mkdir docs
for i in $(seq 1 20); do
    {
        printf '# Document %d\n\n' "$i"
        for p in 1 2 3 4 5 6; do
            printf 'Paragraph %d of document %d talks about installing, querying and storing vectors number %d.\n\n' "$p" "$i" $((i * p))
        done
    } >"docs/d$i.md"
done

# --- read-only commands in an empty folder make nothing ---
sl query "how to install"
check_eq "query with no store: exit status" "$RC" 2
check_contains "query with no store: says so and names the path" "$ERR" "there is no store at $T/\.sluice/store\.db"
check "query made no store" test ! -e .sluice
sl failed
check_eq "failed with no store: exit status" "$RC" 2
check_contains "failed with no store: says so" "$ERR" "there is no store at"
sl store check
check_eq "store check with no store: exit status" "$RC" 2
check_contains "store check with no store: says so" "$ERR" "there is no store at"
sl check
check_eq "check with no store: exit status" "$RC" 0
sl run --dry-run docs
check_eq "dry run with no store: exit status" "$RC" 0
check_contains "dry run with no store: every document is new" "$OUT" "20 new"
check "check, dry run, query, failed and store check made no store" test ! -e .sluice

# --- a healthy store ---
sl_ok run --json docs
check_eq "first run stores every document" "$(json .documents.stored)" 20
DB=.sluice/store.db
check "a clean close leaves its marker" test -s "$DB.clean"
sl store check
check_eq "store check on a healthy store: exit status" "$RC" 0
check_contains "store check: healthy" "$OUT" "healthy"
chunks=$(sql "$DB" "SELECT count(*) FROM chunks")
check_contains "store check: the counts" "$OUT" "documents 20, chunks $chunks, vectors $chunks, orphans 0"
sl store check --json
check_eq "store check --json: healthy" "$(json .healthy)" true
check_eq "store check --json: documents" "$(json '.stores[0].documents')" 20
check_eq "store check --json: orphans" "$(json '.stores[0].orphans')" 0
sl -v query installing
check_eq "query on a cleanly closed store: exit status" "$RC" 0
check_lacks "a cleanly closed store is not quick_checked" "$ERR" "quick_check"

# the same documents stored cleanly elsewhere: what a rebuild must equal;
# a new store is neither called unclean nor quick_checked
sl -v --set store.path="$T/ref/store.db" run docs
check_eq "a run into a new store: exit status" "$RC" 0
check_lacks "a new store is not called unclosed" "$ERR" "not closed cleanly"
check_lacks "a new store is not quick_checked" "$ERR" "quick_check"
ref=$(store_digest "$T/ref/store.db")

# --- not closed cleanly: quick_check on open ---
rm -f "$DB.clean"
sl -v query installing
check_eq "query on a store not closed cleanly: exit status" "$RC" 0
check_contains "a store not closed cleanly is quick_checked" "$ERR" "not closed cleanly.*quick_check"

# --- 300 flipped bytes ---
pages=$(sql "$DB" "SELECT group_concat(pageno, ' ') FROM dbstat WHERE name = 'chunks'")
check_ne "dbstat lists the chunk pages" "$pages" ""
python3 - "$DB" "$pages" <<'PY'
import random, sys
path, pages = sys.argv[1], [int(p) for p in sys.argv[2].split()]
data = bytearray(open(path, "rb").read())
size = int.from_bytes(data[16:18], "big") or 65536
rng = random.Random(17)
for _ in range(300):  # the first 64 bytes of a page: its header and cell pointers
    page = rng.choice(pages)
    at = (page - 1) * size + (100 if page == 1 else 0) + rng.randrange(64)
    data[at] ^= 0xFF
open(path, "wb").write(data)
PY
check_ne "precondition: integrity_check finds the damage" "$(sqlite3 "$DB" 'PRAGMA integrity_check' 2>&1 | head -1)" "ok"
before=$(sha256sum "$DB" | cut -d' ' -f1)
sl run docs
check_eq "run on a damaged store: exit status" "$RC" 2
check_contains "run on a damaged store: names the file and says damaged" "$ERR" "$T/\.sluice/store\.db is damaged"
check_contains "run on a damaged store: says how to recover" "$ERR" "sluice store rebuild"
sl query installing
check_eq "query on a damaged store: exit status" "$RC" 2
check_contains "query on a damaged store: refused" "$ERR" "is damaged.*sluice store check"
check_eq "the refused runs wrote nothing into the damaged file" "$(sha256sum "$DB" | cut -d' ' -f1)" "$before"
sl store check
check_eq "store check on a damaged store: exit status" "$RC" 1
check_contains "store check: DAMAGED, with the problems" "$OUT" "DAMAGED"
check_contains "store check: integrity_check's findings" "$OUT" "problem: "
sl store check --json
check_eq "store check --json on a damaged store: healthy" "$(json .healthy)" false

sl store rebuild
check_eq "store rebuild: exit status" "$RC" 0
check_contains "store rebuild: names the backup" "$OUT" "kept as $T/\.sluice/store\.db\.damaged-[0-9T]+Z"
backup=$(grep -oE "$T/\.sluice/store\.db\.damaged-[0-9T]+Z" <<<"$OUT" | head -1 || true)
check "the backup exists" test -f "$backup"
check_eq "the backup is the damaged file, unchanged" "$(sha256sum "$backup" | cut -d' ' -f1)" "$before"
sl store check
check_eq "store check after the rebuild: exit status" "$RC" 0
check_contains "store check after the rebuild: healthy, every document" "$OUT" "healthy"
check_eq "the rebuilt store holds what a clean run stores" "$(store_digest "$DB")" "$ref"
check "no rebuild file is left" test ! -e "$DB.rebuild"
sl_ok run --json docs
check_eq "a run after the rebuild skips everything" "$(json .documents.skipped)" 20

# --- a destroyed header: refused, checked, and nothing to rebuild from ---
cp "$DB" hdr.db
printf 'XXXXXXXX' | dd of=hdr.db bs=1 conv=notrunc status=none
sl --set store.path="$T/hdr.db" run docs
check_eq "run on a store whose header is gone: exit status" "$RC" 2
check_contains "run on a store whose header is gone: damaged, names it" "$ERR" "$T/hdr\.db is damaged \(not an SQLite file"
sl --set store.path="$T/hdr.db" store check
check_eq "store check on a store whose header is gone: exit status" "$RC" 1
check_contains "store check on a store whose header is gone: says so" "$OUT" "DAMAGED.*|not an SQLite file"
sl --set store.path="$T/hdr.db" store rebuild
check_eq "store rebuild with nothing readable: exit status" "$RC" 2
check_contains "store rebuild with nothing readable: says so" "$ERR" "nothing to re-ingest"

# --- a store that cannot be opened says where and why ---
: >afile
sl --set store.path="$T/afile/store.db" run docs
check_eq "a path through a file: exit status" "$RC" 2
check_contains "a path through a file: names it and why" "$ERR" "$T/afile.*(not a folder|Not a directory)"
mkdir locked
chmod 755 "$T"
chmod 555 locked
sl_as_nobody() { # sluice as an unprivileged user: root writes anywhere
    set +e
    OUT=$(timeout -k 10 "$SLUICE_TIMEOUT" setpriv --reuid=65534 --regid=65534 --clear-groups "$SLUICE" "$@" 2>"$T/.err" </dev/null)
    RC=$?
    set -e
    ERR=$(cat "$T/.err")
}
sl_as_nobody --set store.path="$T/locked/store.db" run "$T/docs"
check_eq "a folder the user cannot write: exit status" "$RC" 2
check_contains "a folder the user cannot write: names the path and says permission" "$ERR" "$T/locked.*permission denied"
mkdir rofs
if ! mount -t tmpfs -o size=1m,ro tmpfs rofs; then
    fail "cannot mount a read-only tmpfs (the test runs as root, as CI does): $(id)"
else
    sl --set store.path="$T/rofs/store.db" run docs
    check_eq "a read-only file system: exit status" "$RC" 2
    check_contains "a read-only file system: names the path and says so" "$ERR" "$T/rofs.*read-only file system"
    umount rofs
fi
finish
