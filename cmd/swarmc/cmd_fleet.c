/* `swarmc fleet`: run many simulated worker nodes in this process (see
 * worker/fleet.h) against a real cluster, in the foreground until SIGTERM or
 * SIGINT. It prints one line when every node first has a session, with the
 * time it took and the process RSS per node, and a line per minute after
 * that (and on SIGUSR1). Logging is quiet (warn) unless SWARMC_LOG_LEVEL says otherwise. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "cli.h"
#include "worker/fleet.h"

enum { FF_TOKEN = 1, FF_NODES, FF_START_DELAY, FF_RUN_TIME, FF_FAILURE_RATE, FF_JOINS, FF_PREFIX };

const struct swc_flag_def swc_cli_fleet_flags[] = {
    {"token", 0, true, FF_TOKEN, "string", "Worker join token (required)"},
    {"nodes", 'n', true, FF_NODES, "uint", "Number of simulated nodes (default 100)"},
    {"start-delay", 0, true, FF_START_DELAY, "duration",
     "Simulated time to prepare and to start a task (default 10ms)"},
    {"run-time", 0, true, FF_RUN_TIME, "duration",
     "Simulated task run time, 0 = until stopped (default 0)"},
    {"failure-rate", 0, true, FF_FAILURE_RATE, "ratio",
     "Probability that a task start fails (default 0)"},
    {"joins-in-flight", 0, true, FF_JOINS, "uint", "Joins in progress at once (default 256)"},
    {"hostname-prefix", 0, true, FF_PREFIX, "string",
     "Node hostnames are PREFIX-N (default fleet)"},
    {NULL, 0, 0, 0, 0, 0}};

struct fleet_run {
    uv_loop_t *loop;
    struct swc_fleet *fleet;
    uv_signal_t sigterm, sigint, sigusr1;
    uv_timer_t report;
    bool reported_up;
    bool status_now; /* SIGUSR1: print a status line */
    bool stopping;
    int exit_code;
    int64_t last_line_ns;
    double rss_base; /* before the fleet started */
};

static double rss_bytes(void)
{
    size_t rss = 0;
    return uv_resident_set_memory(&rss) == 0 ? (double)rss : 0.0;
}

static void fleet_closed(void *data)
{
    struct fleet_run *r = data;
    r->fleet = NULL;
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigusr1, NULL);
    uv_close((uv_handle_t *)&r->report, NULL);
}

static void stop(struct fleet_run *r, int code)
{
    if (r->stopping) {
        return;
    }
    r->stopping = true;
    r->exit_code = code;
    uv_timer_stop(&r->report);
    swc_fleet_close(r->fleet, fleet_closed, r);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct fleet_run *r = s->data;
    if (signum == SIGUSR1) {
        r->status_now = true;
        return;
    }
    stop(r, 0);
}

static void report_cb(uv_timer_t *t)
{
    struct fleet_run *r = t->data;
    struct swc_fleet_stats st;
    /* The cheap counters every tick; the walk of every node and task only
     * for a line that prints them. */
    swc_fleet_progress(r->fleet, &st);
    if (st.join_errors > 0 && st.joined == 0) {
        fprintf(stderr, "Error: fleet: %s\n", swc_fleet_error(r->fleet));
        stop(r, SWC_EXIT_FAIL);
        return;
    }
    bool line = r->status_now ||
                (r->reported_up && swc_now_mono() - r->last_line_ns >= 60 * SWC_NS_PER_SEC);
    if (r->reported_up && !line) {
        return;
    }
    double rss = rss_bytes();
    if (!r->reported_up && st.all_up_ns != 0) {
        r->reported_up = true;
        printf("fleet: %zu nodes up in %.1f s, RSS %.1f MiB (%.1f KiB/node over a %.1f MiB "
               "base)\n",
               st.nodes, (double)st.all_up_ns / 1e9, rss / (1024.0 * 1024.0),
               (rss - r->rss_base) / 1024.0 / (double)st.nodes, r->rss_base / (1024.0 * 1024.0));
        uv_timer_set_repeat(&r->report, 1000); /* cheap: the walk is per printed line */
        fflush(stdout);
        r->last_line_ns = swc_now_mono();
    } else if (line) {
        r->status_now = false;
        swc_fleet_stats(r->fleet, &st);
        printf("fleet: %zu/%zu nodes connected (%zu joined), %zu tasks (%zu running), %zu "
               "statuses unacknowledged, RSS %.1f MiB\n",
               st.connected, st.nodes, st.joined, st.tasks, st.running, st.pending,
               rss / (1024.0 * 1024.0));
        fflush(stdout);
        r->last_line_ns = swc_now_mono();
    }
}

