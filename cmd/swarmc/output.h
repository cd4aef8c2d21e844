/* Output of the CLI: aligned tables, human times, the `ls`/`ps` views and
 * JSON, shaped like `docker service ls|ps` and `docker node ls`.
 *
 * Everything here is pure: replies (protobuf messages) and "now" in, a
 * string out, so tests check column alignment, id truncation, filters and
 * JSON without a daemon (tests/unit/test_cli_output.c). Returned strings
 * are allocated with swc_malloc and freed by the caller with swc_free. */
#ifndef SWC_CLI_OUTPUT_H
#define SWC_CLI_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "api/control.pb-c.h"
#include "api/types.pb-c.h"
#include "base/err.h"

/* Ids are shown with this many characters unless --no-trunc. */
#define SWC_OUT_ID_LEN 12

/* A table of text cells; the first row is the header. */
struct swc_table {
    size_t ncols;
    size_t nrows;
    size_t cap_rows; /* rows allocated in cells (grows by doubling) */
    size_t *cells;   /* nrows * ncols offsets into text, row-major */
    size_t *width;   /* ncols: the widest cell of each column so far */
    char *text;      /* every cell, NUL-terminated, back to back */
    size_t text_len, text_cap;
};

/* Start a table with a header row of ncols cells (copied). */
void swc_table_init(struct swc_table *t, size_t ncols, const char *const *header);

/* Make room for rows rows and text_bytes bytes of cells in all (a hint:
 * the table still grows past it), so a long table is not regrown. */
void swc_table_reserve(struct swc_table *t, size_t rows, size_t text_bytes);

/* Append a row of ncols cells (copied; NULL is an empty cell). */
void swc_table_add(struct swc_table *t, const char *const *cells);

/* Render: each column padded to its widest cell plus 3 spaces, the last
 * column not padded, no trailing spaces, one line per row. Caller frees. */
char *swc_table_render(const struct swc_table *t);

/* The same text as swc_table_render, written to f piece by piece. */
void swc_table_write(const struct swc_table *t, FILE *f);

/* Free the cells. */
void swc_table_free(struct swc_table *t);

/* How a list is shown. */
struct swc_out_opts {
    bool quiet;     /* ids only */
    bool no_trunc;  /* full ids and messages */
    bool json;      /* --format json */
    char **filters; /* "key=value" strings (checked by swc_out_check_filters) */
    size_t n_filters;
    int64_t now_wall; /* for "5 seconds ago" */
    /* When set, service ls/ps write a table here as it renders and return
     * "" (JSON and -q still come back as strings). */
    FILE *stream;
};

/* Kinds of list for swc_out_check_filters. */
enum swc_out_kind { SWC_OUT_SERVICES, SWC_OUT_TASKS, SWC_OUT_NODES };

/* Check --filter values: service ls takes name, mode; service ps takes
 * desired-state, node, name; node ls takes role, name. 0 or SWC_EINVAL. */
int swc_out_check_filters(enum swc_out_kind kind, char **filters, size_t n, struct swc_err *err);

/* "Less than a second", "5 seconds", "About a minute", "3 hours" ... for
 * the span between ts and now (both ns since the epoch). */
void swc_out_human_duration(int64_t span_ns, char *buf, size_t len);

/* Display name of a task state ("Running", "Shutdown"). */
const char *swc_out_task_state(int state);

/* Lower-case state for progress lines ("running"). */
const char *swc_out_task_state_lc(int state);

/* The REPLICAS cell: "2/3", "3/3" (global), "1/3 (2/5 completed)" (jobs). */
void swc_out_replicas(const Swarmc__Service *svc, const Swarmc__ServiceCounts *counts, char *buf,
                      size_t len);

/* The PORTS cell: "*:8080->80/tcp, *:53->53/udp" (host mode: "8080->80/tcp"). */
void swc_out_ports(const Swarmc__EndpointSpec *ep, char *buf, size_t len);

/* `service ls` (table, -q ids or JSON array). Caller frees. */
char *swc_out_service_ls(const Swarmc__ListServicesResponse *r, const struct swc_out_opts *o);

/* `service ps --states`: the services of r whose name, id or id prefix is
 * in refs (all when n_refs is 0), one row per task state that occurs
 * (ID NAME STATE TASKS); JSON: an array of {"ID","Name","States":{state:
 * n}}, one per service. Needs r->counts[i]->states (ListServicesRequest.state_counts).
 * Caller frees. */
char *swc_out_service_states(const Swarmc__ListServicesResponse *r, const char *const *refs,
                             size_t n_refs, const struct swc_out_opts *o);

/* `service ps`: tasks grouped by slot, newest first, older ones as
 * " \_ " history lines. Caller frees. */
char *swc_out_service_ps(const Swarmc__ListTasksResponse *r, const struct swc_out_opts *o);

/* `node ls` with '*' after this node's id. Caller frees. */
char *swc_out_node_ls(const Swarmc__ListNodesResponse *r, const struct swc_out_opts *o);

/* Any message as readable JSON: enum values by name ("running",
 * "on-failure"), times as RFC 3339, defaults omitted, maps as objects,
 * bytes as their length. Caller json_decref()s. */
json_t *swc_out_msg_json(const ProtobufCMessage *msg);

/* Pretty-printed JSON text of a message list (inspect output: an array).
 * Caller frees. */
char *swc_out_inspect(const ProtobufCMessage *const *msgs, size_t n);

#endif
