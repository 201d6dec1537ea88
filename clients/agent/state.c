/* fb-agent's persistent state (state.json, boot.json, identity.json, the A/B
 * slot files) and the boot-loop guard. See state.h for the contracts and
 * clients/agent/README.md for the on-disk layout. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_FILE    "state.json"
#define BOOT_FILE     "boot.json"
#define CRUMB_FILE    "interpreting"
#define IDENTITY_FILE "identity.json"
#define MAX_SMALL     (64 * 1024) /* bytes of boot.json / identity.json */

static enum fb_rc path_join(const char *dir, const char *name, char *buf, size_t n)
{
	return snprintf(buf, n, "%s/%s", dir, name) < (int)n ? FB_OK : FB_EINVAL;
}

static enum fb_rc mkdir_p1(const char *path, struct fb_err *err)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return FB_OK;
	fb_err_set(err, "mkdir %s: %s", path, strerror(errno));
	return FB_EIO;
}

static enum fb_rc fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return FB_EIO;
	int r = fsync(fd);
	close(fd);
	return r ? FB_EIO : FB_OK;
}

/* ---- JSON helpers --------------------------------------------------------- */

static enum fb_rc write_json(const char *dir, const char *name, const json_t *j, mode_t mode,
                             struct fb_err *err)
{
	char path[PATH_MAX];
	if (path_join(dir, name, path, sizeof path)) {
		fb_err_set(err, "%s/%s: path too long", dir, name);
		return FB_EINVAL;
	}
	char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return FB_ENOMEM;
	size_t len = strlen(text);
	enum fb_rc rc = fb_file_write_atomic(path, text, len, mode);
	if (rc)
		fb_err_set(err, "write %s: %s", path, fb_rc_str(rc));
	sodium_memzero(text, len); /* identity.json holds secrets */
	free(text);
	return rc;
}

/* Read dir/name as a JSON object; *out NULL (and FB_OK) when the file does
 * not exist. */
static enum fb_rc read_json(const char *dir, const char *name, size_t max, json_t **out,
                            struct fb_err *err)
{
	*out = NULL;
	char path[PATH_MAX];
	if (path_join(dir, name, path, sizeof path)) {
		fb_err_set(err, "%s/%s: path too long", dir, name);
		return FB_EINVAL;
	}
	unsigned char *data = NULL;
	size_t len = 0;
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return FB_OK;
	enum fb_rc rc = fb_file_read(path, max, &data, &len);
	if (rc) {
		fb_err_set(err, "read %s: %s", path, fb_rc_str(rc));
		return rc;
	}
	json_error_t je;
	json_t *j = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &je);
	sodium_memzero(data, len);
	free(data);
	if (!json_is_object(j)) {
		fb_err_set(err, "%s: not a JSON object (%s at line %d)", path, j ? "" : je.text,
		           j ? 0 : je.line);
		json_decref(j);
		return FB_EFORMAT;
	}
	*out = j;
	return FB_OK;
}

static int get_i64(const json_t *o, const char *k, int64_t min, int64_t max, int64_t *out)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v))
		return -1;
	json_int_t x = json_integer_value(v);
	if (x < min || x > max)
		return -1;
	*out = x;
	return 0;
}

/* A string member of at most n-1 bytes into buf; "" when allowed and absent. */
static int get_str(const json_t *o, const char *k, char *buf, size_t n)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_string(v) || json_string_length(v) >= n)
		return -1;
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int sha_or_empty(const char *s)
{
	return s[0] == '\0' || fb_is_sha256_hex(s);
}

/* ---- state.json ----------------------------------------------------------- */

