/*
 * A test plugin with the tcmu-runner 1.5.4 handler interface and the asynchronous execution
 * model of handler_rbd.so (nr_threads = 0): read, write, flush, unmap and writesame return
 * OK at once and complete later through tcmur_cmd_complete on a thread of their own; every
 * third command completes before its callout returns, as librbd may. The device is memory
 * of the configured Size.
 *
 * The configuration "fakeasync/failing" makes every write complete with WR_ERR and every
 * read fail to queue with NO_RESOURCE (a final status, no completion).
 *
 * Built by tests/async.rs with: gcc -shared -fPIC -Wl,-z,now -o handler_fakeasync.so ...
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

struct tcmu_device;
struct tcmur_cmd;

struct tcmur_handler {
	const char *name, *subtype, *cfg_desc;
	void *opaque;
	bool (*check_config)(const char *, char **);
	int (*reconfig)(struct tcmu_device *, void *);
	int (*open)(struct tcmu_device *, bool);
	void (*close)(struct tcmu_device *);
	int nr_threads;
	int (*handle_cmd)(struct tcmu_device *, struct tcmur_cmd *);
	int (*read)(struct tcmu_device *, struct tcmur_cmd *, struct iovec *, size_t, size_t, off_t);
	int (*write)(struct tcmu_device *, struct tcmur_cmd *, struct iovec *, size_t, size_t, off_t);
	int (*flush)(struct tcmu_device *, struct tcmur_cmd *);
	int (*unmap)(struct tcmu_device *, struct tcmur_cmd *, uint64_t, uint64_t);
	int (*writesame)(struct tcmu_device *, struct tcmur_cmd *, uint64_t, uint64_t, struct iovec *, size_t);
	int (*caw)(struct tcmu_device *, struct tcmur_cmd *, uint64_t, uint64_t, struct iovec *, size_t);
	int (*report_event)(struct tcmu_device *);
	int (*lock)(struct tcmu_device *, uint16_t);
	int (*unlock)(struct tcmu_device *);
	int (*get_lock_tag)(struct tcmu_device *, uint16_t *);
	int (*get_lock_state)(struct tcmu_device *);
	bool _is_dbus_handler;
	bool (*update_logdir)(void);
	int (*init)(void);
	void (*destroy)(void);
};
_Static_assert(sizeof(struct tcmur_handler) == 200, "1.5.4 layout");
_Static_assert(offsetof(struct tcmur_handler, writesame) == 112, "1.5.4 layout");

extern int tcmur_register_handler(struct tcmur_handler *);
extern void tcmur_cmd_complete(struct tcmu_device *, void *, int);
extern void tcmur_dev_set_private(struct tcmu_device *, void *);
extern void *tcmur_dev_get_private(struct tcmu_device *);
extern char *tcmu_dev_get_cfgstring(struct tcmu_device *);
extern uint64_t tcmu_cfgfs_dev_get_info_u64(struct tcmu_device *, const char *, int *);
extern void tcmu_dev_set_write_cache_enabled(struct tcmu_device *, bool);
extern size_t tcmu_memcpy_into_iovec(struct iovec *, size_t, void *, size_t);
extern size_t tcmu_memcpy_from_iovec(void *, size_t, struct iovec *, size_t);
extern void tcmu_err_message(struct tcmu_device *, const char *, int, const char *, ...);

enum { STS_OK = 0, STS_NO_RESOURCE = 1, STS_WR_ERR = 4, STS_RANGE = 14 };
enum { OP_READ, OP_WRITE, OP_FLUSH, OP_UNMAP, OP_WRITESAME };

struct state {
	uint8_t *mem;
	uint64_t size;
	bool failing;
	unsigned count;
	pthread_mutex_t lock;
};

struct job {
	struct tcmu_device *dev;
	struct tcmur_cmd *cmd;
	int op;
	struct iovec *iov;
	size_t cnt;
	uint64_t len, off;
};

static void *run(void *arg)
{
	struct job *j = arg;
	struct state *s = tcmur_dev_get_private(j->dev);
	int sts = STS_OK;

	pthread_mutex_lock(&s->lock);
	switch (j->op) {
	case OP_READ:
		tcmu_memcpy_into_iovec(j->iov, j->cnt, s->mem + j->off, j->len);
		break;
	case OP_WRITE:
		if (s->failing)
			sts = STS_WR_ERR;
		else
			tcmu_memcpy_from_iovec(s->mem + j->off, j->len, j->iov, j->cnt);
		break;
	case OP_UNMAP:
		memset(s->mem + j->off, 0, j->len);
		break;
	case OP_WRITESAME:
		for (uint64_t o = 0; o < j->len; o += j->iov[0].iov_len)
			memcpy(s->mem + j->off + o, j->iov[0].iov_base, j->iov[0].iov_len);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&s->lock);
	tcmur_cmd_complete(j->dev, j->cmd, sts);
	free(j);
	return NULL;
}

static int submit(struct tcmu_device *dev, struct tcmur_cmd *cmd, int op, struct iovec *iov,
		  size_t cnt, uint64_t len, uint64_t off)
{
	struct state *s = tcmur_dev_get_private(dev);
	struct job *j;
	pthread_t t;

	if (off > s->size || len > s->size - off)
		return STS_RANGE;
	if (op == OP_READ && s->failing)
		return STS_NO_RESOURCE;
	j = malloc(sizeof(*j));
	if (!j)
		return STS_NO_RESOURCE;
	*j = (struct job){ dev, cmd, op, iov, cnt, len, off };
	if (__atomic_fetch_add(&s->count, 1, __ATOMIC_SEQ_CST) % 3 == 0) {
		run(j); /* completes before the callout returns */
		return STS_OK;
	}
	if (pthread_create(&t, NULL, run, j)) {
		free(j);
		return STS_NO_RESOURCE;
	}
	pthread_detach(t);
	return STS_OK;
}

