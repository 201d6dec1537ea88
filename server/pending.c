/* Pending heartbeats: compact records, an index by agent id, boot ids in a
 * block arena and interned values (see pending.h). */
#include "pending.h"

#include <stdlib.h>
#include <string.h>

#define REC_BLOCK   2048  /* records per block (64 KiB) */
#define ARENA_BLOCK 65536 /* bytes per boot-id block; offsets are block << 16 | pos */
#define MIN_INDEX   1024

struct rec {
	uint32_t agent_id;
	uint32_t uptime_s;
	int64_t seen_ms;
	uint32_t boot; /* arena offset */
	uint32_t version, active, caps;
};

struct val {
	char *s;
	uint32_t len;
	uint32_t hash;
};

/* Interned values of one kind: v[1 .. n], an open-addressing index of them. */
struct valtab {
	struct val *v;
	uint32_t n, capv;
	uint32_t *slots; /* value number, 0 = empty */
	uint32_t cap;
	size_t bytes;
};

struct pending {
	struct rec **blocks;
	size_t nblocks, capblocks;
	size_t n;
	uint32_t *index; /* record number + 1, 0 = empty; NULL after pending_sort */
	size_t icap;
	uint64_t *order; /* after pending_sort: agent id << 32 | record number */
	char **arena;
	size_t narena, caparena;
	size_t arena_pos; /* in the last arena block */
	struct valtab vals[2];
};

static struct rec *rec_at(const struct pending *p, size_t i)
{
	return &p->blocks[i / REC_BLOCK][i % REC_BLOCK];
}

static size_t slot_of(uint32_t id, size_t cap)
{
	return (size_t)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

/* A hash of a value, eight bytes a step (values are JSON texts of a few
 * hundred bytes, hashed on every heartbeat). */
static uint32_t hash_of(const char *s, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, s + i, n - i);
	h = (h ^ w) * 0xff51afd7ed558ccdull;
	h ^= h >> 29;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 32;
	return (uint32_t)h;
}

struct pending *pending_new(void)
{
	struct pending *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->index = calloc(MIN_INDEX, sizeof *p->index);
	if (!p->index) {
		free(p);
		return NULL;
	}
	p->icap = MIN_INDEX;
	return p;
}

void pending_free(struct pending *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nblocks; i++)
		free(p->blocks[i]);
	free(p->blocks);
	free(p->index);
	free(p->order);
	for (size_t i = 0; i < p->narena; i++)
		free(p->arena[i]);
	free(p->arena);
	for (int k = 0; k < 2; k++) {
		for (uint32_t i = 1; i <= p->vals[k].n; i++)
			free(p->vals[k].v[i].s);
		free(p->vals[k].v);
		free(p->vals[k].slots);
	}
	free(p);
}

size_t pending_count(const struct pending *p)
{
	return p->n;
}

size_t pending_bytes(const struct pending *p)
{
	size_t b = sizeof *p + p->nblocks * REC_BLOCK * sizeof(struct rec) +
	           p->capblocks * sizeof *p->blocks + p->icap * sizeof *p->index +
	           (p->order ? p->n * sizeof *p->order : 0) + p->narena * ARENA_BLOCK +
	           p->caparena * sizeof *p->arena;
	for (int k = 0; k < 2; k++)
		b += p->vals[k].bytes + (size_t)p->vals[k].capv * sizeof(struct val) +
		     (size_t)p->vals[k].cap * sizeof(uint32_t);
	return b;
}

/* The record of agent id, or the empty slot where it would go. */
static uint32_t *index_slot(const struct pending *p, uint32_t id)
{
	size_t i = slot_of(id, p->icap);
	while (p->index[i] && rec_at(p, p->index[i] - 1)->agent_id != id)
		i = (i + 1) & (p->icap - 1);
	return &p->index[i];
}

static enum fb_rc index_grow(struct pending *p)
{
	size_t ncap = p->icap * 2;
	uint32_t *n = calloc(ncap, sizeof *n);
	if (!n)
		return FB_ENOMEM;
	for (size_t i = 0; i < p->icap; i++) {
		if (!p->index[i])
			continue;
		size_t j = slot_of(rec_at(p, p->index[i] - 1)->agent_id, ncap);
		while (n[j])
			j = (j + 1) & (ncap - 1);
		n[j] = p->index[i];
	}
	free(p->index);
	p->index = n;
	p->icap = ncap;
	return FB_OK;
}

