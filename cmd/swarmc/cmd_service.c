/* `swarmc service ...`: create, ls, ps, inspect, scale, update, rollback,
 * rm, logs, and the convergence display they share.
 *
 * Each command parses its flags (spec.c for create/update), makes one or
 * a few control.* calls through client.c and prints with output.c. The
 * convergence loop polls control.GetService and control.ListTasks every
 * 150 ms, renders with progress.c and stops when the service has held
 * converged for 1 s, when its update pauses, at --timeout, or on ^C (the
 * service keeps converging in the background either way). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "cli.h"
#include "client.h"
#include "output.h"
#include "progress.h"
#include "spec.h"
#include "wire.h"

#define POLL_MS 150

/* ---- convergence ------------------------------------------------------------- */

struct converge {
    bool interrupted;
    bool tick;
};

static void sigint_cb(uv_signal_t *h, int signum)
{
    struct converge *cv = h->data;
    (void)signum;
    cv->interrupted = true;
}

static void timer_cb(uv_timer_t *t)
{
    struct converge *cv = t->data;
    cv->tick = true;
}

static bool task_spec_equal(const Swarmc__TaskSpec *a, const Swarmc__TaskSpec *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    size_t la = protobuf_c_message_get_packed_size(&a->base);
    size_t lb = protobuf_c_message_get_packed_size(&b->base);
    bool eq = false;
    if (la != lb) {
        return false;
    }
    uint8_t *x = swc_malloc(la + 1), *y = swc_malloc(lb + 1);
    if (x == NULL || y == NULL) {
        abort();
    }
    protobuf_c_message_pack(&a->base, x);
    protobuf_c_message_pack(&b->base, y);
    eq = memcmp(x, y, la) == 0;
    swc_free(x);
    swc_free(y);
    return eq;
}

/* Wait until the service converges; prints progress unless quiet.
 * since_wall: when the change was sent; an update pause that started
 * before it (left over from an earlier update) is not this change's
 * failure. Returns the exit code. */
