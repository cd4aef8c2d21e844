/* Fast decoders for large read-only CLI replies.
 *
 * A task table reads a dozen fields of each task; decoding whole tasks with
 * protobuf-c was half the time of `swarmc service ps` on 10,000 tasks. These
 * decoders fill only what the table reads, allocate from the caller's
 * (arena) allocator, and return NULL on anything unexpected so that the
 * caller can fall back to protobuf-c. */
#ifndef SWC_CLI_WIRE_H
#define SWC_CLI_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Decode a control.ListTasks reply (desc must be the ListTasksResponse
 * descriptor) with only the fields a task table reads: error, node_names,
 * and of each task id, meta, spec.container.image, spec_version, slot,
 * node_id, service_name, desired_state and status (timestamp, state, err,
 * port_status); every other field keeps its default. Tasks with the same
 * image share one TaskSpec, and strings that repeat may be shared. Everything comes from a (an
 * arena: the result is freed with the arena, never field by field, and must not be edited). NULL
 * when the bytes are not what it expects. */
ProtobufCMessage *swc_wire_unpack_task_table(const ProtobufCMessageDescriptor *desc,
                                             ProtobufCAllocator *a, size_t len,
                                             const uint8_t *data);

/* Decode a control.ListServices reply (the ListServicesResponse
 * descriptor) with what a service table reads: error, counts, and of each
 * service id, spec.annotations.name, spec.task.container.image, the mode,
 * spec.endpoint and endpoint; the rest keeps its default. Same rules as
 * swc_wire_unpack_task_table. */
ProtobufCMessage *swc_wire_unpack_service_table(const ProtobufCMessageDescriptor *desc,
                                                ProtobufCAllocator *a, size_t len,
                                                const uint8_t *data);

#endif
