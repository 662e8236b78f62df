// The namespace half of a container process's start, run before the Go
// runtime exists.
//
// Go cannot join a mount namespace once it has started threads (setns fails
// with EINVAL in a multi-threaded process), and a new PID or time namespace
// only applies to children. So when the runtime starts its own binary as a
// container's init or as an exec'd process, this constructor runs first, while
// the process is still single-threaded: it reads a bootstrap message from the
// socket named by _BERTH_INIT_FD, moves into its cgroups, joins and creates
// the namespaces it names, forks if the PID or time namespace changed, and
// reports the final PID. That process never starts the Go runtime: the
// runtime sets the root filesystem up from its own side, and finalize.c
// takes the last steps here, in C, up to the exec of the container's
// program. The message framing is shared with nsenter.go.

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

#include "nsenter.h"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define MAX_JOIN 16
#define MAX_TASKS 32

struct join {
	uint32_t type;
	int fd;
	const char *path;
};

int sync_fd = -1;
int status_fd = -1;
int after_ready;

void write_all(int fd, const void *buf, size_t len)
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

int read_all(int fd, void *buf, size_t len)
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

// send_all writes to the runtime's socket. A runtime that has gone away
// (create returns before the container starts) is EPIPE, not SIGPIPE: the
// process must still report to the status fifo and exit with its own code.
static void send_all(const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(sync_fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

void send_msg(uint32_t type, const void *data, uint32_t len)
{
	uint32_t hdr[2] = {type, len};
	send_all(hdr, sizeof(hdr));
	if (len > 0)
		send_all(data, len);
}

void send_msg_fd(uint32_t type, int fd)
{
	uint32_t hdr[2] = {type, 0};
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sync_fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		_exit(1);
	if ((size_t)n < sizeof(hdr))
		send_all((char *)hdr + n, sizeof(hdr) - (size_t)n);
}

size_t format_error(char *buf, size_t size, int err, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, size, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= size)
		n = (int)size - 1;
	if (err != 0)
		n += snprintf(buf + n, size - (size_t)n, ": %s", strerror(err));
	if ((size_t)n >= size)
		n = (int)size - 1;
	return (size_t)n;
}

void fail(const char *fmt, ...)
{
	char buf[1024];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	size_t n = format_error(buf, sizeof(buf), saved, fmt, ap);
	va_end(ap);
	if (status_fd >= 0) {
		write_all(status_fd, "error: ", 7);
		write_all(status_fd, buf, n);
	}
	send_msg(MSG_ERROR, buf, (uint32_t)n);
	_exit(after_ready ? 127 : 1);
}

void close_from(unsigned int low, unsigned int flags)
{
	if (syscall(SYS_close_range, low, ~0U, flags) == 0)
		return;
	// Before 5.9 (5.11 for CLOSE_RANGE_CLOEXEC): one by one, as far as
	// the limit goes.
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 1 << 20)
		max = 1 << 20;
	for (long fd = low; fd < max; fd++) {
		if (flags & CLOSE_RANGE_CLOEXEC)
			fcntl((int)fd, F_SETFD, FD_CLOEXEC);
		else
			close((int)fd);
	}
}

char *recv_msg(uint32_t *type, uint32_t *len, int *fd)
{
	uint32_t hdr[2];
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	ssize_t n;
	*fd = -1;
	do
		n = recvmsg(sync_fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		_exit(1);
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	}
	if ((size_t)n < sizeof(hdr) && read_all(sync_fd, (char *)hdr + n, sizeof(hdr) - (size_t)n) < 0)
		_exit(1);
	if (hdr[1] > (16u << 20))
		fail("message of %u bytes is too large", hdr[1]);
	char *buf = malloc(hdr[1] + 1);
	if (buf == NULL)
		fail("allocate message");
	if (read_all(sync_fd, buf, hdr[1]) < 0)
		_exit(1);
	buf[hdr[1]] = '\0';
	*type = hdr[0];
	*len = hdr[1];
	return buf;
}

