/* test_walk.c - document discovery: include/exclude patterns, sorted and
 * reproducible order, files given directly, unresolvable links reported as
 * candidates with an error, directory loops not followed twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "media.h"
#include "walk.h"

static char root[512];

static void touch(const char *rel, const char *text) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void mk(const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    mkdir(p, 0755);
}

static void link_(const char *target, const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    if (symlink(target, p) != 0) perror("symlink");
}

int main(void) {
    const char *tmp = getenv("SLUICE_TEST_TMP");
    snprintf(root, sizeof root, "%s/walk-%d", tmp ? tmp : "/tmp", (int)getpid());
    mkdir(root, 0755);
    mk("docs");
    mk("docs/sub");
    mk(".git");
    mk("node_modules");
    touch("docs/b.md", "b");
    touch("docs/a.txt", "aa");
    touch("docs/c.bin", "c");
    touch("docs/sub/d.md", "ddd");
    touch(".git/e.md", "e");
    touch("node_modules/f.md", "f");
    touch("top.md", "top");
    touch("docs/NOTES.TXT", "notes"); /* include globs ignore case, as media types do */
    touch("docs/README.MD", "readme");
    link_("loop2.md", "docs/loop1.md");
    link_("loop1.md", "docs/loop2.md");
    link_("missing.md", "docs/dangling.md");
    link_("..", "docs/sub/up"); /* a directory loop */

    const char *roots[1] = {root};
    sl_walk *w;
    CHECK_INT(sl_walk_new(roots, 1, "*.md *.txt", ".git node_modules", &w), 0);
    char got[16][512];
    char errs[16][256];
    uint64_t sizes[16];
    int n = 0;
    sl_walk_entry e;
    while (n < 16 && sl_walk_next(w, &e) == 1) {
        snprintf(got[n], sizeof got[n], "%s", e.path + strlen(root) + 1);
        snprintf(errs[n], sizeof errs[n], "%s", e.error ? e.error : "");
        sizes[n] = e.size;
        n++;
    }
    sl_walk_free(w);
    /* sorted per folder (bytewise: capitals first):
     * docs/{NOTES.TXT,README.MD,a.txt,b.md,dangling.md,loop1.md,loop2.md,sub/d.md}, top.md */
    CHECK_INT(n, 9);
    CHECK_STR(got[0], "docs/NOTES.TXT");
    CHECK_STR(got[1], "docs/README.MD");
    CHECK_STR(got[2], "docs/a.txt");
    CHECK_INT(sizes[2], 2);
    CHECK_STR(errs[2], "");
    CHECK_STR(got[3], "docs/b.md");
    CHECK_STR(got[4], "docs/dangling.md");
    CHECK(errs[4][0] != '\0');
    CHECK_STR(got[5], "docs/loop1.md");
    CHECK_CONTAINS(errs[5], "symbolic links");
    CHECK_STR(got[6], "docs/loop2.md");
    CHECK_STR(got[7], "docs/sub/d.md");
    CHECK_INT(sizes[7], 3);
    CHECK_STR(got[8], "top.md");
    int uncounted = -1;
    CHECK_INT(sl_walk_count(roots, 1, "*.md *.txt", ".git node_modules", &uncounted), 9);
    CHECK_INT(uncounted, 0);

    /* A file given directly is a candidate whatever its name; a trailing
     * slash on a folder gives the same paths as without. */
    char file[600], slashed[600];
    snprintf(file, sizeof file, "%s/docs/c.bin", root);
    snprintf(slashed, sizeof slashed, "%s/docs/sub/", root);
    const char *roots2[2] = {file, slashed};
    CHECK_INT(sl_walk_new(roots2, 2, "*.md", "up", &w), 0);
    CHECK_INT(sl_walk_next(w, &e), 1);
    CHECK_STR(e.path, file);
    CHECK_INT(sl_walk_next(w, &e), 1);
    char expect[700];
    snprintf(expect, sizeof expect, "%s/docs/sub/d.md", root);
    CHECK_STR(e.path, expect);
    CHECK_INT(sl_walk_next(w, &e), 0);
    sl_walk_free(w);

    /* A root that does not exist is one candidate with the reason. */
    const char *roots3[1] = {"/nonexistent/sluice/path"};
    CHECK_INT(sl_walk_new(roots3, 1, "*.md", "", &w), 0);
    CHECK_INT(sl_walk_next(w, &e), 1);
    CHECK(e.error && strstr(e.error, "No such file") != NULL);
    sl_walk_free(w);

    CHECK_STR(sl_media_type_for_path("a/b.MD"), "text/markdown");
    CHECK_STR(sl_media_type_for_path("notes.txt"), "text/plain");
    CHECK_STR(sl_media_type_for_path("x.pdf"), "application/pdf");
    CHECK_STR(sl_media_type_for_path("r.DOCX"),
              "application/vnd.openxmlformats-officedocument.wordprocessingml.document");
    CHECK_STR(sl_media_type_for_path("s.pptx"),
              "application/vnd.openxmlformats-officedocument.presentationml.presentation");
    CHECK_STR(sl_media_type_for_path("t.xlsx"),
              "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    CHECK_STR(sl_media_type_for_path("b.epub"), "application/epub+zip");
    CHECK_STR(sl_media_type_for_path(".md"), "application/octet-stream");
    CHECK_STR(sl_media_type_for_path("dir.md/file"), "application/octet-stream");
    CHECK_STR(sl_media_type_for_path("page.HTM"), "text/html");
    CHECK_STR(sl_media_type_for_path("logs.jsonl"), "application/x-ndjson");
    CHECK_STR(sl_media_type_for_path("logs.ndjson"), "application/x-ndjson");
    CHECK_STR(sl_media_type_for_path("t.tsv"), "text/tab-separated-values");

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK_INT(system(cmd), 0);
    return check_done();
}