static enum fb_rc load_channel(struct ag_state *s, const json_t *o, size_t i, struct fb_err *err)
{
	struct ag_channel c;
	memset(&c, 0, sizeof c);
	int64_t id = 0;
	const json_t *slots = json_object_get(o, "slots");
	const json_t *vers = json_object_get(o, "slot_versions");
	const char *act = json_string_value(json_object_get(o, "active"));
	if (get_i64(o, "id", 1, UINT32_MAX, &id) || !json_is_array(slots) ||
	    json_array_size(slots) != 2 || !json_is_array(vers) || json_array_size(vers) != 2 ||
	    get_str(o, "lkg", c.lkg, sizeof c.lkg) || !sha_or_empty(c.lkg) ||
	    get_i64(o, "changed_at", 0, INT64_MAX, &c.changed_at)) {
		fb_err_set(err,
		           "channels[%zu]: missing or malformed id, slots, slot_versions, lkg "
		           "or changed_at",
		           i);
		return FB_EFORMAT;
	}
	c.id = (uint32_t)id;
	for (size_t k = 0; k < 2; k++) {
		const json_t *v = json_array_get(slots, k);
		const json_t *ver = json_array_get(vers, k);
		if (!json_is_string(v) || json_string_length(v) >= sizeof c.slot_sha[k] ||
		    !json_is_integer(ver) || json_integer_value(ver) < 0) {
			fb_err_set(err, "channels[%zu].slots[%zu]: malformed", i, k);
			return FB_EFORMAT;
		}
		memcpy(c.slot_sha[k], json_string_value(v), json_string_length(v) + 1);
		c.slot_version[k] = json_integer_value(ver);
		if (!sha_or_empty(c.slot_sha[k])) {
			fb_err_set(err, "channels[%zu].slots[%zu]: not a sha256", i, k);
			return FB_EFORMAT;
		}
	}
	if (json_is_null(json_object_get(o, "active")))
		c.active = AG_SLOT_NONE;
	else if (act && strcmp(act, "A") == 0)
		c.active = AG_SLOT_A;
	else if (act && strcmp(act, "B") == 0)
		c.active = AG_SLOT_B;
	else {
		fb_err_set(err, "channels[%zu].active: expected \"A\", \"B\" or null", i);
		return FB_EFORMAT;
	}
	if (c.active != AG_SLOT_NONE && !c.slot_sha[c.active][0]) {
		fb_err_set(err, "channels[%zu].active: names an empty slot", i);
		return FB_EFORMAT;
	}
	if (ag_state_channel(s, c.id)) {
		fb_err_set(err, "channels[%zu]: channel %u listed twice", i, c.id);
		return FB_EFORMAT;
	}
	s->ch[s->n_channels++] = c;
	return FB_OK;
}

static enum fb_rc load_state(struct ag_state *s, const json_t *j, struct fb_err *err)
{
	const json_t *chs = json_object_get(j, "channels");
	const json_t *ref = json_object_get(j, "refused");
	const json_t *unc = json_object_get(j, "unclean_starts");
	const json_t *evs = json_object_get(j, "events");
	if (get_i64(j, "sequence", 0, INT64_MAX, &s->sequence) ||
	    get_str(j, "doc_sha256", s->doc_sha, sizeof s->doc_sha) || !sha_or_empty(s->doc_sha) ||
	    get_str(j, "etag", s->etag, sizeof s->etag)) {
		fb_err_set(err, "sequence, doc_sha256 or etag missing or malformed");
		return FB_EFORMAT;
	}
	if (!json_is_array(chs) || json_array_size(chs) > AG_MAX_CHANNELS || !json_is_array(ref) ||
	    json_array_size(ref) > AG_MAX_REFUSED || !json_is_array(unc) ||
	    json_array_size(unc) > AG_MAX_UNCLEAN || !json_is_array(evs) ||
	    json_array_size(evs) > AG_MAX_EVENTS) {
		fb_err_set(err, "channels, refused, unclean_starts or events: missing, not an "
		                "array or over its cap");
		return FB_EFORMAT;
	}
	size_t i;
	json_t *v;
	json_array_foreach(chs, i, v)
	{
		enum fb_rc rc = load_channel(s, v, i, err);
		if (rc)
			return rc;
	}
	json_array_foreach(ref, i, v)
	{
		struct ag_refusal *r = &s->refused[s->n_refused];
		int64_t ch = 0;
		if (get_i64(v, "channel", 1, UINT32_MAX, &ch) ||
		    get_str(v, "sha256", r->sha256, sizeof r->sha256) ||
		    !fb_is_sha256_hex(r->sha256) ||
		    get_i64(v, "sequence", 0, INT64_MAX, &r->sequence) ||
		    get_str(v, "reason", r->reason, sizeof r->reason)) {
			fb_err_set(err, "refused[%zu]: malformed", i);
			return FB_EFORMAT;
		}
		r->channel = (uint32_t)ch;
		s->n_refused++;
	}
	json_array_foreach(unc, i, v)
	{
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			fb_err_set(err, "unclean_starts[%zu]: not a time", i);
			return FB_EFORMAT;
		}
		s->unclean[s->n_unclean++] = json_integer_value(v);
	}
	json_array_foreach(evs, i, v)
	{
		if (!json_is_object(v) || !json_is_string(json_object_get(v, "id"))) {
			fb_err_set(err, "events[%zu]: not an event with an id", i);
			return FB_EFORMAT;
		}
	}
	json_decref(s->events);
	s->events = json_deep_copy(evs);
	return s->events ? FB_OK : FB_ENOMEM;
}

