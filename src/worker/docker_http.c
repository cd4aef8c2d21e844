/* HTTP to the Docker engine over its unix socket (see docker_int.h).
 *
 * libcurl's multi interface does the HTTP; the libuv loop does the waiting:
 * curl tells us which sockets to watch (one uv_poll_t each) and when to call
 * it back (one uv_timer_t), and we hand readiness back with
 * curl_multi_socket_action. Finished exchanges are collected with
 * curl_multi_info_read and their done callbacks run from there, so no
 * callback ever runs inside the call that started the exchange, nor inside a
 * curl callback (where libcurl refuses new requests). Replies are
 * capped (16 MiB) so a runaway engine cannot eat the worker's memory.
 *
 * libcurl is not linked: it is loaded with dlopen the first time a Docker
 * executor starts, and its entry points are called through the table `cu`.
 * libcurl drags in ~26 more shared libraries (TLS, Kerberos, LDAP, ...), and
 * mapping them cost every CLI command (the same executable) more time than
 * the command itself. The headers are still used for types and constants,
 * so the table's types are checked against them. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "worker/docker_int.h"

#undef curl_global_init_mem /* docker_int.h points docker.c at our loader */

#define MAX_BODY       (16u << 20)
#define LIBCURL_SONAME "libcurl.so.4"

/* libcurl's entry points, filled once by docker_curl_global_init_mem.
 * Written under cu_mu before `loaded` is set; read without it afterwards (an
 * executor exists only once docker_http_init saw the table loaded, under the
 * same mutex). */
static struct {
    bool loaded;
    void *dl;
    __typeof__(&curl_global_init_mem) global_init_mem;
    __typeof__(&curl_easy_init) easy_init;
    __typeof__(&curl_easy_cleanup) easy_cleanup;
    __typeof__(&curl_easy_reset) easy_reset;
    __typeof__(&curl_easy_setopt) easy_setopt;
    __typeof__(&curl_easy_getinfo) easy_getinfo;
    __typeof__(&curl_easy_strerror) easy_strerror;
    __typeof__(&curl_multi_init) multi_init;
    __typeof__(&curl_multi_cleanup) multi_cleanup;
    __typeof__(&curl_multi_setopt) multi_setopt;
    __typeof__(&curl_multi_add_handle) multi_add_handle;
    __typeof__(&curl_multi_remove_handle) multi_remove_handle;
    __typeof__(&curl_multi_assign) multi_assign;
    __typeof__(&curl_multi_info_read) multi_info_read;
    __typeof__(&curl_multi_socket_action) multi_socket_action;
    __typeof__(&curl_slist_append) slist_append;
    __typeof__(&curl_slist_free_all) slist_free_all;
} cu;
static pthread_mutex_t cu_mu = PTHREAD_MUTEX_INITIALIZER;
static char cu_errmsg[SWC_ERRMSG_SIZE]; /* why the last load failed */

/* Open libcurl and resolve every entry point; false (cu_errmsg set) if the
 * library or one of its symbols is missing. Called with cu_mu held. */
static bool curl_open(void)
{
    const char *name = getenv("SWC_LIBCURL"); /* tests and odd distributions */
    void *dl;
    const char *missing = NULL;

    if (name == NULL || name[0] == '\0') {
        name = LIBCURL_SONAME;
    }
    dl = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *why = dlerror();
        snprintf(cu_errmsg, sizeof(cu_errmsg),
                 "docker executor: cannot load libcurl (%s): %s; the Docker executor needs "
                 "libcurl 7.40 or later (Debian: apt-get install libcurl4)",
                 name, why != NULL ? why : "dlopen failed");
        return false;
    }
