/* sluice/sluice.h - the one header a plugin includes.
 *
 * A minimal plugin:
 *
 *     #include <sluice/sluice.h>
 *
 *     static int parse(sl_call *call, sl_doc *doc) {
 *         size_t len;
 *         const char *data = sl_doc_data(doc, &len);
 *         if (sl_doc_add_element(doc, SL_EL_PARAGRAPH, data, len) < 0)
 *             return sl_fail(call, SL_ENOMEM, "out of memory");
 *         return 0;
 *     }
 *     static const char *const types[] = {"text/plain", NULL};
 *     static const sl_plugin desc = {
 *         SL_PLUGIN_HEADER, .name = "parse-plain", .version = "1.0.0",
 *         .summary = "plain text as one paragraph", .role = SL_ROLE_PARSER,
 *         .bottleneck = SL_CPU, .media_types = types, .parse = parse,
 *     };
 *     SL_PLUGIN_EXPORT(desc)
 *
 * Build it with `pkg-config --cflags --libs sluice` or CMake's
 * `find_package(sluice)` and `target_link_libraries(x PRIVATE sluice::sdk)`.
 */
#ifndef SLUICE_SLUICE_H
#define SLUICE_SLUICE_H

#include "sluice/call.h"
#include "sluice/doc.h"
#include "sluice/http.h"
#include "sluice/io.h"
#include "sluice/plugin.h"

#endif