enum fb_rc ag_state_open(const char *dir, struct ag_state **out, struct fb_err *err)
{
	*out = NULL;
	enum fb_rc rc = FB_OK;
	json_t *j = NULL;
	char path[PATH_MAX];
	if (sodium_init() < 0)
		return FB_EINTERNAL;
	struct ag_state *s = calloc(1, sizeof *s);
	if (!s)
		return FB_ENOMEM;
	s->dir = strdup(dir);
	s->events = json_array();
	if (!s->dir || !s->events) {
		rc = FB_ENOMEM;
		goto out;
	}
	if ((rc = mkdir_p1(dir, err)))
		goto out;
	if (path_join(dir, "slots", path, sizeof path)) {
		fb_err_set(err, "state directory path too long");
		rc = FB_EINVAL;
		goto out;
	}
	if ((rc = mkdir_p1(path, err)))
		goto out;
	if ((rc = read_json(dir, STATE_FILE, AG_MAX_STATE_FILE, &j, err)))
		goto out;
	if (j && (rc = load_state(s, j, err))) {
		fb_err_prefix(err, "%s/%s", dir, STATE_FILE);
		goto out;
	}
	*out = s;
	s = NULL;
out:
	json_decref(j);
	ag_state_free(s);
	return rc;
}

void ag_state_free(struct ag_state *s)
{
	if (!s)
		return;
	json_decref(s->events);
	free(s->dir);
	free(s);
}

static json_t *channel_json(const struct ag_channel *c)
{
	static const char *const names[] = {"A", "B"};
	return json_pack("{s:I, s:[s,s], s:[I,I], s:o, s:s, s:I}", "id", (json_int_t)c->id, "slots",
	                 c->slot_sha[0], c->slot_sha[1], "slot_versions",
	                 (json_int_t)c->slot_version[0], (json_int_t)c->slot_version[1], "active",
	                 c->active == AG_SLOT_NONE ? json_null() : json_string(names[c->active]),
	                 "lkg", c->lkg, "changed_at", (json_int_t)c->changed_at);
}

enum fb_rc ag_state_save(struct ag_state *s, struct fb_err *err)
{
	enum fb_rc rc = FB_ENOMEM;
	json_t *chs = json_array(), *ref = json_array(), *unc = json_array(), *j = NULL;
	if (!chs || !ref || !unc)
		goto out;
	for (size_t i = 0; i < s->n_channels; i++)
		if (json_array_append_new(chs, channel_json(&s->ch[i])))
			goto out;
	for (size_t i = 0; i < s->n_refused; i++) {
		const struct ag_refusal *r = &s->refused[i];
		if (json_array_append_new(
		            ref, json_pack("{s:I, s:s, s:I, s:s}", "channel",
		                           (json_int_t)r->channel, "sha256", r->sha256, "sequence",
		                           (json_int_t)r->sequence, "reason", r->reason)))
			goto out;
	}
	for (size_t i = 0; i < s->n_unclean; i++)
		if (json_array_append_new(unc, json_integer(s->unclean[i])))
			goto out;
	j = json_pack("{s:i, s:I, s:s, s:s, s:O, s:O, s:O, s:O}", "format", 1, "sequence",
	              (json_int_t)s->sequence, "doc_sha256", s->doc_sha, "etag", s->etag,
	              "channels", chs, "refused", ref, "unclean_starts", unc, "events", s->events);
	if (!j)
		goto out;
	rc = write_json(s->dir, STATE_FILE, j, 0600, err);
out:
	if (rc == FB_ENOMEM)
		fb_err_set(err, "state: out of memory");
	json_decref(chs);
	json_decref(ref);
	json_decref(unc);
	json_decref(j);
	return rc;
}

struct ag_channel *ag_state_channel(struct ag_state *s, uint32_t id)
{
	for (size_t i = 0; i < s->n_channels; i++)
		if (s->ch[i].id == id)
			return &s->ch[i];
	return NULL;
}

