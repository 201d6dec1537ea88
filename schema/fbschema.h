/* libfbschema: the channel-file format (schema/FORMAT.md), its one
 * parser/validator, the JSON text form, the rule interpreter and the
 * preflight gate. Used by the server, the agent, fbctl and the fuzzers. */
#ifndef FB_SCHEMA_H
#define FB_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "fb.h"

/* Hard caps (FORMAT.md, "Limits"). The server caps uploads at CF_MAX_FILE. */
#define CF_MAX_FILE        (1u << 20) /* bytes of one binary channel file */
#define CF_MAX_INSTANCES   10000u     /* template instances in one file */
#define CF_MAX_FIELDS      64u        /* fields of one template */
#define CF_MAX_VALUE       4096u      /* bytes of one string/bytes/regex value */
#define CF_MAX_TEMPLATES   256u       /* template types (id, version) in a registry */
#define CF_MAX_JSON        (8u << 20) /* bytes of a JSON text form / template file */
#define CF_MAX_FILE_STATES 262144u    /* regex instructions (rx_size) summed over a file */
#define CF_FORMAT_VERSION  1u         /* the binary format version this code reads/writes */
#define CF_HEADER_LEN      40u        /* bytes of the file header */
#define CF_DEFAULT_BUDGET  50000000ll /* interpreter steps per event (cf_content_eval) */

/* Field value types; the numbers are the on-disk type tags. */
enum cf_type {
	CF_T_ABSENT = 0, /* an optional field left out */
	CF_T_INT = 1,    /* int64 */
	CF_T_STRING = 2, /* UTF-8-agnostic byte string, no NUL */
	CF_T_BYTES = 3,  /* arbitrary bytes */
	CF_T_REGEX = 4,  /* pattern for rx_compile (schema/rx.h) */
	CF_T_CIDR = 5,   /* IPv4/IPv6 address with prefix length */
	CF_T_SHA256 = 6, /* 32-byte digest */
};

/* Rule actions (an "action" field's value); higher wins when several rules
 * match one event. */
enum cf_action {
	CF_ACT_NONE = 0,  /* no rule matched */
	CF_ACT_LOG = 1,   /* record the event */
	CF_ACT_ALERT = 2, /* raise an alert */
	CF_ACT_BLOCK = 3, /* block the activity */
};

/* Static name of an action ("none", "log", "alert", "block"). */
const char *cf_action_str(enum cf_action a);

/* ---- template registry ---------------------------------------------------- */

struct cf_registry;

/* Load every *.json file of dir (one template type each, FORMAT.md
 * "Templates"), in name order. On success *out is set (caller frees with
 * cf_registry_free()); on failure *out stays NULL and err names the file and
 * the problem. Duplicate (id, version) pairs and more than CF_MAX_TEMPLATES
 * types are refused. */
enum fb_rc cf_registry_load_dir(const char *dir, struct cf_registry **out,
                                struct fb_err *err) FB_MUSTCHECK;
/* What cf_locate_dir looks for. */
enum cf_dir {
	CF_DIR_TEMPLATES, /* the template registry: env FB_TEMPLATES, share/firebreak/templates */
	CF_DIR_CORPUS,    /* the preflight event corpus: env FB_CORPUS, share/firebreak/corpus */
};

/* Find the directory of what for a command-line tool: given (a --templates
 * or --corpus flag) when not NULL, else the environment variable, else the
 * first of ./schema/<templates|corpus> (a checkout), <exe>/../share/firebreak/
 * <name>, /usr/local/share/firebreak/<name> and /usr/share/firebreak/<name>
 * that is a directory. The path goes into out (n bytes). FB_ENOTFOUND when a
 * given or configured directory is not one, or none of the places is; err
 * then names the places looked at. */
enum fb_rc cf_locate_dir(enum cf_dir what, const char *given, char *out, size_t n,
                         struct fb_err *err) FB_MUSTCHECK;

/* Accepts NULL. Files parsed against the registry must be freed first. */
void cf_registry_free(struct cf_registry *reg);
/* Number of template types (id, version) loaded. */
size_t cf_registry_count(const struct cf_registry *reg);

/* The (id, version) pairs this registry interprets, as a new JSON array of
 * {"id": N, "version": N} sorted by id then version (caller json_decref()s);
 * NULL on allocation failure. The agent reports this as its capabilities. */