/* Room for one more record: a new block when the last one is full. */
static enum fb_rc rec_reserve(struct pending *p)
{
	if (p->n < p->nblocks * REC_BLOCK)
		return FB_OK;
	if (p->nblocks == p->capblocks) {
		size_t ncap = p->capblocks ? p->capblocks * 2 : 16;
		struct rec **nb = realloc(p->blocks, ncap * sizeof *nb);
		if (!nb)
			return FB_ENOMEM;
		p->blocks = nb;
		p->capblocks = ncap;
	}
	p->blocks[p->nblocks] = malloc(REC_BLOCK * sizeof(struct rec));
	if (!p->blocks[p->nblocks])
		return FB_ENOMEM;
	p->nblocks++;
	return FB_OK;
}

static const char *boot_at(const struct pending *p, uint32_t off)
{
	return p->arena[off >> 16] + (off & 0xffff) + 1;
}

static size_t boot_len(const struct pending *p, uint32_t off)
{
	return (unsigned char)p->arena[off >> 16][off & 0xffff];
}

/* Copy a boot id into the arena: length byte, bytes, NUL. */
static enum fb_rc boot_add(struct pending *p, const char *s, size_t n, uint32_t *off)
{
	if (!p->narena || p->arena_pos + n + 2 > ARENA_BLOCK) {
		if (p->narena == 0xffff)
			return FB_ENOMEM;
		if (p->narena == p->caparena) {
			size_t ncap = p->caparena ? p->caparena * 2 : 4;
			char **na = realloc(p->arena, ncap * sizeof *na);
			if (!na)
				return FB_ENOMEM;
			p->arena = na;
			p->caparena = ncap;
		}
		p->arena[p->narena] = malloc(ARENA_BLOCK);
		if (!p->arena[p->narena])
			return FB_ENOMEM;
		p->narena++;
		p->arena_pos = 0;
	}
	char *b = p->arena[p->narena - 1] + p->arena_pos;
	b[0] = (char)(unsigned char)n;
	memcpy(b + 1, s, n);
	b[n + 1] = '\0';
	*off = (uint32_t)((p->narena - 1) << 16 | p->arena_pos);
	p->arena_pos += n + 2;
	return FB_OK;
}

/* The number of value s in t, adding it if new. */
static enum fb_rc val_intern(struct valtab *t, const char *s, uint32_t *num)
{
	size_t n = strlen(s);
	if (n > UINT32_MAX)
		return FB_EINVAL;
	uint32_t h = hash_of(s, n);
	if (t->cap) {
		for (size_t i = h & (t->cap - 1); t->slots[i]; i = (i + 1) & (t->cap - 1)) {
			const struct val *v = &t->v[t->slots[i]];
			if (v->hash == h && v->len == n && memcmp(v->s, s, n) == 0) {
				*num = t->slots[i];
				return FB_OK;
			}
		}
	}
	if (t->n == UINT32_MAX - 1)
		return FB_ENOMEM;
	if (((size_t)t->n + 1) * 4 > (size_t)t->cap * 3) {
		uint32_t ncap = t->cap ? t->cap * 2 : 64;
		uint32_t *ns = calloc(ncap, sizeof *ns);
		if (!ns)
			return FB_ENOMEM;
		for (uint32_t k = 1; k <= t->n; k++) {
			size_t i = t->v[k].hash & (ncap - 1);
			while (ns[i])
				i = (i + 1) & (ncap - 1);
			ns[i] = k;
		}
		free(t->slots);
		t->slots = ns;
		t->cap = ncap;
	}
	if (t->n + 1 >= t->capv) {
		uint32_t ncap = t->capv ? t->capv * 2 : 16;
		struct val *nv = realloc(t->v, ncap * sizeof *nv);
		if (!nv)
			return FB_ENOMEM;
		t->v = nv;
		t->capv = ncap;
	}
	char *copy = malloc(n + 1);
	if (!copy)
		return FB_ENOMEM;
	memcpy(copy, s, n + 1);
	uint32_t k = ++t->n;
	t->v[k] = (struct val){copy, (uint32_t)n, h};
	t->bytes += n + 1;
	size_t i = h & (t->cap - 1);
	while (t->slots[i])
		i = (i + 1) & (t->cap - 1);
	t->slots[i] = k;
	*num = k;
	return FB_OK;
}

