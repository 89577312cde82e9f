/* health.c - is the store's file whole, was it closed cleanly, and what to
 * do when it is not: sink-sqlite's checks on open, `sluice store check`,
 * the salvage read and the swap of `sluice store rebuild`, and the words
 * for a file that cannot be opened.
 *
 * On every open the first 100 bytes (SQLite's header) are checked: magic,
 * page size, payload fractions, encoding, and that the file is as long as
 * the header says. That is cheap, but flipped bytes in a b-tree page are
 * beyond it, so a file that was not closed cleanly also gets PRAGMA
 * quick_check (every page read once, O(file)). "Closed cleanly" is a
 * marker, PATH.clean, that the last writer writes when it closes with the
 * WAL checkpointed away: the file's device, inode, size and mtime at that
 * moment. A writer removes it before its first write. Anything else means
 * "not closed cleanly": no marker (a writer killed, or a store of an older
 * sluice), a file changed since (a tool, a disk, flipped bytes: the mtime
 * moved), or a WAL with frames and no live writer. A store another sluice
 * process is writing now (its PATH.lock flock is held) is not re-checked:
 * its writer is alive, and its file is mid-write.
 *
 * The header is read through SQLite's own file handle, and the marker and
 * lock are files of their own: opening and closing the database file
 * behind SQLite's back would drop its POSIX locks (`sluice serve` opens a
 * new configuration's store while the old one's connections live).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "sink_sqlite.h"

/* --- names --- */

