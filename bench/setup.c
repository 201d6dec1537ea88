/* fb-bench-setup: the trust material, channel files and agent tokens that
 * bench/run.sh needs, made in bulk without going through the server; and
 * idle keep-alive connections for bench/capacity.sh. */
#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb.h"
#include "fbschema.h"
#include "fbt_world.h"

static void usage(void)
{
	fprintf(stderr,
	        "usage: fb-bench-setup world OUTDIR\n"
	        "         keys, signed root and online key (fixed seeds, as the test world);\n"
	        "         prints the firebreakd flags, writes OUTDIR/caps.json\n"
	        "       fb-bench-setup content OUTDIR CHANNEL VERSION BYTES\n"
	        "         a valid channel file of at most BYTES bytes (0: the small test file),\n"
	        "         signed by two release keys; writes OUTDIR/content-CHANNEL-VERSION.json\n"
	        "         (the POST /v1/content body) and prints 'sha256 size'\n"
	        "       fb-bench-setup tokens KEYHEX FIRST LAST\n"
	        "         agent tokens for ids FIRST..LAST, one a line, from the server's\n"
	        "         agent_token_key (server_secrets)\n"
	        "       fb-bench-setup hold URL N CAFILE\n"
	        "         N connections at once, one GET URL on each, then kept open and idle;\n"
	        "         prints 'held K' (K answered 200) and waits for end of input\n"
	        "FBT_WORK names the directory the world is made in; FB_SRC the source tree.\n");
	exit(2);
}

static void die(const char *what)
{
	fprintf(stderr, "fb-bench-setup: %s\n", what);
	exit(1);
}

static int64_t arg_i64(const char *s, int64_t lo, int64_t hi)
{
	int64_t v;
	if (fb_parse_i64(s, lo, hi, &v))
		usage();
	return v;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[2048];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (fb_file_write_atomic(path, text, strlen(text), 0644))
		die("cannot write an output file");
}

static int cmd_world(const char *out)
{
	struct fbt_world *w = fbt_world_default();
	struct cf_registry *reg;
	struct fb_err err;
	if (cf_registry_load_dir(w->templates, &reg, &err))
		die(err.msg);
	json_t *caps = cf_registry_capabilities(reg);
	char *s = json_dumps(caps, JSON_COMPACT);
	write_file(out, "caps.json", s);
	free(s);
	json_decref(caps);
	cf_registry_free(reg);
	for (int i = 0; w->args[i]; i++)
		printf("%s\n", w->args[i]);
	return 0;
}

/* One file_hash instance (template 2 v1) with long strings: about 450 bytes
 * compiled, so the size of a file is set by the number of instances. */
static json_t *hash_instance(int id)
{
	unsigned char d[32];
	char idtext[32], hex[65], name[129], suffix[261];
	int n = snprintf(idtext, sizeof idtext, "bench-%d", id);
	crypto_hash_sha256(d, (const unsigned char *)idtext, (unsigned long long)n);
	fb_hex_encode(d, sizeof d, hex);
	snprintf(name, sizeof name, "bench rule %06d %s", id, hex);
	memset(name + strlen(name), 'n', sizeof name - 1 - strlen(name));
	name[128] = '\0';
	snprintf(suffix, sizeof suffix, "\\bench\\%06d\\", id);
	memset(suffix + strlen(suffix), 'p', sizeof suffix - 5 - strlen(suffix));
	snprintf(suffix + 256, 5, ".sys");
	return json_pack("{s:i,s:i,s:i,s:[{s:s},{s:i},{s:s},{s:s},{s:i}]}", "id", id, "template", 2,
	                 "template_version", 1, "fields", "string", name, "int", 1, "sha256", hex,
	                 "string", suffix, "int", 4096 + id);
}

static int compile_n(uint32_t channel, int64_t version, int n, unsigned char **blob, size_t *len)
{
	json_t *inst = json_array();
	for (int i = 1; i <= n; i++)
		json_array_append_new(inst, hash_instance(i));
	json_t *t = json_pack("{s:i,s:I,s:I,s:o}", "format", 1, "channel", (json_int_t)channel,
	                      "content_version", (json_int_t)version, "instances", inst);
	char *text = json_dumps(t, JSON_COMPACT);
	json_decref(t);
	struct fb_err err;
	enum fb_rc rc = cf_compile_json(NULL, text, strlen(text), blob, len, &err);
	free(text);
	if (rc)
		fprintf(stderr, "fb-bench-setup: compile: %s\n", err.msg);
	return rc ? -1 : 0;
}

