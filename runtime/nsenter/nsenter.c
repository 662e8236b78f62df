// The namespace half of a container process's start, run before the Go
// runtime exists.
//
// Go cannot join a mount namespace once it has started threads (setns fails
// with EINVAL in a multi-threaded process), and a new PID or time namespace
// only applies to children. So when the runtime starts its own binary as a
// container's init or as an exec'd process, this constructor runs first, while
// the process is still single-threaded: it reads a bootstrap message from the
// socket named by _BERTH_INIT_FD, joins and creates the namespaces it names,
// forks if the PID or time namespace changed, reports the final PID, and
// returns, so that the Go runtime starts inside the namespaces. The message
// framing is shared with nsenter.go.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

enum {
	MSG_BOOTSTRAP = 1,
	MSG_USERMAP_REQ = 2,
	MSG_USERMAP_ACK = 3,
	MSG_PID = 4,
	MSG_ERROR = 5,
};

enum {
	ATTR_CLONE_FLAGS = 1,
	ATTR_NS_PATH = 2,
	ATTR_TIME_OFFSETS = 3,
};

#define MAX_JOIN 16

struct join {
	uint32_t type;
	int fd;
	const char *path;
};

static int sync_fd = -1;

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		p += n;
		len -= (size_t)n;
	}
}

static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void send_msg(uint32_t type, const void *data, uint32_t len)
{
	uint32_t hdr[2] = {type, len};
	write_all(sync_fd, hdr, sizeof(hdr));
	if (len > 0)
		write_all(sync_fd, data, len);
}

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	char buf[1024];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (saved != 0)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(saved));
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	send_msg(MSG_ERROR, buf, (uint32_t)n);
	_exit(1);
}

static const char *ns_name(uint32_t type)
{
	switch (type) {
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWNS: return "mount";
	case CLONE_NEWPID: return "pid";
	case CLONE_NEWNET: return "network";
	case CLONE_NEWUTS: return "uts";
	case CLONE_NEWIPC: return "ipc";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWTIME: return "time";
	}
	return "unknown";
}

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open %s", path);
	if (write(fd, data, len) != (ssize_t)len)
		fail("write %s", path);
	close(fd);
}

// The joining order matters: the user namespace first, so that the others are
// joined with the capabilities it grants; the mount namespace last, because
// joining it changes what every later path would resolve to (all files were
// opened before any join for the same reason).
static int join_rank(uint32_t type)
{
	switch (type) {
	case CLONE_NEWUSER: return 0;
	case CLONE_NEWNS: return 2;
	}
	return 1;
}