static int converge(struct swc_client *c, const char *service_id, const char *name,
                    const struct swc_svc_opts *o, int64_t since_wall)
{
    struct converge cv = {false, false};
    uv_signal_t sig;
    uv_timer_t timer;
    struct swc_progress_out *prev = NULL, *cur;
    struct swc_err err;
    bool tty = isatty(STDOUT_FILENO) == 1;
    int64_t start = swc_now_mono(), converged_since = 0;
    int rc = SWC_EXIT_OK;
    char *buf = swc_malloc(16384);
    cur = swc_calloc(1, sizeof *cur);
    prev = swc_calloc(1, sizeof *prev);
    if (buf == NULL || cur == NULL || prev == NULL) {
        abort();
    }
    bool drawn = false;
    swc_err_clear(&err);
    uv_signal_init(swc_client_loop(c), &sig);
    sig.data = &cv;
    uv_signal_start(&sig, sigint_cb, SIGINT);
    uv_timer_init(swc_client_loop(c), &timer);
    timer.data = &cv;

    for (;;) {
        Swarmc__GetServiceRequest greq = SWARMC__GET_SERVICE_REQUEST__INIT;
        Swarmc__ListTasksRequest treq = SWARMC__LIST_TASKS_REQUEST__INIT;
        Swarmc__GetServiceResponse *gres = NULL;
        Swarmc__ListTasksResponse *tres = NULL;
        struct swc_progress_in in;
        int64_t now = swc_now_mono();
        greq.ref = (char *)service_id;
        treq.service_ref = (char *)service_id;
        if (swc_client_call(c, "control.GetService", &greq.base,
                            &swarmc__get_service_response__descriptor, 10000,
                            (ProtobufCMessage **)&gres, &err) != 0 ||
            swc_client_call(c, "control.ListTasks", &treq.base,
                            &swarmc__list_tasks_response__descriptor, 10000,
                            (ProtobufCMessage **)&tres, &err) != 0) {
            swc_cli_free_msg(gres);
            rc = swc_cli_fail(&err);
            break;
        }
        memset(&in, 0, sizeof in);
        in.spec = gres->service->spec;
        in.tasks = tres->tasks;
        in.n_tasks = tres->n_tasks;
        /* only tasks made from the current task template count */
        Swarmc__Task **cur_tasks = swc_calloc(tres->n_tasks + 1, sizeof *cur_tasks);
        size_t n_cur = 0;
        if (cur_tasks == NULL) {
            abort();
        }
        for (size_t i = 0; i < tres->n_tasks; i++) {
            if (in.spec == NULL || task_spec_equal(tres->tasks[i]->spec, in.spec->task)) {
                cur_tasks[n_cur++] = tres->tasks[i];
            }
        }
        in.tasks = cur_tasks;
        in.n_tasks = n_cur;
        swc_progress_render(&in, cur);
        if (cur->converged) {
            if (converged_since == 0) {
                converged_since = now;
            }
            in.verify = now - converged_since >= SWC_PROGRESS_VERIFY_NS ? SWC_VERIFY_DONE
                                                                        : SWC_VERIFY_WAITING;
            in.verify_left_ns = SWC_PROGRESS_VERIFY_NS - (now - converged_since);
        } else {
            converged_since = 0;
        }
        swc_progress_render(&in, cur);
        swc_free(cur_tasks);
        if (!o->quiet) {
            size_t n = swc_progress_draw(drawn ? prev : NULL, cur, tty, buf, 16384);
            fwrite(buf, 1, n, stdout);
            fflush(stdout);
            drawn = true;
        }
        struct swc_progress_out *tmp = prev;
        prev = cur;
        cur = tmp;
        Swarmc__UpdateStatus *us = gres->service->update_status;
        /* 5 s of tolerance: the leader's clock may differ a little from ours */
        bool paused = us != NULL &&
                      (us->state == SWARMC__UPDATE_STATE__UPDATE_STATE_PAUSED ||
                       us->state == SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_PAUSED) &&
                      us->started_at >= since_wall - 5 * SWC_NS_PER_SEC;
        char msg[512] = "";
        if (paused) {
            snprintf(msg, sizeof msg, "%s", us->message);
        }
        swc_cli_free_msg(gres);
        swc_cli_free_msg(tres);
        if (in.verify == SWC_VERIFY_DONE) {
            break;
        }
        if (paused) {
            fprintf(stderr, "Error: the update of service %s is paused: %s\n", name,
                    msg[0] ? msg : "a task failed");
            rc = SWC_EXIT_FAIL;
            break;
        }
        if (cv.interrupted) {
            fprintf(stderr,
                    "\nOperation continuing in background.\nUse `swarmc service ps %s` to check "
                    "progress.\n",
                    name);
            rc = 130;
            break;
        }
        if (now - start > o->timeout_ns) {
            char d[64];
            swc_format_duration(o->timeout_ns, d, sizeof d);
            fprintf(stderr,
                    "Error: service %s did not converge within %s (%u out of %u tasks); it keeps "
                    "converging in the background: see `swarmc service ps %s`\n",
                    name, d, prev->done, prev->total, name);
            rc = SWC_EXIT_FAIL;
            break;
        }
        cv.tick = false;
        uv_timer_start(&timer, timer_cb, POLL_MS, 0);
        while (!cv.tick && !cv.interrupted) {
            uv_run(swc_client_loop(c), UV_RUN_ONCE);
        }
        uv_timer_stop(&timer);
    }
    uv_close((uv_handle_t *)&sig, NULL);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(swc_client_loop(c), UV_RUN_NOWAIT);
    swc_free(buf);
    swc_free(cur);
    swc_free(prev);
    return rc;
}

/* ---- create --------------------------------------------------------------------- */

