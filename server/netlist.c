/* IP network lists: parsing "addr[/prefix], ..." and membership. */
#include "netlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define NETLIST_MAX 64

struct net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix; /* bits */
};

struct netlist {
	size_t n;
	struct net nets[];
};

static int host_bits_clear(const unsigned char *a, int len, int prefix)
{
	for (int bit = prefix; bit < len * 8; bit++)
		if (a[bit / 8] & (0x80 >> (bit % 8)))
			return 0;
	return 1;
}

/* One entry of at most 63 characters, NUL-terminated, into *n. */
static enum fb_rc parse_one(char *e, struct net *n, struct fb_err *err)
{
	char *slash = strchr(e, '/');
	if (slash)
		*slash = '\0';
	int len;
	if (inet_pton(AF_INET, e, n->addr) == 1) {
		n->family = AF_INET;
		len = 4;
	} else if (inet_pton(AF_INET6, e, n->addr) == 1) {
		n->family = AF_INET6;
		len = 16;
	} else {
		fb_err_set(err, "'%s' is not an IPv4 or IPv6 address", e);
		return FB_EINVAL;
	}
	n->prefix = len * 8;
	if (slash) {
		int64_t p;
		if (fb_parse_i64(slash + 1, 0, len * 8, &p)) {
			fb_err_set(err, "'%s/%s': the prefix length must be 0 to %d", e, slash + 1,
			           len * 8);
			return FB_EINVAL;
		}
		n->prefix = (int)p;
		if (!host_bits_clear(n->addr, len, n->prefix)) {
			fb_err_set(err, "'%s/%s' has host bits set below the prefix", e, slash + 1);
			return FB_EINVAL;
		}
	}
	/* "::ffff:a.b.c.d": an IPv4 address, as peers are compared */
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (n->family == AF_INET6 && n->prefix >= 96 && memcmp(n->addr, mapped, 12) == 0) {
		memmove(n->addr, n->addr + 12, 4);
		n->family = AF_INET;
		n->prefix -= 96;
	}
	return FB_OK;
}

enum fb_rc netlist_parse(const char *s, struct netlist **out, struct fb_err *err)
{
	*out = NULL;
	struct netlist *l = calloc(1, sizeof *l + NETLIST_MAX * sizeof l->nets[0]);
	if (!l)
		return FB_ENOMEM;
	enum fb_rc rc = FB_OK;
	const char *p = s ? s : "";
	for (;;) {
		p += strspn(p, ", \t");
		if (!*p)
			break;
		size_t k = strcspn(p, ", \t");
		char e[64];
		if (k >= sizeof e) {
			fb_err_set(err, "entry %zu is too long (%zu characters)", l->n + 1, k);
			rc = FB_EINVAL;
			goto out;
		}
		if (l->n == NETLIST_MAX) {
			fb_err_set(err, "more than %d networks", NETLIST_MAX);
			rc = FB_ETOOBIG;
			goto out;
		}
		memcpy(e, p, k);
		e[k] = '\0';
		rc = parse_one(e, &l->nets[l->n], err);
		if (rc) {
			fb_err_prefix(err, "entry %zu", l->n + 1);
			goto out;
		}
		l->n++;
		p += k;
	}
	if (l->n > 0) {
		*out = l;
		l = NULL;
	}
out:
	free(l);
	return rc;
}

void netlist_free(struct netlist *l)
{
	free(l);
}

size_t netlist_count(const struct netlist *l)
{
	return l ? l->n : 0;
}

static int prefix_equal(const unsigned char *a, const unsigned char *b, int prefix)
{
	int whole = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	if (!rest)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

int netlist_contains(const struct netlist *l, const struct sockaddr *sa)
{
	if (!l || !sa)
		return 0;
	unsigned char a[16];
	int family;
	if (sa->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(a, a6->s6_addr + 12, 4);
			family = AF_INET;
		} else {
			memcpy(a, a6->s6_addr, 16);
			family = AF_INET6;
		}
	} else {
		return 0;
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->nets[i].family == family &&
		    prefix_equal(a, l->nets[i].addr, l->nets[i].prefix))
			return 1;
	return 0;
}