static int cmd_content(const char *out, uint32_t channel, int64_t version, int64_t bytes)
{
	struct fbt_world *w = fbt_world_default();
	unsigned char *blob = NULL;
	size_t len = 0;
	if (bytes == 0) {
		if (fbt_world_blob(channel, version, &blob, &len))
			die("cannot make the test channel file");
	} else {
		size_t one, two;
		if (compile_n(channel, version, 1, &blob, &one))
			die("cannot compile a channel file");
		free(blob);
		if (compile_n(channel, version, 2, &blob, &two))
			die("cannot compile a channel file");
		free(blob);
		int n = (int)(((size_t)bytes - one) / (two - one)) + 1;
		while (n > 0) {
			if (compile_n(channel, version, n, &blob, &len))
				die("cannot compile a channel file");
			if (len <= (size_t)bytes)
				break;
			free(blob);
			blob = NULL;
			n--;
		}
		if (!blob)
			die("BYTES is too small for one instance");
	}
	char sha[65];
	fb_sha256_hex(blob, len, sha);
	char *m = fbt_world_manifest(w, blob, len, channel, version, 2, 30 * 86400);
	if (!m)
		die("cannot sign the manifest");
	char *body = fbt_world_upload_body(m, blob, len);
	char name[64];
	snprintf(name, sizeof name, "content-%u-%lld.json", channel, (long long)version);
	write_file(out, name, body);
	printf("%s %zu\n", sha, len);
	free(body);
	free(m);
	free(blob);
	return 0;
}

/* The agent token as server/agents.c derives it: fa_<id>_<keyed BLAKE2b-128
 * of "agent:<id>">. */
static int cmd_tokens(const char *keyhex, int64_t first, int64_t last)
{
	unsigned char key[crypto_generichash_KEYBYTES];
	if (fb_hex_decode(keyhex, key, sizeof key))
		die("KEYHEX must be 64 hex digits");
	for (int64_t id = first; id <= last; id++) {
		char msg[48], hex[33];
		int n = snprintf(msg, sizeof msg, "agent:%lld", (long long)id);
		unsigned char mac[16];
		crypto_generichash(mac, sizeof mac, (const unsigned char *)msg, (size_t)n, key,
		                   sizeof key);
		fb_hex_encode(mac, sizeof mac, hex);
		printf("fa_%lld_%s\n", (long long)id, hex);
	}
	sodium_memzero(key, sizeof key);
	return fflush(stdout) ? 1 : 0;
}

static size_t discard(char *p, size_t sz, size_t nm, void *ud)
{
	(void)p;
	(void)ud;
	return sz * nm;
}

/* N connections to URL's server, each with one request answered, then held
 * idle (in the multi handle's connection cache) until stdin ends: what an
 * agent's kept-alive connection costs the server between its requests. At
 * most 32 requests at once, so the server's buffers for requests in flight
 * stay few (they are not what an idle connection costs). */
static int cmd_hold(const char *url, int64_t n, const char *cafile)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		die("libcurl failed to initialise");
	CURLM *m = curl_multi_init();
	CURL **e = calloc((size_t)n, sizeof *e);
	if (!m || !e)
		die("out of memory");
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)n + 16);
	for (int64_t i = 0; i < n; i++) {
		if (!(e[i] = curl_easy_init()))
			die("out of memory");
		curl_easy_setopt(e[i], CURLOPT_URL, url);
		curl_easy_setopt(e[i], CURLOPT_CAINFO, cafile);
		curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(e[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e[i], CURLOPT_TIMEOUT_MS, 60000L);
		curl_easy_setopt(e[i], CURLOPT_MAXAGE_CONN, 3600L);
		/* a connection of its own, never one an earlier request left idle */
		curl_easy_setopt(e[i], CURLOPT_FRESH_CONNECT, 1L);
	}
	int64_t added = 0;
	int running = 0;
	do {
		while (added < n && running < 32) {
			curl_multi_add_handle(m, e[added++]);
			running++;
		}
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left)))
			; /* finished: its connection goes idle into the cache */
		if (running || added < n)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	} while (running || added < n);
	int64_t ok = 0;
	for (int64_t i = 0; i < n; i++) {
		long st = 0;
		curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &st);
		ok += st == 200;
	}
	printf("held %lld\n", (long long)ok);
	fflush(stdout);
	char buf[256];
	while (fread(buf, 1, sizeof buf, stdin) > 0)
		;
	for (int64_t i = 0; i < n; i++) {
		curl_multi_remove_handle(m, e[i]);
		curl_easy_cleanup(e[i]);
	}
	free(e);
	curl_multi_cleanup(m);
	curl_global_cleanup();
	return 0;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		die("libsodium failed to initialise");
	if (argc == 3 && strcmp(argv[1], "world") == 0)
		return cmd_world(argv[2]);
	if (argc == 6 && strcmp(argv[1], "content") == 0)
		return cmd_content(argv[2], (uint32_t)arg_i64(argv[3], 1, 0xffffffffLL),
		                   arg_i64(argv[4], 1, INT64_MAX),
		                   arg_i64(argv[5], 0, CF_MAX_FILE));
	if (argc == 5 && strcmp(argv[1], "tokens") == 0)
		return cmd_tokens(argv[2], arg_i64(argv[3], 1, INT64_MAX),
		                  arg_i64(argv[4], 1, INT64_MAX));
	if (argc == 5 && strcmp(argv[1], "hold") == 0)
		return cmd_hold(argv[2], arg_i64(argv[3], 1, 100000), argv[4]);
	usage();
	return 2;
}