static int cmd_create(struct swc_cli *cli, int argc, char **argv)
{
    Swarmc__ServiceSpec *spec = NULL;
    struct swc_svc_opts o;
    struct swc_err err;
    struct swc_client c;
    bool help;
    int rc;
    swc_err_clear(&err);
    if (swc_spec_service_create(argc, argv, &spec, &o, &help, &err) != 0) {
        return swc_cli_usage_error(cli, swc_err_msg(&err));
    }
    if (help) {
        return swc_cli_help(cli);
    }
    if ((rc = swc_cli_open_client(cli, &c)) != 0) {
        swc_spec_service_free(spec);
        return rc;
    }
    Swarmc__CreateServiceRequest req = SWARMC__CREATE_SERVICE_REQUEST__INIT;
    Swarmc__CreateServiceResponse *res = NULL;
    req.spec = spec;
    int64_t since = swc_now_wall();
    if (swc_client_call(&c, "control.CreateService", &req.base,
                        &swarmc__create_service_response__descriptor, 0, (ProtobufCMessage **)&res,
                        &err) != 0) {
        rc = swc_cli_fail(&err);
        goto done;
    }
    printf("%s\n", res->service->id);
    fflush(stdout);
    if (!o.detach) {
        rc = converge(&c, res->service->id,
                      spec->annotations->name[0] ? spec->annotations->name : res->service->id, &o,
                      since);
    }
done:
    swc_cli_free_msg(res);
    swc_spec_service_free(spec);
    swc_client_close(&c);
    return rc;
}

/* ---- ls / ps --------------------------------------------------------------------- */

enum { LF_QUIET = 1, LF_NO_TRUNC, LF_FILTER, LF_FORMAT, LF_STATES };

static const struct swc_flag_def ls_flags[] = {
    {"quiet", 'q', false, LF_QUIET, NULL, "Only display IDs"},
    {"no-trunc", 0, false, LF_NO_TRUNC, NULL, "Do not truncate output"},
    {"filter", 'f', true, LF_FILTER, "filter", "Filter output based on conditions provided"},
    {"format", 0, true, LF_FORMAT, "string", "Output format: table (default) or json"},
    {NULL, 0, 0, 0, 0, 0}};

static const struct swc_flag_def ps_flags[] = {
    {"quiet", 'q', false, LF_QUIET, NULL, "Only display IDs"},
    {"no-trunc", 0, false, LF_NO_TRUNC, NULL, "Do not truncate output"},
    {"filter", 'f', true, LF_FILTER, "filter", "Filter output based on conditions provided"},
    {"format", 0, true, LF_FORMAT, "string", "Output format: table (default) or json"},
    {"states", 0, false, LF_STATES, NULL,
     "Only count the tasks per state (cheap: no task is sent)"},
    {NULL, 0, 0, 0, 0, 0}};

/* Shared list options; returns 0, 2 (usage printed) or -1 (help). */
static int list_opts(struct swc_cli *cli, enum swc_out_kind kind, int argc, char **argv,
                     struct swc_flags *f, struct swc_out_opts *o)
{
    struct swc_err err;
    int rv = swc_cli_parse(cli, kind == SWC_OUT_TASKS ? ps_flags : ls_flags, argc, argv, false, f);
    if (rv != 0) {
        return rv;
    }
    memset(o, 0, sizeof *o);
    o->quiet = swc_flags_bool(f, LF_QUIET);
    o->no_trunc = swc_flags_bool(f, LF_NO_TRUNC);
    o->now_wall = swc_now_wall();
    const char *fmt = swc_flags_get(f, LF_FORMAT);
    if (fmt != NULL) {
        if (strcmp(fmt, "json") == 0 || strcmp(fmt, "{{json .}}") == 0) {
            o->json = true;
        } else if (strcmp(fmt, "table") != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "invalid value \"%s\" for --format: use table or json", fmt);
            swc_flags_free(f);
            return swc_cli_usage_error(cli, msg);
        }
    }
    o->filters = swc_calloc(f->n_vals + 1, sizeof *o->filters);
    if (o->filters == NULL) {
        abort();
    }
    for (size_t i = 0; i < f->n_vals; i++) {
        if (f->vals[i].def->id == LF_FILTER) {
            o->filters[o->n_filters++] = (char *)f->vals[i].value;
        }
    }
    swc_err_clear(&err);
    if (swc_out_check_filters(kind, o->filters, o->n_filters, &err) != 0) {
        swc_free(o->filters);
        swc_flags_free(f);
        return swc_cli_usage_error(cli, swc_err_msg(&err));
    }
    return 0;
}

