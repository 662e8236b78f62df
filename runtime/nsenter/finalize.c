// The last steps of a container process, after its namespaces and before
// its program: everything that belongs to the process itself rather than to
// its root filesystem (which the runtime sets up from its own side). The
// runtime computes every value (capability masks, the seccomp program, the
// resolved path of the program); this code only applies them, in the order
// the OCI spec and the kernel's rules require, and reports what fails.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/filter.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nsenter.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef KEYCTL_JOIN_SESSION_KEYRING
#define KEYCTL_JOIN_SESSION_KEYRING 1
#endif

// A growable array of strings, NULL-terminated for execve.
struct strv {
	char **v;
	size_t n, cap;
};

static void strv_add(struct strv *s, const char *p)
{
	if (s->n + 2 > s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = realloc(s->v, s->cap * sizeof(char *));
		if (s->v == NULL)
			fail("allocate");
	}
	s->v[s->n++] = (char *)p;
	s->v[s->n] = NULL;
}

static const char *str(const struct tlv *t)
{
	if (t->len == 0 || t->val[t->len - 1] != '\0')
		fail("attribute %u is not a string", t->kind);
	return t->val;
}

static uint32_t u32(const struct tlv *t)
{
	uint32_t v;
	if (t->len != 4)
		fail("attribute %u is not 32 bits", t->kind);
	memcpy(&v, t->val, 4);
	return v;
}

static uint64_t u64(const struct tlv *t)
{
	uint64_t v;
	if (t->len != 8)
		fail("attribute %u is not 64 bits", t->kind);
	memcpy(&v, t->val, 8);
	return v;
}

struct hook {
	const char *path;
	struct strv args, env;
	uint32_t timeout;
};

struct hooks {
	const char *kind;
	struct hook *h;
	size_t n;
	const char *state;
	uint32_t state_len;
};

// hooks_add handles a hook attribute; it returns 0 for other attributes.
static int hooks_add(struct hooks *hs, const struct tlv *t)
{
	switch (t->kind) {
	case F_HOOK_KIND:
		hs->kind = str(t);
		return 1;
	case F_HOOK_PATH:
		hs->h = realloc(hs->h, (hs->n + 1) * sizeof(struct hook));
		if (hs->h == NULL)
			fail("allocate");
		memset(&hs->h[hs->n], 0, sizeof(struct hook));
		hs->h[hs->n].path = str(t);
		hs->n++;
		return 1;
	case F_HOOK_ARG:
	case F_HOOK_ENV:
	case F_HOOK_TIMEOUT:
		if (hs->n == 0)
			fail("hook attribute before a hook path");
		if (t->kind == F_HOOK_ARG)
			strv_add(&hs->h[hs->n - 1].args, str(t));
		else if (t->kind == F_HOOK_ENV)
			strv_add(&hs->h[hs->n - 1].env, str(t));
		else
			hs->h[hs->n - 1].timeout = u32(t);
		return 1;
	case F_HOOK_STATE:
		hs->state = t->val;
		hs->state_len = t->len;
		return 1;
	}
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

// write_unsignalled writes what a pipe takes without dying of SIGPIPE when
// its reader is gone (a hook that exits without reading its state): the
// signal is blocked for the write and a pending one discarded, so the
// process's dispositions and mask stay as the program should inherit them.
static void write_unsignalled(int fd, const void *buf, size_t len)
{
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_set, &old);
	if (write(fd, buf, len) < 0) {
		// A hook that exits first closes its end: not our error.
	}
	struct timespec zero = {0, 0};
	while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
		;
	sigprocmask(SIG_SETMASK, &old, NULL);
}

// read_output appends what one read of fd gives to out (up to size-1 bytes
// in all); it returns 0 at the end of the output.
static int read_output(int fd, char *out, size_t size, size_t *n)
{
	char buf[512];
	ssize_t r = read(fd, buf, sizeof(buf));
	if (r < 0 && errno == EINTR)
		return 1;
	if (r <= 0)
		return 0;
	if (*n < size - 1) {
		size_t c = (size_t)r < size - 1 - *n ? (size_t)r : size - 1 - *n;
		memcpy(out + *n, buf, c);
		*n += c;
	}
	return 1;
}

