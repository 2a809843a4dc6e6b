#ifndef CLIBPQ_SHIM_H
#define CLIBPQ_SHIM_H

#include <libpq-fe.h>

static void cpq_ignore_notice(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

/// Stops libpq from printing server NOTICEs to stderr; Gantry logs what matters itself.
static inline void cpq_silence_notices(PGconn *conn) {
    PQsetNoticeProcessor(conn, cpq_ignore_notice, (void *)0);
}

#endif
