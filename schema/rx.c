/* Safe regular expressions for channel-file rules: a bounded, depth-limited
 * parser builds a small syntax tree, which is compiled to a Pike-VM program
 * and matched by NFA simulation in time O(subject length * program size). */
#include "rx.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Program instructions. */
enum rx_op {
	RX_OP_BYTE,  /* consume byte == byte */
	RX_OP_SET,   /* consume byte in sets[x] */
	RX_OP_ANY,   /* consume any byte but '\n' */
	RX_OP_SPLIT, /* continue at x and at y */
	RX_OP_JMP,   /* continue at x */
	RX_OP_BOL,   /* assert position 0 */
	RX_OP_EOL,   /* assert position n */
	RX_OP_MATCH, /* accept */
};

struct rx_inst {
	uint8_t op;
	uint8_t byte;
	uint16_t x;
	uint16_t y;
};

/* A 256-bit byte set. */
struct rx_set {
	uint8_t bits[32];
};

/* Program counters are stored in uint16_t, marks in 64-bit words. */
_Static_assert(RX_MAX_STATES <= 65536, "program counters must fit uint16_t");
_Static_assert(RX_MAX_STATES % 64 == 0, "mark words");

struct rx {
	struct rx_inst *prog; /* n instructions, the last one RX_OP_MATCH */
	size_t n;
	struct rx_set *sets; /* nsets byte sets referenced by RX_OP_SET */
	size_t nsets;
	int anchored; /* every match starts at offset 0 (leading ^) */
};

/* ---- syntax tree --------------------------------------------------------- */

enum rx_node_kind {
	RX_N_EMPTY, /* matches the empty string, compiles to nothing */
	RX_N_BYTE,
	RX_N_SET,
	RX_N_ANY,
	RX_N_BOL,
	RX_N_EOL,
	RX_N_CAT, /* children in order */
	RX_N_ALT, /* children are the alternatives */
	RX_N_REP, /* one child repeated min..max times */
};

#define RX_INF (-1)

struct rx_node {
	uint8_t kind;
	uint8_t byte;
	int min, max; /* RX_N_REP; max RX_INF for unbounded */
	int set;      /* RX_N_SET: index into sets */
	int child;    /* first child (CAT, ALT, REP) or -1 */
	int next;     /* next sibling or -1 */
	size_t size;  /* instructions this node compiles to (saturated) */
};

struct rx_parser {
	const unsigned char *p;
	size_t len;
	size_t pos;
	unsigned flags;
	int depth; /* groups currently open */
	struct rx_node *nodes;
	size_t nnodes, capnodes;
	struct rx_set *sets;
	size_t nsets, capsets;
	struct fb_err *err;
};

/* Sizes saturate here so that arithmetic can never overflow. */
#define RX_SAT ((size_t)RX_MAX_STATES + 1)

static size_t sat_add(size_t a, size_t b)
{
	return a + b > RX_SAT ? RX_SAT : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
	if (a == 0 || b == 0)
		return 0;
	return a > RX_SAT / b ? RX_SAT : (a * b > RX_SAT ? RX_SAT : a * b);
}

/* Fails with FB_ETOOBIG (blaming offset at) when size plus the final match
 * instruction would exceed RX_MAX_STATES. */
static FB_MUSTCHECK enum fb_rc check_size(struct rx_parser *ps, size_t size, size_t at)
{
	if (size + 1 > RX_MAX_STATES) {
		fb_err_set(ps->err, "regex: program over %d instructions at offset %zu",
		           RX_MAX_STATES, at);
		return FB_ETOOBIG;
	}
	return FB_OK;
}

/* New node of the given kind; *out its index. */
static FB_MUSTCHECK enum fb_rc node_new(struct rx_parser *ps, enum rx_node_kind kind, int *out)
{
	struct rx_node *nd;

	if (ps->nnodes >= ps->capnodes) {
		fb_err_set(ps->err, "regex: internal node limit at offset %zu", ps->pos);
		return FB_EINTERNAL;
	}
	nd = &ps->nodes[ps->nnodes];
	memset(nd, 0, sizeof(*nd));
	nd->kind = (uint8_t)kind;
	nd->child = -1;
	nd->next = -1;
	nd->set = -1;
	switch (kind) {
	case RX_N_BYTE:
	case RX_N_SET:
	case RX_N_ANY:
	case RX_N_BOL:
	case RX_N_EOL: nd->size = 1; break;
	default: nd->size = 0; break;
	}
	*out = (int)ps->nnodes++;
	return FB_OK;
}

