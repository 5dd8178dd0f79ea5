// AF_PACKET with a TPACKET_V3 receive ring and batched transmit, for the
// live ports. Set-up and teardown are plain functions (shim.c); the ring walk
// is inline here: one block is a batch of frames the kernel retired together.
#ifndef DGW_AFPACKET_H
#define DGW_AFPACKET_H

#include <stdint.h>
#include <stddef.h>
#include <linux/if_packet.h>

struct dgw_afpacket {
    int fd;
    int ifindex;
    uint8_t *ring;           /* block_count blocks of block_size bytes */
    size_t ring_size;
    unsigned block_size;
    unsigned block_count;
    unsigned current;        /* the next block to look at */
    int vnet_hdr;            /* received frames are preceded by a struct virtio_net_hdr */
    int tx_fd;               /* sends: the socket itself, or with vnet_hdr a second one
                                without (no header to write per frame sent) */
};

struct dgw_afpacket_options {
    unsigned block_size;     /* a multiple of the page size */
    unsigned block_count;    /* 0: a send-only socket (no ring, receives nothing) */
    unsigned frame_size;     /* the largest frame the ring holds, with its header */
    unsigned retire_ms;      /* a block is handed over at the latest after this */
    int promiscuous;         /* receive every unicast MAC (the logical MACs are not the interface's) */
    int fanout_group;        /* > 0: join this PACKET_FANOUT_HASH group */
    int vnet_hdr;            /* PACKET_VNET_HDR: received frames say how their sender left
                                segmentation and checksum to the NIC (a virtio_net_hdr
                                before tp_mac) */
};

/// Opens a packet socket on `ifname` with the ring mapped. 0, or -1 with
/// errno set and `stage` naming the step that failed.
int dgw_afpacket_open(const char *ifname, const struct dgw_afpacket_options *options,
                      struct dgw_afpacket *port, const char **stage);

void dgw_afpacket_close(struct dgw_afpacket *port);

/// Sends `count` frames (at most 64) with one sendmmsg per call when the
/// socket takes them all; returns how many were sent, or -1 with errno.
/// A frame too long for the interface (EMSGSIZE) is skipped, not counted,
/// and the others still go.
int dgw_afpacket_send(const struct dgw_afpacket *port, const void *const *frames, const unsigned *lengths, int count);

/// Frames the kernel dropped since the last call because the receive ring
/// had no free block (PACKET_STATISTICS, which the read resets); 0 or -1/errno.
int dgw_afpacket_take_drops(const struct dgw_afpacket *port, unsigned *drops);

/// The interface's flags and MAC (SIOCGIFFLAGS, SIOCGIFHWADDR); 0 or -1/errno.
int dgw_interface_flags(const char *ifname, int *flags);
int dgw_interface_set_flags(const char *ifname, int flags);
int dgw_interface_mac(const char *ifname, uint8_t mac[6]);

/// SIGINT and SIGTERM set a flag (and interrupt poll) instead of killing the process.
int dgw_install_stop_handlers(void);
int dgw_stop_requested(void);

/// Waits up to `timeout_ms` for any of `fds` to be readable; the number
/// ready, 0 on timeout, -1/errno (EINTR when a signal came).
int dgw_poll_readable(const int *fds, int count, int timeout_ms);

/// A listening Unix stream socket at `path` (a stale socket file is
/// replaced; a live one, where a connect succeeds, is refused with
/// EADDRINUSE). The fd, or -1/errno.
int dgw_unix_listen(const char *path);

/// A connected Unix stream socket to `path`, or -1/errno.
int dgw_unix_connect(const char *path);

/// A listening, non-blocking TCP socket on the numeric `host` (IPv4 or
/// IPv6) and `port`; the fd, or -1/errno (EINVAL for a bad address).
int dgw_tcp_listen(const char *host, int port);

/// accept4 with SOCK_CLOEXEC, EINTR retried; -1/errno.
int dgw_accept(int fd);

/// The block the kernel has handed over at `current`, or NULL.
static inline struct tpacket_block_desc *dgw_afpacket_block(const struct dgw_afpacket *port) {
    struct tpacket_block_desc *b = (struct tpacket_block_desc *)(port->ring + (size_t)port->current * port->block_size);
    if ((__atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) == 0) return NULL;
    return b;
}

static inline unsigned dgw_afpacket_block_frames(const struct tpacket_block_desc *b) { return b->hdr.bh1.num_pkts; }

static inline struct tpacket3_hdr *dgw_afpacket_first(struct tpacket_block_desc *b) {
    return (struct tpacket3_hdr *)((uint8_t *)b + b->hdr.bh1.offset_to_first_pkt);
}

static inline struct tpacket3_hdr *dgw_afpacket_next(struct tpacket3_hdr *h) {
    return (struct tpacket3_hdr *)((uint8_t *)h + h->tp_next_offset);
}

static inline const uint8_t *dgw_afpacket_data(const struct tpacket3_hdr *h) { return (const uint8_t *)h + h->tp_mac; }

/// A frame that left by this interface (the kernel's own, say). PACKET_IGNORE_OUTGOING
/// keeps them out of the ring, but not once the socket is in a PACKET_FANOUT group:
/// the group's hook has a flag of its own, which older kernels do not know.
static inline int dgw_afpacket_outgoing(const struct tpacket3_hdr *h) {
    const struct sockaddr_ll *ll = (const struct sockaddr_ll *)((const uint8_t *)h + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)));
    return ll->sll_pkttype == PACKET_OUTGOING;
}

/// With PACKET_VNET_HDR: the struct virtio_net_hdr (10 bytes) right before the frame.
static inline const uint8_t *dgw_afpacket_vnet_hdr(const struct tpacket3_hdr *h) { return (const uint8_t *)h + h->tp_mac - 10; }

/// Gives the current block back to the kernel and moves on.
static inline void dgw_afpacket_release(struct dgw_afpacket *port, struct tpacket_block_desc *b) {
    __atomic_store_n(&b->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    port->current = (port->current + 1) % port->block_count;
}

#endif
