/* Platform segments: the canary-coverage check (GATE.md, "Segments"). */
#include "segments.h"

#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "snapshot.h"

const char *const segment_dims[SEGMENT_DIMS] = {"os", "os_build", "arch", "agent_version"};

struct seg_count {
	int dim;
	char value[72];
	int64_t canaries, later;
};

/* A counter per (dimension, value); the number of distinct values is small
 * (platforms, builds, versions), so a linear list does. */
static struct seg_count *seg_find(struct seg_count **v, size_t *n, size_t *cap, int dim,
                                  const char *value)
{
	for (size_t i = 0; i < *n; i++)
		if ((*v)[i].dim == dim && strcmp((*v)[i].value, value) == 0)
			return &(*v)[i];
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct seg_count *nv = realloc(*v, ncap * sizeof *nv);
		if (!nv)
			return NULL;
		*v = nv;
		*cap = ncap;
	}
	struct seg_count *s = &(*v)[(*n)++];
	memset(s, 0, sizeof *s);
	s->dim = dim;
	snprintf(s->value, sizeof s->value, "%s", value);
	return s;
}

enum fb_rc segments_coverage(PGconn *c, const json_t *plan, int64_t min_canaries, int64_t min_later,
                             json_t **gaps, struct fb_err *err)
{
	enum fb_rc rc = FB_EDB;
	struct seg_count *v = NULL;
	size_t n = 0, cap = 0;
	*gaps = NULL;
	PGresult *r = db_exec(c, err,
	                      "SELECT id, os, os_build, arch, agent_version FROM agents WHERE "
	                      "revoked_at IS NULL AND (os IS NOT NULL OR os_build IS NOT NULL "
	                      "OR arch IS NOT NULL OR agent_version IS NOT NULL)",
	                      0, NULL);
	if (!r)
		goto out;
	const char *first = json_string_value(json_array_get(plan, 0));
	for (int i = 0; i < PQntuples(r); i++) {
		char rb[64];
		const char *ring =
		        snapshot_agent_ring(strtoll(PQgetvalue(r, i, 0), NULL, 10), rb, sizeof rb);
		int where = -1; /* 0: the first ring, 1: a later ring of the plan */
		for (size_t k = 0; ring && k < json_array_size(plan); k++)
			if (strcmp(ring, json_string_value(json_array_get(plan, k))) == 0)
				where = k == 0 ? 0 : 1;
		if (where < 0 || !first)
			continue;
		for (int d = 0; d < SEGMENT_DIMS; d++) {
			if (PQgetisnull(r, i, 1 + d))
				continue;
			struct seg_count *s = seg_find(&v, &n, &cap, d, PQgetvalue(r, i, 1 + d));
			if (!s) {
				rc = FB_ENOMEM;
				goto out;
			}
			if (where == 0)
				s->canaries++;
			else
				s->later++;
		}
	}
	*gaps = json_array();
	for (size_t i = 0; i < n; i++)
		if (v[i].later >= min_later && v[i].canaries < min_canaries)
			json_array_append_new(*gaps,
			                      json_pack("{s:s, s:s, s:I, s:I}", "dimension",
			                                segment_dims[v[i].dim], "value", v[i].value,
			                                "canaries", (json_int_t)v[i].canaries,
			                                "later", (json_int_t)v[i].later));
	rc = FB_OK;
out:
	PQclear(r);
	free(v);
	return rc;
}
