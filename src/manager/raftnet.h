/* Raft's network between managers through the secure channel: a custom
 * transport for the raft adapter (raft/raft.h, struct swc_raft_transport)
 * that relays each raft connection through a secure tunnel (net/tunnel.h).
 *
 * Outbound: raft asks to connect to manager id at address; we open a tunnel
 * to address with our manager certificate and HELLO {our raft id, our raft
 * address}, and once the server accepted we make a socketpair, pump one end
 * through the tunnel and hand raft the other as a uv_pipe_t.
 * Inbound: a tunnel whose peer certificate has the manager role and whose
 * HELLO decodes becomes a socketpair the same way, handed to raft with
 * swc_raft_accept and the id and address from the HELLO.
 *
 * Binding (swc_raftnet_set_binding): a certificate names a node, a HELLO
 * claims a raft id. With a binding set, a tunnel is refused (inbound) or
 * dropped (outbound, where the server's certificate must be the node bound
 * to the raft id we dialled) when the cluster records another raft id for
 * the certificate's node, or another node for the raft id. A pair nothing
 * is recorded for yet (a manager whose join is still being committed, or a
 * joining manager whose store is still empty) passes; raft retries a
 * refused connection on its own, so a record that arrives later only delays
 * traffic, never loses it.
 *
 * Lifecycle: init (listens at once) -> pass swc_raftnet_transport(rn) in
 * swc_raft_config.transport -> swc_raft_init -> swc_raftnet_bind -> start
 * raft. Shutdown: swc_raft_close first, and call swc_raftnet_close from its
 * close callback (raft keeps calling the transport until then, and a
 * tunnel accepted after raft is gone must not reach it). */
#ifndef SWC_MANAGER_RAFTNET_H
#define SWC_MANAGER_RAFTNET_H

#include <stdint.h>
#include <uv.h>

#include "net/secchan.h"
#include "raft/raft.h"

struct swc_raftnet;

/* HELLO: u8 version | u64 raft id | u16 address length | address. */
#define SWC_RAFTNET_HELLO_VERSION 1

/* Listen on listen_addr ("host:port": this manager's raft address, the one
 * in swc_raft_config.address; it is also what we advertise in our HELLO)
 * and prepare to connect out. client_cfg and server_cfg (copied with their
 * identities) should require SWC_ROLE_MANAGER peers; inbound peers without
 * a manager certificate are refused here in any case. 0, SWC_EINVAL,
 * SWC_EIO (cannot listen) or SWC_ENOMEM. */
int swc_raftnet_init(uv_loop_t *loop, const char *listen_addr,
                     const struct swc_secchan_config *client_cfg,
                     const struct swc_secchan_config *server_cfg, struct swc_raftnet **out);

/* Use new configs (copied with their identities) for tunnels opened or
 * accepted from now on, e.g. after the certificate was renewed. */
void swc_raftnet_set_config(struct swc_raftnet *rn, const struct swc_secchan_config *client_cfg,
                            const struct swc_secchan_config *server_cfg);

/* The transport to put in swc_raft_config.transport (the adapter copies it). */
const struct swc_raft_transport *swc_raftnet_transport(struct swc_raftnet *rn);

/* Tell rn which adapter receives inbound connections and whose id goes in
 * our HELLO: after swc_raft_init, before swc_raft_start. Until then
 * inbound tunnels are refused. */
void swc_raftnet_bind(struct swc_raftnet *rn, struct swc_raft *r);

/* Close the listener and every tunnel; pending connects are finished with
 * SWC_ECLOSED. Forgets the adapter at once (so it may be called from the
 * adapter's close callback, after which the adapter is freed); cb (may be
 * NULL) runs once everything is freed. */
void swc_raftnet_close(struct swc_raftnet *rn, void (*cb)(void *data), void *data);

/* The cluster's record of which node owns which raft id (manager.c reads
 * it from the Node objects of the store). Both return 0 and fill the answer,
 * or SWC_ENOENT when nothing is recorded. */
struct swc_raftnet_binding {
    int (*raft_id_of)(void *data, const char *node_id, uint64_t *raft_id);
    int (*node_of)(void *data, uint64_t raft_id, char *node_id, size_t size);
    void *data;
};

/* Check raft ids against certificates with b (copied; NULL: no checks, as
 * before a binding is set) for tunnels opened or accepted from now on. */
void swc_raftnet_set_binding(struct swc_raftnet *rn, const struct swc_raftnet_binding *b);

/* Counters for tests. */
struct swc_raftnet_stats {
    uint64_t connects; /* outbound tunnels handed to raft */
    uint64_t accepts;  /* inbound tunnels handed to raft */
    uint64_t refused;  /* inbound tunnels refused (role, HELLO, binding, no adapter) */
    uint64_t dropped;  /* outbound tunnels whose server is not the raft id's node */
    unsigned open;     /* tunnels open now */
};
void swc_raftnet_stats(const struct swc_raftnet *rn, struct swc_raftnet_stats *out);

#endif