struct ag_channel *ag_state_channel_add(struct ag_state *s, uint32_t id)
{
	struct ag_channel *c = ag_state_channel(s, id);
	if (c || s->n_channels >= AG_MAX_CHANNELS)
		return c;
	c = &s->ch[s->n_channels++];
	memset(c, 0, sizeof *c);
	c->id = id;
	c->active = AG_SLOT_NONE;
	return c;
}

const char *ag_state_active(struct ag_state *s, uint32_t id)
{
	struct ag_channel *c = ag_state_channel(s, id);
	if (!c || c->active == AG_SLOT_NONE)
		return NULL;
	return c->slot_sha[c->active];
}

json_t *ag_state_active_json(struct ag_state *s)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < s->n_channels; i++) {
		const struct ag_channel *c = &s->ch[i];
		if (c->active == AG_SLOT_NONE)
			continue;
		char key[16];
		snprintf(key, sizeof key, "%u", c->id);
		if (json_object_set_new(o, key, json_string(c->slot_sha[c->active]))) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* ---- slots ---------------------------------------------------------------- */

enum fb_rc ag_slot_path(const struct ag_state *s, uint32_t ch, int slot, char *buf, size_t n)
{
	const char *name = slot == AG_SLOT_A ? "A" : slot == AG_SLOT_B ? "B" : "active";
	int w = snprintf(buf, n, "%s/slots/%u/%s", s->dir, ch, name);
	return w >= 0 && (size_t)w < n ? FB_OK : FB_EINVAL;
}

/* Point slots/<ch>/active at slot (symlink made beside it, renamed over the
 * old one, directory fsynced), or remove it for AG_SLOT_NONE. */
static enum fb_rc switch_pointer(const struct ag_state *s, uint32_t ch, int slot,
                                 struct fb_err *err)
{
	char ptr[PATH_MAX], tmp[PATH_MAX + 16], dir[PATH_MAX];
	if (ag_slot_path(s, ch, AG_SLOT_NONE, ptr, sizeof ptr) ||
	    snprintf(dir, sizeof dir, "%s/slots/%u", s->dir, ch) >= (int)sizeof dir) {
		fb_err_set(err, "slot path too long");
		return FB_EINVAL;
	}
	if (slot == AG_SLOT_NONE) {
		if (unlink(ptr) && errno != ENOENT) {
			fb_err_set(err, "unlink %s: %s", ptr, strerror(errno));
			return FB_EIO;
		}
	} else {
		snprintf(tmp, sizeof tmp, "%s.tmp", ptr);
		(void)unlink(tmp);
		if (symlink(slot == AG_SLOT_A ? "A" : "B", tmp) || rename(tmp, ptr)) {
			fb_err_set(err, "switch %s: %s", ptr, strerror(errno));
			(void)unlink(tmp);
			return FB_EIO;
		}
	}
	if (fsync_dir(dir)) {
		fb_err_set(err, "fsync %s: %s", dir, strerror(errno));
		return FB_EIO;
	}
	return FB_OK;
}

/* The content that stops being active becomes the last known good, unless it
 * is refused (it made the host loop) or there is none. */
static void retire_active(struct ag_state *s, struct ag_channel *c, const char *next)
{
	if (c->active == AG_SLOT_NONE)
		return;
	const char *old = c->slot_sha[c->active];
	if (old[0] && strcmp(old, next) != 0 && !ag_refused(s, c->id, old))
		memcpy(c->lkg, old, sizeof c->lkg);
}

enum fb_rc ag_slot_apply(struct ag_state *s, uint32_t ch, const char *sha256, int64_t version,
                         const void *blob, size_t len, int64_t now, struct fb_err *err)
{
	enum fb_rc rc;
	char path[PATH_MAX];
	struct ag_channel *c = ag_state_channel_add(s, ch);
	if (!c) {
		fb_err_set(err, "more than %d channels tracked", AG_MAX_CHANNELS);
		return FB_ETOOBIG;
	}
	if (!fb_is_sha256_hex(sha256)) {
		fb_err_set(err, "not a sha256: %.80s", sha256);
		return FB_EINVAL;
	}
	/* The inactive slot; with none active, the slot not holding the LKG. */
	int target;
	if (c->active != AG_SLOT_NONE)
		target = 1 - c->active;
	else
		target = (c->lkg[0] && strcmp(c->slot_sha[AG_SLOT_A], c->lkg) == 0) ? AG_SLOT_B
		                                                                    : AG_SLOT_A;
	if (snprintf(path, sizeof path, "%s/slots/%u", s->dir, ch) >= (int)sizeof path) {
		fb_err_set(err, "slot path too long");
		return FB_EINVAL;
	}
	if ((rc = mkdir_p1(path, err)))
		return rc;
	if (ag_slot_path(s, ch, target, path, sizeof path)) {
		fb_err_set(err, "slot path too long");
		return FB_EINVAL;
	}
	/* The slot is overwritten: forget what it held first, so a crash between
	 * the write and the save never leaves a record naming other bytes. */
	if (strcmp(c->slot_sha[target], c->lkg) == 0 && strcmp(c->lkg, sha256) != 0)
		c->lkg[0] = '\0';
	c->slot_sha[target][0] = '\0';
	c->slot_version[target] = 0;
	if ((rc = ag_state_save(s, err)))
		return rc;
	if ((rc = fb_file_write_atomic(path, blob, len, 0644))) {
		fb_err_set(err, "stage %s: %s", path, fb_rc_str(rc));
		return rc;
	}
	memcpy(c->slot_sha[target], sha256, FB_SHA256_HEX_LEN + 1);
	c->slot_version[target] = version;
	if ((rc = ag_state_save(s, err)))
		return rc;
	if ((rc = switch_pointer(s, ch, target, err)))
		return rc;
	retire_active(s, c, sha256);
	c->active = target;
	c->changed_at = now;
	return ag_state_save(s, err);
}

enum fb_rc ag_slot_deactivate(struct ag_state *s, uint32_t ch, int64_t now, struct fb_err *err)
{
	(void)now;
	struct ag_channel *c = ag_state_channel(s, ch);
	if (!c || c->active == AG_SLOT_NONE)
		return FB_OK;
	enum fb_rc rc = switch_pointer(s, ch, AG_SLOT_NONE, err);
	if (rc)
		return rc;
	retire_active(s, c, "");
	c->active = AG_SLOT_NONE;
	c->changed_at = 0;
	return ag_state_save(s, err);
}

/* ---- refusals ------------------------------------------------------------- */

const struct ag_refusal *ag_refused(const struct ag_state *s, uint32_t ch, const char *sha256)
{
	for (size_t i = 0; i < s->n_refused; i++)
		if (s->refused[i].channel == ch && strcmp(s->refused[i].sha256, sha256) == 0)
			return &s->refused[i];
	return NULL;
}

enum fb_rc ag_refuse(struct ag_state *s, uint32_t ch, const char *sha256, int64_t sequence,
                     const char *reason)
{
	if (!fb_is_sha256_hex(sha256))
		return FB_EINVAL;
	if (ag_refused(s, ch, sha256))
		return FB_OK;
	if (s->n_refused >= AG_MAX_REFUSED) { /* forget the oldest */
		memmove(&s->refused[0], &s->refused[1],
		        (AG_MAX_REFUSED - 1) * sizeof s->refused[0]);
		s->n_refused--;
	}
	struct ag_refusal *r = &s->refused[s->n_refused++];
	memset(r, 0, sizeof *r);
	r->channel = ch;
	memcpy(r->sha256, sha256, sizeof r->sha256);
	r->sequence = sequence;
	snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
	return FB_OK;
}

size_t ag_refusals_lift(struct ag_state *s, uint32_t ch, const char *sha256, int64_t sequence)
{
	size_t lifted = 0;
	for (size_t i = 0; i < s->n_refused;) {
		struct ag_refusal *r = &s->refused[i];
		if (r->channel == ch && sequence > r->sequence && strcmp(r->sha256, sha256) != 0) {
			memmove(r, r + 1, (s->n_refused - i - 1) * sizeof *r);
			s->n_refused--;
			lifted++;
		} else {
			i++;
		}
	}
	return lifted;
}

/* ---- events --------------------------------------------------------------- */

enum fb_rc ag_event_add(struct ag_state *s, json_t *ev)
{
	const char *id = json_string_value(json_object_get(ev, "id"));
	if (!id) {
		json_decref(ev);
		return FB_EINVAL;
	}
	size_t i;
	json_t *v;
	json_array_foreach(s->events, i, v)
	{
		if (strcmp(json_string_value(json_object_get(v, "id")), id) == 0) {
			json_decref(ev);
			return FB_OK;
		}
	}
	while (json_array_size(s->events) >= AG_MAX_EVENTS)
		json_array_remove(s->events, 0);
	return json_array_append_new(s->events, ev) ? FB_ENOMEM : FB_OK;
}

void ag_events_remove_first(struct ag_state *s, size_t n)
{
	while (n-- && json_array_size(s->events))
		json_array_remove(s->events, 0);
}

size_t ag_events_expire(struct ag_state *s, int64_t now)
{
	size_t dropped = 0;
	for (size_t i = 0; i < json_array_size(s->events);) {
		json_t *at = json_object_get(json_array_get(s->events, i), "at");
		if (json_is_integer(at) && json_integer_value(at) < now - AG_EVENT_MAX_AGE + 60) {
			json_array_remove(s->events, i);
			dropped++;
		} else {
			i++;
		}
	}
	return dropped;
}

/* ---- boots ---------------------------------------------------------------- */

static enum fb_rc write_boot(struct ag_state *s, const char *boot_id, int64_t started, int clean,
                             const char *crash_code, struct fb_err *err)
{
	json_t *j = json_pack("{s:s, s:I, s:b}", "boot_id", boot_id, "started", (json_int_t)started,
	                      "clean", clean);
	if (!j)
		return FB_ENOMEM;
	if (crash_code && json_object_set_new(j, "crash_code", json_string(crash_code))) {
		json_decref(j);
		return FB_ENOMEM;
	}
	enum fb_rc rc = write_json(s->dir, BOOT_FILE, j, 0600, err);
	json_decref(j);
	return rc;
}

static enum fb_rc queue_crash(struct ag_state *s, const char *prev, const char *code,
                              uint32_t faulting, int64_t now)
{
	for (size_t i = 0; i < s->n_channels; i++) {
		const struct ag_channel *c = &s->ch[i];
		if (c->active == AG_SLOT_NONE)
			continue;
		char id[80];
		snprintf(id, sizeof id, "crash-%s-%u", prev, c->id);
		json_t *ev = json_pack("{s:s, s:s, s:I, s:s, s:I, s:s}", "id", id, "kind", "crash",
		                       "at", (json_int_t)now, "boot_id", prev, "channel",
		                       (json_int_t)c->id, "content", c->slot_sha[c->active]);
		if (ev && code && code[0] && json_object_set_new(ev, "code", json_string(code))) {
			json_decref(ev);
			return FB_ENOMEM;
		}
		if (ev && faulting &&
		    json_object_set_new(ev, "faulting_channel", json_integer(faulting))) {
			json_decref(ev);
			return FB_ENOMEM;
		}
		if (!ev)
			return FB_ENOMEM;
		enum fb_rc rc = ag_event_add(s, ev);
		if (rc)
			return rc;
	}
	return FB_OK;
}

void ag_breadcrumb(struct ag_state *s, uint32_t ch)
{
	char path[PATH_MAX], text[16];
	if (snprintf(path, sizeof path, "%s/" CRUMB_FILE, s->dir) >= (int)sizeof path)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	int n = ch ? snprintf(text, sizeof text, "%u\n", ch) : 0;
	/* best effort: a short write has no newline, and names nothing */
	ssize_t w = n > 0 ? write(fd, text, (size_t)n) : 0;
	(void)w;
	close(fd);
}

/* The channel the breadcrumb names, 0 when none (or it is not a channel). */
static uint32_t read_breadcrumb(const struct ag_state *s)
{
	char path[PATH_MAX], text[16] = "";
	if (snprintf(path, sizeof path, "%s/" CRUMB_FILE, s->dir) >= (int)sizeof path)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 1 || text[n - 1] != '\n')
		return 0;
	text[n - 1] = '\0';
	int64_t v;
	return fb_parse_i64(text, 1, 0xffffffffLL, &v) ? 0 : (uint32_t)v;
}

