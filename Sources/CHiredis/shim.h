#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H

// hiredis 0.14.1 ships no usable pkg-config flags for SwiftPM, so the header
// is included by its installed path (libhiredis-dev).
#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <sys/time.h>

/// Connects with a connect timeout in milliseconds.
static inline redisContext *chiredis_connect(const char *host, int port, long timeout_ms) {
    struct timeval tv;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    return redisConnectWithTimeout(host, port, tv);
}

/// Sets the socket read/write timeout in milliseconds (0 disables it).
static inline int chiredis_set_timeout(redisContext *c, long timeout_ms) {
    struct timeval tv;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    return redisSetTimeout(c, tv);
}

/// Wakes up a call blocked on this context from another thread; the context is dead afterwards.
static inline void chiredis_shutdown(int fd) {
    if (fd >= 0) { shutdown(fd, SHUT_RDWR); }
}

/// The element at `index` of an array reply.
static inline redisReply *chiredis_element(const redisReply *r, size_t index) {
    return r->element[index];
}

#endif