int tlv_next(const char *buf, uint32_t size, uint32_t *off, struct tlv *t)
{
	if (*off + 8 > size)
		return 0;
	memcpy(&t->kind, buf + *off, 4);
	memcpy(&t->len, buf + *off + 4, 4);
	if (t->len > size - *off - 8)
		fail("truncated attribute %u", t->kind);
	t->val = buf + *off + 8;
	*off += 8 + t->len;
	return 1;
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

static void join_rank_all(struct join *joins, int njoin, int rank)
{
	for (int i = 0; i < njoin; i++) {
		if (join_rank(joins[i].type) != rank)
			continue;
		if (setns(joins[i].fd, (int)joins[i].type) < 0)
			fail("join %s namespace %s", ns_name(joins[i].type), joins[i].path);
		close(joins[i].fd);
	}
}

// become_root makes the process root of its (new or joined) user namespace,
// so that files the runtime creates are owned by a mapped ID; capabilities
// were granted by the join or unshare already.
static void become_root(void)
{
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		fail("become root in the user namespace (is root mapped?)");
}

static void unshare_rest(uint32_t clone_flags, const char *time_offsets, size_t time_offsets_len)
{
	uint32_t rest = clone_flags & ~(uint32_t)CLONE_NEWUSER;
	if (rest != 0 && unshare((int)rest) < 0)
		fail("create namespaces (clone flags %#x)", rest);
	if ((clone_flags & CLONE_NEWTIME) && time_offsets_len > 0)
		write_file("/proc/self/timens_offsets", time_offsets, time_offsets_len);
}

__attribute__((constructor)) static void berth_nsenter(void)
{
	if (getenv(ENV_PAUSE) != NULL) {
		for (;;)
			pause();
	}
	const char *env = getenv(ENV_INIT_FD);
	if (env == NULL || *env == '\0')
		return;
	sync_fd = atoi(env);
	const char *nfds = getenv(ENV_INIT_NFDS);
	if (nfds == NULL || atoi(nfds) <= sync_fd)
		_exit(1);
	close_from((unsigned int)atoi(nfds), 0);

	uint32_t type, size;
	int unused_fd;
	char *msg = recv_msg(&type, &size, &unused_fd);
	if (unused_fd >= 0)
		close(unused_fd);
	if (type != MSG_BOOTSTRAP)
		fail("nsenter: unexpected bootstrap message type %u", type);

	uint32_t clone_flags = 0;
	struct join joins[MAX_JOIN];
	int njoin = 0;
	const char *time_offsets = NULL;
	size_t time_offsets_len = 0;
	const char *tasks[MAX_TASKS];
	int ntasks = 0;

	struct tlv t;
	for (uint32_t off = 0; tlv_next(msg, size, &off, &t);) {
		const char *val = t.val;
		uint32_t len = t.len;
		switch (t.kind) {
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
		case ATTR_CGROUP_TASKS:
			if (len < 2 || val[len - 1] != '\0')
				fail("nsenter: bad cgroup attribute");
			if (ntasks == MAX_TASKS)
				fail("nsenter: too many cgroup hierarchies");
			tasks[ntasks++] = val;
			break;
		default:
			fail("nsenter: unknown attribute %u", t.kind);
		}
	}

	// Into the cgroups first, while this thread is the whole process and
	// the host's paths are still in view. Writing "0" to a v1 tasks file
	// moves the calling thread without the global lock a cgroup.procs
	// write takes (whose first use waits for an RCU grace period).
	for (int i = 0; i < ntasks; i++)
		write_file(tasks[i], "0", 1);

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

	if (clone_flags & CLONE_NEWUSER) {
		// Namespaces given by path belong to user namespaces this
		// process has privileges in only until it leaves its own: join
		// them all before the new user namespace exists.
		for (int rank = 0; rank <= 2; rank++)
			join_rank_all(joins, njoin, rank);
		if (unshare(CLONE_NEWUSER) < 0)
			fail("create user namespace");
		// Only a process outside the new namespace may write its ID maps.
		send_msg(MSG_USERMAP_REQ, NULL, 0);
		uint32_t ack, acklen;
		int ackfd;
		free(recv_msg(&ack, &acklen, &ackfd));
		if (ackfd >= 0)
			close(ackfd);
		if (ack != MSG_USERMAP_ACK)
			fail("nsenter: expected the user map acknowledgement, got message %u", ack);
		become_root();
		unshare_rest(clone_flags, time_offsets, time_offsets_len);
	} else {
		// A user namespace given by path comes first: the others are
		// joined, and made, with its privileges and owned by it.
		join_rank_all(joins, njoin, 0);
		if (user_changed)
			become_root();
		join_rank_all(joins, njoin, 1);
		unshare_rest(clone_flags, time_offsets, time_offsets_len);
		join_rank_all(joins, njoin, 2);
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
	} else {
		int32_t self = getpid();
		send_msg(MSG_PID, &self, sizeof(self));
	}
	// This is the process the caller manages: serve it until the exec.
	berth_finish();
}