enum fb_rc ag_boot_begin(struct ag_state *s, int64_t now, struct ag_boot *out, struct fb_err *err)
{
	memset(out, 0, sizeof *out);
	unsigned char rnd[AG_BOOT_ID_LEN / 2];
	randombytes_buf(rnd, sizeof rnd);
	fb_hex_encode(rnd, sizeof rnd, out->boot_id);

	json_t *prev = NULL;
	struct fb_err rerr = {""};
	enum fb_rc rc = read_json(s->dir, BOOT_FILE, MAX_SMALL, &prev, &rerr);
	char code[64] = "";
	if (rc == FB_OK && prev) {
		json_t *clean = json_object_get(prev, "clean");
		if (get_str(prev, "boot_id", out->prev_boot_id, sizeof out->prev_boot_id) ||
		    !json_is_boolean(clean)) {
			/* A marker we cannot read counts as an unclean stop. */
			snprintf(out->prev_boot_id, sizeof out->prev_boot_id, "unknown");
			out->prev_unclean = 1;
		} else {
			out->prev_unclean = !json_is_true(clean);
		}
		(void)get_str(prev, "crash_code", code, sizeof code);
	} else if (rc) {
		snprintf(out->prev_boot_id, sizeof out->prev_boot_id, "unknown");
		out->prev_unclean = 1;
	}
	json_decref(prev);
	out->prev_interpreting = read_breadcrumb(s);
	ag_breadcrumb(s, 0);
	if (out->prev_unclean) {
		if ((rc = queue_crash(s, out->prev_boot_id, code, out->prev_interpreting, now)))
			goto out;
		if (s->n_unclean >= AG_MAX_UNCLEAN) {
			memmove(&s->unclean[0], &s->unclean[1],
			        (AG_MAX_UNCLEAN - 1) * sizeof s->unclean[0]);
			s->n_unclean--;
		}
		s->unclean[s->n_unclean++] = now;
	}
	if ((rc = ag_state_save(s, err)))
		goto out;
	rc = write_boot(s, out->boot_id, now, 0, NULL, err);
out:
	return rc;
}

