/* The audit log writer. */
#include "audit.h"

#include <stdio.h>
#include <stdlib.h>

#include "auth.h"
#include "db.h"

enum fb_rc audit_write(PGconn *c, const struct auth *who, const char *request_id,
                       const char *action, const char *object, json_t *before, json_t *after,
                       const char *reason, struct fb_err *err)
{
	char actor[256], tid[24], uid[24];
	if (who && who->authenticated)
		snprintf(actor, sizeof actor, "%s:%s%s%s", auth_role_name(who->role), who->name,
		         who->tenant_id ? "@" : "", who->tenant_id ? who->tenant : "");
	else
		snprintf(actor, sizeof actor, "%s", who && who->name[0] ? who->name : "system");
	snprintf(tid, sizeof tid, "%lld", who ? (long long)who->token_id : 0LL);
	snprintf(uid, sizeof uid, "%lld", who ? (long long)who->user_id : 0LL);
	char *b = before ? json_dumps(before, JSON_COMPACT) : NULL;
	char *a = after ? json_dumps(after, JSON_COMPACT) : NULL;
	const char *p[] = {
	        actor,      (who && who->token_id) ? tid : NULL, action, object, b, a, reason,
	        request_id, (who && who->user_id) ? uid : NULL};
	PGresult *r = db_exec(c, err,
	                      "INSERT INTO audit_log (actor, token_id, action, object, before, "
	                      "after, reason, request_id, user_id) VALUES ($1, $2, $3, $4, $5, $6, "
	                      "$7, $8, $9)",
	                      9, p);
	free(b);
	free(a);
	if (!r)
		return FB_EDB;
	PQclear(r);
	return FB_OK;
}