#define SYM(field, sym)                                                                            \
    do {                                                                                           \
        if (missing == NULL && (cu.field = (__typeof__(cu.field))dlsym(dl, #sym)) == NULL) {       \
            missing = #sym;                                                                        \
        }                                                                                          \
    } while (0)
    SYM(global_init_mem, curl_global_init_mem);
    SYM(easy_init, curl_easy_init);
    SYM(easy_cleanup, curl_easy_cleanup);
    SYM(easy_reset, curl_easy_reset);
    SYM(easy_setopt, curl_easy_setopt);
    SYM(easy_getinfo, curl_easy_getinfo);
    SYM(easy_strerror, curl_easy_strerror);
    SYM(multi_init, curl_multi_init);
    SYM(multi_cleanup, curl_multi_cleanup);
    SYM(multi_setopt, curl_multi_setopt);
    SYM(multi_add_handle, curl_multi_add_handle);
    SYM(multi_remove_handle, curl_multi_remove_handle);
    SYM(multi_assign, curl_multi_assign);
    SYM(multi_info_read, curl_multi_info_read);
    SYM(multi_socket_action, curl_multi_socket_action);
    SYM(slist_append, curl_slist_append);
    SYM(slist_free_all, curl_slist_free_all);
#undef SYM
    if (missing != NULL) {
        snprintf(cu_errmsg, sizeof(cu_errmsg),
                 "docker executor: %s has no %s: the Docker executor needs libcurl 7.40 or later",
                 name, missing);
        dlclose(dl);
        memset(&cu, 0, sizeof(cu));
        return false;
    }
    cu.dl = dl;
    return true;
}

CURLcode docker_curl_global_init_mem(long flags, curl_malloc_callback m, curl_free_callback f,
                                     curl_realloc_callback r, curl_strdup_callback s,
                                     curl_calloc_callback c)
{
    CURLcode rc = CURLE_OK;
    pthread_mutex_lock(&cu_mu);
    if (!cu.loaded) {
        /* a failed load is not remembered: the next executor tries again */
        if (!curl_open()) {
            rc = CURLE_FAILED_INIT;
        } else if ((rc = cu.global_init_mem(flags, m, f, r, s, c)) != CURLE_OK) {
            snprintf(cu_errmsg, sizeof(cu_errmsg), "docker executor: libcurl init failed: %s",
                     cu.easy_strerror(rc));
            dlclose(cu.dl);
            memset(&cu, 0, sizeof(cu));
        } else {
            cu.loaded = true;
        }
    }
    pthread_mutex_unlock(&cu_mu);
    return rc;
}

struct sockctx {
    uv_poll_t poll;
    struct sockctx *prev, *next;
    curl_socket_t fd;
    struct docker *d;
};

static void handle_closed(struct docker *d)
{
    if (--d->open_handles == 0 && d->closing && d->close_cb != NULL) {
        void (*cb)(struct swc_exec *) = d->close_cb;
        d->close_cb = NULL;
        cb(&d->base);
        swc_free(d->sock);
        swc_free(d->node_id);
        swc_free(d->network_mode);
        swc_free(d);
    }
}

static void sock_unlink(struct docker *d, struct sockctx *s)
{
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        d->socks = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    s->prev = s->next = NULL;
}

static void sock_closed_cb(uv_handle_t *h)
{
    struct sockctx *s = h->data;
    struct docker *d = s->d;
    swc_free(s);
    handle_closed(d);
}

static void check_done(struct docker *d)
{
    CURLMsg *m;
    int left;
    while (!d->closing && (m = cu.multi_info_read(d->multi, &left)) != NULL) {
        struct dreq *q = NULL;
        CURLcode res;
        int code = 0;
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        res = m->data.result;
        cu.easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
        cu.multi_remove_handle(d->multi, m->easy_handle);
        q->active = false;
        /* unlink from the in-flight list */
        if (q->prev) {
            q->prev->next = q->next;
        } else {
            d->reqs = q->next;
        }
        if (q->next) {
            q->next->prev = q->prev;
        }
        q->prev = q->next = NULL;
        cu.easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &q->status);
        if (q->err.code != 0) {
            code = q->err.code; /* set by a stream consumer or the body cap */
        } else if (res == CURLE_OK) {
            code = 0;
        } else if (res == CURLE_OPERATION_TIMEDOUT) {
            code = swc_err_set(&q->err, SWC_ETIMEDOUT, "docker: %s: no reply in time", q->what);
        } else if (res == CURLE_COULDNT_CONNECT) {
            code = swc_err_set(&q->err, SWC_EUNAVAIL, "docker: %s: cannot connect to %s: %s",
                               q->what, d->sock, cu.easy_strerror(res));
        } else if (res == CURLE_PARTIAL_FILE || res == CURLE_RECV_ERROR ||
                   (res == CURLE_GOT_NOTHING && q->status != 0)) {
            code = swc_err_set(&q->err, SWC_EPROTO,
                               "docker: %s: connection dropped in the middle of the reply (%s)",
                               q->what, cu.easy_strerror(res));
        } else if (res == CURLE_WEIRD_SERVER_REPLY || res == CURLE_GOT_NOTHING ||
                   res == CURLE_BAD_CONTENT_ENCODING || res == CURLE_UNSUPPORTED_PROTOCOL) {
            code =
                swc_err_set(&q->err, SWC_EPROTO, "docker: %s: malformed reply from the engine (%s)",
                            q->what, cu.easy_strerror(res));
        } else {
            code = swc_err_set(&q->err, SWC_EUNAVAIL, "docker: %s: %s", q->what,
                               cu.easy_strerror(res));
        }
        q->done(q, code);
    }
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct sockctx *s = p->data;
    struct docker *d = s->d;
    int flags = 0, running;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE) {
            flags |= CURL_CSELECT_IN;
        }
        if (events & UV_WRITABLE) {
            flags |= CURL_CSELECT_OUT;
        }
    }
    cu.multi_socket_action(d->multi, s->fd, flags, &running);
    docker_events_drain(d);
    check_done(d);
}