enum fb_rc ag_boot_end(struct ag_state *s, const char *boot_id, struct fb_err *err)
{
	json_t *prev = NULL;
	int64_t started = 0;
	if (read_json(s->dir, BOOT_FILE, MAX_SMALL, &prev, NULL) == FB_OK && prev)
		(void)get_i64(prev, "started", 0, INT64_MAX, &started);
	json_decref(prev);
	return write_boot(s, boot_id, started, 1, NULL, err);
}

void ag_boot_note_crash(struct ag_state *s, const char *boot_id, const char *code)
{
	(void)write_boot(s, boot_id, fb_now_ms() / 1000, 0, code, NULL);
}

/* ---- boot-loop guard ------------------------------------------------------ */

enum fb_rc ag_bootloop_check(struct ag_state *s, const struct ag_guard *g, const char *boot_id,
                             int64_t now, size_t *reverted, struct fb_err *err)
{
	*reverted = 0;
	int64_t t = 0;
	for (size_t i = 0; i < s->n_channels; i++)
		if (s->ch[i].changed_at > t)
			t = s->ch[i].changed_at;
	if (t == 0 || g->starts <= 0)
		return FB_OK;
	int64_t since = now - g->minutes * 60;
	int64_t count = 0;
	for (size_t i = 0; i < s->n_unclean; i++)
		if (s->unclean[i] >= t && s->unclean[i] > since)
			count++;
	if (count < g->starts)
		return FB_OK;
	enum fb_rc rc = FB_OK;
	for (size_t i = 0; i < s->n_channels; i++) {
		struct ag_channel *c = &s->ch[i];
		if (c->changed_at != t)
			continue;
		char from[FB_SHA256_HEX_LEN + 1] = "";
		if (c->active != AG_SLOT_NONE)
			memcpy(from, c->slot_sha[c->active], sizeof from);
		int back = AG_SLOT_NONE;
		for (int k = 0; k < 2; k++)
			if (c->lkg[0] && k != c->active && strcmp(c->slot_sha[k], c->lkg) == 0)
				back = k;
		if ((rc = switch_pointer(s, c->id, back, err)))
			return rc;
		char reason[AG_MAX_REASON];
		snprintf(
		        reason, sizeof reason,
		        "boot loop: %lld unclean starts within %lld minutes after it became active",
		        (long long)count, (long long)g->minutes);
		if (from[0] && (rc = ag_refuse(s, c->id, from, s->sequence, reason)))
			return rc;
		c->active = back;
		c->changed_at = 0;
		char id[80];
		snprintf(id, sizeof id, "bootloop-%s-%u", boot_id, c->id);
		json_t *ev = json_pack("{s:s, s:s, s:I, s:s, s:I, s:s, s:s, s:I}", "id", id, "kind",
		                       "boot_loop", "at", (json_int_t)now, "boot_id", boot_id,
		                       "channel", (json_int_t)c->id, "reverted_from", from,
		                       "reverted_to", back == AG_SLOT_NONE ? "" : c->lkg,
		                       "unclean_starts", (json_int_t)count);
		if (!ev)
			return FB_ENOMEM;
		if ((rc = ag_event_add(s, ev)))
			return rc;
		(*reverted)++;
	}
	s->n_unclean = 0;
	return ag_state_save(s, err);
}

