/* fbctl internals: the parsed command line, the command table row, and the
 * online helpers (server connection, requests, error reporting, tables)
 * shared by the online subcommands in online.c and watch.c. */
#ifndef FBCTL_H
#define FBCTL_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "fbclient.h"

/* Exit codes: 0 success/valid; 1 refused: the server said no, the request
 * would change nothing (already paused, ...), a check failed (the input is
 * invalid), or the server could not be reached; 2 usage, configuration or
 * local I/O error; 3 (rollout watch) the rollout halted, was reverted or
 * superseded. */
enum { EXIT_VALID = 0, EXIT_INVALID = 1, EXIT_USAGE = 2, EXIT_HALTED = 3 };
#define EXIT_REFUSED EXIT_INVALID

/* One bit per option, so a command row can say which ones it takes. The
 * connection options (--server, --token, --config, --ca) and --help are
 * taken by every command. */
enum ctl_opt {
	O_TEMPLATES,
	O_CORPUS,
	O_JSON,
	O_UNCHECKED,
	O_CHANNEL,
	O_CONTENT,
	O_RINGS,
	O_POLICY,
	O_SUPERSEDE,
	O_REASON,
	O_FORCE,
	O_RING,
	O_LIMIT,
	O_TAG,
	O_MODE,
	O_VERSION,
	O_ROLE,
	O_NAME,
	O_ACTION,
	O_OBJECT,
	O_ACTOR,
	O_BEFORE,
	O_TAGS,
	O_MAX_USES,
	O_EXPIRES,
	O_MANIFEST,
	O_INTERVAL,
	O_TIMEOUT,
	O_DESCRIPTION,
	O_STATE,
	O_EMERGENCY,
	O_HEALTH,
	O_AFTER,
	O_USER,
	O_EMAIL,
	O_TENANT,
	O_GROUP,
	O_DEFAULT_MODE,
	O_DELAY,
	O_COUNT_
};
#define OB(x) (1ull << (x))

struct command;

struct opts {
	const char *templates;    /* --templates DIR */
	const char *corpus;       /* --corpus DIR (preflight) */
	int json;                 /* --json */
	int unchecked;            /* --unchecked (compile without registry validation) */
	const char *server;       /* --server URL */
	const char *token;        /* --token T */
	const char *config;       /* --config FILE */
	const char *ca;           /* --ca FILE */
	const char *channel;      /* --channel N */
	const char *content;      /* --content SHA */
	const char *rings;        /* --rings a,b */
	const char *policy;       /* --policy JSON */
	int supersede;            /* --supersede */
	const char *reason;       /* --reason R */
	int force;                /* --force */
	const char *ring;         /* --ring R */
	const char *limit;        /* --limit N */
	const char *tag;          /* --tag k=v */
	const char *mode;         /* --mode (pin add, policy set) */
	const char *version;      /* --version V */
	const char *role;         /* --role R */
	const char *name;         /* --name N */
	const char *action;       /* --action A */
	const char *object;       /* --object O */
	const char *actor;        /* --actor A */
	const char *before;       /* --before ID */
	const char *tags;         /* --tags JSON */
	const char *max_uses;     /* --max-uses N */
	const char *expires;      /* --expires DURATION */
	const char *manifest;     /* --manifest FILE */
	const char *interval;     /* --interval DURATION */
	const char *timeout;      /* --timeout DURATION */
	const char *description;  /* --description D */
	const char *state;        /* --state S */
	int emergency;            /* --emergency */
	const char *health;       /* --health healthy|silent|never */
	const char *after;        /* --after ID (agent list paging) */
	const char *user;         /* --user NAME|ID */
	const char *email;        /* --email ADDRESS */
	const char *tenant;       /* --tenant NAME */
	const char *group;        /* --group NAME (a tenant's host group) */
	const char *default_mode; /* --default-mode early|ga */
	const char *delay;        /* --delay DURATION (policy set --mode delayed) */
	uint64_t seen;            /* OB(option) for every option given */
	int argc;                 /* positional arguments after the command */
	char **argv;
	const struct command *cmd; /* the row being run (for its usage line) */
};

