/* Serves the dashboard's compiled-in static files. The page talks to the
 * API with the operator's token; it loads nothing from elsewhere. */
#include "www.h"

#include <stdio.h>
#include <string.h>

static void serve(struct http_req *req, const char *name)
{
	for (size_t i = 0; i < www_files_count; i++) {
		if (strcmp(www_files[i].name, name) != 0)
			continue;
		struct http_hdr hdrs[] = {
		        {"Cache-Control", "no-cache"},
		        {"Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
		                                    "style-src 'self'; script-src 'self'; "
		                                    "connect-src 'self'; frame-ancestors 'none'"},
		        {"X-Content-Type-Options", "nosniff"},
		        {"Referrer-Policy", "no-referrer"},
		};
		http_reply(req, 200, www_files[i].content_type, www_files[i].data, www_files[i].len,
		           hdrs, 4);
		return;
	}
	http_error(req, 404, "not_found", "no dashboard file '%s'", name);
}

void www_index(struct http_req *req)
{
	serve(req, "index.html");
}

void www_file(struct http_req *req)
{
	serve(req, http_req_param(req, "file"));
}
