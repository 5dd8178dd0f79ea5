#include "dgw_shim.h"

#include <stdio.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

uint64_t dgw_monotonic_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t dgw_realtime_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int dgw_pin_thread_to_cpu(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) { errno = EINVAL; return -1; }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0) { errno = rc; return -1; }
    return 0;
}

static int allowed(cpu_set_t *set) {
    int rc = pthread_getaffinity_np(pthread_self(), sizeof(*set), set);
    if (rc != 0) { errno = rc; return -1; }
    return 0;
}

int dgw_thread_first_allowed_cpu(void) {
    cpu_set_t set;
    if (allowed(&set) != 0) return -1;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set)) return cpu;
    errno = ESRCH;
    return -1;
}

int dgw_thread_allowed_cpu_count(void) {
    cpu_set_t set;
    if (allowed(&set) != 0) return -1;
    return CPU_COUNT(&set);
}

int dgw_errno(void) { return errno; }

// MARK: AF_PACKET

#include "dgw_afpacket.h"

#ifdef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define DGW_FANOUT_FLAG_IGNORE_OUTGOING PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#else
#define DGW_FANOUT_FLAG_IGNORE_OUTGOING 0x4000
#endif

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* A socket that only sends on `ifindex`: bound with protocol 0 (nothing is
   received), bypassing the qdisc. The fd, or -1/errno with `stage` set. */
static int send_only_socket(int ifindex, const char **stage) {
    int one = 1;
    *stage = "socket(AF_PACKET)";
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    *stage = "PACKET_QDISC_BYPASS";
    if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0) goto fail;
    *stage = "bind";
    struct sockaddr_ll tx;
    memset(&tx, 0, sizeof(tx));
    tx.sll_family = AF_PACKET;
    tx.sll_ifindex = ifindex;
    if (bind(fd, (struct sockaddr *)&tx, sizeof(tx)) != 0) goto fail;
    return fd;
fail: {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
}

int dgw_afpacket_open(const char *ifname, const struct dgw_afpacket_options *o,
                      struct dgw_afpacket *port, const char **stage) {
    memset(port, 0, sizeof(*port));
    port->fd = port->tx_fd = -1;
    *stage = "if_nametoindex";
    int ifindex = (int)if_nametoindex(ifname);
    if (ifindex == 0) return -1;
    if (o->block_count == 0) {
        /* Send only: no ring, and bound with protocol 0, so nothing is received. */
        int tx = send_only_socket(ifindex, stage);
        if (tx < 0) return -1;
        port->fd = port->tx_fd = tx;
        port->ifindex = ifindex;
        *stage = NULL;
        return 0;
    }
    *stage = "socket(AF_PACKET)";
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  /* protocol 0: nothing arrives before bind */
    if (fd < 0) return -1;
    int version = TPACKET_V3, one = 1;
    struct tpacket_req3 req;
    memset(&req, 0, sizeof(req));
    req.tp_block_size = o->block_size;
    req.tp_block_nr = o->block_count;
    req.tp_frame_size = o->frame_size;
    req.tp_frame_nr = (o->block_size / o->frame_size) * o->block_count;
    req.tp_retire_blk_tov = o->retire_ms;
    *stage = "PACKET_VERSION";
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0) goto fail;
    if (o->vnet_hdr) {
        /* Before the ring: the kernel refuses it on a socket with one (EBUSY). */
        *stage = "PACKET_VNET_HDR";
        if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) != 0) goto fail;
    }
    *stage = "PACKET_RX_RING";
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0) goto fail;
    *stage = "PACKET_QDISC_BYPASS";
    if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0) goto fail;
    *stage = "PACKET_IGNORE_OUTGOING";
    if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) != 0) goto fail;
    *stage = "mmap";
    size_t size = (size_t)o->block_size * o->block_count;
    void *ring = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED | MAP_POPULATE, fd, 0);
    if (ring == MAP_FAILED) ring = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ring == MAP_FAILED) goto fail;
    port->ring = ring;
    port->ring_size = size;
    port->fd = fd;
    port->ifindex = ifindex;
    port->block_size = o->block_size;
    port->block_count = o->block_count;
    port->vnet_hdr = o->vnet_hdr != 0;
    port->tx_fd = fd;
    *stage = "bind";
    struct sockaddr_ll addr;
    memset(&addr, 0, sizeof(addr));
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = ifindex;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) goto fail_mapped;
    if (o->promiscuous) {
        *stage = "PACKET_ADD_MEMBERSHIP (promiscuous)";
        struct packet_mreq mreq;
        memset(&mreq, 0, sizeof(mreq));
        mreq.mr_ifindex = ifindex;
        mreq.mr_type = PACKET_MR_PROMISC;
        if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0) goto fail_mapped;
    }
    if (o->fanout_group > 0) {
        *stage = "PACKET_FANOUT";
        /* The group ignores outgoing frames only with its own flag (Linux 6.9+);
           older kernels refuse it, and the receive loop skips those frames then. */
        int arg = (o->fanout_group & 0xffff) | ((PACKET_FANOUT_HASH | DGW_FANOUT_FLAG_IGNORE_OUTGOING) << 16);
        if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)) != 0) {
            if (errno != EINVAL) goto fail_mapped;
            arg = (o->fanout_group & 0xffff) | (PACKET_FANOUT_HASH << 16);
            if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)) != 0) goto fail_mapped;
        }
    }
    if (o->vnet_hdr) {
        /* A socket with PACKET_VNET_HDR wants one before every frame it sends too. */
        int tx = send_only_socket(ifindex, stage);
        if (tx < 0) goto fail_mapped;
        port->tx_fd = tx;
    }
    *stage = NULL;
    return 0;
