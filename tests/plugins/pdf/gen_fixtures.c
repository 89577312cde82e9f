/* gen_fixtures.c - writes the PDF and image fixtures (fixtures.h) into a
 * folder, for the end-to-end test and the benchmark:
 *     gen_fixtures DIR          (the hostile files go into DIR/hostile)
 *     gen_fixtures --bench DIR DOCS PAGES IMAGES DPI
 *     gen_fixtures --deep DIR DEPTH [outline|forms]   (both by default)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixtures.h"

int main(int argc, char **argv) {
    char err[512];
    int rc;
    if (argc == 2) {
        mkdir(argv[1], 0777);
        rc = fx_write_all(argv[1], err, sizeof err);
        char hostile[4096];
        if (!rc && snprintf(hostile, sizeof hostile, "%s/hostile", argv[1]) >= (int)sizeof hostile) {
            snprintf(err, sizeof err, "folder name too long");
            rc = -1;
        }
        if (!rc) {
            mkdir(hostile, 0777);
            rc = fx_write_hostile(hostile, err, sizeof err);
        }
    } else if ((argc == 4 || argc == 5) && !strcmp(argv[1], "--deep")) {
        int which = argc == 4                     ? FX_DEEP_OUTLINE | FX_DEEP_FORMS
                    : !strcmp(argv[4], "outline") ? FX_DEEP_OUTLINE
                    : !strcmp(argv[4], "forms")   ? FX_DEEP_FORMS
                                                  : 0;
        mkdir(argv[2], 0777);
        rc = which ? fx_write_deep(argv[2], atoi(argv[3]), which, err, sizeof err) : -1;
        if (!which) snprintf(err, sizeof err, "--deep: outline or forms, not %s", argv[4]);
    } else if (argc == 7 && !strcmp(argv[1], "--bench")) {
        mkdir(argv[2], 0777);
        rc = fx_write_bench(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), err,
                            sizeof err);
    } else {
        fprintf(stderr, "usage: gen_fixtures DIR\n       gen_fixtures --bench DIR DOCS PAGES IMAGES DPI\n"
                        "       gen_fixtures --deep DIR DEPTH [outline|forms]\n");
        return 2;
    }
    if (rc) fprintf(stderr, "gen_fixtures: %s\n", err);
    return rc ? 1 : 0;
}