static void timer_cb(uv_timer_t *t)
{
    struct docker *d = t->data;
    int running;
    cu.multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    docker_events_drain(d);
    check_done(d);
}

static int socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
    struct docker *d = userp;
    struct sockctx *s = sockp;
    int events = 0;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            uv_poll_stop(&s->poll);
            cu.multi_assign(d->multi, fd, NULL);
            sock_unlink(d, s);
            uv_close((uv_handle_t *)&s->poll, sock_closed_cb);
        }
        return 0;
    }
    if (s == NULL) {
        s = swc_calloc(1, sizeof(*s));
        if (s == NULL) {
            return -1;
        }
        s->fd = fd;
        s->d = d;
        if (uv_poll_init_socket(d->loop, &s->poll, fd) != 0) {
            swc_free(s);
            return -1;
        }
        s->poll.data = s;
        d->open_handles++;
        s->next = d->socks;
        if (s->next) {
            s->next->prev = s;
        }
        d->socks = s;
        cu.multi_assign(d->multi, fd, s);
    }
    if (what & CURL_POLL_IN) {
        events |= UV_READABLE;
    }
    if (what & CURL_POLL_OUT) {
        events |= UV_WRITABLE;
    }
    uv_poll_start(&s->poll, events, poll_cb);
    return 0;
}

static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    struct docker *d = userp;
    if (d->closing) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&d->timer);
    } else {
        uv_timer_start(&d->timer, timer_cb, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

static size_t write_fn(char *p, size_t size, size_t n, void *userp)
{
    struct dreq *q = userp;
    size_t len = size * n;
    if (q->stream != NULL) {
        long st = 0;
        cu.easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &st);
        if (st >= 200 && st < 300) {
            return q->stream(q, p, len) ? len : 0;
        }
    }
    if (q->body.len + len > MAX_BODY) {
        swc_err_set(&q->err, SWC_ETOOBIG, "docker: %s: reply larger than %u bytes", q->what,
                    MAX_BODY);
        return 0;
    }
    if (swc_buf_append(&q->body, p, len) != 0) {
        swc_err_set(&q->err, SWC_ENOMEM, "docker: %s: out of memory", q->what);
        return 0;
    }
    return len;
}

struct dreq *dreq_new(struct docker *d, dreq_done_fn done, const char *fmt, ...)
{
    struct dreq *q = swc_calloc(1, sizeof(*q));
    va_list ap;
    if (q == NULL) {
        return NULL;
    }
    q->easy = cu.easy_init();
    if (q->easy == NULL) {
        swc_free(q);
        return NULL;
    }
    q->d = d;
    q->done = done;
    q->raw = -1;
    q->timeout_ns = d->op_timeout_ns;
    swc_buf_init(&q->body);
    swc_buf_init(&q->acc);
    va_start(ap, fmt);
    vsnprintf(q->what, sizeof(q->what), fmt, ap);
    va_end(ap);
    return q;
}

void dreq_free(struct dreq *q)
{
    if (q == NULL) {
        return;
    }
    cu.easy_cleanup(q->easy);
    cu.slist_free_all(q->hdrs);
    swc_free(q->post);
    swc_free(q->create_body);
    swc_buf_free(&q->body);
    swc_buf_free(&q->acc);
    swc_free(q);
}

int dreq_send(struct dreq *q, const char *method, const char *path, const char *json)
{
    struct docker *d = q->d;
    char url[2048];
    int n;

    if (d->closing) {
        return SWC_ECLOSED;
    }
    n = snprintf(url, sizeof(url), "http://localhost/" DOCKER_API "%s", path);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        return SWC_EINVAL;
    }
    cu.easy_reset(q->easy);
    cu.slist_free_all(q->hdrs);
    q->hdrs = NULL;
    swc_free(q->post);
    q->post = NULL;
    swc_buf_free(&q->body);
    swc_err_clear(&q->err);
    q->status = 0;
    if (json != NULL) {
        q->post = swc_strdup(json);
        q->hdrs = cu.slist_append(NULL, "Content-Type: application/json");
        if (q->post == NULL || q->hdrs == NULL) {
            return SWC_ENOMEM;
        }
        cu.easy_setopt(q->easy, CURLOPT_HTTPHEADER, q->hdrs);
        cu.easy_setopt(q->easy, CURLOPT_POSTFIELDS, q->post);
        cu.easy_setopt(q->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(q->post));
    } else if (strcmp(method, "POST") == 0) {
        cu.easy_setopt(q->easy, CURLOPT_POSTFIELDS, "");
        cu.easy_setopt(q->easy, CURLOPT_POSTFIELDSIZE, 0L);
    }
    cu.easy_setopt(q->easy, CURLOPT_CUSTOMREQUEST, method);
    cu.easy_setopt(q->easy, CURLOPT_URL, url);
    cu.easy_setopt(q->easy, CURLOPT_UNIX_SOCKET_PATH, d->sock);
    cu.easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, write_fn);
    cu.easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
    cu.easy_setopt(q->easy, CURLOPT_PRIVATE, q);
    cu.easy_setopt(q->easy, CURLOPT_NOSIGNAL, 1L);
    cu.easy_setopt(q->easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (q->timeout_ns > 0) {
        cu.easy_setopt(q->easy, CURLOPT_TIMEOUT_MS, (long)(q->timeout_ns / SWC_NS_PER_MS));
    }
    if (cu.multi_add_handle(d->multi, q->easy) != CURLM_OK) {
        return SWC_EINTERNAL;
    }
    q->active = true;
    q->next = d->reqs;
    q->prev = NULL;
    if (d->reqs) {
        d->reqs->prev = q;
    }
    d->reqs = q;
    swc_tracef("docker", "%s %s", method, path);
    if (d->trace_cb != NULL) {
        d->trace_cb(d->trace_data, method, path);
    }
    return 0;
}