static int print_out(char *s)
{
    fputs(s, stdout);
    swc_free(s);
    return SWC_EXIT_OK;
}

static int cmd_ls(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_out_opts o;
    struct swc_client c;
    struct swc_err err;
    int rc = list_opts(cli, SWC_OUT_SERVICES, argc, argv, &f, &o);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args > 0) {
        swc_free(o.filters);
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc service ls\" accepts no arguments");
    }
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        Swarmc__ListServicesRequest req = SWARMC__LIST_SERVICES_REQUEST__INIT;
        c.arena_replies = true; /* only printed */
        c.unpack = swc_wire_unpack_service_table;
        o.stream = stdout;
        Swarmc__ListServicesResponse *res = NULL;
        swc_err_clear(&err);
        if (swc_client_call(&c, "control.ListServices", &req.base,
                            &swarmc__list_services_response__descriptor, 0,
                            (ProtobufCMessage **)&res, &err) != 0) {
            rc = swc_cli_fail(&err);
        } else {
            rc = print_out(swc_out_service_ls(res, &o));
        }
        /* res: left to the process exit, as in cmd_ps */
        swc_client_close(&c);
    }
    swc_free(o.filters);
    swc_flags_free(&f);
    return rc;
}

/* `service ps --states SERVICE...`: tasks per state from the service
 * listing (the manager counts; no task crosses the socket). */
static int ps_states(struct swc_cli *cli, struct swc_flags *f, const struct swc_out_opts *o)
{
    struct swc_client c;
    struct swc_err err;
    int rc = swc_cli_open_client(cli, &c);
    if (rc != 0) {
        return rc;
    }
    Swarmc__ListServicesRequest req = SWARMC__LIST_SERVICES_REQUEST__INIT;
    Swarmc__ListServicesResponse *res = NULL;
    c.arena_replies = true; /* only printed */
    req.state_counts = true;
    if (f->n_args == 1) {
        req.name_prefix = f->args[0]; /* a name: spare the other services' walks */
    }
    swc_err_clear(&err);
    rc = swc_client_call(&c, "control.ListServices", &req.base,
                         &swarmc__list_services_response__descriptor, 0, (ProtobufCMessage **)&res,
                         &err);
    if (rc == 0 && res->n_services == 0 && req.name_prefix != NULL) {
        /* not a name prefix: maybe an id prefix */
        swc_cli_free_msg(res);
        res = NULL;
        req.name_prefix = NULL;
        rc = swc_client_call(&c, "control.ListServices", &req.base,
                             &swarmc__list_services_response__descriptor, 0,
                             (ProtobufCMessage **)&res, &err);
    }
    for (size_t i = 0; rc == 0 && i < f->n_args; i++) {
        bool found = false;
        for (size_t k = 0; k < res->n_services && !found; k++) {
            const Swarmc__Service *sv = res->services[k];
            const char *name = sv->spec && sv->spec->annotations ? sv->spec->annotations->name : "";
            found = strcmp(name, f->args[i]) == 0 ||
                    (f->args[i][0] != '\0' && strncmp(sv->id, f->args[i], strlen(f->args[i])) == 0);
        }
        if (!found) {
            rc = swc_err_set(&err, SWC_ENOENT, "no such service: %s", f->args[i]);
        }
    }
    if (rc != 0) {
        rc = swc_cli_fail(&err);
    } else {
        rc = print_out(swc_out_service_states(res, (const char *const *)f->args, f->n_args, o));
    }
    swc_cli_free_msg(res);
    swc_client_close(&c);
    return rc;
}