/* New empty byte set; *out its index. */
static FB_MUSTCHECK enum fb_rc set_new(struct rx_parser *ps, int *out)
{
	if (ps->nsets >= ps->capsets) {
		fb_err_set(ps->err, "regex: internal class limit at offset %zu", ps->pos);
		return FB_EINTERNAL;
	}
	memset(&ps->sets[ps->nsets], 0, sizeof(ps->sets[0]));
	*out = (int)ps->nsets++;
	return FB_OK;
}

static void set_add(struct rx_set *s, unsigned c)
{
	s->bits[(c & 0xff) >> 3] |= (uint8_t)(1u << (c & 7));
}

static int set_has(const struct rx_set *s, unsigned c)
{
	return (s->bits[(c & 0xff) >> 3] >> (c & 7)) & 1;
}

static void set_add_range(struct rx_set *s, unsigned lo, unsigned hi)
{
	for (unsigned c = lo; c <= hi; c++)
		set_add(s, c);
}

/* Add the other ASCII case of every letter in s. */
static void set_fold(struct rx_set *s)
{
	for (unsigned c = 'a'; c <= 'z'; c++) {
		if (set_has(s, c) || set_has(s, c - 'a' + 'A')) {
			set_add(s, c);
			set_add(s, c - 'a' + 'A');
		}
	}
}