__attribute__((constructor)) static void berth_nsenter(void)
{
	if (getenv("_BERTH_PAUSE") != NULL) {
		for (;;)
			pause();
	}
	const char *env = getenv("_BERTH_INIT_FD");
	if (env == NULL || *env == '\0')
		return;
	sync_fd = atoi(env);
	const char *nfds = getenv("_BERTH_INIT_NFDS");
	if (nfds == NULL || atoi(nfds) <= sync_fd)
		_exit(1);
	if (syscall(SYS_close_range, (unsigned int)atoi(nfds), ~0U, 0) < 0) {
		// Before 5.9: close one by one, as far as the limit goes.
		long max = sysconf(_SC_OPEN_MAX);
		for (long fd = atoi(nfds); fd < max; fd++)
			close((int)fd);
	}

	uint32_t hdr[2];
	if (read_all(sync_fd, hdr, sizeof(hdr)) < 0)
		_exit(1);
	if (hdr[0] != MSG_BOOTSTRAP || hdr[1] > (1 << 20))
		fail("nsenter: unexpected bootstrap message type %u", hdr[0]);
	char *msg = malloc(hdr[1] + 1);
	if (msg == NULL)
		fail("nsenter: allocate bootstrap");
	if (read_all(sync_fd, msg, hdr[1]) < 0)
		_exit(1);
	msg[hdr[1]] = '\0';

	uint32_t clone_flags = 0;
	struct join joins[MAX_JOIN];
	int njoin = 0;
	const char *time_offsets = NULL;
	size_t time_offsets_len = 0;

	for (uint32_t off = 0; off + 8 <= hdr[1];) {
		uint32_t kind, len;
		memcpy(&kind, msg + off, 4);
		memcpy(&len, msg + off + 4, 4);
		off += 8;
		if (len > hdr[1] - off)
			fail("nsenter: truncated attribute %u", kind);
		char *val = msg + off;
		off += len;
		switch (kind) {
		case ATTR_CLONE_FLAGS:
			if (len != 4)
				fail("nsenter: bad clone flags attribute");
			memcpy(&clone_flags, val, 4);
			break;
		case ATTR_NS_PATH:
			if (len < 6 || val[len - 1] != '\0')
				fail("nsenter: bad namespace path attribute");
			if (njoin == MAX_JOIN)
				fail("nsenter: too many namespaces to join");
			memcpy(&joins[njoin].type, val, 4);
			joins[njoin].path = val + 4;
			njoin++;
			break;
		case ATTR_TIME_OFFSETS:
			time_offsets = val;
			time_offsets_len = len;
			break;
		default:
			fail("nsenter: unknown attribute %u", kind);
		}
	}

	int pid_changed = (clone_flags & (CLONE_NEWPID | CLONE_NEWTIME)) != 0;
	int user_changed = (clone_flags & CLONE_NEWUSER) != 0;

	for (int i = 0; i < njoin; i++) {
		joins[i].fd = open(joins[i].path, O_RDONLY | O_CLOEXEC);
		if (joins[i].fd < 0)
			fail("open %s namespace %s", ns_name(joins[i].type), joins[i].path);
		if (joins[i].type == CLONE_NEWPID || joins[i].type == CLONE_NEWTIME)
			pid_changed = 1;
		if (joins[i].type == CLONE_NEWUSER)
			user_changed = 1;
	}

	for (int rank = 0; rank <= 2; rank++) {
		for (int i = 0; i < njoin; i++) {
			if (join_rank(joins[i].type) != rank)
				continue;
			if (setns(joins[i].fd, (int)joins[i].type) < 0)
				fail("join %s namespace %s", ns_name(joins[i].type), joins[i].path);
			close(joins[i].fd);
		}
		if (rank == 0 && (clone_flags & CLONE_NEWUSER)) {
			if (unshare(CLONE_NEWUSER) < 0)
				fail("create user namespace");
			// Only a process outside the new namespace may write its ID maps.
			send_msg(MSG_USERMAP_REQ, NULL, 0);
			if (read_all(sync_fd, hdr, sizeof(hdr)) < 0 || hdr[0] != MSG_USERMAP_ACK)
				_exit(1);
			if (hdr[1] != 0)
				fail("nsenter: user map acknowledgement carries data");
		}
		if (rank == 0 && user_changed) {
			// Become root of the user namespace, so that files the runtime
			// creates are owned by a mapped ID; capabilities were granted
			// by the join or unshare already.
			if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
				fail("become root in the user namespace (is root mapped?)");
		}
		if (rank == 1) {
			uint32_t rest = clone_flags & ~(uint32_t)CLONE_NEWUSER;
			if (rest != 0 && unshare((int)rest) < 0)
				fail("create namespaces (clone flags %#x)", rest);
			if ((clone_flags & CLONE_NEWTIME) && time_offsets_len > 0)
				write_file("/proc/self/timens_offsets", time_offsets, time_offsets_len);
		}
	}
	free(msg);

	if (pid_changed) {
		pid_t child = fork();
		if (child < 0)
			fail("fork into the new PID namespace");
		if (child > 0) {
			int32_t p = child;
			send_msg(MSG_PID, &p, sizeof(p));
			_exit(0);
		}
		// The child continues into the Go runtime; it is the process the
		// caller will manage.
		return;
	}
	int32_t self = getpid();
	send_msg(MSG_PID, &self, sizeof(self));
}