json_t *cf_registry_capabilities(const struct cf_registry *reg);

/* FB_OK when every {"id","version"} of used also appears in capabilities
 * (both JSON arrays in the form above); FB_ENOTFOUND naming the first
 * missing pair otherwise; FB_EINVAL when either array is malformed. The
 * server calls this before assigning content to an agent. */
enum fb_rc cf_capabilities_cover(const json_t *capabilities, const json_t *used,
                                 struct fb_err *err) FB_MUSTCHECK;

/* ---- binary parser / validator -------------------------------------------- */

struct cf_file;

/* A template type used by a file. */
struct cf_tpl_ref {
	uint32_t id;
	uint16_t version;
};

/* Parse and validate buf[0..len) against reg: every rule of FORMAT.md
 * "Validation". Never reads outside buf. On success *out is set (caller
 * frees with cf_file_free(); it keeps its own copy of the bytes and borrows
 * reg, which must outlive it). On failure *out stays NULL, the result is
 * FB_EFORMAT (or FB_ETOOBIG for a file over CF_MAX_FILE, FB_ENOMEM) and err
 * says what and where: instance index and id, field index and name, byte
 * offset, expected vs found. */
enum fb_rc cf_parse(const struct cf_registry *reg, const void *buf, size_t len,
                    struct cf_file **out, struct fb_err *err) FB_MUSTCHECK;
/* Accepts NULL. */
void cf_file_free(struct cf_file *f);

uint32_t cf_file_channel(const struct cf_file *f);
int64_t cf_file_content_version(const struct cf_file *f);
size_t cf_file_instance_count(const struct cf_file *f);
/* The distinct template types the file uses, sorted by id then version;
 * borrowed, valid while f lives. *n receives the count. */
const struct cf_tpl_ref *cf_file_templates(const struct cf_file *f, size_t *n);
/* The same as a new JSON array of {"id","version"} (caller json_decref()s);
 * NULL on allocation failure. For the signed manifest and
 * cf_capabilities_cover(). */
json_t *cf_file_templates_json(const struct cf_file *f);

/* ---- JSON text form <-> binary (FORMAT.md "Text form") -------------------- */

/* Encode the JSON text form text[0..len) into the binary form. This is a
 * structural encoder: it checks JSON shapes and encodable values but not the
 * template rules, so it can produce files that cf_parse() rejects (the test
 * corpus relies on this); validate the result with cf_parse(). reg may be
 * NULL; when given, the optional "template_name" and field "name"
 * annotations are checked against the template (a field named for another
 * position, or beyond the template's field count, is refused). On success
 * *out (caller frees with free()) and *out_len are set. */
enum fb_rc cf_compile_json(const struct cf_registry *reg, const char *text, size_t len,
                           unsigned char **out, size_t *out_len, struct fb_err *err) FB_MUSTCHECK;

/* Decode a binary file into its JSON text form (NUL-terminated, indented,
 * caller frees with free()). Structural decoding only (header, lengths,
 * checksum, field encodings). reg may be NULL; when given, instances of
 * known templates are annotated with "template_name" and field "name"s
 * (absent fields then appear as {"name": ..., "absent": true}). Compiling
 * the result gives back the same bytes. */
enum fb_rc cf_decompile_json(const struct cf_registry *reg, const void *buf, size_t len, char **out,
                             struct fb_err *err) FB_MUSTCHECK;

/* ---- events and the interpreter ------------------------------------------- */

struct cf_event;

#define CF_EVENT_MAX_ATTRS 32u /* attributes in one event */
#define CF_EVENT_MAX_NAME  64u /* bytes of an attribute name */

/* Build an event from a JSON object of attribute -> string or integer, e.g.
 * {"process_name":"cmd.exe","remote_addr":"10.1.2.3","pid":42}. Strings that
 * are IP addresses or 64 hex digits also serve CIDR and sha256 rules. At most
 * CF_EVENT_MAX_ATTRS attributes, values up to CF_MAX_VALUE bytes. On success
 * *out is set (caller frees with cf_event_free()). */
enum fb_rc cf_event_from_json(const json_t *obj, struct cf_event **out,
                              struct fb_err *err) FB_MUSTCHECK;
/* Same from text. */
enum fb_rc cf_event_from_text(const char *text, size_t len, struct cf_event **out,
                              struct fb_err *err) FB_MUSTCHECK;
void cf_event_free(struct cf_event *ev);