char *side_path(const char *path, const char *suffix) {
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s", path, suffix);
    return p;
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* --- why a file cannot be opened --- */

void explain_open(const char *path, bool write, int sys_errno, char *out, size_t cap) {
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    struct stat st;
    struct statvfs vfs;
    bool rofs = statvfs(dir, &vfs) == 0 && (vfs.f_flag & ST_RDONLY);
    if (stat(dir, &st) != 0) {
        snprintf(out, cap, "the folder %s %s", dir, errno == ENOENT ? "does not exist" : strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        snprintf(out, cap, "%s is not a folder", dir);
    } else if (stat(path, &st) == 0 && access(path, write ? R_OK | W_OK : R_OK) != 0) {
        int e = errno;
        snprintf(out, cap, "%s: %s%s", path, e == EROFS || rofs ? "read-only file system" : strerror(e),
                 e == EACCES
                     ? write ? " (the file is not writable by this user)" : " (not readable by this user)"
                     : "");
    } else if (write && rofs) {
        snprintf(out, cap, "%s is on a read-only file system", dir);
    } else if (write && access(dir, W_OK | X_OK) != 0) {
        int e = errno;
        snprintf(out, cap, "the folder %s: %s (SQLite makes the store and its -wal and -shm files there)",
                 dir, e == EACCES ? "permission denied: not writable by this user" : strerror(e));
    } else if (sys_errno) {
        snprintf(out, cap, "%s", strerror(sys_errno));
    } else {
        snprintf(out, cap, "SQLite cannot open it");
    }
}

/* --- the header --- */

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int header_problem(sqlite3 *db, char *why, size_t cap) {
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || !f || !f->pMethods)
        return 0; /* not a file (in memory): nothing to check */
    sqlite3_int64 size = 0;
    if (f->pMethods->xFileSize(f, &size) != SQLITE_OK)
        return snprintf(why, cap, "its size cannot be read"), 1;
    if (size == 0) return 0; /* empty: a new store */
    unsigned char h[100];
    if (size < 100) return snprintf(why, cap, "%lld bytes, too short for an SQLite file", (long long)size), 1;
    if (f->pMethods->xRead(f, h, 100, 0) != SQLITE_OK)
        return snprintf(why, cap, "its header cannot be read"), 1;
    if (memcmp(h, "SQLite format 3", 16) != 0)
        return snprintf(why, cap, "not an SQLite file (bad header)"), 1;
    uint32_t page = (uint32_t)h[16] << 8 | h[17];
    if (page == 1) page = 65536;
    if (page < 512 || (page & (page - 1)))
        return snprintf(why, cap, "header: page size %u is not a power of two from 512", page), 1;
    /* with frames in the WAL the file's page 1 may be older than the
     * store's (a new store's header is complete only in the WAL): the
     * rest of the header is the WAL's to say, and quick_check's */
    const char *name = sqlite3_db_filename(db, "main");
    char *wal = name && *name ? side_path(name, "-wal") : NULL;
    bool frames = wal && file_size(wal) > 0;
    free(wal);
    if (frames) return 0;
    if (h[18] < 1 || h[18] > 2 || h[19] < 1 || h[19] > 2)
        return snprintf(why, cap, "header: file format versions %u/%u", h[18], h[19]), 1;
    if (h[21] != 64 || h[22] != 32 || h[23] != 32)
        return snprintf(why, cap, "header: payload fractions %u/%u/%u are not 64/32/32", h[21], h[22], h[23]),
               1;
    uint32_t enc = be32(h + 56), fmt = be32(h + 44);
    if (enc > 3) return snprintf(why, cap, "header: text encoding %u", enc), 1; /* 0: not set yet */
    if (fmt > 4) return snprintf(why, cap, "header: schema format %u", fmt), 1;
    if ((uint64_t)size % page)
        return snprintf(why, cap, "%lld bytes is not a whole number of %u-byte pages", (long long)size, page),
               1;
    uint32_t pages = be32(h + 28);
    /* the page count is valid when its "valid for" counter matches */
    if (pages && be32(h + 92) == be32(h + 24) && (uint64_t)pages * page > (uint64_t)size)
        return snprintf(why, cap, "the header says %u pages but the file holds %lld (truncated)", pages,
                        (long long)(size / page)),
               1;
    return 0;
}

/* --- closed cleanly? --- */

static void marker_of(const struct stat *st, char *out, size_t cap) {
    snprintf(out, cap, "sluice-clean 1 %llu %llu %lld %lld.%09ld\n", (unsigned long long)st->st_dev,
             (unsigned long long)st->st_ino, (long long)st->st_size, (long long)st->st_mtim.tv_sec,
             st->st_mtim.tv_nsec);
}

void clean_forget(const char *path) {
    char *m = side_path(path, ".clean");
    if (m) unlink(m);
    free(m);
}

void clean_record(const char *path) {
    char *wal = side_path(path, "-wal"), *m = side_path(path, ".clean"), *tmp = side_path(path, ".clean.tmp");
    struct stat st;
    /* a WAL left means another connection still has the file open: its
     * close will checkpoint and change the file, so no marker now */
    if (wal && m && tmp && file_size(wal) <= 0 && stat(path, &st) == 0) {
        char line[160];
        marker_of(&st, line, sizeof line);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            bool ok = write(fd, line, strlen(line)) == (ssize_t)strlen(line);
            ok = close(fd) == 0 && ok;
            if (!ok || rename(tmp, m) != 0) unlink(tmp);
        }
    }
    free(wal);
    free(m);
    free(tmp);
}

/* Another process writes the store now: its claim holds PATH.lock. */
static bool writer_alive(const char *path) {
    char *lp = side_path(path, ".lock");
    int fd = lp ? open(lp, O_RDONLY | O_CLOEXEC) : -1;
    free(lp);
    if (fd < 0) return false;
    bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); /* drops the shared probe at once, if it was taken */
    return held;
}

bool closed_cleanly(const char *path, char *why, size_t cap) {
    char *wal = side_path(path, "-wal"), *m = side_path(path, ".clean");
    bool clean = false;
    struct stat st;
    char want[160], got[160] = "";
    if (!wal || !m || stat(path, &st) != 0) {
        snprintf(why, cap, "it cannot be looked at");
    } else if (writer_alive(path)) {
        clean = true; /* being written by a live sluice: not ours to judge */
    } else if (st.st_size == 0 && file_size(wal) <= 0) {
        clean = true; /* new: opening made it, and nothing was ever written */
    } else {
        int fd = open(m, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, got, sizeof got - 1) : -1;
        if (fd >= 0) close(fd);
        got[n > 0 ? n : 0] = '\0';
        marker_of(&st, want, sizeof want);
        if (fd < 0)
            snprintf(why, cap,
                     "it was not closed cleanly (no %s: a writer was stopped, or an older sluice wrote it)",
                     m);
        else if (strcmp(got, want) != 0)
            snprintf(why, cap, "it changed after its last clean close (by something other than sluice?)");
        else if (file_size(wal) > 0)
            snprintf(why, cap, "its WAL holds writes no live process owns");
        else
            clean = true;
    }
    free(wal);
    free(m);
    return clean;
}

