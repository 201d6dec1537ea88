/* Structured logging: one JSON object per line on stderr, with the request
 * id of the current thread's request when there is one. */
#ifndef FB_LOG_H
#define FB_LOG_H

#include "fb.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

extern enum log_level log_min_level;

/* Parse "debug", "info", "warn", "error"; FB_EINVAL otherwise. */
enum fb_rc log_level_parse(const char *s, enum log_level *out) FB_MUSTCHECK;
/* Set (or clear with NULL) the request id logged by this thread. */
void log_set_request_id(const char *id);
void log_write(enum log_level lvl, const char *fmt, ...) FB_PRINTF(2, 3);

/* The macros check the level before anything is formatted. */
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_min_level <= LOG_DEBUG)                                                    \
			log_write(LOG_DEBUG, __VA_ARGS__);                                         \
	} while (0)
#define log_info(...)                                                                              \
	do {                                                                                       \
		if (log_min_level <= LOG_INFO)                                                     \
			log_write(LOG_INFO, __VA_ARGS__);                                          \
	} while (0)
#define log_warn(...)                                                                              \
	do {                                                                                       \
		if (log_min_level <= LOG_WARN)                                                     \
			log_write(LOG_WARN, __VA_ARGS__);                                          \
	} while (0)
#define log_error(...)                                                                             \
	do {                                                                                       \
		if (log_min_level <= LOG_ERROR)                                                    \
			log_write(LOG_ERROR, __VA_ARGS__);                                         \
	} while (0)

#endif
