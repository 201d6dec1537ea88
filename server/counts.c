/* The gate's inputs from the database: one query per evaluation, grouped by
 * the whole ring and by each platform segment. */
#include "counts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "segments.h"
#include "signals.h"

/* Per agent of the rollout's channel: treated (applied the content since
 * the start) or control (on the previous content), its failure and its
 * host-time on each side, and whether its crash named this channel as the
 * one being interpreted (the attributed cap's count, GATE.md). A crash or
 * boot loop counts for this channel unless the agent named another channel
 * as the one whose content it was interpreting when it crashed
 * (faulting_channel). Failures before an agent applied the content are
 * control failures; its time before the apply is control host-time. For a
 * channel's first file ($2 NULL) the control hosts run nothing on the
 * channel, so they report their crashes on their
 * other channels: those count as control failures (else the control would
 * never fail, and a noisy fleet would halt a good first file). Hosts whose
 * customer holds them back on the channel (delayed, paused, pinned: GATE.md,
 * "Customer content policies") are no control: their owners chose them. */
static const char COUNTS_SQL[] =
        "WITH ap AS (SELECT agent_id, min(received_at) AS at FROM events "
        " WHERE kind = 'applied' AND content_sha256 = $1 AND received_at >= $4::timestamptz "
        " GROUP BY agent_id), "
        "fl AS (SELECT agent_id, min(received_at) FILTER (WHERE content_sha256 = $1) AS t_at, "
        " bool_or(kind = 'crash' AND content_sha256 = $1) AS crashed, "
        " bool_or(kind = 'boot_loop' AND content_sha256 = $1) AS looped, "
        " bool_or(kind = 'crash' AND content_sha256 = $1 AND details ->> 'faulting_channel' "
        " = $3::text) AS attr_t, "
        " min(received_at) FILTER (WHERE kind = 'crash' AND channel_id = $3::int AND "
        " content_sha256 IS NOT DISTINCT FROM $2 AND details ->> 'faulting_channel' = "
        " $3::text) AS ca_at, "
        " min(received_at) FILTER (WHERE channel_id = $3::int AND content_sha256 IS NOT "
        " DISTINCT FROM $2 OR $2 IS NULL AND channel_id IS DISTINCT FROM $3::int) AS c_at "
        " FROM events WHERE kind IN ('crash', 'boot_loop') AND (channel_id = $3::int OR "
        " $2::text IS NULL AND channel_id IS DISTINCT FROM $3::int) "
        " AND received_at >= $4::timestamptz "
        " AND coalesce(details ->> 'faulting_channel', $3::text) = $3::text GROUP BY agent_id), "
        "gm AS (SELECT id, content_mode(id, $3::int) AS mode FROM host_groups), "
        "x AS (SELECT a.os, a.os_build, a.arch, a.agent_version, ap.at, "
        " coalesce(fl.crashed, false) AS crashed, coalesce(fl.looped, false) AS looped, "
        " coalesce(fl.attr_t, false) AS attr_t, fl.ca_at, "
        " fl.t_at, fl.c_at, a.last_seen_at AS seen, "
        " greatest(a.enrolled_at, $4::timestamptz) AS c0, "
        " (a.active ->> $3::text) IS NOT DISTINCT FROM $2 AS on_prev "
        " FROM agents a LEFT JOIN ap ON ap.agent_id = a.id LEFT JOIN fl ON fl.agent_id = a.id "
        " JOIN gm ON gm.id = a.group_id "
        " WHERE a.revoked_at IS NULL AND (ap.at IS NOT NULL OR (a.last_seen_at >= "
        " $4::timestamptz AND (a.active ->> $3::text) IS NOT DISTINCT FROM $2 "
        " AND gm.mode IN ('early', 'ga')))), "
        "y AS (SELECT *, at IS NOT NULL AS treated, "
        " at IS NOT NULL AND (crashed OR looped) AS tfail, "
        " at IS NOT NULL AND NOT (crashed OR looped) AND greatest(coalesce(seen, at), at) < "
        " now() - make_interval(secs => $5::int) AS silent, "
        " at IS NOT NULL AND NOT (crashed OR looped) AND seen >= at AND seen >= now() - "
        " make_interval(secs => $5::int) AS healthy, "
        " at IS NULL AND seen < now() - make_interval(secs => $5::int) AS csilent FROM x), "
        "z AS (SELECT *, CASE WHEN treated THEN greatest(0, extract(epoch FROM (CASE WHEN tfail "
        " THEN greatest(t_at, at) WHEN silent THEN greatest(coalesce(seen, at), at) "
        " ELSE now() END) - at)) ELSE 0 END AS t_exp, "
        " CASE WHEN on_prev OR treated THEN greatest(0, extract(epoch FROM least(now(), "
        " coalesce(at, now()), coalesce(c_at, now()), CASE WHEN csilent THEN seen ELSE now() "
        " END) - c0)) ELSE 0 END AS c_exp, "
        " (c_at IS NOT NULL AND (at IS NULL OR c_at < at)) OR csilent AS cfail FROM y) "
        "SELECT grouping(os, os_build, arch, agent_version), os, os_build, arch, agent_version, "
        " count(*) FILTER (WHERE treated), count(*) FILTER (WHERE treated AND crashed), "
        " count(*) FILTER (WHERE treated AND looped AND NOT crashed), "
        " count(*) FILTER (WHERE silent), count(*) FILTER (WHERE healthy), "
        " count(*) FILTER (WHERE healthy AND at <= now() - make_interval(secs => $6::int)), "
        " coalesce(sum(t_exp), 0), count(*) FILTER (WHERE NOT treated AND on_prev), "
        " count(*) FILTER (WHERE cfail), coalesce(sum(c_exp), 0), "
        " count(*) FILTER (WHERE treated AND attr_t), "
        " count(*) FILTER (WHERE ca_at IS NOT NULL AND (at IS NULL OR ca_at < at)) "
        "FROM z GROUP BY GROUPING SETS ((), (os), (os_build), (arch), (agent_version))";