/* The outcome of evaluating one event. */
struct cf_verdict {
	enum cf_action action; /* highest action among matching rules */
	uint32_t matches;      /* how many instances matched */
	uint32_t first_match;  /* instance id of the first match (0 if none) */
	uint32_t action_rule;  /* instance id that set action (0 if none) */
	uint64_t steps;        /* interpreter steps spent */
};

/* Run every instance of f (a detection rule, FORMAT.md "Interpreter") against
 * ev and fill *verdict. budget is the step limit (<= 0: CF_DEFAULT_BUDGET);
 * going over it stops evaluation with FB_ETIMEOUT and an error naming the
 * instance, never a hang. Allocates nothing (safe in a forked child);
 * thread-safe for concurrent calls on the same file. This is the one
 * interpreter: the agent and the preflight both call it. */
enum fb_rc cf_content_eval(const struct cf_file *f, const struct cf_event *ev, int64_t budget,
                           struct cf_verdict *verdict, struct fb_err *err) FB_MUSTCHECK;

/* ---- preflight ------------------------------------------------------------ */

enum cf_preflight_outcome {
	CF_PF_OK = 0,     /* every event evaluated */
	CF_PF_INVALID,    /* the file did not parse (reason says why); no child run */
	CF_PF_CRASH,      /* the child died of a signal */
	CF_PF_TIMEOUT,    /* wall-clock or CPU limit hit; child killed */
	CF_PF_EVAL_ERROR, /* the interpreter returned an error (e.g. step budget) */
	CF_PF_ERROR,      /* preflight itself failed (fork, pipe, corpus) */
};

/* Test-only fault injection for the preflight child (FORMAT.md "Preflight").
 * Content cannot reach these; production callers leave test_fault at 0. */
enum cf_pf_fault {
	CF_PF_FAULT_NONE = 0,
	CF_PF_FAULT_CRASH,     /* child raises SIGSEGV before evaluating */
	CF_PF_FAULT_HANG,      /* child spins forever before evaluating */
	CF_PF_FAULT_NET_PROBE, /* child raises SIGSEGV if it can send to 127.0.0.1 */
};

struct cf_preflight_limits {
	int64_t wall_ms;             /* parent kills the child after this (<= 0: 10000) */
	uint32_t cpu_seconds;        /* RLIMIT_CPU of the child (0: 5) */
	uint64_t address_space;      /* RLIMIT_AS of the child above the caller's current size
	                                (0: 1 GiB; not applied under ASan) */
	int64_t step_budget;         /* per event, as cf_content_eval (<= 0: CF_DEFAULT_BUDGET) */
	enum cf_pf_fault test_fault; /* TEST ONLY: zero in production */
};

struct cf_preflight_report {
	enum cf_preflight_outcome outcome;
	uint64_t events;    /* events evaluated (corpus + generated) */
	uint64_t matches;   /* events on which at least one rule matched */
	int signal;         /* CF_PF_CRASH / CF_PF_TIMEOUT: the signal, else 0 */
	int net_isolated;   /* 1 when the child ran in its own network namespace */
	int64_t elapsed_ms; /* wall-clock time of the child */
	char reason[512];   /* human-readable outcome */
};

/* Parse buf against reg, load the event corpus from corpus_dir (*.json, each
 * a JSON array of event objects; NULL: no corpus) and generate events from
 * the file's own values, all in the calling process; then fork a child that
 * evaluates every event under RLIMIT_CPU, RLIMIT_AS, no new file descriptors
 * and (where the kernel permits) a private network namespace, while the
 * parent enforces limits->wall_ms and kills it past that. Safe to call from
 * a multi-threaded process (the child allocates nothing and takes no locks);
 * the caller must not ignore SIGCHLD or reap children it did not start.
 * limits may be NULL (defaults). Returns FB_OK when the file was judged
 * (report->outcome says whether it passed: CF_PF_OK); otherwise the error,
 * with outcome CF_PF_ERROR and the reason in report->reason. */
enum fb_rc cf_preflight(const struct cf_registry *reg, const void *buf, size_t len,
                        const char *corpus_dir, const struct cf_preflight_limits *limits,
                        struct cf_preflight_report *report) FB_MUSTCHECK;

/* Static name of an outcome ("ok", "crash", "time-out", ...). */
const char *cf_preflight_outcome_str(enum cf_preflight_outcome o);

#endif