int dreq_http_error(struct dreq *q)
{
    char detail[256] = "";
    json_t *j = json_loadb(q->body.len ? (const char *)q->body.data : "", q->body.len, 0, NULL);
    const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
    int code;
    if (m != NULL) {
        snprintf(detail, sizeof(detail), "%s", m);
    } else {
        /* not the engine's JSON: quote (printable) bytes of what came back */
        size_t k = 0;
        for (size_t i = 0; i < q->body.len && k + 1 < 120; i++) {
            char c = (char)q->body.data[i];
            detail[k++] = c >= 0x20 && c < 0x7f ? c : '.';
        }
        detail[k] = '\0';
        if (k == 0) {
            snprintf(detail, sizeof(detail), "(empty reply)");
        }
    }
    json_decref(j);
    code = q->status == 404 ? SWC_ENOENT : q->status == 409 ? SWC_ECONFLICT : SWC_EDOCKER;
    return swc_err_set(&q->err, code, "docker: %s: HTTP %ld: %s", q->what, q->status, detail);
}

json_t *dreq_json(struct dreq *q)
{
    json_error_t je;
    json_t *j = json_loadb(q->body.len ? (const char *)q->body.data : "", q->body.len, 0, &je);
    if (j == NULL) {
        swc_err_set(&q->err, SWC_EPROTO, "docker: %s: bad JSON in the reply: %s", q->what, je.text);
    }
    return j;
}

int docker_http_init(struct docker *d, struct swc_err *err)
{
    if (docker_curl_global_init_mem(CURL_GLOBAL_DEFAULT, swc_malloc, swc_free, swc_realloc,
                                    swc_strdup, swc_calloc) != CURLE_OK) {
        pthread_mutex_lock(&cu_mu);
        swc_err_set(err, SWC_ENOTSUP, "%s", cu_errmsg);
        pthread_mutex_unlock(&cu_mu);
        return SWC_ENOTSUP;
    }
    d->multi = cu.multi_init();
    if (d->multi == NULL) {
        return swc_err_set(err, SWC_ENOMEM, "docker: curl multi init failed");
    }
    cu.multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
    cu.multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
    cu.multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    cu.multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
    uv_timer_init(d->loop, &d->timer);
    d->timer.data = d;
    uv_timer_init(d->loop, &d->retry_timer);
    d->retry_timer.data = d;
    d->open_handles = 2;
    return 0;
}

void docker_http_cancel_all(struct docker *d)
{
    struct dreq *q;
    while ((q = d->reqs) != NULL) {
        d->reqs = q->next;
        if (d->reqs) {
            d->reqs->prev = NULL;
        }
        q->next = q->prev = NULL;
        cu.multi_remove_handle(d->multi, q->easy);
        q->active = false;
        swc_err_set(&q->err, SWC_ECANCELED, "docker: %s: canceled (executor closing)", q->what);
        q->done(q, SWC_ECANCELED);
    }
}

static void timer_closed_cb(uv_handle_t *h)
{
    handle_closed(h->data);
}

void docker_http_close(struct docker *d)
{
    struct sockctx *s;
    cu.multi_cleanup(d->multi); /* after every easy handle was removed */
    d->multi = NULL;
    while ((s = d->socks) != NULL) { /* sockets curl did not hand back */
        sock_unlink(d, s);
        uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, sock_closed_cb);
    }
    uv_close((uv_handle_t *)&d->timer, timer_closed_cb);
    uv_close((uv_handle_t *)&d->retry_timer, timer_closed_cb);
}

char *docker_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = swc_malloc(n * 3 + 1), *o = out;
    if (out == NULL) {
        return NULL;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}