enum fb_rc pending_put(struct pending *p, const struct pending_hb *h)
{
	if (p->order || h->agent_id < 1 || h->agent_id > UINT32_MAX || h->uptime_s < 0 ||
	    h->uptime_s > UINT32_MAX || !h->boot_id || !h->active)
		return FB_EINVAL;
	size_t blen = strlen(h->boot_id);
	if (blen > PENDING_MAX_BOOT_ID)
		return FB_EINVAL;
	uint32_t id = (uint32_t)h->agent_id;
	enum fb_rc rc;
	if ((p->n + 1) * 4 > p->icap * 3 && (rc = index_grow(p)))
		return rc;
	struct rec r = {.agent_id = id, .uptime_s = (uint32_t)h->uptime_s, .seen_ms = h->seen_ms};
	/* Values first: interning what is already there changes nothing, and a
	 * new value that is never referenced is harmless. */
	if ((h->version && (rc = val_intern(&p->vals[PENDING_TEXT], h->version, &r.version))) ||
	    (rc = val_intern(&p->vals[PENDING_JSON], h->active, &r.active)) ||
	    (h->caps && (rc = val_intern(&p->vals[PENDING_JSON], h->caps, &r.caps))))
		return rc;
	uint32_t *slot = index_slot(p, id);
	struct rec *old = *slot ? rec_at(p, *slot - 1) : NULL;
	if (old && boot_len(p, old->boot) == blen &&
	    memcmp(boot_at(p, old->boot), h->boot_id, blen) == 0)
		r.boot = old->boot; /* the same boot: nothing new to store */
	else if ((rc = boot_add(p, h->boot_id, blen, &r.boot)))
		return rc;
	if (old) {
		*old = r;
		return FB_OK;
	}
	if ((rc = rec_reserve(p)))
		return rc;
	*rec_at(p, p->n) = r;
	*slot = (uint32_t)(++p->n);
	return FB_OK;
}

int pending_has(const struct pending *p, int64_t agent_id)
{
	if (p->order || agent_id < 1 || agent_id > UINT32_MAX)
		return 0;
	return *index_slot(p, (uint32_t)agent_id) != 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

enum fb_rc pending_sort(struct pending *p)
{
	if (p->order)
		return FB_OK;
	uint64_t *o = malloc((p->n ? p->n : 1) * sizeof *o);
	if (!o)
		return FB_ENOMEM;
	for (size_t i = 0; i < p->n; i++)
		o[i] = (uint64_t)rec_at(p, i)->agent_id << 32 | i;
	qsort(o, p->n, sizeof *o, cmp_u64);
	p->order = o;
	free(p->index);
	p->index = NULL;
	p->icap = 0;
	return FB_OK;
}

void pending_get(const struct pending *p, size_t i, struct pending_rec *out)
{
	const struct rec *r = rec_at(p, p->order ? (size_t)(p->order[i] & 0xffffffffu) : i);
	*out = (struct pending_rec){.agent_id = r->agent_id,
	                            .seen_ms = r->seen_ms,
	                            .uptime_s = r->uptime_s,
	                            .boot_id = boot_at(p, r->boot),
	                            .version = r->version,
	                            .active = r->active,
	                            .caps = r->caps};
}

uint32_t pending_nvalues(const struct pending *p, enum pending_kind kind)
{
	return p->vals[kind].n;
}

const char *pending_value(const struct pending *p, enum pending_kind kind, uint32_t n, size_t *len)
{
	const struct valtab *t = &p->vals[kind];
	if (n < 1 || n > t->n)
		return NULL;
	if (len)
		*len = t->v[n].len;
	return t->v[n].s;
}
