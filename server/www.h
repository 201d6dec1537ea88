/* The SOC dashboard's static files, compiled in from server/www/. */
#ifndef FB_WWW_H
#define FB_WWW_H

#include <stddef.h>

#include "http.h"

struct www_file {
	const char *name; /* "index.html" */
	const char *content_type;
	const unsigned char *data;
	size_t len;
};

extern const struct www_file www_files[];
extern const size_t www_files_count;

void www_index(struct http_req *req); /* GET / */
void www_file(struct http_req *req);  /* GET /ui/{file} */

#endif