static int64_t col_i(PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

enum fb_rc counts_gather(PGconn *c, const struct counts_req *q, struct gate_inputs *in,
                         struct counts_segment *segs, size_t *nsegs, struct fb_err *err)
{
	char to[24], need[24];
	snprintf(to, sizeof to, "%lld", (long long)q->silence_timeout_s);
	snprintf(need, sizeof need, "%lld", (long long)q->exposure_needed_s);
	const char *p[] = {q->content, q->previous, q->channel, q->started, to, need};
	*nsegs = 0;
	PGresult *r = db_exec(c, err, COUNTS_SQL, 6, p);
	if (!r)
		return FB_EDB;
	for (int i = 0; i < PQntuples(r); i++) {
		int grouping = (int)col_i(r, i, 0);
		/* grouping(): a bit set for each column not grouped by, os first */
		int dim = grouping == 15   ? -1
		          : grouping == 7  ? 0
		          : grouping == 11 ? 1
		          : grouping == 13 ? 2
		          : grouping == 14 ? 3
		                           : -2;
		if (dim == -1) {
			in->treated = col_i(r, i, 5);
			in->crashed = col_i(r, i, 6);
			in->boot_looped = col_i(r, i, 7);
			in->silent = col_i(r, i, 8);
			in->healthy = col_i(r, i, 9);
			in->seasoned = col_i(r, i, 10);
			in->exposure_s = strtod(PQgetvalue(r, i, 11), NULL);
			in->control = col_i(r, i, 12);
			in->control_failed = col_i(r, i, 13);
			in->control_exposure_s = strtod(PQgetvalue(r, i, 14), NULL);
			in->attributed = col_i(r, i, 15);
			in->control_attributed = col_i(r, i, 16);
			continue;
		}
		if (dim < 0 || PQgetisnull(r, i, 1 + dim) || *nsegs >= COUNTS_MAX_SEGMENTS)
			continue;
		struct counts_segment *s = &segs[(*nsegs)++];
		memset(s, 0, sizeof *s);
		s->dim = dim;
		snprintf(s->value, sizeof s->value, "%s", PQgetvalue(r, i, 1 + dim));
		int64_t silent = s->silent = col_i(r, i, 8);
		s->healthy = col_i(r, i, 9);
		s->seasoned = col_i(r, i, 10);
		s->g.treated = s->healthy + col_i(r, i, 6) + col_i(r, i, 7) + silent;
		s->g.failed = col_i(r, i, 6) + col_i(r, i, 7) + silent;
		s->g.exposure_s = strtod(PQgetvalue(r, i, 11), NULL);
		s->g.control = col_i(r, i, 12);
		s->g.control_failed = col_i(r, i, 13);
		s->g.control_exposure_s = strtod(PQgetvalue(r, i, 14), NULL);
		s->attributed = col_i(r, i, 15);
	}
	PQclear(r);
	return FB_OK;
}

/* Degraded verdicts (server/signals.c) per signal, counted as COUNTS_SQL
 * counts crashes (for a first file, the host signals of the control hosts'
 * other channels count, $6), for the ring and each platform segment: the first verdict
 * of a host on the new content after it applied it is a treated one; on the
 * previous content before it applied the new one (or never did), a control
 * one. Host-time runs until the verdict or the host's last heartbeat: health
 * comes only with them. */
static const char SIGNALS_SQL[] =
        "WITH ap AS (SELECT agent_id, min(received_at) AS at FROM events "
        " WHERE kind = 'applied' AND content_sha256 = $1 AND received_at >= $4::timestamptz "
        " GROUP BY agent_id), "
        "dg AS (SELECT agent_id, details ->> 'signal' AS signal, "
        " min(received_at) FILTER (WHERE content_sha256 = $1) AS t_at, "
        " min(received_at) FILTER (WHERE channel_id = $3::int AND content_sha256 IS NOT "
        " DISTINCT FROM $2 OR $2 IS NULL AND channel_id IS DISTINCT FROM $3::int) AS c_at "
        " FROM events WHERE kind = 'degraded' AND (channel_id = $3::int OR $2::text IS NULL "
        " AND channel_id IS DISTINCT FROM $3::int AND details ->> 'signal' = ANY($6::text[])) "
        " AND received_at >= $4::timestamptz GROUP BY 1, 2), "
        "x AS (SELECT a.id, a.os, a.os_build, a.arch, a.agent_version, ap.at, "
        " coalesce(a.last_seen_at, ap.at) AS seen, greatest(a.enrolled_at, $4::timestamptz) AS c0, "
        " (a.active ->> $3::text) IS NOT DISTINCT FROM $2 AS on_prev "
        " FROM agents a LEFT JOIN ap ON ap.agent_id = a.id "
        " WHERE a.revoked_at IS NULL AND (ap.at IS NOT NULL OR (a.last_seen_at >= "
        " $4::timestamptz AND (a.active ->> $3::text) IS NOT DISTINCT FROM $2))), "
        "y AS (SELECT s.signal, x.*, dg.t_at, dg.c_at FROM x CROSS JOIN unnest($5::text[]) AS "
        " s(signal) LEFT JOIN dg ON dg.agent_id = x.id AND dg.signal = s.signal) "
        "SELECT signal, grouping(os, os_build, arch, agent_version), os, os_build, arch, "
        " agent_version, count(*) FILTER (WHERE at IS NOT NULL), "
        " count(*) FILTER (WHERE at IS NOT NULL AND t_at >= at), "
        " coalesce(sum(CASE WHEN at IS NOT NULL THEN greatest(0, extract(epoch FROM "
        " least(now(), CASE WHEN t_at >= at THEN t_at ELSE greatest(seen, at) END) - at)) "
        " END), 0), "
        " count(*) FILTER (WHERE at IS NULL AND on_prev), "
        " count(*) FILTER (WHERE c_at IS NOT NULL AND (at IS NULL OR c_at < at)), "
        " coalesce(sum(CASE WHEN on_prev OR at IS NOT NULL THEN greatest(0, extract(epoch "
        " FROM least(now(), coalesce(at, 'infinity'), coalesce(c_at, 'infinity'), seen) - c0)) "
        " END), 0) "
        "FROM y GROUP BY GROUPING SETS ((signal), (signal, os), (signal, os_build), "
        " (signal, arch), (signal, agent_version))";

static void group_of(PGresult *r, int i, int col, struct gate_group *g)
{
	g->treated = col_i(r, i, col);
	g->failed = col_i(r, i, col + 1);
	g->exposure_s = strtod(PQgetvalue(r, i, col + 2), NULL);
	g->control = col_i(r, i, col + 3);
	g->control_failed = col_i(r, i, col + 4);
	g->control_exposure_s = strtod(PQgetvalue(r, i, col + 5), NULL);
}

enum fb_rc counts_signals(PGconn *c, const struct counts_req *q, struct gate_group *g,
                          struct counts_signal_seg *segs, size_t max, size_t *nsegs,
                          struct fb_err *err)
{
	char names[128];
	size_t len = 0;
	for (int s = 0; s < SIG_COUNT; s++)
		len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", s ? "," : "{",
		                        sig_name(s));
	snprintf(names + len, sizeof names - len, "}");
	char host[64];
	snprintf(host, sizeof host, "{%s,%s}", sig_name(SIG_AGENT_CPU), sig_name(SIG_MEMORY));
	const char *p[] = {q->content, q->previous, q->channel, q->started, names, host};
	memset(g, 0, SIG_COUNT * sizeof *g);
	*nsegs = 0;
	PGresult *r = db_exec(c, err, SIGNALS_SQL, 6, p);
	if (!r)
		return FB_EDB;
	for (int i = 0; i < PQntuples(r); i++) {
		int s = sig_of_name(PQgetvalue(r, i, 0));
		int grouping = (int)col_i(r, i, 1);
		int dim = grouping == 15   ? -1
		          : grouping == 7  ? 0
		          : grouping == 11 ? 1
		          : grouping == 13 ? 2
		          : grouping == 14 ? 3
		                           : -2;
		if (s < 0)
			continue;
		if (dim == -1) {
			group_of(r, i, 6, &g[s]);
			continue;
		}
		if (dim < 0 || PQgetisnull(r, i, 2 + dim) || *nsegs >= max)
			continue;
		struct counts_signal_seg *sg = &segs[(*nsegs)++];
		sg->signal = s;
		sg->dim = dim;
		snprintf(sg->value, sizeof sg->value, "%s", PQgetvalue(r, i, 2 + dim));
		group_of(r, i, 6, &sg->g);
	}
	PQclear(r);
	return FB_OK;
}