/* ---- identity ------------------------------------------------------------- */

enum fb_rc ag_identity_load(const char *dir, struct ag_identity *id, int *found, struct fb_err *err)
{
	memset(id, 0, sizeof *id);
	*found = 0;
	char path[PATH_MAX];
	if (path_join(dir, IDENTITY_FILE, path, sizeof path)) {
		fb_err_set(err, "state directory path too long");
		return FB_EINVAL;
	}
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? FB_OK : FB_EIO;
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077)) {
		fb_err_set(err, "%s: must be a regular file of mode 0600 (is %04o); chmod 600 it",
		           path, (unsigned)(st.st_mode & 07777));
		return FB_EPERM;
	}
	json_t *j = NULL;
	enum fb_rc rc = read_json(dir, IDENTITY_FILE, MAX_SMALL, &j, err);
	if (rc)
		return rc;
	char seed[64] = "", pk[64] = "";
	if (get_i64(j, "agent_id", 0, INT64_MAX, &id->agent_id) ||
	    get_str(j, "agent_token", id->token, sizeof id->token) ||
	    get_str(j, "seed", seed, sizeof seed) || get_str(j, "public_key", pk, sizeof pk) ||
	    sodium_base642bin(id->seed, sizeof id->seed, seed, strlen(seed), NULL, NULL, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) ||
	    sodium_base642bin(id->pk, sizeof id->pk, pk, strlen(pk), NULL, NULL, NULL,
	                      sodium_base64_VARIANT_ORIGINAL)) {
		fb_err_set(err,
		           "%s: agent_id, agent_token, seed or public_key missing or malformed",
		           path);
		rc = FB_EFORMAT;
	} else {
		unsigned char check[32], sk[64];
		crypto_sign_seed_keypair(check, sk, id->seed);
		sodium_memzero(sk, sizeof sk);
		if (sodium_memcmp(check, id->pk, sizeof check) != 0) {
			fb_err_set(err, "%s: seed does not match public_key", path);
			rc = FB_EFORMAT;
		}
	}
	sodium_memzero(seed, sizeof seed);
	json_decref(j);
	if (rc)
		ag_identity_wipe(id);
	else
		*found = 1;
	return rc;
}

