/* The API description stays true: every route firebreakd registers (as
 * printed by `firebreakd routes`) is described in schema/openapi.json with
 * its method, path parameters, the roles it admits and whether a tenant's
 * credential may use it (x-tenant, which test_tenants.c reads); nothing
 * described is missing from the server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fbt.h"

static json_t *load_openapi(void)
{
	char path[1100];
	snprintf(path, sizeof path, "%s/schema/openapi.json",
	         getenv("FB_SRC") ? getenv("FB_SRC") : ".");
	json_error_t e;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
	if (!doc)
		fail_msg("%s: line %d: %s", path, e.line, e.text);
	return doc;
}

static json_t *server_routes(void)
{
	const char *argv[] = {fbt_bin("firebreakd"), "routes", NULL};
	char *out, *err;
	assert_int_equal(fbt_run(argv, NULL, &out, &err), 0);
	json_t *arr = json_array();
	for (char *line = out; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		json_t *j = json_loads(line, 0, NULL);
		assert_non_null(j);
		json_array_append_new(arr, j);
		line = nl ? nl + 1 : NULL;
	}
	free(out);
	free(err);
	return arr;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void test_every_route_is_described(void **state)
{
	(void)state;
	json_t *doc = load_openapi(), *routes = server_routes();
	assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
	json_t *paths = json_object_get(doc, "paths");
	assert_true(json_array_size(routes) > 30);
	size_t i;
	json_t *r;
	json_array_foreach(routes, i, r)
	{
		const char *path = json_string_value(json_object_get(r, "path"));
		char method[16];
		snprintf(method, sizeof method, "%s",
		         json_string_value(json_object_get(r, "method")));
		lower(method);
		json_t *op = json_object_get(json_object_get(paths, path), method);
		if (!op)
			fail_msg("route %s %s is not described in schema/openapi.json", method,
			         path);
		assert_true(json_string_length(json_object_get(op, "summary")) > 10);
		/* roles: the description matches what the server admits */
		json_t *roles = json_object_get(r, "roles"),
		       *xroles = json_object_get(op, "x-roles");
		if (json_array_size(roles) == 0) {
			assert_string_equal(json_string_value(json_array_get(xroles, 0)), "public");
		} else {
			if (!json_equal(roles, xroles))
				fail_msg("%s %s admits %s but is described as %s", method, path,
				         json_dumps(roles, JSON_COMPACT),
				         json_dumps(xroles, JSON_COMPACT));
			assert_non_null(json_object_get(json_object_get(op, "responses"), "401"));
			assert_non_null(json_object_get(json_object_get(op, "responses"), "403"));
		}
		/* x-tenant: "own" exactly on the routes a tenant's credential may use */
		int tenant = json_is_true(json_object_get(r, "tenant"));
		const char *xt = json_string_value(json_object_get(op, "x-tenant"));
		if (tenant && !(xt && strcmp(xt, "own") == 0))
			fail_msg("%s %s: a tenant may use it, but it has no x-tenant \"own\"",
			         method, path);
		if (!tenant && json_object_get(op, "x-tenant"))
			fail_msg("%s %s: described with x-tenant, but a tenant may not use it",
			         method, path);
		/* every {param} of the path is a declared path parameter */
		for (const char *p = strchr(path, '{'); p; p = strchr(p + 1, '{')) {
			char name[64];
			snprintf(name, sizeof name, "%.*s", (int)(strchr(p, '}') - p - 1), p + 1);
			int found = 0;
			size_t k;
			json_t *prm;
			json_array_foreach(json_object_get(op, "parameters"), k, prm)
			{
				if (strcmp(json_string_value(json_object_get(prm, "name")), name) ==
				            0 &&
				    strcmp(json_string_value(json_object_get(prm, "in")), "path") ==
				            0)
					found = 1;
			}
			if (!found)
				fail_msg("%s %s: path parameter %s not declared", method, path,
				         name);
		}
	}
	/* and nothing is described that the server does not have */
	const char *path;
	json_t *ops;
	json_object_foreach(paths, path, ops)
	{
		const char *m;
		json_t *op;
		json_object_foreach(ops, m, op)
		{
			int found = 0;
			json_array_foreach(routes, i, r)
			{
				char mm[16];
				snprintf(mm, sizeof mm, "%s",
				         json_string_value(json_object_get(r, "method")));
				lower(mm);
				if (strcmp(json_string_value(json_object_get(r, "path")), path) ==
				            0 &&
				    strcmp(mm, m) == 0)
					found = 1;
			}
			if (!found)
				fail_msg("schema/openapi.json describes %s %s, which firebreakd "
				         "does not serve",
				         m, path);
		}
	}
	json_decref(doc);
	json_decref(routes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_every_route_is_described),
	};
	return cmocka_run_group_tests_name("openapi", tests, NULL, NULL);
}