// run_hooks runs each hook with the state on its stdin and stops at the
// first that fails or outlives its timeout. It returns 0, or -1 with msg
// filled in.
static int run_hooks(const struct hooks *hs, char *msg, size_t msglen)
{
	for (size_t i = 0; i < hs->n; i++) {
		const struct hook *h = &hs->h[i];
		int in[2], out[2];
		if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
			fail("pipe for hook");
		pid_t pid = fork();
		if (pid < 0)
			fail("fork hook");
		if (pid == 0) {
			dup2(in[0], 0);
			dup2(out[1], 1);
			dup2(out[1], 2);
			// The hook gets the state and nothing else of ours: not
			// the runtime's socket, nor the container's fifos.
			close_from(3, CLOSE_RANGE_CLOEXEC);
			char *argv0[] = {(char *)h->path, NULL};
			char *envp0[] = {NULL};
			execve(h->path, h->args.n ? h->args.v : argv0, h->env.n ? h->env.v : envp0);
			_exit(127);
		}
		close(in[0]);
		close(out[1]);
		// The state is small; a hook that does not read it must not
		// block us, so write what the pipe takes.
		fcntl(in[1], F_SETFL, O_NONBLOCK);
		if (hs->state_len > 0)
			write_unsignalled(in[1], hs->state, hs->state_len);
		close(in[1]);
		// Kernels without pidfd_open (before 5.3) get polled.
		int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		char output[512];
		size_t outn = 0;
		double deadline = h->timeout ? now_ms() + h->timeout * 1000.0 : 0;
		int status = 0, timed_out = 0, out_open = 1, reaped = 0;
		for (;;) {
			struct pollfd p[2] = {{.fd = pidfd, .events = POLLIN}, {.fd = out_open ? out[0] : -1, .events = POLLIN}};
			int wait = pidfd < 0 ? 10 : -1;
			if (deadline > 0) {
				double left = deadline - now_ms();
				if (left <= 0) {
					timed_out = 1;
					kill(pid, SIGKILL);
					break;
				}
				if (wait < 0 || left + 1 < wait)
					wait = (int)left + 1;
			}
			if (poll(p, 2, wait) < 0 && errno != EINTR)
				fail("wait for hook");
			if (p[1].revents)
				out_open = read_output(out[0], output, sizeof(output), &outn);
			if (p[0].revents)
				break;
			if (pidfd < 0 && waitpid(pid, &status, WNOHANG) == pid) {
				reaped = 1;
				break;
			}
		}
		while (!reaped && waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		// What the hook wrote just before it exited.
		fcntl(out[0], F_SETFL, O_NONBLOCK);
		while (out_open && outn < sizeof(output) - 1)
			out_open = read_output(out[0], output, sizeof(output), &outn);
		close(out[0]);
		if (pidfd >= 0)
			close(pidfd);
		output[outn] = '\0';
		while (outn > 0 && (output[outn - 1] == '\n' || output[outn - 1] == ' '))
			output[--outn] = '\0';
		const char *kind = hs->kind ? hs->kind : "hook";
		if (timed_out) {
			snprintf(msg, msglen, "hooks.%s[%zu] (%s): timed out after %us", kind, i, h->path, h->timeout);
			return -1;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			if (WIFEXITED(status))
				snprintf(msg, msglen, "hooks.%s[%zu] (%s): exit status %d%s%s", kind, i, h->path,
					 WEXITSTATUS(status), outn ? ": " : "", output);
			else
				snprintf(msg, msglen, "hooks.%s[%zu] (%s): killed by signal %d", kind, i, h->path, WTERMSIG(status));
			return -1;
		}
	}
	return 0;
}

struct rl {
	uint32_t res;
	uint64_t cur, max;
};

struct final {
	struct strv args, env;
	const char *path, *cwd, *chroot_dir, *keyring;
	int listener;
	uint32_t uid, gid, umask_val, preserve, last_cap;
	int has_umask, nnp, tty;
	uint32_t *groups;
	size_t ngroups;
	uint64_t caps[5]; // bounding, effective, permitted, inheritable, ambient
	int has_caps;
	struct rl *rlimits;
	size_t nrlimits;
	const char *oom;
	int has_personality, has_ioprio, has_sched;
	uint64_t personality_val;
	int32_t ioprio;
	const char *sched;
	uint32_t sched_len;
	const struct sock_filter *filter;
	uint32_t filter_len, seccomp_flags;
	int exec_fifo, status_fifo;
	struct hooks start_hooks;
};

static void parse_final(struct final *f, const char *buf, uint32_t size)
{
	memset(f, 0, sizeof(*f));
	f->exec_fifo = f->status_fifo = -1;
	struct tlv t;
	for (uint32_t off = 0; tlv_next(buf, size, &off, &t);) {
		if (hooks_add(&f->start_hooks, &t))
			continue;
		switch (t.kind) {
		case F_ARG:
			strv_add(&f->args, str(&t));
			break;
		case F_ENV:
			strv_add(&f->env, str(&t));
			break;
		case F_PATH:
			f->path = str(&t);
			break;
		case F_CWD:
			f->cwd = str(&t);
			break;
		case F_CHROOT:
			f->chroot_dir = str(&t);
			break;
		case F_UID:
			f->uid = u32(&t);
			break;
		case F_GID:
			f->gid = u32(&t);
			break;
		case F_GROUP:
			f->groups = realloc(f->groups, (f->ngroups + 1) * sizeof(uint32_t));
			if (f->groups == NULL)
				fail("allocate");
			f->groups[f->ngroups++] = u32(&t);
			break;
		case F_UMASK:
			f->umask_val = u32(&t);
			f->has_umask = 1;
			break;
		case F_NNP:
			f->nnp = 1;
			break;
		case F_CAPS:
			if (t.len != sizeof(f->caps))
				fail("bad capabilities attribute");
			memcpy(f->caps, t.val, sizeof(f->caps));
			f->has_caps = 1;
			break;
		case F_LAST_CAP:
			f->last_cap = u32(&t);
			break;
		case F_RLIMIT:
			if (t.len != 20)
				fail("bad rlimit attribute");
			f->rlimits = realloc(f->rlimits, (f->nrlimits + 1) * sizeof(struct rl));
			if (f->rlimits == NULL)
				fail("allocate");
			memcpy(&f->rlimits[f->nrlimits].res, t.val, 4);
			memcpy(&f->rlimits[f->nrlimits].cur, t.val + 4, 8);
			memcpy(&f->rlimits[f->nrlimits].max, t.val + 12, 8);
			f->nrlimits++;
			break;
		case F_OOM:
			f->oom = str(&t);
			break;
		case F_PERSONALITY:
			f->personality_val = u64(&t);
			f->has_personality = 1;
			break;
		case F_IOPRIO:
			f->ioprio = (int32_t)u32(&t);
			f->has_ioprio = 1;
			break;
		case F_SCHED:
			f->sched = t.val;
			f->sched_len = t.len;
			f->has_sched = 1;
			break;
		case F_KEYRING:
			f->keyring = str(&t);
			break;
		case F_SECCOMP:
			if (t.len == 0 || t.len % sizeof(struct sock_filter) != 0)
				fail("bad seccomp program");
			f->filter = (const struct sock_filter *)t.val;
			f->filter_len = t.len / sizeof(struct sock_filter);
			break;
		case F_SECCOMP_FLAGS:
			f->seccomp_flags = u32(&t);
			break;
		case F_SECCOMP_LISTENER:
			f->listener = 1;
			break;
		case F_TTY:
			f->tty = 1;
			break;
		case F_PRESERVE:
			f->preserve = u32(&t);
			break;
		case F_EXEC_FIFO:
			f->exec_fifo = (int)u32(&t);
			break;
		case F_STATUS_FIFO:
			f->status_fifo = (int)u32(&t);
			break;
		default:
			fail("unknown finalize attribute %u", t.kind);
		}
	}
	if (f->path == NULL || f->args.n == 0)
		fail("finalize: no program to run");
	if (f->cwd == NULL)
		fail("finalize: no working directory");
}

static void load_seccomp(const struct final *f)
{
	struct sock_fprog prog = {.len = (unsigned short)f->filter_len, .filter = (struct sock_filter *)f->filter};
	unsigned int flags = f->seccomp_flags;
	if (f->listener)
		flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
	long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
	if (r < 0)
		fail("linux.seccomp: install filter (flags %#x)", flags);
	if (!f->listener)
		return;
	// The runtime hands the notify descriptor on to the agent at
	// listenerPath: a path on the host, which this process (in the
	// container's root) must not resolve itself.
	int listener = (int)r;
	send_msg_fd(MSG_LISTENER, listener);
	close(listener);
	uint32_t type, len;
	int unused;
	char *reply = recv_msg(&type, &len, &unused);
	if (unused >= 0)
		close(unused);
	if (type == MSG_ERROR) {
		// The runtime has the reason; it reports it.
		_exit(1);
	}
	if (type != MSG_OK)
		fail("unexpected message type %u after the seccomp listener", type);
	free(reply);
}

// setgroups_denied tells whether the user namespace forbids setgroups(2)
// (an unprivileged one): the process then keeps the groups it has.
static int setgroups_denied(void)
{
	char buf[16] = {0};
	int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 && strncmp(buf, "deny", 4) == 0;
}

static void set_user_and_caps(const struct final *f)
{
	// The bounding set needs CAP_SETPCAP, which the capset below drops.
	for (uint32_t c = 0; c <= f->last_cap; c++) {
		if (f->caps[0] & (1ULL << c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			fail("process.capabilities.bounding: drop capability %u", c);
	}
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail("keep capabilities");
	gid_t groups[f->ngroups + 1];
	for (size_t i = 0; i < f->ngroups; i++)
		groups[i] = f->groups[i];
	if (syscall(SYS_setgroups, f->ngroups, groups) < 0 && !(errno == EPERM && f->ngroups == 0 && setgroups_denied()))
		fail("process.user.additionalGids");
	if (syscall(SYS_setresgid, f->gid, f->gid, f->gid) < 0)
		fail("process.user.gid (%u)", f->gid);
	if (syscall(SYS_setresuid, f->uid, f->uid, f->uid) < 0)
		fail("process.user.uid (%u)", f->uid);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		fail("reset keep capabilities");
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];
	for (int i = 0; i < 2; i++) {
		data[i].effective = (uint32_t)(f->caps[1] >> (32 * i));
		data[i].permitted = (uint32_t)(f->caps[2] >> (32 * i));
		data[i].inheritable = (uint32_t)(f->caps[3] >> (32 * i));
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail("process.capabilities: set capabilities");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		fail("clear ambient capabilities");
	for (uint32_t c = 0; c <= f->last_cap; c++) {
		if (!(f->caps[4] & (1ULL << c)))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			fail("process.capabilities.ambient: raise capability %u (it must be permitted and inheritable too)", c);
	}
}

static void finalize(const char *buf, uint32_t size, int tty_fd)
{
	struct final f;
	parse_final(&f, buf, size);
	status_fd = f.status_fifo;

	if (f.chroot_dir != NULL) {
		if (chroot(f.chroot_dir) < 0 || chdir("/") < 0)
			fail("chroot into the container's root %s", f.chroot_dir);
	}
	// Nothing of the runtime's reaches the program: everything above the
	// preserved descriptors closes on exec. Done first, before any seccomp
	// filter could refuse the system calls it takes; the descriptors stay
	// usable until the exec.
	close_from(3 + f.preserve, CLOSE_RANGE_CLOEXEC);
	// Until now the working directory was the caller's, on the host: a
	// process in the container must not find it through /proc/1/cwd.
	if (chdir(f.cwd) < 0)
		fail("process.cwd (%s)", f.cwd);
	if (f.tty) {
		if (tty_fd < 0)
			fail("process.terminal: no terminal was passed");
		if (setsid() < 0)
			fail("setsid");
		for (int fd = 0; fd < 3; fd++)
			if (dup2(tty_fd, fd) < 0)
				fail("dup terminal");
		if (ioctl(0, TIOCSCTTY, 0) < 0)
			fail("set controlling terminal");
		if (tty_fd > 2)
			close(tty_fd);
	}
	for (size_t i = 0; i < f.nrlimits; i++) {
		struct rlimit r = {.rlim_cur = f.rlimits[i].cur, .rlim_max = f.rlimits[i].max};
		if (setrlimit((int)f.rlimits[i].res, &r) < 0)
			fail("process.rlimits[%zu] (resource %u soft %llu hard %llu)", i, f.rlimits[i].res,
			    (unsigned long long)f.rlimits[i].cur, (unsigned long long)f.rlimits[i].max);
	}
	if (f.oom != NULL) {
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, f.oom, strlen(f.oom)) < 0)
			fail("process.oomScoreAdj (%s)", f.oom);
		close(fd);
	}
	if (f.has_personality && personality((unsigned long)f.personality_val) < 0)
		fail("linux.personality");
	if (f.has_ioprio && syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, f.ioprio) < 0)
		fail("process.ioPriority");
	if (f.has_sched && syscall(SYS_sched_setattr, 0, f.sched, 0) < 0)
		fail("process.scheduler");
	if (f.keyring != NULL) {
		// A keyring of its own; kernels that refuse keep the old one.
		syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, f.keyring);
	}

	// A filter whose notifications go to an agent is in place before
	// create returns, so that the runtime can hand the agent its
	// descriptor; everything after runs under it, as it would in runc.
	if (f.filter != NULL && f.listener) {
		if (f.nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			fail("process.noNewPrivileges");
		load_seccomp(&f);
		f.filter = NULL;
	}

	send_msg(MSG_READY, NULL, 0);

	if (f.exec_fifo >= 0) {
		after_ready = 1;
		char b;
		ssize_t n;
		do
			n = read(f.exec_fifo, &b, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			fail("wait for start");
		close(f.exec_fifo);
	}
	if (f.start_hooks.n > 0) {
		char msg[1024];
		if (run_hooks(&f.start_hooks, msg, sizeof(msg)) < 0) {
			errno = 0;
			fail("%s", msg);
		}
	}
	if (f.nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail("process.noNewPrivileges");
	// Without no_new_privs the filter needs CAP_SYS_ADMIN, which goes with
	// the capabilities below: install it first.
	if (f.filter != NULL && !f.nnp)
		load_seccomp(&f);
	if (f.has_caps)
		set_user_and_caps(&f);
	if (status_fd >= 0) {
		// Tell start the exec is next; after the filter even this
		// write could be refused.
		char zero = 0;
		write_all(status_fd, &zero, 1);
	}
	if (f.filter != NULL && f.nnp)
		load_seccomp(&f);
	umask(f.has_umask ? f.umask_val : 022);
	execve(f.path, f.args.v, f.env.n ? f.env.v : (char *[]){NULL});
	fail("exec %s", f.path);
}

// reply_error answers a request with an error (and strerror(errno)); the
// process goes on serving.
__attribute__((format(printf, 1, 2))) static void reply_error(const char *fmt, ...)
{
	char buf[512];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	size_t n = format_error(buf, sizeof(buf), saved, fmt, ap);
	va_end(ap);
	send_msg(MSG_ERROR, buf, (uint32_t)n);
}

void berth_finish(void)
{
	for (;;) {
		uint32_t type, size;
		int fd;
		char *msg = recv_msg(&type, &size, &fd);
		switch (type) {
		case MSG_HOOKS: {
			struct hooks hs;
			memset(&hs, 0, sizeof(hs));
			struct tlv t;
			for (uint32_t off = 0; tlv_next(msg, size, &off, &t);)
				if (!hooks_add(&hs, &t))
					fail("unknown hook attribute %u", t.kind);
			char err[1024];
			if (run_hooks(&hs, err, sizeof(err)) < 0)
				send_msg(MSG_ERROR, err, (uint32_t)strlen(err));
			else
				send_msg(MSG_OK, NULL, 0);
			break;
		}
		case MSG_MOUNT: {
			// A mount only this process can make: proc for its PID
			// namespace, as root of its user namespace.
			const char *source = NULL, *fstype = NULL, *data = NULL;
			uint64_t flags = 0;
			struct tlv t;
			for (uint32_t off = 0; tlv_next(msg, size, &off, &t);) {
				switch (t.kind) {
				case F_MOUNT_SOURCE:
					source = str(&t);
					break;
				case F_MOUNT_TYPE:
					fstype = str(&t);
					break;
				case F_MOUNT_FLAGS:
					flags = u64(&t);
					break;
				case F_MOUNT_DATA:
					data = str(&t);
					break;
				}
			}
			if (fd < 0)
				fail("mount: no target descriptor");
			char target[64];
			snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
			if (mount(source, target, fstype, (unsigned long)flags, data) < 0) {
				reply_error("mount %s", fstype ? fstype : "");
			} else {
				send_msg(MSG_OK, NULL, 0);
			}
			close(fd);
			break;
		}
		case MSG_ROOT:
			if (fd < 0)
				fail("root: no directory descriptor");
			if (fchdir(fd) < 0 || chroot(".") < 0 || chdir("/") < 0) {
				reply_error("enter the container's root");
			} else {
				send_msg(MSG_OK, NULL, 0);
			}
			close(fd);
			break;
		case MSG_FINALIZE:
			finalize(msg, size, fd);
			// finalize does not return
			break;
		default:
			fail("unexpected message type %u", type);
		}
		free(msg);
	}
}
