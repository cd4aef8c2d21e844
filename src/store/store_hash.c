/* Creation and destruction of the store's sentinel-headed hash tables.
 *
 * This is the one place where a uthash table is created, so it is compiled
 * with HASH_NONFATAL_OOM: a failed allocation leaves the head NULL and we
 * report SWC_ENOMEM. Every other file adds to tables that already exist,
 * which cannot fail (see store_int.h). */
#define HASH_NONFATAL_OOM 1
#include "store/store_int.h"

int swc_store_hash_make_rec(struct rec **ids, struct rec **names)
{
    struct rec *si = NULL, *sn = NULL;
    *ids = NULL;
    if (names != NULL) {
        *names = NULL;
    }
    si = swc_calloc(1, sizeof(*si) + 1);
    if (si == NULL) {
        goto oom;
    }
    si->name = si->id;
    HASH_ADD_KEYPTR(hh, *ids, si->id, 0, si);
    if (*ids == NULL) {
        goto oom;
    }
    if (names != NULL) {
        sn = swc_calloc(1, sizeof(*sn) + 1);
        if (sn == NULL) {
            goto oom;
        }
        sn->name = sn->id;
        HASH_ADD_KEYPTR(u.nh, *names, sn->id, 0, sn);
        if (*names == NULL) {
            goto oom;
        }
    }
    return 0;
oom:
    swc_free(sn);
    if (*ids != NULL) {
        HASH_CLEAR(hh, *ids);
    }
    swc_free(si);
    return SWC_ENOMEM;
}

int swc_store_hash_make_group(struct group **table)
{
    struct group *g = swc_calloc(1, sizeof(*g) + 1);
    *table = NULL;
    if (g == NULL) {
        return SWC_ENOMEM;
    }
    HASH_ADD_KEYPTR(hh, *table, g->key, 0, g);
    if (*table == NULL) {
        swc_free(g);
        return SWC_ENOMEM;
    }
    return 0;
}

void swc_store_hash_free_rec(struct rec **ids, struct rec **names)
{
    if (*ids != NULL) {
        struct rec *si = *ids;
        HASH_CLEAR(hh, *ids);
        swc_free(si);
    }
    if (names != NULL && *names != NULL) {
        struct rec *sn = *names;
        HASH_CLEAR(u.nh, *names);
        swc_free(sn);
    }
}

void swc_store_hash_free_group(struct group **table)
{
    if (*table != NULL) {
        struct group *g = *table;
        HASH_CLEAR(hh, *table);
        swc_free(g);
    }
}
