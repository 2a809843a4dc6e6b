#ifndef CSPAWN_SHIM_H
#define CSPAWN_SHIM_H

// Process spawning for the step kinds that run commands. The wait-status
// macros are not importable into Swift, and the GNU extensions used below
// (pipe2, addclosefrom_np, addchdir_np, POSIX_SPAWN_SETSID; glibc 2.34+) are
// declared here rather than through _GNU_SOURCE, which would change system
// types (fd_set) under the other modules that include the same headers.

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern int pipe2(int fds[2], int flags);
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);
#ifndef POSIX_SPAWN_SETSID
#define POSIX_SPAWN_SETSID 0x80
#endif

#include <sys/prctl.h>

// Marks this process not dumpable: processes of the same user (the worker's own steps)
// can then neither read /proc/<pid>/environ nor attach to it. prctl is variadic.
static inline int cspawn_set_undumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : errno;
}

static inline int cspawn_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : errno;
}

// Starts `path` with `argv` and `envp` as the leader of a new process group
// (or of a new session when `new_session` is set, so that it outlives us
// without a controlling terminal). stdin reads `stdin_fd`, stdout writes
// `out_fd` and stderr `err_fd` (the same descriptor for one stream); every other descriptor is closed in the child, signal
// dispositions are the defaults (a parent ignoring SIGTERM or SIGPIPE must not
// hand that on) and no signal is blocked. Returns 0 or an errno value.
static inline int cspawn_start(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                               const char *workdir, int stdin_fd, int out_fd, int err_fd, int new_session) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attributes);
    if (rc != 0) { posix_spawn_file_actions_destroy(&actions); return rc; }

    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (rc == 0 && workdir != NULL) rc = posix_spawn_file_actions_addchdir_np(&actions, workdir);

    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
    flags |= new_session ? POSIX_SPAWN_SETSID : POSIX_SPAWN_SETPGROUP;
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attributes, &all);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attributes, &none);
    if (rc == 0 && !new_session) rc = posix_spawnattr_setpgroup(&attributes, 0);
    if (rc == 0) rc = posix_spawnattr_setflags(&attributes, flags);
    if (rc == 0) rc = posix_spawn(pid, path, &actions, &attributes, argv, envp);

    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

// waitpid(pid, WNOHANG): 1 with the status filled in once the child ended, 0 while it runs, -1 on error.
static inline int cspawn_reap(pid_t pid, int *status) {
    pid_t rc;
    do { rc = waitpid(pid, status, WNOHANG); } while (rc < 0 && errno == EINTR);
    return rc == pid ? 1 : (rc == 0 ? 0 : -1);
}

static inline int cspawn_exited(int status) { return WIFEXITED(status); }
static inline int cspawn_exit_code(int status) { return WEXITSTATUS(status); }
static inline int cspawn_signaled(int status) { return WIFSIGNALED(status); }
static inline int cspawn_signal(int status) { return WTERMSIG(status); }

#endif
