/* server/netlist.c: parsing address lists (refusals name the entry) and
 * membership for IPv4, IPv6 and IPv4-mapped IPv6 peers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "netlist.h"

static int in(const struct netlist *l, const char *addr)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
	}
	return netlist_contains(l, (struct sockaddr *)&ss);
}

static void test_membership(void **state)
{
	(void)state;
	struct netlist *l;
	struct fb_err err;
	assert_int_equal(netlist_parse(" 10.1.2.3,192.168.0.0/16  fd00::/8\t::ffff:172.16.0.0/108, "
	                               "0.0.0.0/0 ",
	                               &l, &err),
	                 FB_OK);
	assert_int_equal(netlist_count(l), 5);
	netlist_free(l);
	assert_int_equal(netlist_parse("10.1.2.3, 192.168.0.0/16, fd00::/8, ::ffff:172.16.0.0/108",
	                               &l, &err),
	                 FB_OK);
	assert_true(in(l, "10.1.2.3"));
	assert_false(in(l, "10.1.2.4"));
	assert_true(in(l, "192.168.255.1"));
	assert_false(in(l, "192.169.0.1"));
	assert_true(in(l, "fd12:3456::1"));
	assert_false(in(l, "fe80::1"));
	assert_true(in(l, "::ffff:10.1.2.3")); /* a mapped peer is its IPv4 address */
	assert_true(in(l, "172.16.9.9"));      /* a mapped entry is an IPv4 network */
	assert_false(in(l, "172.32.0.1"));
	assert_false(netlist_contains(l, NULL));
	netlist_free(l);
	assert_int_equal(netlist_parse("127.0.0.2/32", &l, &err), FB_OK);
	assert_true(in(l, "127.0.0.2"));
	assert_false(in(l, "127.0.0.1"));
	netlist_free(l);
	/* empty: no list at all, nobody is in it */
	assert_int_equal(netlist_parse(" , ", &l, &err), FB_OK);
	assert_null(l);
	assert_false(in(l, "10.1.2.3"));
	assert_int_equal(netlist_parse(NULL, &l, &err), FB_OK);
	assert_null(l);
}

static void test_refusals_name_the_entry(void **state)
{
	(void)state;
	static const struct {
		const char *list, *needle;
	} cases[] = {
	        {"10.0.0.1, example.com", "entry 2: 'example.com' is not an IPv4 or IPv6"},
	        {"10.0.0.0/33", "entry 1: '10.0.0.0/33': the prefix length must be 0 to 32"},
	        {"::/129", "0 to 128"},
	        {"10.0.0.0/x", "prefix length"},
	        {"10.0.0.0/", "prefix length"},
	        {"10.0.0.1/8", "host bits"},
	        {"10.0.0.1/-1", "prefix length"},
	        {"1.2.3.4.5", "not an IPv4"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct netlist *l = (struct netlist *)1;
		struct fb_err err = {{0}};
		assert_int_not_equal(netlist_parse(cases[i].list, &l, &err), FB_OK);
		assert_null(l);
		if (!strstr(err.msg, cases[i].needle))
			fail_msg("'%s': '%s' not in '%s'", cases[i].list, cases[i].needle, err.msg);
	}
	char many[2048] = "";
	for (int i = 0; i < 65; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "10.0.0.%d,", i);
	struct netlist *l;
	struct fb_err err;
	assert_int_equal(netlist_parse(many, &l, &err), FB_ETOOBIG);
	assert_non_null(strstr(err.msg, "more than 64"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_membership),
	        cmocka_unit_test(test_refusals_name_the_entry),
	};
	return cmocka_run_group_tests_name("netlist", tests, NULL, NULL);
}
