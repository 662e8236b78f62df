// Shared between the constructor's two halves: nsenter.c (namespaces) and
// finalize.c (the last steps of a container process, up to its exec). The
// numbers mirror nsenter.go.
#ifndef BERTH_NSENTER_H
#define BERTH_NSENTER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

// Messages on the bootstrap socket: a little-endian header {type, len} and
// len bytes of payload; descriptors travel with the header as SCM_RIGHTS.
enum {
	MSG_BOOTSTRAP = 1,
	MSG_USERMAP_REQ = 2,
	MSG_USERMAP_ACK = 3,
	MSG_PID = 4,
	MSG_ERROR = 5,
	MSG_OK = 6,
	MSG_READY = 7,
	MSG_HOOKS = 8,
	MSG_FINALIZE = 9,
	MSG_MOUNT = 10,
	MSG_ROOT = 11,
	MSG_LISTENER = 12,
};

// Attributes of MSG_BOOTSTRAP.
enum {
	ATTR_CLONE_FLAGS = 1,
	ATTR_NS_PATH = 2,
	ATTR_TIME_OFFSETS = 3,
	ATTR_CGROUP_TASKS = 4,
};

// Attributes of MSG_FINALIZE, MSG_HOOKS and MSG_MOUNT.
enum {
	F_ARG = 1,
	F_ENV = 2,
	F_PATH = 3,
	F_CWD = 4,
	F_UID = 5,
	F_GID = 6,
	F_GROUP = 7,
	F_UMASK = 8,
	F_NNP = 9,
	F_CAPS = 10,
	F_RLIMIT = 11,
	F_OOM = 12,
	F_PERSONALITY = 13,
	F_IOPRIO = 14,
	F_SCHED = 15,
	F_KEYRING = 16,
	F_SECCOMP = 17,
	F_SECCOMP_FLAGS = 18,
	F_SECCOMP_LISTENER = 19,
	F_TTY = 21,
	F_PRESERVE = 22,
	F_EXEC_FIFO = 23,
	F_STATUS_FIFO = 24,
	F_HOOK_PATH = 25,
	F_HOOK_ARG = 26,
	F_HOOK_ENV = 27,
	F_HOOK_TIMEOUT = 28,
	F_HOOK_STATE = 29,
	F_CHROOT = 30,
	F_LAST_CAP = 31,
	F_HOOK_KIND = 32,
	F_MOUNT_SOURCE = 33,
	F_MOUNT_TYPE = 34,
	F_MOUNT_FLAGS = 35,
	F_MOUNT_DATA = 36,
};

struct tlv {
	uint32_t kind;
	uint32_t len;
	const char *val;
};

// Environment variables the runtime starts the process with (nsenter.go
// has the same names).
#define ENV_INIT_FD "_BERTH_INIT_FD"
#define ENV_INIT_NFDS "_BERTH_INIT_NFDS"
#define ENV_PAUSE "_BERTH_PAUSE"

extern int sync_fd;
// status_fd is the status fifo once the process has one (-1 before);
// after_ready is set once create has returned: fail then reports there,
// where start reads it, and exits 127 as a failed exec does.
extern int status_fd;
extern int after_ready;

void write_all(int fd, const void *buf, size_t len);
int read_all(int fd, void *buf, size_t len);
void send_msg(uint32_t type, const void *data, uint32_t len);
// send_msg_fd sends an empty message of type with fd attached.
void send_msg_fd(uint32_t type, int fd);
// format_error formats an error message into buf, with strerror(err) after
// it unless err is 0, and returns its length.
size_t format_error(char *buf, size_t size, int err, const char *fmt, va_list ap);
// fail reports an error (with strerror(errno), if set) to the runtime and
// the status fifo, and exits.
__attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...);
// close_from closes, or with CLOSE_RANGE_CLOEXEC marks close-on-exec,
// every descriptor from low up.
void close_from(unsigned int low, unsigned int flags);
// recv_msg reads one message into a malloc'd, NUL-terminated buffer; *fd
// gets a descriptor sent with it, or -1. It exits on EOF: the runtime is gone.
char *recv_msg(uint32_t *type, uint32_t *len, int *fd);
// tlv_next steps through attributes; it returns 0 at the end.
int tlv_next(const char *buf, uint32_t size, uint32_t *off, struct tlv *t);

// berth_finish serves the runtime until the container's program runs; it
// never returns.
__attribute__((noreturn)) void berth_finish(void);

#endif