static int parse_ms(const char *flag, const char *v, uint64_t *out, struct swc_err *err)
{
    int64_t ns = 0;
    if (v == NULL) {
        return 0;
    }
    if (strcmp(v, "0") != 0 && swc_flag_duration(flag, v, &ns, err) != 0) {
        return SWC_EINVAL;
    }
    if (ns < 0) {
        return swc_err_set(err, SWC_EINVAL, "invalid value \"%s\" for --%s: negative", v, flag);
    }
    *out = (uint64_t)(ns / SWC_NS_PER_MS);
    return 0;
}

int swc_cli_cmd_fleet(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_err err;
    struct swc_fleet_config cfg;
    char *list = NULL;
    const char **mgrs = NULL;
    uint64_t nodes = 100, joins = 0;
    float rate = 0;
    swc_err_clear(&err);
    int rc = swc_cli_parse(cli, swc_cli_fleet_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.token = swc_flags_get(&f, FF_TOKEN);
    cfg.start_delay_ms = 10;
    cfg.hostname_prefix = swc_flags_get(&f, FF_PREFIX);
    if (f.n_args == 0 || cfg.token == NULL) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli,
                                   "\"swarmc fleet\" needs --token and MANAGER_ADDR[,ADDR...]");
    }
    const char *v;
    if (((v = swc_flags_get(&f, FF_NODES)) != NULL &&
         swc_flag_uint("nodes", v, 1000000, &nodes, &err) != 0) ||
        ((v = swc_flags_get(&f, FF_JOINS)) != NULL &&
         swc_flag_uint("joins-in-flight", v, 100000, &joins, &err) != 0) ||
        parse_ms("start-delay", swc_flags_get(&f, FF_START_DELAY), &cfg.start_delay_ms, &err) !=
            0 ||
        parse_ms("run-time", swc_flags_get(&f, FF_RUN_TIME), &cfg.run_time_ms, &err) != 0 ||
        ((v = swc_flags_get(&f, FF_FAILURE_RATE)) != NULL &&
         swc_flag_ratio("failure-rate", v, &rate, &err) != 0)) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, swc_err_msg(&err));
    }
    if (nodes == 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "invalid value \"0\" for --nodes: at least 1");
    }
    cfg.nodes = (size_t)nodes;
    cfg.joins_in_flight = (unsigned)joins;
    cfg.failure_rate = rate;
    /* MANAGER_ADDR[,ADDR...], possibly as several arguments */
    size_t total = 0;
    for (size_t i = 0; i < f.n_args; i++) {
        total += strlen(f.args[i]) + 1;
    }
    list = swc_malloc(total + 1);
    mgrs = swc_calloc(total + 1, sizeof *mgrs);
    if (list == NULL || mgrs == NULL) {
        swc_free(list);
        swc_free(mgrs);
        swc_flags_free(&f);
        swc_err_set(&err, SWC_ENOMEM, "out of memory");
        return swc_cli_fail(&err);
    }
    list[0] = '\0';
    for (size_t i = 0; i < f.n_args; i++) {
        strcat(list, f.args[i]);
        strcat(list, ",");
    }
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        mgrs[cfg.nmanagers++] = tok;
    }
    cfg.managers = mgrs;
    if (getenv("SWARMC_LOG_LEVEL") == NULL) {
        swc_log_set_level(SWC_LOG_WARN);
    }

    struct fleet_run r;
    memset(&r, 0, sizeof r);
    r.loop = uv_default_loop();
    r.rss_base = rss_bytes();
    rc = swc_fleet_start(r.loop, &cfg, &r.fleet, &err);
    swc_free(list);
    swc_free(mgrs);
    swc_flags_free(&f);
    if (rc != 0) {
        return swc_cli_fail(&err);
    }
    uv_signal_init(r.loop, &r.sigterm);
    uv_signal_init(r.loop, &r.sigint);
    uv_signal_init(r.loop, &r.sigusr1);
    r.sigterm.data = r.sigint.data = r.sigusr1.data = &r;
    uv_signal_start(&r.sigusr1, on_signal, SIGUSR1);
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    uv_timer_init(r.loop, &r.report);
    r.report.data = &r;
    uv_timer_start(&r.report, report_cb, 100, 100);
    uv_run(r.loop, UV_RUN_DEFAULT);
    return r.exit_code;
}
