/* Replays one fuzz target over its seed corpus and every crash ever found
 * (make test). Built once per target as test_fuzz_replay_NAME; NAME, taken
 * from argv[0], selects tests/fuzz/corpus/NAME and tests/fuzz/crashes/NAME. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char target[128];

/* Run the target on every regular file of dir except README*; returns the
 * number of inputs run. A misbehaving input aborts (sanitizers, abort()). */
static size_t replay_dir(const char *dir)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strncmp(de->d_name, "README", 6) == 0)
			continue;
		char path[4096];
		unsigned char *data = NULL;
		size_t len = 0;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (fb_file_read(path, 4u << 20, &data, &len) != FB_OK)
			continue;
		fprintf(stderr, "replay %s\n", path);
		LLVMFuzzerTestOneInput(data, len);
		free(data);
		n++;
	}
	closedir(d);
	return n;
}

static void test_corpus(void **state)
{
	char dir[256];
	snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
	size_t n = replay_dir(dir);
	printf("%s: %zu corpus inputs replayed\n", target, n);
	assert_true(n > 0); /* a target without seeds is a broken setup */
}

static void test_crashes(void **state)
{
	char dir[256];
	snprintf(dir, sizeof dir, "tests/fuzz/crashes/%s", target);
	size_t n = replay_dir(dir);
	printf("%s: %zu crash inputs replayed\n", target, n);
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	const char *pre = "test_fuzz_replay_";
	snprintf(target, sizeof target, "%s",
	         strncmp(base, pre, strlen(pre)) == 0 ? base + strlen(pre) : base);
	if (argc > 1)
		snprintf(target, sizeof target, "%s", argv[1]);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_corpus),
	        cmocka_unit_test(test_crashes),
	};
	return cmocka_run_group_tests_name(target, tests, NULL, NULL);
}