static int fake_read(struct tcmu_device *d, struct tcmur_cmd *c, struct iovec *iov, size_t cnt,
		     size_t len, off_t off)
{
	return submit(d, c, OP_READ, iov, cnt, len, (uint64_t)off);
}

static int fake_write(struct tcmu_device *d, struct tcmur_cmd *c, struct iovec *iov, size_t cnt,
		      size_t len, off_t off)
{
	return submit(d, c, OP_WRITE, iov, cnt, len, (uint64_t)off);
}

static int fake_flush(struct tcmu_device *d, struct tcmur_cmd *c)
{
	return submit(d, c, OP_FLUSH, NULL, 0, 0, 0);
}

static int fake_unmap(struct tcmu_device *d, struct tcmur_cmd *c, uint64_t off, uint64_t len)
{
	return submit(d, c, OP_UNMAP, NULL, 0, len, off);
}

static int fake_writesame(struct tcmu_device *d, struct tcmur_cmd *c, uint64_t off, uint64_t len,
			  struct iovec *iov, size_t cnt)
{
	if (cnt != 1 || iov[0].iov_len == 0 || len % iov[0].iov_len)
		return STS_RANGE;
	return submit(d, c, OP_WRITESAME, iov, cnt, len, off);
}

static int fake_open(struct tcmu_device *dev, bool reopen)
{
	struct state *s = calloc(1, sizeof(*s));
	int ret = 0;

	(void)reopen;
	if (!s)
		return -ENOMEM;
	tcmur_dev_set_private(dev, s);
	s->size = tcmu_cfgfs_dev_get_info_u64(dev, "Size", &ret);
	if (ret < 0 || s->size == 0) {
		tcmu_err_message(dev, __func__, __LINE__, "no Size (%d)\n", ret);
		free(s);
		return -EINVAL;
	}
	s->mem = calloc(1, s->size);
	if (!s->mem) {
		free(s);
		return -ENOMEM;
	}
	s->failing = strcmp(tcmu_dev_get_cfgstring(dev), "fakeasync/failing") == 0;
	pthread_mutex_init(&s->lock, NULL);
	tcmu_dev_set_write_cache_enabled(dev, true);
	return 0;
}

static void fake_close(struct tcmu_device *dev)
{
	struct state *s = tcmur_dev_get_private(dev);

	free(s->mem);
	free(s);
}

static struct tcmur_handler fake_handler = {
	.name = "Fake asynchronous handler",
	.subtype = "fakeasync",
	.cfg_desc = "fakeasync/anything",
	.open = fake_open,
	.close = fake_close,
	.nr_threads = 0,
	.read = fake_read,
	.write = fake_write,
	.flush = fake_flush,
	.unmap = fake_unmap,
	.writesame = fake_writesame,
};

int handler_init(void)
{
	return tcmur_register_handler(&fake_handler);
}