static int is_alpha(unsigned c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(unsigned c)
{
	return c >= '0' && c <= '9';
}

static int hex_val(unsigned c)
{
	if (c >= '0' && c <= '9')
		return (int)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (int)(c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (int)(c - 'A' + 10);
	return -1;
}

/* Result of an escape sequence: a single byte or a byte set. */
struct rx_esc {
	int is_set;
	unsigned byte;
	struct rx_set set;
};

/* Parse the escape whose backslash is at ps->pos; advance past it. */
static FB_MUSTCHECK enum fb_rc parse_escape(struct rx_parser *ps, struct rx_esc *e)
{
	size_t at = ps->pos;
	unsigned c;
	int neg = 0;

	memset(e, 0, sizeof(*e));
	if (at + 1 >= ps->len) {
		fb_err_set(ps->err, "regex: trailing backslash at offset %zu", at);
		return FB_EINVAL;
	}
	c = ps->p[at + 1];
	ps->pos = at + 2;
	switch (c) {
	case 't': e->byte = '\t'; return FB_OK;
	case 'n': e->byte = '\n'; return FB_OK;
	case 'r': e->byte = '\r'; return FB_OK;
	case 'x': {
		int h, l;

		if (at + 3 >= ps->len || (h = hex_val(ps->p[at + 2])) < 0 ||
		    (l = hex_val(ps->p[at + 3])) < 0) {
			fb_err_set(ps->err, "regex: \\x needs two hex digits at offset %zu", at);
			return FB_EINVAL;
		}
		e->byte = (unsigned)(h * 16 + l);
		ps->pos = at + 4;
		return FB_OK;
	}
	case 'D': neg = 1; /* fall through */
	case 'd':
		e->is_set = 1;
		set_add_range(&e->set, '0', '9');
		break;
	case 'W': neg = 1; /* fall through */
	case 'w':
		e->is_set = 1;
		set_add_range(&e->set, '0', '9');
		set_add_range(&e->set, 'a', 'z');
		set_add_range(&e->set, 'A', 'Z');
		set_add(&e->set, '_');
		break;
	case 'S': neg = 1; /* fall through */
	case 's':
		e->is_set = 1;
		set_add(&e->set, ' ');
		set_add_range(&e->set, '\t', '\r'); /* \t \n \v \f \r */
		break;
	default:
		if (c >= '1' && c <= '9') {
			fb_err_set(ps->err,
			           "regex: back-references are not supported at offset %zu", at);
			return FB_EINVAL;
		}
		if (c > 0x20 && c < 0x7f && !is_alpha(c) && !is_digit(c)) {
			e->byte = c; /* escaped punctuation is literal */
			return FB_OK;
		}
		if (c > 0x20 && c < 0x7f)
			fb_err_set(ps->err, "regex: unsupported escape '\\%c' at offset %zu",
			           (int)c, at);
		else
			fb_err_set(ps->err,
			           "regex: unsupported escape of byte 0x%02x at offset %zu", c, at);
		return FB_EINVAL;
	}
	if (neg) {
		for (size_t i = 0; i < sizeof(e->set.bits); i++)
			e->set.bits[i] = (uint8_t)~e->set.bits[i];
	}
	return FB_OK;
}

/* Leaf for the byte c (a two-case set when RX_ICASE and c is a letter). */
static FB_MUSTCHECK enum fb_rc leaf_byte(struct rx_parser *ps, unsigned c, int *out)
{
	enum fb_rc rc;
	int id, s;

	if ((ps->flags & RX_ICASE) && is_alpha(c)) {
		rc = set_new(ps, &s);
		if (rc)
			return rc;
		set_add(&ps->sets[s], c);
		set_fold(&ps->sets[s]);
		rc = node_new(ps, RX_N_SET, &id);
		if (rc)
			return rc;
		ps->nodes[id].set = s;
	} else {
		rc = node_new(ps, RX_N_BYTE, &id);
		if (rc)
			return rc;
		ps->nodes[id].byte = (uint8_t)c;
	}
	*out = id;
	return FB_OK;
}

/* Leaf for the byte set *src, taken as is: the caller has applied RX_ICASE
 * folding (before any negation) where it matters. */
static FB_MUSTCHECK enum fb_rc leaf_set(struct rx_parser *ps, const struct rx_set *src, int *out)
{
	enum fb_rc rc;
	int id, s;

	rc = set_new(ps, &s);
	if (rc)
		return rc;
	ps->sets[s] = *src;
	rc = node_new(ps, RX_N_SET, &id);
	if (rc)
		return rc;
	ps->nodes[id].set = s;
	*out = id;
	return FB_OK;
}

/* Parse a bracket class whose '[' is at ps->pos. */
static FB_MUSTCHECK enum fb_rc parse_class(struct rx_parser *ps, int *out)
{
	size_t open = ps->pos;
	struct rx_set set;
	struct rx_esc e;
	enum fb_rc rc;
	int neg = 0, first = 1;

	memset(&set, 0, sizeof(set));
	ps->pos++;
	if (ps->pos < ps->len && ps->p[ps->pos] == '^') {
		neg = 1;
		ps->pos++;
	}
	for (;;) {
		size_t at = ps->pos;
		unsigned lo, hi, c;

		if (at >= ps->len) {
			fb_err_set(ps->err, "regex: unterminated class '[' at offset %zu", open);
			return FB_EINVAL;
		}
		c = ps->p[at];
		if (c == ']' && !first) {
			ps->pos++;
			break;
		}
		first = 0;
		if (c == '[' && at + 1 < ps->len &&
		    (ps->p[at + 1] == ':' || ps->p[at + 1] == '=' || ps->p[at + 1] == '.')) {
			fb_err_set(ps->err,
			           "regex: POSIX class syntax '[%c' is not supported at offset %zu",
			           ps->p[at + 1], at);
			return FB_EINVAL;
		}
		if (c == '\\') {
			rc = parse_escape(ps, &e);
			if (rc)
				return rc;
			if (e.is_set) {
				for (size_t i = 0; i < sizeof(set.bits); i++)
					set.bits[i] |= e.set.bits[i];
				if (ps->pos + 1 < ps->len && ps->p[ps->pos] == '-' &&
				    ps->p[ps->pos + 1] != ']') {
					fb_err_set(ps->err,
					           "regex: class escape cannot start a range at "
					           "offset "
					           "%zu",
					           at);
					return FB_EINVAL;
				}
				continue;
			}
			lo = e.byte;
		} else {
			lo = c;
			ps->pos++;
		}
		hi = lo;
		if (ps->pos + 1 < ps->len && ps->p[ps->pos] == '-' && ps->p[ps->pos + 1] != ']') {
			size_t hat = ps->pos + 1;

			ps->pos++;
			if (ps->p[hat] == '\\') {
				rc = parse_escape(ps, &e);
				if (rc)
					return rc;
				if (e.is_set) {
					fb_err_set(ps->err,
					           "regex: class escape cannot end a range at "
					           "offset %zu",
					           hat);
					return FB_EINVAL;
				}
				hi = e.byte;
			} else if (ps->p[hat] == '[' && hat + 1 < ps->len &&
			           (ps->p[hat + 1] == ':' || ps->p[hat + 1] == '=' ||
			            ps->p[hat + 1] == '.')) {
				fb_err_set(ps->err,
				           "regex: POSIX class syntax '[%c' is not supported at "
				           "offset "
				           "%zu",
				           ps->p[hat + 1], hat);
				return FB_EINVAL;
			} else {
				hi = ps->p[hat];
				ps->pos++;
			}
			if (hi < lo) {
				fb_err_set(ps->err, "regex: inverted range in class at offset %zu",
				           at);
				return FB_EINVAL;
			}
		}
		set_add_range(&set, lo, hi);
	}
	if (ps->flags & RX_ICASE)
		set_fold(&set);
	if (neg) {
		for (size_t i = 0; i < sizeof(set.bits); i++)
			set.bits[i] = (uint8_t)~set.bits[i];
	}
	return leaf_set(ps, &set, out);
}

/* Parse a decimal count at ps->pos (at least one digit). Values past
 * RX_MAX_REPEAT are refused with FB_ETOOBIG. */
static FB_MUSTCHECK enum fb_rc parse_count(struct rx_parser *ps, size_t open, int *out)
{
	size_t at = ps->pos;
	long v = 0;

	if (at >= ps->len || !is_digit(ps->p[at])) {
		fb_err_set(
		        ps->err,
		        "regex: malformed repetition (expected {m}, {m,} or {m,n}) at offset %zu",
		        open);
		return FB_EINVAL;
	}
	while (ps->pos < ps->len && is_digit(ps->p[ps->pos])) {
		if (v <= RX_MAX_REPEAT)
			v = v * 10 + (ps->p[ps->pos] - '0');
		ps->pos++;
	}
	if (v > RX_MAX_REPEAT) {
		fb_err_set(ps->err, "regex: repetition count over %d at offset %zu", RX_MAX_REPEAT,
		           at);
		return FB_ETOOBIG;
	}
	*out = (int)v;
	return FB_OK;
}

/* Parse {m}, {m,} or {m,n} whose '{' is at ps->pos. */
static FB_MUSTCHECK enum fb_rc parse_braces(struct rx_parser *ps, int *min, int *max)
{
	size_t open = ps->pos;
	enum fb_rc rc;

	ps->pos++;
	rc = parse_count(ps, open, min);
	if (rc)
		return rc;
	*max = *min;
	if (ps->pos < ps->len && ps->p[ps->pos] == ',') {
		ps->pos++;
		if (ps->pos < ps->len && ps->p[ps->pos] == '}') {
			*max = RX_INF;
		} else {
			rc = parse_count(ps, open, max);
			if (rc)
				return rc;
		}
	}
	if (ps->pos >= ps->len || ps->p[ps->pos] != '}') {
		fb_err_set(
		        ps->err,
		        "regex: malformed repetition (expected {m}, {m,} or {m,n}) at offset %zu",
		        open);
		return FB_EINVAL;
	}
	ps->pos++;
	if (*max != RX_INF && *min > *max) {
		fb_err_set(ps->err, "regex: repetition {m,n} with m > n at offset %zu", open);
		return FB_EINVAL;
	}
	return FB_OK;
}

static int is_quant(unsigned c)
{
	return c == '*' || c == '+' || c == '?' || c == '{';
}

static FB_MUSTCHECK enum fb_rc parse_alt(struct rx_parser *ps, int *out);

/* Parse one atom at ps->pos (the caller guarantees one is there). */
static FB_MUSTCHECK enum fb_rc parse_atom(struct rx_parser *ps, int *out)
{
	size_t at = ps->pos;
	unsigned c = ps->p[at];
	struct rx_esc e;
	enum fb_rc rc;
	int min, max;

	switch (c) {
	case '(':
		if (at + 1 < ps->len && ps->p[at + 1] == '?') {
			fb_err_set(ps->err,
			           "regex: '(?' constructs (look-around, flags, non-capturing "
			           "groups) are not supported at offset %zu",
			           at);
			return FB_EINVAL;
		}
		if (ps->depth >= RX_MAX_DEPTH) {
			fb_err_set(ps->err, "regex: groups nested deeper than %d at offset %zu",
			           RX_MAX_DEPTH, at);
			return FB_ETOOBIG;
		}
		if (at + 1 < ps->len && ps->p[at + 1] == ')') {
			fb_err_set(ps->err, "regex: empty group at offset %zu", at);
			return FB_EINVAL;
		}
		ps->pos++;
		ps->depth++;
		rc = parse_alt(ps, out);
		ps->depth--;
		if (rc)
			return rc;
		if (ps->pos >= ps->len || ps->p[ps->pos] != ')') {
			fb_err_set(ps->err, "regex: missing ')' for group opened at offset %zu",
			           at);
			return FB_EINVAL;
		}
		ps->pos++;
		return FB_OK;
	case ')': fb_err_set(ps->err, "regex: unmatched ')' at offset %zu", at); return FB_EINVAL;
	case '*':
	case '+':
	case '?':
		fb_err_set(ps->err, "regex: nothing to repeat at offset %zu", at);
		return FB_EINVAL;
	case '{':
		rc = parse_braces(ps, &min, &max);
		if (rc)
			return rc;
		fb_err_set(ps->err, "regex: nothing to repeat at offset %zu", at);
		return FB_EINVAL;
	case '[': return parse_class(ps, out);
	case '.': ps->pos++; return node_new(ps, RX_N_ANY, out);
	case '^': ps->pos++; return node_new(ps, RX_N_BOL, out);
	case '$': ps->pos++; return node_new(ps, RX_N_EOL, out);
	case '\\':
		rc = parse_escape(ps, &e);
		if (rc)
			return rc;
		if (e.is_set)
			return leaf_set(ps, &e.set, out);
		return leaf_byte(ps, e.byte, out);
	default: ps->pos++; return leaf_byte(ps, c, out);
	}
}

/* Parse an atom and at most one quantifier after it. */
static FB_MUSTCHECK enum fb_rc parse_repeat(struct rx_parser *ps, int *out)
{
	enum fb_rc rc;
	int atom, id, min, max;
	size_t at;
	size_t s, size;

	rc = parse_atom(ps, &atom);
	if (rc)
		return rc;
	if (ps->pos >= ps->len || !is_quant(ps->p[ps->pos])) {
		*out = atom;
		return FB_OK;
	}
	at = ps->pos;
	if (ps->nodes[atom].kind == RX_N_BOL || ps->nodes[atom].kind == RX_N_EOL) {
		fb_err_set(ps->err, "regex: nothing to repeat at offset %zu", at);
		return FB_EINVAL;
	}
	switch (ps->p[at]) {
	case '*': min = 0, max = RX_INF, ps->pos++; break;
	case '+': min = 1, max = RX_INF, ps->pos++; break;
	case '?': min = 0, max = 1, ps->pos++; break;
	default:
		rc = parse_braces(ps, &min, &max);
		if (rc)
			return rc;
		break;
	}
	if (ps->pos < ps->len && is_quant(ps->p[ps->pos])) {
		fb_err_set(ps->err,
		           "regex: lazy, possessive or stacked quantifier at offset %zu "
		           "(use a group)",
		           ps->pos);
		return FB_EINVAL;
	}
	s = ps->nodes[atom].size;
	if (s == 0 || max == 0) /* repeating nothing, or zero times: empty */
		return node_new(ps, RX_N_EMPTY, out);
	if (min == 1 && max == 1) {
		*out = atom;
		return FB_OK;
	}
	if (max == RX_INF)
		size = min == 0 ? sat_add(s, 2) : sat_add(sat_mul((size_t)min, s), 1);
	else
		size = sat_add(sat_mul((size_t)min, s),
		               sat_mul((size_t)(max - min), sat_add(s, 1)));
	rc = check_size(ps, size, at);
	if (rc)
		return rc;
	rc = node_new(ps, RX_N_REP, &id);
	if (rc)
		return rc;
	ps->nodes[id].child = atom;
	ps->nodes[id].min = min;
	ps->nodes[id].max = max;
	ps->nodes[id].size = size;
	*out = id;
	return FB_OK;
}

/* Parse a concatenation up to '|', ')' or the end. Zero-size pieces are
 * dropped; *out is RX_N_EMPTY when nothing is left. *count is the number of
 * pieces written (0 for an empty branch). */
static FB_MUSTCHECK enum fb_rc parse_concat(struct rx_parser *ps, int *out, int *count)
{
	int first = -1, last = -1, n = 0, pieces = 0, id, piece;
	size_t size = 0;
	enum fb_rc rc;

	while (ps->pos < ps->len && ps->p[ps->pos] != '|' && ps->p[ps->pos] != ')') {
		size_t at = ps->pos;

		rc = parse_repeat(ps, &piece);
		if (rc)
			return rc;
		pieces++;
		if (ps->nodes[piece].size == 0)
			continue;
		size = sat_add(size, ps->nodes[piece].size);
		rc = check_size(ps, size, at);
		if (rc)
			return rc;
		if (first < 0)
			first = piece;
		else
			ps->nodes[last].next = piece;
		last = piece;
		n++;
	}
	if (ps->pos < ps->len && ps->p[ps->pos] == ')' && ps->depth == 0) {
		fb_err_set(ps->err, "regex: unmatched ')' at offset %zu", ps->pos);
		return FB_EINVAL;
	}
	*count = pieces;
	if (n == 0)
		return node_new(ps, RX_N_EMPTY, out);
	if (n == 1) {
		*out = first;
		return FB_OK;
	}
	rc = node_new(ps, RX_N_CAT, &id);
	if (rc)
		return rc;
	ps->nodes[id].child = first;
	ps->nodes[id].size = size;
	*out = id;
	return FB_OK;
}

/* Parse alternatives separated by '|' up to ')' or the end. Empty
 * alternatives are refused. */
static FB_MUSTCHECK enum fb_rc parse_alt(struct rx_parser *ps, int *out)
{
	int first = -1, last = -1, n = 0, id, br, count;
	size_t size = 0;
	enum fb_rc rc;

	for (;;) {
		size_t at = ps->pos;

		rc = parse_concat(ps, &br, &count);
		if (rc)
			return rc;
		if (count == 0) {
			fb_err_set(ps->err, "regex: empty alternative at offset %zu", at);
			return FB_EINVAL;
		}
		size = sat_add(size, ps->nodes[br].size);
		if (n > 0)
			size = sat_add(size, 2);
		rc = check_size(ps, size, at);
		if (rc)
			return rc;
		if (first < 0)
			first = br;
		else
			ps->nodes[last].next = br;
		last = br;
		n++;
		if (ps->pos < ps->len && ps->p[ps->pos] == '|') {
			ps->pos++;
			continue;
		}
		break;
	}
	if (n == 1) {
		*out = first;
		return FB_OK;
	}
	rc = node_new(ps, RX_N_ALT, &id);
	if (rc)
		return rc;
	ps->nodes[id].child = first;
	ps->nodes[id].size = size;
	*out = id;
	return FB_OK;
}

/* ---- code generation ------------------------------------------------------ */

struct rx_gen {
	const struct rx_node *nodes;
	struct rx_inst *prog; /* cap instructions */
	size_t cap;
	size_t pc;
	int overflow; /* set if the sizes computed by the parser were wrong */
};

static void gen_inst(struct rx_gen *g, enum rx_op op, unsigned byte, size_t x, size_t y)
{
	if (g->pc >= g->cap) { /* never writes past the program */
		g->overflow = 1;
		g->pc++;
		return;
	}
	g->prog[g->pc].op = (uint8_t)op;
	g->prog[g->pc].byte = (uint8_t)byte;
	g->prog[g->pc].x = (uint16_t)x;
	g->prog[g->pc].y = (uint16_t)y;
	g->pc++;
}

/* Emit node id at g->pc; emits exactly nodes[id].size instructions.
 * Recursion depth is bounded by the tree depth, itself bounded by
 * RX_MAX_DEPTH groups (a few tree levels per group). */
static void gen_node(struct rx_gen *g, int id)
{
	const struct rx_node *nd = &g->nodes[id];
	size_t start = g->pc, end = start + nd->size;
	int c, i;

	switch (nd->kind) {
	case RX_N_EMPTY: break;
	case RX_N_BYTE: gen_inst(g, RX_OP_BYTE, nd->byte, 0, 0); break;
	case RX_N_SET: gen_inst(g, RX_OP_SET, 0, (size_t)nd->set, 0); break;
	case RX_N_ANY: gen_inst(g, RX_OP_ANY, 0, 0, 0); break;
	case RX_N_BOL: gen_inst(g, RX_OP_BOL, 0, 0, 0); break;
	case RX_N_EOL: gen_inst(g, RX_OP_EOL, 0, 0, 0); break;
	case RX_N_CAT:
		for (c = nd->child; c >= 0; c = g->nodes[c].next)
			gen_node(g, c);
		break;
	case RX_N_ALT:
		/* split L1, L2; L1: e1; jmp end; L2: split ...; last: en */
		for (c = nd->child; c >= 0; c = g->nodes[c].next) {
			if (g->nodes[c].next < 0) {
				gen_node(g, c);
				break;
			}
			gen_inst(g, RX_OP_SPLIT, 0, g->pc + 1, g->pc + 2 + g->nodes[c].size);
			gen_node(g, c);
			gen_inst(g, RX_OP_JMP, 0, end, 0);
		}
		break;
	case RX_N_REP:
		if (nd->max == RX_INF && nd->min == 0) {
			/* L: split L+1, end; e; jmp L */
			gen_inst(g, RX_OP_SPLIT, 0, start + 1, end);
			gen_node(g, nd->child);
			gen_inst(g, RX_OP_JMP, 0, start, 0);
			break;
		}
		if (nd->max == RX_INF) {
			/* e{min-1} then L: e; split L, end */
			for (i = 0; i < nd->min - 1; i++)
				gen_node(g, nd->child);
			size_t loop = g->pc;
			gen_node(g, nd->child);
			gen_inst(g, RX_OP_SPLIT, 0, loop, end);
			break;
		}
		/* e{min} then (max-min) times: split next, end; e */
		for (i = 0; i < nd->min; i++)
			gen_node(g, nd->child);
		for (i = nd->min; i < nd->max; i++) {
			gen_inst(g, RX_OP_SPLIT, 0, g->pc + 1, end);
			gen_node(g, nd->child);
		}
		break;
	}
	assert(g->pc == end);
}

/* True when every match of node id must start at subject offset 0. */
static int node_anchored(const struct rx_node *nodes, int id)
{
	const struct rx_node *nd = &nodes[id];
	int c;

	switch (nd->kind) {
	case RX_N_BOL: return 1;
	case RX_N_CAT: return node_anchored(nodes, nd->child);
	case RX_N_ALT:
		for (c = nd->child; c >= 0; c = nodes[c].next)
			if (!node_anchored(nodes, c))
				return 0;
		return 1;
	case RX_N_REP: return nd->min >= 1 && node_anchored(nodes, nd->child);
	default: return 0;
	}
}

enum fb_rc rx_compile(const char *pat, size_t len, unsigned flags, struct rx **out,
                      struct fb_err *err)
{
	struct rx_parser ps;
	struct rx_gen g;
	struct rx *re = NULL;
	enum fb_rc rc;
	const void *nul;
	int root;

	*out = NULL;
	memset(&ps, 0, sizeof(ps));
	if (flags & ~RX_ICASE) {
		fb_err_set(err, "regex: unknown flags 0x%x at offset 0", flags);
		rc = FB_EINVAL;
		goto out;
	}
	if (len > RX_MAX_PATTERN) {
		fb_err_set(err, "regex: pattern longer than %d bytes at offset %d", RX_MAX_PATTERN,
		           RX_MAX_PATTERN);
		rc = FB_ETOOBIG;
		goto out;
	}
	if (len == 0 || pat == NULL) {
		fb_err_set(err, "regex: empty pattern at offset 0");
		rc = FB_EINVAL;
		goto out;
	}
	nul = memchr(pat, '\0', len);
	if (nul) {
		fb_err_set(err, "regex: NUL byte at offset %zu", (size_t)((const char *)nul - pat));
		rc = FB_EINVAL;
		goto out;
	}

	ps.p = (const unsigned char *)pat;
	ps.len = len;
	ps.flags = flags;
	ps.err = err;
	/* Each pattern byte yields at most one leaf and one quantifier; each
	 * concatenation, alternation and dropped empty piece one more node. */
	ps.capnodes = 4 * len + 8;
	ps.capsets = len + 1;
	ps.nodes = calloc(ps.capnodes, sizeof(ps.nodes[0]));
	ps.sets = calloc(ps.capsets, sizeof(ps.sets[0]));
	if (!ps.nodes || !ps.sets) {
		fb_err_set(err, "regex: out of memory at offset 0");
		rc = FB_ENOMEM;
		goto out;
	}
	rc = parse_alt(&ps, &root);
	if (rc)
		goto out;
	if (ps.pos < ps.len) { /* only a stray ')' stops parse_alt early */
		fb_err_set(err, "regex: unmatched ')' at offset %zu", ps.pos);
		rc = FB_EINVAL;
		goto out;
	}
	rc = check_size(&ps, ps.nodes[root].size, 0);
	if (rc)
		goto out;

	re = calloc(1, sizeof(*re));
	if (!re) {
		rc = FB_ENOMEM;
		goto nomem;
	}
	re->n = ps.nodes[root].size + 1;
	re->prog = calloc(re->n, sizeof(re->prog[0]));
	re->nsets = ps.nsets;
	re->sets = calloc(ps.nsets ? ps.nsets : 1, sizeof(re->sets[0]));
	if (!re->prog || !re->sets) {
		rc = FB_ENOMEM;
		goto nomem;
	}
	if (ps.nsets)
		memcpy(re->sets, ps.sets, ps.nsets * sizeof(re->sets[0]));
	g.nodes = ps.nodes;
	g.prog = re->prog;
	g.cap = re->n;
	g.pc = 0;
	g.overflow = 0;
	gen_node(&g, root);
	gen_inst(&g, RX_OP_MATCH, 0, 0, 0);
	if (g.overflow || g.pc != re->n) {
		fb_err_set(err, "regex: internal error (program size) at offset 0");
		rc = FB_EINTERNAL;
		goto out;
	}
	re->anchored = node_anchored(ps.nodes, root);
	*out = re;
	re = NULL;
	rc = FB_OK;
	goto out;
nomem:
	fb_err_set(err, "regex: out of memory at offset 0");
out:
	rx_free(re);
	free(ps.nodes);
	free(ps.sets);
	return rc;
}

/* ---- matching ------------------------------------------------------------- */

/* A list of program counters with a membership bitmap. */
struct rx_list {
	size_t n;
	uint16_t pc[RX_MAX_STATES];
	uint64_t mark[RX_MAX_STATES / 64];
};

static void list_add(struct rx_list *l, size_t pc)
{
	uint64_t bit = (uint64_t)1 << (pc & 63);

	if (l->mark[pc >> 6] & bit)
		return;
	l->mark[pc >> 6] |= bit;
	l->pc[l->n++] = (uint16_t)pc;
}

static void list_clear(struct rx_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		l->mark[l->pc[i] >> 6] &= ~((uint64_t)1 << (l->pc[i] & 63));
	l->n = 0;
}

/* Follow the empty transitions of every state in l at subject offset pos
 * (the list doubles as the work queue; each state enters it once).
 * Returns 1 when the match state is reached. */
static int list_close(const struct rx *re, struct rx_list *l, size_t pos, size_t n)
{
	for (size_t i = 0; i < l->n; i++) {
		size_t pc = l->pc[i];
		const struct rx_inst *in = &re->prog[pc];

		switch (in->op) {
		case RX_OP_JMP: list_add(l, in->x); break;
		case RX_OP_SPLIT:
			list_add(l, in->x);
			list_add(l, in->y);
			break;
		case RX_OP_BOL:
			if (pos == 0)
				list_add(l, pc + 1);
			break;
		case RX_OP_EOL:
			if (pos == n)
				list_add(l, pc + 1);
			break;
		case RX_OP_MATCH: return 1;
		default: break;
		}
	}
	return 0;
}

/* Scratch space is a fixed-size local (about 17 KiB of stack, no VLA, no
 * allocation), so concurrent calls on one struct rx share nothing mutable. */
int rx_match(const struct rx *re, const char *s, size_t n)
{
	struct rx_list lists[2];
	struct rx_list *cur = &lists[0], *nxt = &lists[1], *tmp;

	if (!re || (!s && n))
		return 0;
	memset(cur->mark, 0, sizeof(cur->mark));
	memset(nxt->mark, 0, sizeof(nxt->mark));
	cur->n = 0;
	nxt->n = 0;
	list_add(cur, 0);
	if (list_close(re, cur, 0, n))
		return 1;
	for (size_t i = 0; i < n; i++) {
		unsigned c = (unsigned char)s[i];

		list_clear(nxt);
		for (size_t k = 0; k < cur->n; k++) {
			size_t pc = cur->pc[k];
			const struct rx_inst *in = &re->prog[pc];

			switch (in->op) {
			case RX_OP_BYTE:
				if (in->byte == c)
					list_add(nxt, pc + 1);
				break;
			case RX_OP_SET:
				if (set_has(&re->sets[in->x], c))
					list_add(nxt, pc + 1);
				break;
			case RX_OP_ANY:
				if (c != '\n')
					list_add(nxt, pc + 1);
				break;
			default: break;
			}
		}
		if (!re->anchored)
			list_add(nxt, 0); /* search: a match may start at i + 1 */
		if (nxt->n == 0)
			return 0;
		if (list_close(re, nxt, i + 1, n))
			return 1;
		tmp = cur;
		cur = nxt;
		nxt = tmp;
	}
	return 0;
}

size_t rx_size(const struct rx *re)
{
	return re ? re->n : 0;
}

void rx_free(struct rx *re)
{
	if (!re)
		return;
	free(re->prog);
	free(re->sets);
	free(re);
}