struct command {
	const char *group; /* "rollout" */
	const char *verb;  /* "start", or NULL for a one-word command */
	int (*run)(struct opts *o);
	uint64_t takes; /* OB() of the command-specific options it accepts */
	const char *args;
	const char *help;
};

/* Print "usage: fbctl GROUP VERB ARGS" for o->cmd to stderr; returns EXIT_USAGE. */
int ctl_usage(const struct opts *o);

/* Parse the value s of option flag as a duration (fb_parse_duration_ms:
 * 250ms, 30s, 5m, 2h, 1d; a plain number is seconds) in [min_ms, max_ms]
 * into *ms: 0, or a usage error naming the flag and the range:
 * EXIT_USAGE. */
int ctl_duration(const struct opts *o, const char *flag, const char *s, int64_t min_ms,
                 int64_t max_ms, int64_t *ms);

/* ---- online: ctl.c -------------------------------------------------------- */

/* A connection to firebreakd: URL, token and CA from flags, then the
 * environment (FIREBREAK_URL, FIREBREAK_TOKEN, FIREBREAK_CA), then the
 * config file (--config, default ~/.config/firebreak/fbctl.conf). */
struct ctl {
	struct fbc *http;
	int have_token;
};

/* Open a connection; on failure prints why and returns EXIT_USAGE. */
int ctl_open(const struct opts *o, struct ctl *c);
void ctl_close(struct ctl *c);

/* One request. body (may be NULL) is sent as JSON. On a 2xx answer *out
 * receives the parsed JSON (caller decrefs; an empty body gives an empty
 * object), *raw (when not NULL) the body text (borrowed until the next call)
 * and *status the HTTP status; returns EXIT_VALID. Otherwise prints the
 * server's refusal or the transport error to stderr and returns
 * EXIT_REFUSED. */
int ctl_call(struct ctl *c, const char *method, const char *path, const json_t *body, long *status,
             json_t **out, const char **raw);

/* Append "&key=value" (the first as "?key=value"), value percent-encoded,
 * to path (size n); value NULL appends nothing. 0, or -1 when it does not fit. */
int ctl_query(char *path, size_t n, const char *key, const char *value);

/* Text of a JSON member for a table cell or a key: value line: strings as
 * they are, integers, reals, yes/no, "-" for null or absent, other values
 * as compact JSON. Written into buf (size n, truncated with "..."). */
const char *ctl_cell(const json_t *obj, const char *key, char *buf, size_t n);
/* A Unix time member as "YYYY-MM-DD HH:MM:SSZ" (UTC), or "-". */
const char *ctl_time(const json_t *obj, const char *key, char *buf, size_t n);
/* A string member shortened to its first k characters (a digest), or "-". */
const char *ctl_short(const json_t *obj, const char *key, size_t k, char *buf, size_t n);

/* A text table: add a header row, then rows; printed with aligned columns. */
#define CTL_TABLE_MAX_COLS 12
#define CTL_TABLE_MAX_ROWS 100000
struct ctl_table {
	size_t ncols;
	size_t nrows, cap;
	char **cells; /* nrows * ncols, owned */
};
void ctl_table_init(struct ctl_table *t, size_t ncols);
/* Add a row of ncols strings (copied); exits the process on out of memory. */
void ctl_table_add(struct ctl_table *t, const char *const *row);
void ctl_table_print(const struct ctl_table *t, FILE *out);
void ctl_table_cleanup(struct ctl_table *t);

/* A list command's table: one column per struct ctl_col, one row per
 * element of a JSON array. key is a member of the row, or a dotted path
 * ("preflight.outcome"); kind says how its value is shown. */