static int cmd_ps(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_out_opts o;
    struct swc_client c;
    struct swc_err err;
    int rc = list_opts(cli, SWC_OUT_TASKS, argc, argv, &f, &o);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args == 0) {
        swc_free(o.filters);
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc service ps\" requires at least 1 argument: "
                                        "the SERVICE");
    }
    if (swc_flags_bool(&f, LF_STATES)) {
        rc = ps_states(cli, &f, &o);
    } else if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        Swarmc__ListTasksResponse **res = swc_calloc(f.n_args, sizeof *res);
        c.arena_replies = true; /* only printed */
        c.unpack = swc_wire_unpack_task_table;
        o.stream = stdout;
        Swarmc__ListTasksResponse all = SWARMC__LIST_TASKS_RESPONSE__INIT;
        size_t nt = 0, nn = 0;
        if (res == NULL) {
            abort();
        }
        swc_err_clear(&err);
        for (size_t i = 0; i < f.n_args && rc == 0; i++) {
            Swarmc__ListTasksRequest req = SWARMC__LIST_TASKS_REQUEST__INIT;
            req.service_ref = f.args[i];
            req.table_fields = true; /* the table needs no spec but the image */
            if (swc_client_call(&c, "control.ListTasks", &req.base,
                                &swarmc__list_tasks_response__descriptor, 0,
                                (ProtobufCMessage **)&res[i], &err) != 0) {
                rc = swc_cli_fail(&err);
            } else {
                nt += res[i]->n_tasks;
                nn += res[i]->n_node_names;
            }
        }
        if (rc == 0) {
            /* one table for all the services: borrow the elements */
            all.tasks = swc_calloc(nt + 1, sizeof *all.tasks);
            all.node_names = swc_calloc(nn + 1, sizeof *all.node_names);
            if (all.tasks == NULL || all.node_names == NULL) {
                abort();
            }
            for (size_t i = 0; i < f.n_args; i++) {
                for (size_t k = 0; k < res[i]->n_tasks; k++) {
                    all.tasks[all.n_tasks++] = res[i]->tasks[k];
                }
                for (size_t k = 0; k < res[i]->n_node_names; k++) {
                    all.node_names[all.n_node_names++] = res[i]->node_names[k];
                }
            }
            rc = print_out(swc_out_service_ps(&all, &o));
            swc_free(all.tasks);
            swc_free(all.node_names);
        }
        /* The replies' arenas are left to the process exit, which is next:
         * unmapping them one by one (TLB shootdowns) cost ~5% of a
         * 10,000-task ps. They stay reachable (client.c lists them). */
        swc_free(res);
        swc_client_close(&c);
    }
    swc_free(o.filters);
    swc_flags_free(&f);
    return rc;
}

/* ---- inspect / rm --------------------------------------------------------------- */

static const struct swc_flag_def no_flags[] = {{NULL, 0, 0, 0, 0, 0}};

static int cmd_inspect(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_client c;
    struct swc_err err;
    int rc = swc_cli_parse(cli, no_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args == 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc service inspect\" requires at least 1 "
                                        "argument: the SERVICE");
    }
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        ProtobufCMessage **msgs = swc_calloc(f.n_args, sizeof *msgs);
        Swarmc__GetServiceResponse **res = swc_calloc(f.n_args, sizeof *res);
        size_t n = 0;
        if (msgs == NULL || res == NULL) {
            abort();
        }
        swc_err_clear(&err);
        for (size_t i = 0; i < f.n_args; i++) {
            Swarmc__GetServiceRequest req = SWARMC__GET_SERVICE_REQUEST__INIT;
            req.ref = f.args[i];
            if (swc_client_call(&c, "control.GetService", &req.base,
                                &swarmc__get_service_response__descriptor, 0,
                                (ProtobufCMessage **)&res[i], &err) != 0) {
                rc = swc_cli_fail(&err);
            } else if (res[i]->service != NULL) {
                msgs[n++] = &res[i]->service->base;
            }
        }
        print_out(swc_out_inspect((const ProtobufCMessage *const *)msgs, n));
        for (size_t i = 0; i < f.n_args; i++) {
            swc_cli_free_msg(res[i]);
        }
        swc_free(res);
        swc_free(msgs);
        swc_client_close(&c);
    }
    swc_flags_free(&f);
    return rc;
}