fail_mapped: {
        int saved = errno;
        munmap(port->ring, port->ring_size);
        port->ring = NULL;
        port->fd = port->tx_fd = -1;
        errno = saved;
    }
fail: {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
}

void dgw_afpacket_close(struct dgw_afpacket *port) {
    if (port->ring) munmap(port->ring, port->ring_size);
    if (port->tx_fd >= 0 && port->tx_fd != port->fd) close(port->tx_fd);
    port->tx_fd = -1;
    if (port->fd >= 0) close(port->fd);
    port->ring = NULL;
    port->fd = -1;
}

int dgw_afpacket_send(const struct dgw_afpacket *port, const void *const *frames, const unsigned *lengths, int count) {
    if (count > 64) count = 64;
    struct mmsghdr messages[64];
    struct iovec vectors[64];
    for (int i = 0; i < count; i++) {
        vectors[i].iov_base = (void *)frames[i];
        vectors[i].iov_len = lengths[i];
        /* No address: the socket is bound to the interface, and the kernel
           then neither copies nor checks one per frame. */
        memset(&messages[i], 0, sizeof(messages[i]));
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    // `done`: messages handled; `delivered`: of those, accepted by the kernel.
    int done = 0, delivered = 0;
    while (done < count) {
        int n = sendmmsg(port->tx_fd, messages + done, (unsigned)(count - done), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            // A frame longer than the interface takes: that one is lost, not the rest.
            if (errno == EMSGSIZE) { done += 1; continue; }
            if (delivered > 0 || done > 0) return delivered;
            return -1;
        }
        done += n;
        delivered += n;
    }
    return delivered;
}

int dgw_afpacket_take_drops(const struct dgw_afpacket *port, unsigned *drops) {
    *drops = 0;
    if (port->block_count == 0) return 0;  /* send only: nothing is received */
    struct tpacket_stats_v3 stats;
    socklen_t size = sizeof(stats);
    memset(&stats, 0, sizeof(stats));
    if (getsockopt(port->fd, SOL_PACKET, PACKET_STATISTICS, &stats, &size) != 0) return -1;
    *drops = stats.tp_drops;
    return 0;
}

static int interface_ioctl(const char *ifname, unsigned long request, struct ifreq *req) {
    if (strlen(ifname) >= IFNAMSIZ) { errno = ENAMETOOLONG; return -1; }
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    strncpy(req->ifr_name, ifname, IFNAMSIZ - 1);
    int rc = ioctl(fd, request, req);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int dgw_interface_flags(const char *ifname, int *flags) {
    struct ifreq req;
    memset(&req, 0, sizeof(req));
    if (interface_ioctl(ifname, SIOCGIFFLAGS, &req) != 0) return -1;
    *flags = req.ifr_flags;
    return 0;
}

int dgw_interface_set_flags(const char *ifname, int flags) {
    struct ifreq req;
    memset(&req, 0, sizeof(req));
    req.ifr_flags = (short)flags;
    return interface_ioctl(ifname, SIOCSIFFLAGS, &req);
}

int dgw_interface_mac(const char *ifname, uint8_t mac[6]) {
    struct ifreq req;
    memset(&req, 0, sizeof(req));
    if (interface_ioctl(ifname, SIOCGIFHWADDR, &req) != 0) return -1;
    memcpy(mac, req.ifr_hwaddr.sa_data, 6);
    return 0;
}

static volatile sig_atomic_t stop_requested = 0;

static void on_stop(int signal) { (void)signal; stop_requested = 1; }

int dgw_install_stop_handlers(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_stop;
    sigemptyset(&action.sa_mask);
    /* No SA_RESTART: poll returns EINTR and the loop sees the flag at once. */
    if (sigaction(SIGINT, &action, NULL) != 0) return -1;
    if (sigaction(SIGTERM, &action, NULL) != 0) return -1;
    /* A parent may have left them blocked (test runners do); the mask is inherited. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int dgw_stop_requested(void) { return stop_requested; }

int dgw_poll_readable(const int *fds, int count, int timeout_ms) {
    struct pollfd p[8];
    if (count > 8) { errno = EINVAL; return -1; }
    for (int i = 0; i < count; i++) { p[i].fd = fds[i]; p[i].events = POLLIN; p[i].revents = 0; }
    return poll(p, (nfds_t)count, timeout_ms);
}

// MARK: Control socket

#include <sys/un.h>

static int unix_address(const char *path, struct sockaddr_un *addr) {
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path)) { errno = ENAMETOOLONG; return -1; }
    strcpy(addr->sun_path, path);
    return 0;
}

int dgw_unix_connect(const char *path) {
    struct sockaddr_un addr;
    if (unix_address(path, &addr) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        if (errno == EINTR) continue;
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int dgw_unix_listen(const char *path) {
    struct sockaddr_un addr;
    if (unix_address(path, &addr) != 0) return -1;
    int live = dgw_unix_connect(path);
    if (live >= 0) { close(live); errno = EADDRINUSE; return -1; }
    unlink(path);
    /* Non-blocking: a connection that poll announced may be gone by accept. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 16) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int dgw_accept(int fd) {
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0 || errno != EINTR) return c;
    }
}

// MARK: Metrics endpoint

#include <netdb.h>

int dgw_tcp_listen(const char *host, int port) {
    if (port <= 0 || port > 65535) { errno = EINVAL; return -1; }
    struct addrinfo hints, *result = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    if (getaddrinfo(host, service, &hints, &result) != 0 || result == NULL) { errno = EINVAL; return -1; }
    int fd = socket(result->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) { freeaddrinfo(result); return -1; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, result->ai_addr, result->ai_addrlen) != 0 || listen(fd, 16) != 0) {
        int saved = errno;
        close(fd);
        freeaddrinfo(result);
        errno = saved;
        return -1;
    }
    freeaddrinfo(result);
    return fd;
}

// MARK: Wake-ups between threads

#include <sys/eventfd.h>

int dgw_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int dgw_eventfd_signal(int fd) {
    uint64_t one = 1;
    return (int)write(fd, &one, sizeof one);
}

int dgw_eventfd_drain(int fd) {
    uint64_t count;
    return (int)read(fd, &count, sizeof count);
}