enum ctl_col_kind {
	CTL_COL_CELL,   /* ctl_cell: text, numbers, yes/no, "-" */
	CTL_COL_TIME,   /* ctl_time: "YYYY-MM-DD HH:MM:SSZ" */
	CTL_COL_DIGEST, /* ctl_short: the first 12 hex digits */
	CTL_COL_FN,     /* fn(row) computes the cell (key unused) */
};
struct ctl_col {
	const char *head;
	const char *key;
	enum ctl_col_kind kind;
	const char *(*fn)(const json_t *row, char *buf, size_t n);
};
/* Print rows (a JSON array of objects; NULL prints the header alone) as a
 * table of ncols (at most CTL_TABLE_MAX_COLS) columns to out. */
void ctl_print_list(const json_t *rows, const struct ctl_col *cols, size_t ncols, FILE *out);

/* Print label padded to indent columns, then text; on a terminal, text
 * wraps at its width with every further line indented (never cut);
 * otherwise it stays one line. */
void ctl_print_wrapped(FILE *out, const char *label, int indent, const char *text);

/* The worst health signal of the ring where the rollout is now, from an
 * answer of GET /v1/rollouts/{id}/signals (the one with the highest
 * statistic relative to its threshold, as the server chose it): a new
 * object, the ring's "worst" point with "ring" added (caller decrefs), or
 * NULL when no host is degraded on any signal there or nothing was looked
 * at yet. */
json_t *ctl_worst_signal(const json_t *signals);
/* That signal in words into buf ("agent CPU: 4 of 60 degraded vs 1 of 55 in
 * control (...); log-LR 2.10 of 4.38"), or why there is none. */
const char *ctl_signal_text(const json_t *signals, const json_t *worst, char *buf, size_t n);

/* Write text followed by a newline to stdout (the --json output). */
void ctl_print_raw(const char *raw);

/* ---- the online subcommands: online.c and watch.c --------------------------- */

int cmd_whoami(struct opts *o);
int cmd_controller(struct opts *o);
int cmd_channel_create(struct opts *o);
int cmd_channel_list(struct opts *o);
int cmd_content_upload(struct opts *o);
int cmd_content_list(struct opts *o);
int cmd_content_show(struct opts *o);
int cmd_content_clear_bad(struct opts *o);
int cmd_rollout_start(struct opts *o);
int cmd_rollout_status(struct opts *o);
int cmd_rollout_list(struct opts *o);
int cmd_rollout_promote(struct opts *o);
int cmd_rollout_pause(struct opts *o);
int cmd_rollout_resume(struct opts *o);
int cmd_rollout_halt(struct opts *o);
int cmd_rollout_revert(struct opts *o);
int cmd_rollout_watch(struct opts *o);
int cmd_rollout_approve(struct opts *o);
int cmd_policy_bounds_get(struct opts *o);
int cmd_policy_bounds_set(struct opts *o);
int cmd_ring_list(struct opts *o);
int cmd_ring_set(struct opts *o);
int cmd_pin_list(struct opts *o);
int cmd_pin_add(struct opts *o);
int cmd_pin_rm(struct opts *o);
int cmd_agent_list(struct opts *o);
int cmd_agent_show(struct opts *o);
int cmd_agent_revoke(struct opts *o);
int cmd_token_create(struct opts *o);
int cmd_token_list(struct opts *o);
int cmd_token_revoke(struct opts *o);
int cmd_audit(struct opts *o);
int cmd_user_create(struct opts *o);
int cmd_user_list(struct opts *o);
int cmd_user_show(struct opts *o);
int cmd_user_set(struct opts *o);
int cmd_user_disable(struct opts *o);
int cmd_user_enable(struct opts *o);
int cmd_enroll_token_create(struct opts *o);

/* ---- tenants and customer content policies: tenants.c ---------------------- */

int cmd_tenant_list(struct opts *o);
int cmd_tenant_create(struct opts *o);
int cmd_tenant_show(struct opts *o);
int cmd_tenant_group_create(struct opts *o);
int cmd_policy_list(struct opts *o);
int cmd_policy_set(struct opts *o);
int cmd_policy_delete(struct opts *o);

#endif