static int cmd_rm(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_client c;
    struct swc_err err;
    int rc = swc_cli_parse(cli, no_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args == 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc service rm\" requires at least 1 argument: "
                                        "the SERVICE");
    }
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        for (size_t i = 0; i < f.n_args; i++) {
            Swarmc__RemoveServiceRequest req = SWARMC__REMOVE_SERVICE_REQUEST__INIT;
            Swarmc__RemoveServiceResponse *res = NULL;
            req.ref = f.args[i];
            swc_err_clear(&err);
            if (swc_client_call(&c, "control.RemoveService", &req.base,
                                &swarmc__remove_service_response__descriptor, 0,
                                (ProtobufCMessage **)&res, &err) != 0) {
                rc = swc_cli_fail(&err);
            } else {
                printf("%s\n", f.args[i]);
            }
            swc_cli_free_msg(res);
        }
        swc_client_close(&c);
    }
    swc_flags_free(&f);
    return rc;
}

/* ---- scale ------------------------------------------------------------------------- */

enum { SCF_DETACH = 1, SCF_QUIET, SCF_TIMEOUT };
static const struct swc_flag_def scale_flags[] = {
    {"detach", 'd', false, SCF_DETACH, NULL,
     "Exit immediately instead of waiting for the service to converge"},
    {"quiet", 'q', false, SCF_QUIET, NULL, "Suppress progress output"},
    {"timeout", 0, true, SCF_TIMEOUT, "duration", "How long to wait for convergence"},
    {NULL, 0, 0, 0, 0, 0}};

static int cmd_scale(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_client c;
    struct swc_err err;
    struct swc_svc_opts o;
    int rc = swc_cli_parse(cli, scale_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    memset(&o, 0, sizeof o);
    o.detach = swc_flags_bool(&f, SCF_DETACH);
    o.quiet = swc_flags_bool(&f, SCF_QUIET);
    o.timeout_ns = SWC_CLI_DEFAULT_TIMEOUT_NS;
    swc_err_clear(&err);
    if (swc_flags_get(&f, SCF_TIMEOUT) != NULL &&
        swc_flag_duration("timeout", swc_flags_get(&f, SCF_TIMEOUT), &o.timeout_ns, &err) != 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, swc_err_msg(&err));
    }
    if (f.n_args == 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc service scale\" requires at least 1 argument: "
                                        "SERVICE=REPLICAS");
    }
    for (size_t i = 0; i < f.n_args; i++) {
        size_t nl;
        uint64_t n;
        if (swc_spec_parse_scale(f.args[i], &nl, &n, &err) != 0) {
            swc_flags_free(&f);
            return swc_cli_usage_error(cli, swc_err_msg(&err));
        }
    }
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        for (size_t i = 0; i < f.n_args; i++) {
            size_t nl;
            uint64_t n;
            char name[256];
            Swarmc__ScaleServiceRequest req = SWARMC__SCALE_SERVICE_REQUEST__INIT;
            Swarmc__ScaleServiceResponse *res = NULL;
            swc_spec_parse_scale(f.args[i], &nl, &n, &err);
            snprintf(name, sizeof name, "%.*s", (int)nl, f.args[i]);
            req.ref = name;
            req.replicas = n;
            int64_t since = swc_now_wall();
            if (swc_client_call(&c, "control.ScaleService", &req.base,
                                &swarmc__scale_service_response__descriptor, 0,
                                (ProtobufCMessage **)&res, &err) != 0) {
                rc = swc_cli_fail(&err);
                continue;
            }
            printf("%s scaled to %llu\n", name, (unsigned long long)n);
            fflush(stdout);
            if (!o.detach) {
                int r = converge(&c, res->service->id, name, &o, since);
                if (r != 0) {
                    rc = r;
                }
            }
            swc_cli_free_msg(res);
            if (rc == 130) {
                break;
            }
        }
        swc_client_close(&c);
    }
    swc_flags_free(&f);
    return rc;
}

/* ---- update / rollback -------------------------------------------------------------- */

