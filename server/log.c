/* Structured logging: one JSON object per line on stderr. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum log_level log_min_level = LOG_INFO;
static _Thread_local char tl_request_id[40];

enum fb_rc log_level_parse(const char *s, enum log_level *out)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return FB_OK;
		}
	}
	return FB_EINVAL;
}

void log_set_request_id(const char *id)
{
	if (!id) {
		tl_request_id[0] = '\0';
		return;
	}
	snprintf(tl_request_id, sizeof tl_request_id, "%s", id);
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[80];
	snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (long)(ts.tv_nsec / 1000000) % 1000);

	json_t *o = json_object();
	json_object_set_new(o, "ts", json_string(when));
	json_object_set_new(o, "level", json_string(names[lvl]));
	json_t *m = json_string(msg);
	if (!m) { /* not valid UTF-8: keep the ASCII, mark the rest */
		for (char *c = msg; *c; c++)
			if ((unsigned char)*c >= 0x80)
				*c = '?';
		m = json_string(msg);
	}
	json_object_set_new(o, "msg", m);
	if (tl_request_id[0])
		json_object_set_new(o, "request_id", json_string(tl_request_id));
	char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	if (line) {
		fprintf(stderr, "%s\n", line);
		free(line);
	}
}