/* --- quick_check / integrity_check --- */

int run_check(sqlite3 *db, const char *pragma, void (*each)(void *, const char *), void *arg, char *first,
              size_t cap) {
    sqlite3_stmt *st = NULL;
    int bad = 0;
    if (first && cap) first[0] = '\0';
    int rc = sqlite3_prepare_v2(db, pragma, -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        const char *line = (const char *)sqlite3_column_text(st, 0);
        if (line && strcmp(line, "ok") == 0) continue;
        if (!bad && first) {
            snprintf(first, cap, "%s", line ? line : "?");
            for (char *q = first; *q; q++) /* one line: its rows are joined with newlines */
                if (*q == '\n') *q = ' ';
        }
        bad++;
        if (each) each(arg, line ? line : "?");
    }
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
        if (!bad && first) snprintf(first, cap, "%s", sqlite3_errmsg(db));
        if (each) each(arg, sqlite3_errmsg(db));
        bad++;
    }
    sqlite3_finalize(st);
    return bad;
}

/* --- salvage: the uris a damaged file still gives --- */

int salvage_uris(sqlite3 *db, sl_uri_fn each, void *arg, char *err, size_t cap) {
    /* Each scan stops at the first page it cannot read; from both ends of
     * the table and of the uri index, the four see past one damaged spot
     * from each side. The caller sorts and drops the repeats. */
    static const char *const scans[] = {
        "SELECT uri FROM documents NOT INDEXED ORDER BY rowid",
        "SELECT uri FROM documents NOT INDEXED ORDER BY rowid DESC",
        "SELECT uri FROM documents INDEXED BY sqlite_autoindex_documents_1 ORDER BY uri",
        "SELECT uri FROM documents INDEXED BY sqlite_autoindex_documents_1 ORDER BY uri DESC",
    };
    int ok = 0;
    if (err && cap) err[0] = '\0';
    for (size_t i = 0; i < sizeof scans / sizeof *scans; i++) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, scans[i], -1, &st, NULL);
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            rc = SQLITE_OK;
            const char *uri = (const char *)sqlite3_column_text(st, 0);
            if (uri && *uri) each(arg, uri);
        }
        if (rc == SQLITE_DONE)
            ok++;
        else if (err && !err[0])
            snprintf(err, cap, "%s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
    }
    return ok;
}

/* --- the swap --- */

int swap_in(const char *fresh, const char *path, char *backup, size_t bcap, char *err, size_t cap) {
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    struct stat st;
    for (int i = 0; i < 100; i++) {
        if (i)
            snprintf(backup, bcap, "%s.damaged-%s-%d", path, stamp, i);
        else
            snprintf(backup, bcap, "%s.damaged-%s", path, stamp);
        if (lstat(backup, &st) != 0) break;
    }
    /* the old file keeps its name until the rename below: a hard link
     * names it as the backup first, so no moment lacks either */
    bool had = lstat(path, &st) == 0;
    if (had && link(path, backup) != 0)
        return snprintf(err, cap, "cannot keep %s as %s: %s", path, backup, strerror(errno)), -1;
    if (!had) backup[0] = '\0';
    /* the old file's WAL and index go with it: they must never meet the new file */
    static const char *const sides[] = {"-wal", "-shm"};
    for (size_t i = 0; i < 2; i++) {
        char *from = side_path(path, sides[i]), *to = had ? side_path(backup, sides[i]) : NULL;
        if (from && lstat(from, &st) == 0) {
            if (to ? rename(from, to) != 0 : unlink(from) != 0) {
                snprintf(err, cap, "cannot move %s aside: %s", from, strerror(errno));
                free(from);
                free(to);
                return -1;
            }
        }
        free(from);
        free(to);
    }
    clean_forget(path);
    if (rename(fresh, path) != 0)
        return snprintf(err, cap, "cannot put %s in place of %s: %s", fresh, path, strerror(errno)), -1;
    /* make the renames durable */
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (!dir[0]) snprintf(dir, sizeof dir, "/");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    clean_record(path);
    return 0;
}