static int do_update(struct swc_cli *cli, struct swc_client *c, const char *ref,
                     const struct swc_flags *f, const struct swc_svc_opts *o)
{
    struct swc_err err;
    Swarmc__GetServiceRequest greq = SWARMC__GET_SERVICE_REQUEST__INIT;
    Swarmc__GetServiceResponse *gres = NULL;
    Swarmc__UpdateServiceRequest req = SWARMC__UPDATE_SERVICE_REQUEST__INIT;
    Swarmc__UpdateServiceResponse *res = NULL;
    int rc = SWC_EXIT_OK;
    swc_err_clear(&err);
    greq.ref = (char *)ref;
    if (swc_client_call(c, "control.GetService", &greq.base,
                        &swarmc__get_service_response__descriptor, 0, (ProtobufCMessage **)&gres,
                        &err) != 0) {
        return swc_cli_fail(&err);
    }
    req.ref = gres->service->id;
    req.version = gres->service->meta ? gres->service->meta->version : 0;
    if (o->rollback) {
        req.rollback = true;
    } else {
        if (gres->service->spec == NULL) {
            gres->service->spec = swc_spec_service_new();
        }
        if (swc_spec_service_apply(gres->service->spec, f, true, &err) != 0) {
            swc_cli_free_msg(gres);
            return swc_cli_usage_error(cli, swc_err_msg(&err));
        }
        req.spec = gres->service->spec;
    }
    int64_t since = swc_now_wall();
    if (swc_client_call(c, "control.UpdateService", &req.base,
                        &swarmc__update_service_response__descriptor, 0, (ProtobufCMessage **)&res,
                        &err) != 0) {
        rc = swc_cli_fail(&err);
        goto done;
    }
    printf("%s\n", ref);
    fflush(stdout);
    if (o->rollback && !o->quiet) {
        printf("rollback: manually requested rollback\n");
    }
    if (!o->detach) {
        rc = converge(c, gres->service->id, ref, o, since);
    }
done:
    swc_cli_free_msg(res);
    swc_cli_free_msg(gres);
    return rc;
}

static int cmd_update(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_svc_opts o;
    struct swc_err err;
    struct swc_client c;
    const char *ref;
    bool help;
    int rc;
    swc_err_clear(&err);
    if (swc_spec_service_update_parse(argc, argv, &f, &ref, &o, &help, &err) != 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, swc_err_msg(&err));
    }
    if (help) {
        swc_flags_free(&f);
        return swc_cli_help(cli);
    }
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        rc = do_update(cli, &c, ref, &f, &o);
        swc_client_close(&c);
    }
    swc_flags_free(&f);
    return rc;
}

static int cmd_rollback(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_client c;
    struct swc_svc_opts o;
    struct swc_err err;
    int rc = swc_cli_parse(cli, scale_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    memset(&o, 0, sizeof o);
    o.detach = swc_flags_bool(&f, SCF_DETACH);
    o.quiet = swc_flags_bool(&f, SCF_QUIET);
    o.rollback = true;
    o.timeout_ns = SWC_CLI_DEFAULT_TIMEOUT_NS;
    swc_err_clear(&err);
    if (swc_flags_get(&f, SCF_TIMEOUT) != NULL &&
        swc_flag_duration("timeout", swc_flags_get(&f, SCF_TIMEOUT), &o.timeout_ns, &err) != 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, swc_err_msg(&err));
    }
    if (f.n_args != 1) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc service rollback\" requires exactly 1 "
                                        "argument: the SERVICE");
    }
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        rc = do_update(cli, &c, f.args[0], &f, &o);
        swc_client_close(&c);
    }
    swc_flags_free(&f);
    return rc;
}

/* ---- logs -------------------------------------------------------------------------- */

enum { LGF_FOLLOW = 1, LGF_TAIL, LGF_TIMESTAMPS, LGF_RAW, LGF_NO_TRUNC };
static const struct swc_flag_def logs_flags[] = {
    {"follow", 'f', false, LGF_FOLLOW, NULL, "Follow log output"},
    {"tail", 'n', true, LGF_TAIL, "string", "Number of lines to show from the end (default all)"},
    {"timestamps", 't', false, LGF_TIMESTAMPS, NULL, "Show timestamps"},
    {"raw", 0, false, LGF_RAW, NULL, "Do not neatly format logs"},
    {"no-trunc", 0, false, LGF_NO_TRUNC, NULL, "Do not truncate output"},
    {NULL, 0, 0, 0, 0, 0}};

struct logs_ctx {
    bool raw, timestamps, no_trunc;
};

