/* libFuzzer target for the JSON side of libfbschema: the text-form compiler
 * (cf_compile_json), the decompiler on what it produced (must succeed and
 * compile back to the same bytes) and the event builder (cf_event_from_text). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fbschema.h"

static struct cf_registry *reg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *bin = NULL, *again = NULL;
	size_t len = 0, again_len = 0;
	char *text = NULL;
	struct fb_err err = {{0}};
	struct cf_event *ev = NULL;
	if (!reg && cf_registry_load_dir(getenv("FB_TEMPLATES") ? getenv("FB_TEMPLATES")
	                                                        : "schema/templates",
	                                 &reg, &err) != FB_OK)
		abort();
	if (size > (1u << 20))
		return 0;
	if (cf_compile_json(reg, (const char *)data, size, &bin, &len, &err) == FB_OK) {
		if (len < CF_HEADER_LEN || len > CF_MAX_FILE)
			abort();
		if (cf_decompile_json(reg, bin, len, &text, &err) != FB_OK)
			abort(); /* the compiler produced something the decoder refuses */
		if (cf_compile_json(reg, text, strlen(text), &again, &again_len, &err) != FB_OK)
			abort();
		if (again_len != len || memcmp(again, bin, len) != 0)
			abort();
	} else if (err.msg[0] == '\0') {
		abort();
	}
	if (cf_event_from_text((const char *)data, size, &ev, &err) == FB_OK && !ev)
		abort();
	cf_event_free(ev);
	free(bin);
	free(again);
	free(text);
	return 0;
}
