/* libFuzzer target for the channel-file parser (cf_parse) and everything
 * behind it: on every input it checks that parsing never misbehaves, that
 * accepted files evaluate within budget and decompile/recompile losslessly.
 * Input: one mode byte, then the file. Mode bit 0 set: the harness fixes the
 * header's total length and checksum first, so the fuzzer reaches the
 * instance parser instead of stopping at the checksum. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_internal.h"

static struct cf_registry *reg;
static struct cf_event *events[3];

static void setup(void)
{
	struct fb_err err = {{0}};
	static const char *const ev[] = {
	        "{\"process_name\":\"cmd.exe\",\"command_line\":\"cmd /c whoami\","
	        "\"parent_name\":\"explorer.exe\",\"named_pipe\":\"\\\\\\\\.\\\\pipe\\\\evil\"}",
	        "{\"remote_addr\":\"10.1.2.3\",\"remote_port\":443,\"file_sha256\":"
	        "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"}",
	        "{\"remote_addr\":\"2001:db8::1\",\"file_size\":100,\"integrity_level\":2}"};
	const char *dir = getenv("FB_TEMPLATES") ? getenv("FB_TEMPLATES") : "schema/templates";
	if (cf_registry_load_dir(dir, &reg, &err) != FB_OK) {
		fprintf(stderr, "fuzz_parse: %s\n", err.msg);
		abort();
	}
	for (size_t k = 0; k < 3; k++)
		if (cf_event_from_text(ev[k], strlen(ev[k]), &events[k], &err) != FB_OK)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cf_file *f = NULL;
	struct fb_err err = {{0}};
	unsigned char *buf = NULL, *again = NULL;
	char *text = NULL;
	size_t again_len = 0;
	if (!reg)
		setup();
	if (size < 1 || size - 1 > CF_MAX_FILE + 16)
		return 0;
	size_t len = size - 1;
	buf = malloc(len ? len : 1); /* exact size: ASan sees any overread */
	if (!buf)
		abort();
	memcpy(buf, data + 1, len);
	if ((data[0] & 1) && len >= CF_HEADER_LEN) {
		cf_put32(buf + 16, (uint32_t)len);
		cf_checksum(buf, len, buf + CF_CHECKSUM_OFF);
	}
	enum fb_rc rc = cf_parse(reg, buf, len, &f, &err);
	if (rc == FB_OK) {
		for (size_t k = 0; k < 3; k++) {
			struct cf_verdict vd;
			enum fb_rc erc = cf_content_eval(f, events[k], 0, &vd, &err);
			if (erc != FB_OK && erc != FB_ETIMEOUT)
				abort();
			if (vd.matches > cf_file_instance_count(f))
				abort();
		}
		size_t n;
		const struct cf_tpl_ref *refs = cf_file_templates(f, &n);
		for (size_t k = 1; k < n; k++)
			if (refs[k - 1].id > refs[k].id || (refs[k - 1].id == refs[k].id &&
			                                    refs[k - 1].version >= refs[k].version))
				abort();
		/* a valid file must decompile and compile back to the same bytes */
		if (cf_decompile_json(reg, buf, len, &text, &err) != FB_OK)
			abort();
		if (cf_compile_json(reg, text, strlen(text), &again, &again_len, &err) != FB_OK)
			abort();
		if (again_len != len || memcmp(again, buf, len) != 0)
			abort();
	} else if (err.msg[0] == '\0') {
		abort(); /* every rejection carries a reason */
	}
	cf_file_free(f);
	free(text);
	free(again);
	free(buf);
	return 0;
}
