/* test_httpd.c - the HTTP service's pieces that need no run: the listen
 * address parser, and the Prometheus text of a report built by hand (label
 * escaping, the batcher's sizes as a cumulative histogram, the breaker
 * state, the numbers printed so they read back as the same doubles). The
 * served endpoints are tested end to end in tests/providers-e2e/http_endpoints.sh. */
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "httpd.h"

static void listen_addresses(void) {
    struct sockaddr_storage ss;
    char err[256];
    CHECK_INT(sl_httpd_parse_listen("127.0.0.1:9464", &ss, err, sizeof err), 0);
    CHECK_INT(ss.ss_family, AF_INET);
    CHECK_INT(sl_httpd_parse_listen("0.0.0.0:0", &ss, err, sizeof err), 0);
    CHECK_INT(sl_httpd_parse_listen("[::1]:9464", &ss, err, sizeof err), 0);
    CHECK_INT(ss.ss_family, AF_INET6);
    CHECK_INT(sl_httpd_parse_listen("localhost-9464", &ss, err, sizeof err), SL_EINVAL);
    CHECK(strstr(err, "HOST:PORT") != NULL);
    CHECK_INT(sl_httpd_parse_listen("127.0.0.1:65536", &ss, err, sizeof err), SL_EINVAL);
    CHECK(strstr(err, "port") != NULL);
    CHECK_INT(sl_httpd_parse_listen("127.0.0.1:", &ss, err, sizeof err), SL_EINVAL);
    CHECK_INT(sl_httpd_parse_listen(":9464", &ss, err, sizeof err), SL_EINVAL);
    CHECK_INT(sl_httpd_parse_listen("example.org:80", &ss, err, sizeof err), SL_EINVAL);
    CHECK(strstr(err, "numeric") != NULL);
}

static int has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0)) return 1;
    return 0;
}

static void metrics_text(void) {
    size_t len = 0;
    char *t = sl_metrics_text(NULL, 0, &len);
    CHECK(t && has_line(t, "sluice_up 1"));
    CHECK(t && !strstr(t, "sluice_documents_total"));
    free(t);

    sl_report r;
    memset(&r, 0, sizeof r);
    r.stored = 7;
    r.failed = 2;
    r.wall_s = 1.5;
    sl_stage_stats *s = sl_report_add_stage(&r, "page \"ocr\"\nx", "ocr\\t", "batcher");
    s->items = 21;
    s->busy_ns = 300000001; /* 0.300000001 s */
    s->batched = 1;
    s->batch_hist[0] = 1; /* one batch of 1 */
    s->batch_hist[3] = 2; /* two of 5-8 */
    s->batch_hist[7] = 1; /* one of 65+ */
    sl_provider_stats *p = sl_report_add_provider(&r, "embedder", "embed-openai");
    p->requests = 5;
    p->throttled = 3;
    p->tokens_in = 100;
    p->price_input = 0.02;
    p->breaker_state = SL_BREAKER_OPEN;
    t = sl_metrics_text(&r, 0, &len);
    CHECK(t != NULL);
    if (t) {
        CHECK_INT(strlen(t), len);
        CHECK(has_line(t, "sluice_documents_total{outcome=\"stored\"} 7"));
        CHECK(has_line(t, "sluice_documents_total{outcome=\"failed\"} 2"));
        CHECK(has_line(t, "sluice_run_active 0"));
        CHECK(has_line(t, "sluice_run_elapsed_seconds 1.5"));
        const char *lab = "{stage=\"page \\\"ocr\\\"\\nx\",plugin=\"ocr\\\\t\",executor=\"batcher\"}";
        char want[512];
        snprintf(want, sizeof want, "sluice_stage_items_total%s 21", lab);
        CHECK(has_line(t, want));
        snprintf(want, sizeof want, "sluice_stage_busy_seconds_total%s %.17g", lab, 300000001 / 1e9);
        CHECK(has_line(t, want));
        CHECK(strtod(strrchr(want, ' ') + 1, NULL) == 300000001 / 1e9); /* reads back as the same double */
        CHECK(has_line(t, "sluice_batch_size_bucket{stage=\"page \\\"ocr\\\"\\nx\",le=\"1\"} 1"));
        CHECK(has_line(t, "sluice_batch_size_bucket{stage=\"page \\\"ocr\\\"\\nx\",le=\"4\"} 1"));
        CHECK(has_line(t, "sluice_batch_size_bucket{stage=\"page \\\"ocr\\\"\\nx\",le=\"8\"} 3"));
        CHECK(has_line(t, "sluice_batch_size_bucket{stage=\"page \\\"ocr\\\"\\nx\",le=\"64\"} 3"));
        CHECK(has_line(t, "sluice_batch_size_bucket{stage=\"page \\\"ocr\\\"\\nx\",le=\"+Inf\"} 4"));
        CHECK(has_line(t, "sluice_batch_size_count{stage=\"page \\\"ocr\\\"\\nx\"} 4"));
        CHECK(has_line(t, "sluice_batch_size_sum{stage=\"page \\\"ocr\\\"\\nx\"} 21"));
        CHECK(
            has_line(t, "sluice_provider_throttled_total{provider=\"embedder\",plugin=\"embed-openai\"} 3"));
        CHECK(has_line(t, "sluice_provider_breaker_state{provider=\"embedder\",plugin=\"embed-openai\"} 2"));
        CHECK(has_line(t, "sluice_provider_tokens_total{provider=\"embedder\",plugin=\"embed-openai\","
                          "direction=\"input\"} 100"));
        CHECK(has_line(t, "# TYPE sluice_batch_size histogram"));
        CHECK(has_line(t, "# TYPE sluice_stage_queue_depth gauge"));
    }
    free(t);
    char *j = sl_status_json(&r, 0, &len);
    CHECK(j && strstr(j, "\"breaker\":\"open\""));
    CHECK(j && strstr(j, "\"running\":false"));
    free(j);
    sl_report_free(&r);
}

int main(void) {
    listen_addresses();
    metrics_text();
    return check_done();
}
