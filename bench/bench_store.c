/* Store benchmark: apply cost, updates/s, get by id, listing a service's
 * tasks, memory per task, snapshot/restore and backup of 100k tasks (with
 * the longest loop stall seen by a 1 ms timer while the backup runs, and the
 * busy time of every loop turn during the backup: from the end of one
 * turn's poll (check handle) to the start of the next one's (prepare
 * handle), which holds the timers, idle handles (the backup's pinning
 * slices) and callbacks of that turn; the swc_store_backup call itself counts
 * as one turn). Prints median, min and max of 5 runs; asserts nothing. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tests/unit/test_store_util.h"
#include "store/store_int.h" /* bk_slice: pin in one turn, as before, to compare */

#define NTASKS    100000
#define PER_ENTRY 1000
#define NSVC      10
#define RUNS      5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2) {
            resident = 0;
        }
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, const char *unit, double *v)
{
    qsort(v, RUNS, sizeof(*v), cmp_d);
    printf("%-44s median %10.3f  min %10.3f  max %10.3f  %s\n", what, v[RUNS / 2], v[0],
           v[RUNS - 1], unit);
}

/* Pre-encoded entries: creates (version 0) or updates (expected version). */
static struct swc_buf *encode_entries(int update, uint64_t first_index)
{
    struct swc_buf *e = calloc(NTASKS / PER_ENTRY, sizeof(*e));
    struct swc_buf t;
    char id[26], svc[26], node[26];
    swc_buf_init(&t);
    for (int n = 0; n < NTASKS / PER_ENTRY; n++) {
        struct swc_store_txn txn;
        swc_store_txn_init(&txn, (uint64_t)n, "1");
        for (int i = n * PER_ENTRY; i < (n + 1) * PER_ENTRY; i++) {
            tid(id, 't', (unsigned long)i);
            tid(svc, 's', (unsigned long)(i % NSVC));
            tid(node, 'n', (unsigned long)(i % 100));
            txn_task(&txn, update ? A_UPDATE : A_CREATE, id, svc, node, (uint64_t)(i / NSVC) + 1,
                     ST_RUNNING, update ? ST_RUNNING : ST_ASSIGNED,
                     update ? first_index + (uint64_t)n : 0);
        }
        t.len = 0;
        swc_store_txn_encode(&txn, &t);
        swc_buf_init(&e[n]);
        swc_store_batch_append(&e[n], t.data, t.len);
        swc_store_txn_free(&txn);
    }
    swc_buf_free(&t);
    return e;
}

static int conflicts;
static void count_cb(void *data, uint64_t idx, uint64_t pid, const char *who, int code,
                     const char *msg)
{
    (void)data, (void)idx, (void)pid, (void)who, (void)msg;
    conflicts += code != 0;
}

static double apply_all(struct swc_store *s, struct swc_buf *e, uint64_t first_index)
{
    double t0 = now_s();
    for (int n = 0; n < NTASKS / PER_ENTRY; n++) {
        swc_store_apply_entry(s, first_index + (uint64_t)n, e[n].data, e[n].len, count_cb, NULL);
    }
    return now_s() - t0;
}

struct stall {
    uv_timer_t timer;
    uv_prepare_t prep;
    uv_check_t check;
    uint64_t last, max;
    uint64_t after_poll; /* 0 until the first poll */
    double *turns;       /* busy ms of each loop turn */
    size_t nturns, capturns;
    int done;
};

static void add_turn(struct stall *st, uint64_t ns)
{
    if (st->nturns < st->capturns) {
        st->turns[st->nturns++] = (double)ns / 1e6;
    }
}

static void prep_cb(uv_prepare_t *h)
{
    struct stall *st = h->data;
    if (st->after_poll != 0) {
        add_turn(st, uv_hrtime() - st->after_poll);
    }
}

static void check_cb(uv_check_t *h)
{
    struct stall *st = h->data;
    st->after_poll = uv_hrtime();
}

static void tick_cb(uv_timer_t *t)
{
    struct stall *st = t->data;
    uint64_t n = uv_hrtime();
    if (st->last != 0 && n - st->last > st->max) {
        st->max = n - st->last;
    }
    st->last = n;
}

static void backup_done_cb(void *data, int code, const struct swc_err *err)
{
    struct stall *st = data;
    st->done = 1;
    if (code != 0) {
        fprintf(stderr, "backup failed: %s\n", swc_err_msg(err));
    }
}