enum fb_rc ag_identity_save(const char *dir, const struct ag_identity *id, struct fb_err *err)
{
	char seed[64], pk[64];
	sodium_bin2base64(seed, sizeof seed, id->seed, sizeof id->seed,
	                  sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(pk, sizeof pk, id->pk, sizeof id->pk, sodium_base64_VARIANT_ORIGINAL);
	json_t *j = json_pack("{s:I, s:s, s:s, s:s}", "agent_id", (json_int_t)id->agent_id,
	                      "agent_token", id->token, "seed", seed, "public_key", pk);
	sodium_memzero(seed, sizeof seed);
	if (!j)
		return FB_ENOMEM;
	enum fb_rc rc = write_json(dir, IDENTITY_FILE, j, 0600, err);
	/* jansson copied the secrets; wipe its copies before freeing. */
	json_t *v = json_object_get(j, "seed");
	if (v)
		sodium_memzero((char *)json_string_value(v), json_string_length(v));
	v = json_object_get(j, "agent_token");
	if (v)
		sodium_memzero((char *)json_string_value(v), json_string_length(v));
	json_decref(j);
	return rc;
}

void ag_identity_generate(struct ag_identity *id)
{
	unsigned char sk[64];
	memset(id, 0, sizeof *id);
	randombytes_buf(id->seed, sizeof id->seed);
	crypto_sign_seed_keypair(id->pk, sk, id->seed);
	sodium_memzero(sk, sizeof sk);
}

void ag_identity_wipe(struct ag_identity *id)
{
	sodium_memzero(id, sizeof *id);
}
