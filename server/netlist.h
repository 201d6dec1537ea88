/* Lists of IP networks ("10.0.0.5, 10.1.0.0/16, ::1") and the test whether
 * an address lies in one of them: pure code, no I/O. */
#ifndef FB_NETLIST_H
#define FB_NETLIST_H

#include <stddef.h>
#include <sys/socket.h>

#include "fb.h"

struct netlist;

/* Parse a list of IPv4 or IPv6 addresses, each optionally with a prefix
 * length ("/24"), separated by commas and/or blanks; at most 64 entries.
 * An address without a prefix is one host. Host bits set below the prefix
 * ("10.0.0.5/8") are refused, as a likely mistake. On success *out (caller
 * frees with netlist_free; NULL for an empty list). On failure err names the
 * entry and why. */
enum fb_rc netlist_parse(const char *s, struct netlist **out, struct fb_err *err) FB_MUSTCHECK;
void netlist_free(struct netlist *l);
/* Networks in l (0 for NULL). */
size_t netlist_count(const struct netlist *l);
/* 1 when sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as
 * IPv4) lies in one of l's networks; 0 otherwise, for NULL l or sa. */
int netlist_contains(const struct netlist *l, const struct sockaddr *sa);

#endif