int main(void)
{
    double apply_us[RUNS], upd[RUNS], get_ns[RUNS], list_ms[RUNS], mem[RUNS], snap_ms[RUNS],
        snap2_ms[RUNS], restore_ms[RUNS], bk_ms[RUNS], stall_ms[RUNS], apply1_us[RUNS], heap[RUNS],
        bkcall_ms[RUNS], bkcall2_ms[RUNS], stall2_ms[RUNS], turn_max[RUNS], turn_med[RUNS],
        turn_n[RUNS], turn2_max[RUNS], turn2_med[RUNS], turn1_max[RUNS], stall1_ms[RUNS];
    struct swc_buf *creates = encode_entries(0, 0);
    struct swc_buf *updates = encode_entries(1, 1);
    size_t bytes = 0;
    for (int n = 0; n < NTASKS / PER_ENTRY; n++) {
        bytes += creates[n].len;
    }
    printf("store bench: %d tasks, %d per entry, %d services, avg encoded task %zu bytes\n", NTASKS,
           PER_ENTRY, NSVC, bytes / NTASKS);

    for (int run = 0; run < RUNS; run++) {
        struct swc_store *s, *r;
        swc_store_create(&s);
        long rss0 = rss_bytes();
        size_t heap0 = mallinfo2().uordblks;
        double t = apply_all(s, creates, 1);
        long rss1 = rss_bytes();
        heap[run] = (double)(mallinfo2().uordblks - heap0) / NTASKS;
        apply_us[run] = t / NTASKS * 1e6;
        mem[run] = (double)(rss1 - rss0) / NTASKS; /* only run 0 starts from fresh pages */

        t = apply_all(s, updates, 1 + NTASKS / PER_ENTRY);
        upd[run] = NTASKS / t;

        /* get by id, pseudo-random order */
        char id[26];
        struct swc_store_obj o;
        int gets = 1000000;
        char(*ids)[26] = malloc((size_t)NTASKS * 26);
        for (int i = 0; i < NTASKS; i++) {
            tid(ids[i], 't', (unsigned long)i);
        }
        double t0 = now_s();
        uint64_t sum = 0;
        for (int i = 0; i < gets; i++) {
            if (swc_store_get(s, K_TASK, ids[(i * 7919L) % NTASKS], &o) == 0) {
                sum += o.version;
            }
        }
        get_ns[run] = (now_s() - t0) / gets * 1e9;
        free(ids);

        /* list the 10k tasks of one service, touching each object */
        tid(id, 's', 3);
        t0 = now_s();
        struct swc_store_iter it;
        size_t cnt = 0;
        for (int rep = 0; rep < 10; rep++) {
            swc_store_iter_service_tasks(s, id, &it);
            while (swc_store_iter_next(&it, &o)) {
                cnt++;
                sum += o.blob->len;
            }
        }
        list_ms[run] = (now_s() - t0) / 10 * 1e3;

        /* snapshot (fresh buffer, then reused) and restore */
        struct swc_buf buf;
        swc_buf_init(&buf);
        t0 = now_s();
        swc_store_snapshot(s, &buf);
        snap_ms[run] = (now_s() - t0) * 1e3;
        t0 = now_s();
        swc_store_snapshot(s, &buf);
        snap2_ms[run] = (now_s() - t0) * 1e3;
        swc_store_create(&r);
        t0 = now_s();
        swc_store_restore(r, buf.data, buf.len);
        restore_ms[run] = (now_s() - t0) * 1e3;
        swc_store_destroy(r);
        swc_buf_free(&buf);

        /* backups with a 1 ms timer measuring loop stalls; the second one
         * reuses the store's pin list, as every backup after the first does */
        for (int pass = 0; pass < 3; pass++) {
            s->bk_slice = pass == 2 ? UINT32_MAX : 0;
            uv_loop_t loop;
            struct stall st = {0};
            char path[64];
            snprintf(path, sizeof(path), "/tmp/swc_bench_store_%d.db", (int)getpid());
            uv_loop_init(&loop);
            uv_timer_init(&loop, &st.timer);
            st.timer.data = &st;
            uv_timer_start(&st.timer, tick_cb, 1, 1);
            uv_prepare_init(&loop, &st.prep);
            uv_check_init(&loop, &st.check);
            st.prep.data = st.check.data = &st;
            uv_prepare_start(&st.prep, prep_cb);
            uv_check_start(&st.check, check_cb);
            st.capturns = 1000000;
            st.turns = malloc(st.capturns * sizeof(*st.turns));
            t0 = now_s();
            st.last = uv_hrtime();
            swc_store_backup(s, &loop, path, backup_done_cb, &st);
            uint64_t call_ns = uv_hrtime() - st.last;
            if (call_ns > st.max) {
                st.max = call_ns;
            }
            add_turn(&st, call_ns);
            st.after_poll = uv_hrtime(); /* the next turn starts now */
            while (!st.done) {
                uv_run(&loop, UV_RUN_ONCE);
            }
            uv_close((uv_handle_t *)&st.timer, NULL);
            uv_close((uv_handle_t *)&st.prep, NULL);
            uv_close((uv_handle_t *)&st.check, NULL);
            qsort(st.turns, st.nturns, sizeof(*st.turns), cmp_d);
            double tmax = st.turns[st.nturns - 1], tmed = st.turns[st.nturns / 2];
            size_t ntn = st.nturns;
            free(st.turns);
            uv_run(&loop, UV_RUN_DEFAULT);
            uv_loop_close(&loop);
            unlink(path);
            if (pass == 0) {
                bk_ms[run] = (now_s() - t0) * 1e3;
                bkcall_ms[run] = (double)call_ns / 1e6;
                stall_ms[run] = (double)st.max / 1e6;
                turn_max[run] = tmax;
                turn_med[run] = tmed;
                turn_n[run] = (double)ntn;
            } else if (pass == 2) {
                turn1_max[run] = tmax;
                stall1_ms[run] = (double)st.max / 1e6;
            } else {
                bkcall2_ms[run] = (double)call_ns / 1e6;
                stall2_ms[run] = (double)st.max / 1e6;
                turn2_max[run] = tmax;
                turn2_med[run] = tmed;
            }
        }

        /* single-object entries: the per-entry overhead */
        struct swc_store_txn txn;
        struct swc_buf e1, tb;
        swc_buf_init(&e1);
        swc_buf_init(&tb);
        t0 = now_s();
        uint64_t idx = swc_store_index(s) + 1;
        for (int i = 0; i < 10000; i++) {
            tid(id, 't', (unsigned long)i);
            swc_store_get(s, K_TASK, id, &o);
            swc_store_txn_init(&txn, 1, "1");
            swc_store_txn_add_encoded(&txn, A_UPDATE, K_TASK, id, o.version, o.blob->data,
                                      o.blob->len);
            tb.len = e1.len = 0;
            swc_store_txn_encode(&txn, &tb);
            swc_store_batch_append(&e1, tb.data, tb.len);
            swc_store_txn_free(&txn);
            swc_store_apply_entry(s, idx++, e1.data, e1.len, count_cb, NULL);
        }
        apply1_us[run] = (now_s() - t0) / 10000 * 1e6;
        swc_buf_free(&e1);
        swc_buf_free(&tb);
        if (cnt != 100000 || sum == 0) {
            fprintf(stderr, "unexpected list size %zu\n", cnt);
        }
        swc_store_destroy(s);
    }
    double ratio[RUNS]; /* per run, before report() sorts the columns */
    for (int i = 0; i < RUNS; i++) {
        ratio[i] = turn1_max[i] / turn2_max[i];
    }
    report("apply: create, 1000 per entry", "us/object", apply_us);
    report("apply: update, 1000 per entry", "updates/s", upd);
    report("apply: build+encode+apply 1 update per entry", "us/entry", apply1_us);
    report("get by id", "ns", get_ns);
    report("list the 10k tasks of one service", "ms", list_ms);
    printf("%-44s %10.1f  bytes (first run; later runs reuse freed pages)\n",
           "memory per task at 100k (RSS delta)", mem[0]);
    report("memory per task at 100k (heap in use delta)", "bytes", heap);
    report("snapshot 100k tasks (fresh buffer)", "ms", snap_ms);
    report("snapshot 100k tasks (reused buffer)", "ms", snap2_ms);
    report("restore 100k tasks", "ms", restore_ms);
    report("backup 100k tasks to SQLite (total)", "ms", bk_ms);
    report("backup: time in swc_store_backup (pinning)", "ms", bkcall_ms);
    report("backup: longest loop stall (1 ms timer)", "ms", stall_ms);
    report("2nd backup: time in swc_store_backup", "ms", bkcall2_ms);
    report("2nd backup: longest loop stall (1 ms timer)", "ms", stall2_ms);
    report("backup: loop turns while it runs", "turns", turn_n);
    report("backup: longest loop turn (busy time)", "ms", turn_max);
    report("backup: median loop turn (busy time)", "ms", turn_med);
    report("2nd backup: longest loop turn (busy time)", "ms", turn2_max);
    report("2nd backup: median loop turn (busy time)", "ms", turn2_med);
    report("one-turn pinning (as before): longest turn", "ms", turn1_max);
    report("one-turn pinning (as before): stall (timer)", "ms", stall1_ms);
    report("ratio longest turn: one-turn / sliced (2nd)", "x", ratio);
    if (conflicts != 0) {
        printf("(unexpected conflicts: %d)\n", conflicts);
    }
    for (int n = 0; n < NTASKS / PER_ENTRY; n++) {
        swc_buf_free(&creates[n]);
        swc_buf_free(&updates[n]);
    }
    free(creates);
    free(updates);
    return 0;
}