static int log_cb(ProtobufCMessage *m, void *data)
{
    const struct logs_ctx *lc = data;
    Swarmc__LogMessage *lm = (Swarmc__LogMessage *)m;
    FILE *out = lm->stream == 2 ? stderr : stdout;
    if (lm->error != NULL && lm->error->code != 0) {
        fprintf(stderr, "Error: %s\n", lm->error->message);
    } else {
        if (!lc->raw && lm->task_name != NULL && lm->task_name[0] != '\0') {
            /* the manager names them: web.1.<id>@host, as docker does */
            fprintf(out, "%s@%s    | ", lm->task_name,
                    lm->node_name != NULL && lm->node_name[0] ? lm->node_name : lm->node_id);
        } else if (!lc->raw) {
            fprintf(out, "%.*s@%.*s    | ", lc->no_trunc ? 64 : SWC_OUT_ID_LEN, lm->task_id,
                    lc->no_trunc ? 64 : SWC_OUT_ID_LEN, lm->node_id);
        }
        if (lc->timestamps) {
            char d[64];
            time_t t = (time_t)(lm->timestamp / SWC_NS_PER_SEC);
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
            fprintf(out, "%s.%09lldZ ", d, (long long)(lm->timestamp % SWC_NS_PER_SEC));
        }
        fwrite(lm->data.data, 1, lm->data.len, out);
        fflush(out);
    }
    swc_cli_free_msg(m);
    return 0;
}

static int cmd_logs(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_client c;
    struct swc_err err;
    struct logs_ctx lc;
    uint64_t tail = 0;
    int rc = swc_cli_parse(cli, logs_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    swc_err_clear(&err);
    const char *t = swc_flags_get(&f, LGF_TAIL);
    if (t != NULL && strcmp(t, "all") != 0 && swc_flag_uint("tail", t, UINT32_MAX, &tail, &err)) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, swc_err_msg(&err));
    }
    if (f.n_args != 1) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc service logs\" requires exactly 1 argument: "
                                        "the SERVICE");
    }
    lc.raw = swc_flags_bool(&f, LGF_RAW);
    lc.timestamps = swc_flags_bool(&f, LGF_TIMESTAMPS);
    lc.no_trunc = swc_flags_bool(&f, LGF_NO_TRUNC);
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        Swarmc__ServiceLogsRequest req = SWARMC__SERVICE_LOGS_REQUEST__INIT;
        req.service_ref = f.args[0];
        req.follow = swc_flags_bool(&f, LGF_FOLLOW);
        req.tail = tail;
        if (swc_client_stream(&c, "control.ServiceLogs", &req.base,
                              &swarmc__log_message__descriptor, log_cb, &lc, &err) != 0) {
            rc = swc_cli_fail(&err);
        }
        swc_client_close(&c);
    }
    swc_flags_free(&f);
    return rc;
}

const struct swc_cli_cmd swc_cli_service_cmds[] = {
    {"create", cmd_create, NULL, "IMAGE [COMMAND] [ARG...]", "Create a new service",
     swc_service_create_flags},
    {"ls", cmd_ls, NULL, "", "List services", ls_flags},
    {"ps", cmd_ps, NULL, "SERVICE [SERVICE...]", "List the tasks of one or more services",
     ls_flags},
    {"inspect", cmd_inspect, NULL, "SERVICE [SERVICE...]",
     "Display detailed information on one or more services", no_flags},
    {"scale", cmd_scale, NULL, "SERVICE=REPLICAS [SERVICE=REPLICAS...]",
     "Scale one or multiple replicated services", scale_flags},
    {"update", cmd_update, NULL, "SERVICE", "Update a service", swc_service_update_flags},
    {"rollback", cmd_rollback, NULL, "SERVICE", "Revert changes to a service's configuration",
     scale_flags},
    {"rm", cmd_rm, NULL, "SERVICE [SERVICE...]", "Remove one or more services", no_flags},
    {"logs", cmd_logs, NULL, "SERVICE", "Fetch the logs of a service", logs_flags},
    {NULL, NULL, NULL, NULL, NULL, NULL}};
