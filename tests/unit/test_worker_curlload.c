/* The Docker executor loads libcurl at run time (docker_http.c), so that the
 * swarmc executable, which is also the CLI, never maps it for short commands.
 * Checks that nothing maps libcurl before an executor starts; that a missing
 * library, or one that is not libcurl, is refused with a message naming it
 * (and a later executor may still load the right one); and that once loaded
 * the exchanges really go through it (an engine that accepts the connection
 * but never answers ends in a timeout). The tests run in this order in one
 * process: loading happens once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/err.h"
#include "worker/docker.h"

#define NO_ENGINE "/tmp/swc-curlload-nothing-here.sock"

/* Whether a file whose name contains "libcurl" is mapped into this process. */
static bool curl_mapped(void)
{
    char line[1024];
    bool found = false;
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "libcurl") != NULL) {
            found = true;
        }
    }
    fclose(f);
    return found;
}

static int init_docker_at(uv_loop_t *loop, const char *sock, struct swc_exec **ex,
                          struct swc_err *err)
{
    struct swc_docker_config dc = {.loop = loop,
                                   .socket_path = sock,
                                   .node_id = "n",
                                   .no_events = true,
                                   .op_timeout_ns = 300 * SWC_NS_PER_MS};
    swc_err_clear(err);
    return swc_docker_init(ex, &dc, err);
}

static int init_docker(uv_loop_t *loop, struct swc_exec **ex, struct swc_err *err)
{
    return init_docker_at(loop, NO_ENGINE, ex, err);
}

static void test_not_mapped_at_start(void **state)
{
    (void)state;
    assert_false(curl_mapped());
}

static void test_missing_library(void **state)
{
    uv_loop_t loop;
    struct swc_exec *ex = NULL;
    struct swc_err err;
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    setenv("SWC_LIBCURL", "/nonexistent/libcurl-missing.so.4", 1);
    assert_int_equal(init_docker(&loop, &ex, &err), SWC_ENOTSUP);
    unsetenv("SWC_LIBCURL");
    assert_non_null(strstr(swc_err_msg(&err), "cannot load libcurl"));
    assert_non_null(strstr(swc_err_msg(&err), "/nonexistent/libcurl-missing.so.4"));
    assert_false(curl_mapped());
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* nothing was left open */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_wrong_library(void **state)
{
    uv_loop_t loop;
    struct swc_exec *ex = NULL;
    struct swc_err err;
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    setenv("SWC_LIBCURL", "libm.so.6", 1); /* loads, but has no curl_* */
    assert_int_equal(init_docker(&loop, &ex, &err), SWC_ENOTSUP);
    unsetenv("SWC_LIBCURL");
    assert_non_null(strstr(swc_err_msg(&err), "libm.so.6 has no curl_"));
    assert_false(curl_mapped());
    assert_int_equal(uv_loop_close(&loop), 0);
}

struct opres {
    bool done;
    int code;
    char msg[512];
};

static void describe_cb(void *data, int code, const char *errmsg, const Swarmc__NodeDescription *d)
{
    struct opres *r = data;
    (void)d;
    r->done = true;
    r->code = code;
    snprintf(r->msg, sizeof(r->msg), "%s", errmsg ? errmsg : "");
}

static void deadline_cb(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void closed_cb(struct swc_exec *ex)
{
    (void)ex;
}

static void test_loads_and_works(void **state)
{
    uv_loop_t loop;
    uv_timer_t deadline;
    bool expired = false;
    struct swc_exec *ex = NULL;
    struct swc_err err;
    struct opres r = {0};
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    (void)state;
    /* an "engine" that takes the connection (backlog) and never answers */
    assert_true(lfd >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/swc-curlload-%d.sock", (int)getpid());
    unlink(sa.sun_path);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 8), 0);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(init_docker_at(&loop, sa.sun_path, &ex, &err), 0);
    assert_true(curl_mapped());
    assert_int_equal(ex->ops->describe(ex, describe_cb, &r), 0);
    uv_timer_init(&loop, &deadline);
    deadline.data = &expired;
    uv_timer_start(&deadline, deadline_cb, 10000, 0);
    while (!r.done && !expired) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_true(r.done);
    assert_int_equal(r.code, SWC_ETIMEDOUT);
    assert_non_null(strstr(r.msg, "no reply in time"));
    uv_close((uv_handle_t *)&deadline, NULL);
    ex->ops->close(ex, closed_cb);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(lfd);
    unlink(sa.sun_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_mapped_at_start),
        cmocka_unit_test(test_missing_library),
        cmocka_unit_test(test_wrong_library),
        cmocka_unit_test(test_loads_and_works),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
